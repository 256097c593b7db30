"""``create_app(settings)``: the Market Platform's FastAPI application.

The app owns a ``MarketContext`` (database migrated at creation, chain, clock, announcer); its
lifespan finishes what a previous process left half done (``sessions.recover``), connects the
MQTT announcer when ``FLEX_MQTT_URL`` is set, and runs the gate-closure scheduler.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from flexledger.protocols import Clock
from flexledger.transport import Topics
from flexledger.transport.api import error_response, install_error_handlers
from market.api import (
    offers_router,
    orders_router,
    registry_router,
    requests_router,
    sessions_router,
)
from market.service import build_context, sessions
from market.service.announce import Announcer, MqttAnnouncer
from market.service.errors import MarketError
from market.service.scd import ScdReader
from market.service.scheduler import GateScheduler
from market.settings import MarketSettings
from node.contracts import FlexContracts

__all__ = ["create_app"]

log = logging.getLogger(__name__)


async def _on_market_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, MarketError)
    return error_response(exc.status, exc.code, exc.message, exc.details)


def create_app(
    settings: MarketSettings | None = None,
    *,
    contracts: FlexContracts | None = None,
    clock: Clock | None = None,
    announcer: Announcer | None = None,
    areas: Mapping[str, str] | None = None,
    scheduler: bool = True,
    scd: ScdReader | None = None,
) -> FastAPI:
    """The market API. Everything but ``settings`` is for wiring and tests: injected contracts
    (else ``FLEX_RPC_URL`` and the address book), a clock (else the wall clock), an announcer
    (else MQTT at ``FLEX_MQTT_URL``, or none), extra POD areas, whether gates close on the
    clock by themselves, and the SCD reader of settlement (else HTTP at ``FLEX_SCD_URL``)."""
    settings = settings or MarketSettings()
    mqtt: MqttAnnouncer | None = None
    if announcer is None and settings.mqtt_url:
        mqtt = MqttAnnouncer(settings.mqtt_url, Topics(settings.mqtt_root))
        announcer = mqtt
    ctx = build_context(
        settings, contracts=contracts, clock=clock, announcer=announcer, areas=areas, scd=scd
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if mqtt is not None:
            await mqtt.start()
        await anyio.to_thread.run_sync(sessions.recover, ctx)
        gates = GateScheduler(ctx)
        if scheduler:
            gates.start()
        try:
            yield
        finally:
            await gates.close()
            if mqtt is not None:
                await mqtt.close()

    app = FastAPI(
        title="flexledger Market Platform",
        version="1.0.0",
        description="Offers, requests, sessions, validation rounds, outcomes and orders of the "
        "local flexibility market (UC-IT-1). docs/API.md has the conventions.",
        lifespan=lifespan,
    )
    app.state.ctx = ctx
    install_error_handlers(app)
    app.add_exception_handler(MarketError, _on_market_error)
    for router in (sessions_router, offers_router, requests_router, orders_router, registry_router):
        app.include_router(router)
    return app
