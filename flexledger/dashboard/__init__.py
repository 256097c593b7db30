"""The operator dashboard (floor 4, issue #9): one web app over the services' public HTTP APIs
and the chain's JSON-RPC — grid, market, activation, ledger and settlement views, live over
server-sent events, read-only and role-scoped with ``FLEX_DASHBOARD_AUTH``.

``create_app(DashboardConfig(...))``; ``EmbeddedStack.start_dashboard()`` and
``flexledger serve dashboard`` serve it. Decisions: docs/NOTES-dashboard.md.
"""

from .app import create_app
from .config import ROLE_VIEWS, VIEWS, DashboardAuth, DashboardConfig, Principal
from .sources import SourceError, Sources

__all__ = [
    "ROLE_VIEWS",
    "VIEWS",
    "DashboardAuth",
    "DashboardConfig",
    "Principal",
    "SourceError",
    "Sources",
    "create_app",
]
