"""The market's HTTP routers, one per resource (docs/API.md, "Market Platform")."""

from market.api.offers import router as offers_router
from market.api.orders import router as orders_router
from market.api.registry import router as registry_router
from market.api.requests import router as requests_router
from market.api.sessions import router as sessions_router

__all__ = [
    "offers_router",
    "orders_router",
    "registry_router",
    "requests_router",
    "sessions_router",
]
