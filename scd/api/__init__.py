"""The SCD's HTTP API: ``create_app(settings)``."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI

from flexledger.transport.api import install_error_handlers
from scd.service import ScdService
from scd.settings import ScdSettings

__all__ = ["create_app"]

log = logging.getLogger(__name__)


def create_app(
    settings: ScdSettings | None = None,
    *,
    service: ScdService | None = None,
    run_service: bool = True,
) -> FastAPI:
    """The SCD's FastAPI app (OpenAPI at ``/docs``).

    Without ``service`` one is made from ``settings`` (database migrated, chain connected).
    With ``run_service`` the app's lifespan starts and stops its MQTT ingestion and chain
    following; a caller that runs the service itself passes ``run_service=False``.
    """
    from scd.api.routers import availability, baselines, customers, measures, samples

    if service is None:
        service = ScdService.from_settings(settings or ScdSettings())

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if run_service:
            await service.start()
        try:
            yield
        finally:
            if run_service:
                await service.stop()

    app = FastAPI(
        title="flexledger Shared Customer Database",
        description="PODs, customers, availabilities, baselines, quarterly and 4 s measures, "
        "certifications (docs/API.md).",
        version="1",
        lifespan=lifespan,
    )
    app.state.scd = service
    install_error_handlers(app)
    for module in (customers, availability, baselines, measures, samples):
        app.include_router(module.router)

    @app.get("/health", tags=["health"])
    def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "service": "scd",
            "chain_id": service.chain.chain_id,
            "block": service.chain.block_number(),
        }

    return app
