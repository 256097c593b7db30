"""``create_app(settings)``: the Aggregator Platform's FastAPI application (docs/API.md).

Routes: ``POST /availability`` (I-12, signed by the FR owner), ``GET /availability``,
``GET /flexibility/{day_s}`` (the estimate), ``GET /offers``, ``GET /plans/{fr_owner}`` (I-13),
``GET /payouts`` (I-17), ``GET /sessions/{session_id}/steps`` (what following the market did),
``GET /health``. The app's lifespan grants the FR owner role to the portfolio's owners that do
not have it yet and, with ``FLEX_AGGREGATOR_FOLLOW``, follows the market (offers, plans,
payouts) on its own, woken by the market's session events when ``FLEX_MQTT_URL`` is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

import anyio
import httpx
from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response
from fastapi.responses import JSONResponse

from aggregator.portfolio import Portfolio, load_portfolio
from aggregator.schemas import FlexibilityPublic, OfferPublic
from aggregator.service import AggregatorService
from aggregator.settings import AggregatorSettings
from flexledger.messages import AggregatorPayment, DerPlanning, DerStatus, Receipt, Signed
from flexledger.protocols import Clock
from flexledger.storage import is_postgres, make_engine, migrate
from flexledger.time import WallClock
from flexledger.transport.api import ERROR_RESPONSES, error_response, install_error_handlers
from flexledger.transport.http import ServiceError, ServiceUnreachableError, SignedHttpClient
from node.contracts import ContractError, FlexContracts
from node.keys import load_account

__all__ = ["build_service", "create_app"]

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def _connect(settings: AggregatorSettings) -> FlexContracts:
    from node.addressbook import AddressBook
    from node.devnet import connect

    if not settings.rpc_url:
        raise ValueError("the aggregator needs a chain: set FLEX_RPC_URL or pass contracts")
    book = settings.address_book or settings.home / "addresses.json"
    return FlexContracts.from_address_book(connect(settings.rpc_url), AddressBook.load(book))


def build_service(
    settings: AggregatorSettings,
    *,
    contracts: FlexContracts | None = None,
    clock: Clock | None = None,
    portfolio: Portfolio | None = None,
    market_transport: httpx.AsyncBaseTransport | None = None,
    scd_transport: httpx.AsyncBaseTransport | None = None,
) -> AggregatorService:
    """The aggregator, connected: database migrated, chain, portfolio, market and SCD clients.
    Everything but ``settings`` is for wiring and tests."""
    engine = make_engine(settings.database_url(), schema=settings.aggregator_db_schema)
    migrate(
        engine,
        MIGRATIONS,
        schema=settings.aggregator_db_schema if is_postgres(engine) else None,
    )
    account = load_account(settings.aggregator_key)
    if portfolio is None:
        if settings.aggregator_portfolio is None:
            raise ValueError("the aggregator needs its portfolio: FLEX_AGGREGATOR_PORTFOLIO")
        portfolio = load_portfolio(
            settings.aggregator_portfolio, settings.aggregator_name or settings.key_name()
        )
    contracts = contracts or _connect(settings)
    service = AggregatorService(
        settings=settings,
        engine=engine,
        contracts=contracts,
        account=account,
        portfolio=portfolio,
        clock=clock or WallClock(),
        market=SignedHttpClient(settings.market_url, transport=market_transport, timeout_s=60),
        scd=SignedHttpClient(settings.scd_url, transport=scd_transport, timeout_s=60),
    )
    return service


def _service(request: Request) -> AggregatorService:
    service: AggregatorService = request.app.state.aggregator
    return service


Service = Annotated[AggregatorService, Depends(_service)]
router = APIRouter(responses=ERROR_RESPONSES)


@router.post("/availability", status_code=201, tags=["availability"])
def post_availability(service: Service, envelope: Signed[DerStatus], response: Response) -> Receipt:
    """An FR owner's availability for a day (I-12), signed by the FR owner whose role this
    aggregator granted on chain; forwarded to the SCD. 200 with ``duplicate`` when seen before."""
    receipt, created = service.submit_availability(envelope)
    if not created:
        response.status_code = 200
    return receipt


@router.get("/availability", tags=["availability"])
def get_availability(
    service: Service, day_s: int, pod: Annotated[str | None, Query(max_length=34)] = None
) -> list[Signed[DerStatus]]:
    """The newest availability of each POD for the day."""
    return service.availabilities(day_s, pod)


@router.get("/flexibility/{day_s}", tags=["flexibility"])
async def get_flexibility(service: Service, day_s: int) -> list[FlexibilityPublic]:
    """Per declared POD: its expected baseline (I-01 history) and each resource's modelled
    flexibility and price for the day."""
    return await service.estimate(day_s)


@router.get("/offers", tags=["offers"])
def get_offers(
    service: Service, session: Annotated[str | None, Query(max_length=64)] = None
) -> list[OfferPublic]:
    """The offers this aggregator signed, with the resource behind each and its receipt."""
    return service.stored_offers(session)


@router.get("/plans/{fr_owner}", tags=["plans"])
def get_plans(
    service: Service, fr_owner: str, session: Annotated[str | None, Query(max_length=64)] = None
) -> list[Signed[DerPlanning]]:
    """I-13: what the FR owner must provide (time frames and power), per session and POD,
    signed by the aggregator."""
    return service.plans_of(fr_owner, session)


@router.get("/payouts", tags=["payouts"])
def get_payouts(
    service: Service,
    fr_owner: Annotated[str | None, Query(max_length=42)] = None,
    session: Annotated[str | None, Query(max_length=64)] = None,
) -> list[AggregatorPayment]:
    """I-17: what the aggregator paid its FR owners on chain, per session."""
    return service.payouts(fr_owner=fr_owner, session_id=session)


@router.get("/sessions/{session_id}/steps", tags=["follow"])
def get_steps(service: Service, session_id: str) -> dict[str, Any]:
    """What following the market did for the session so far: ``offered``, ``planned``,
    ``paid``, each with its detail (counts)."""
    return service.steps(session_id)


@router.get("/health", tags=["health"])
def health(service: Service) -> dict[str, Any]:
    w3 = service.contracts.roles.w3
    return {
        "status": "ok",
        "service": "aggregator",
        "aggregator": service.address,
        "chain_id": w3.eth.chain_id,
        "block": w3.eth.block_number,
    }


def create_app(
    settings: AggregatorSettings | None = None,
    *,
    service: AggregatorService | None = None,
    **wiring: Any,
) -> FastAPI:
    """The aggregator API; ``service`` (or ``build_service``'s wiring keywords) for tests."""
    settings = settings or AggregatorSettings()
    service = service or build_service(settings, **wiring)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            granted = await anyio.to_thread.run_sync(service.grant_owners)
            if granted:
                log.info("granted the FR owner role to %d owners", granted)
        except Exception as exc:  # the chain may be down: availability then answers 403
            log.warning("could not grant the FR owners their role: %s", exc)
        async with contextlib.AsyncExitStack() as stack:
            task = None
            if settings.aggregator_follow:
                wake = await _session_events(settings, stack)
                task = asyncio.create_task(service.follow(wake))
            try:
                yield
            finally:
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            await service.market.aclose()
            await service.scd.aclose()

    app = FastAPI(
        title="flexledger Aggregator Platform",
        version="1.0.0",
        description="FR owners' availability (I-12), flexibility estimates, offers (I-05), "
        "FR owner plans (I-13) and payouts (I-17). docs/API.md has the conventions.",
        lifespan=lifespan,
    )
    app.state.aggregator = service
    install_error_handlers(app)
    app.add_exception_handler(ServiceError, _upstream)
    app.add_exception_handler(ServiceUnreachableError, _upstream)
    app.add_exception_handler(ContractError, _chain)
    app.include_router(router)
    return app


async def _session_events(
    settings: AggregatorSettings, stack: contextlib.AsyncExitStack
) -> asyncio.Event | None:
    """An event set by every market session announcement on MQTT (None without a broker)."""
    if not settings.mqtt_url:
        return None
    from flexledger.transport import MqttClient, Topics, unique_client_id

    wake = asyncio.Event()

    async def on_session(_topic: str, _payload: bytes) -> None:
        wake.set()

    name = (settings.aggregator_name or settings.key_name()).replace(":", "-")
    mqtt = await stack.enter_async_context(
        MqttClient(settings.mqtt_url, unique_client_id(f"agg-{name}"))
    )
    await mqtt.subscribe_raw(Topics(settings.topic_root).all_market_sessions(), on_session)
    return wake


async def _upstream(_: Request, exc: Exception) -> JSONResponse:
    """The SCD or the market refused or did not answer what this request needed."""
    return error_response(502, "upstream_error", str(exc))


async def _chain(_: Request, exc: Exception) -> JSONResponse:
    return error_response(502, "chain_error", f"{type(exc).__name__}: {exc}")
