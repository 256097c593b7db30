"""Builders and a running market for the market tests (and the auditor's)."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from flexledger.messages import (
    Decision,
    Eligibility,
    MarketOutcome,
    Offer,
    Order,
    Request,
    SessionAction,
    SessionCommand,
    Signed,
    SignedMessage,
    Validation,
)
from flexledger.time import MTU_S, ScenarioClock, day_start_s
from flexledger.units import Direction
from market.app import create_app
from market.service.announce import Announcer, MemoryAnnouncer
from market.service.context import MarketContext
from market.settings import MarketSettings
from node.contracts import FlexContracts
from node.keys import dev_account
from node.signing import LocalSigner, commitment_root

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
DAY = day_start_s(datetime(2026, 12, 1, tzinfo=UTC))  # delivery day
GATE = DAY - 12 * 3600  # D-1 12:00
START = DAY - 86_400 + 3600  # the clock starts at D-1 01:00
POD1, POD2, POD3 = "IT001E00000001", "IT001E00000002", "IT001E00000003"
AREAS = {POD1: "AREA-A", POD3: "AREA-A", POD2: "AREA-B"}
T40 = DAY + 40 * MTU_S  # 10:00


def pg_available() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=0.5):
            return True
    except OSError:
        return False


def signer(name: str, contracts: FlexContracts) -> LocalSigner:
    return LocalSigner(dev_account(name), contracts.roles.domain())


def env_json(envelope: Signed[Any]) -> Any:
    return envelope.model_dump(mode="json", serialize_as_any=True)


@dataclass
class Market:
    """A market app on a fresh database, served in the test's loop through ASGI."""

    contracts: FlexContracts
    tmp: Path
    db_url: str | None = None
    schema: str = "market"
    clock: ScenarioClock = field(default_factory=lambda: ScenarioClock(START, step_s=900))
    announcer: Announcer | None = None
    scheduler: bool = True
    app: FastAPI | None = None
    http: httpx.AsyncClient | None = None
    nonces: dict[str, int] = field(default_factory=dict)

    def settings(self) -> MarketSettings:
        return MarketSettings(
            home=self.tmp,
            db_url=self.db_url,
            db_schema=self.schema,
            market_operator_key="dev:market",
            role_cache_s=0.0,
            scheduler_poll_s=0.05,
        )

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Market]:
        self.announcer = self.announcer or MemoryAnnouncer()
        self.app = create_app(
            self.settings(),
            contracts=self.contracts,
            clock=self.clock,
            announcer=self.announcer,
            areas=AREAS,
            scheduler=self.scheduler,
        )
        async with self.app.router.lifespan_context(self.app):
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://market") as http:
                self.http = http
                yield self
        self.ctx.engine.dispose()

    @property
    def ctx(self) -> MarketContext:
        assert self.app is not None
        ctx: MarketContext = self.app.state.ctx
        return ctx

    def nonce(self, name: str) -> int:
        self.nonces[name] = self.nonces.get(name, 0) + 1
        return self.nonces[name]

    def sign(self, name: str, message: SignedMessage) -> Signed[Any]:
        return signer(name, self.contracts).sign(message)

    async def post(self, path: str, envelope: Signed[Any] | dict[str, Any]) -> httpx.Response:
        assert self.http is not None
        body = envelope if isinstance(envelope, dict) else env_json(envelope)
        return await self.http.post(path, json=body)

    async def get(self, path: str, **params: Any) -> Any:
        assert self.http is not None
        r = await self.http.get(path, params=params)
        assert r.status_code == 200, r.text
        return r.json()

    # -- messages ---------------------------------------------------------------------------
    def command(self, session: str, action: SessionAction, **kw: Any) -> Signed[SessionCommand]:
        kw.setdefault("delivery_start_s", DAY)
        return self.sign(
            "market",
            SessionCommand(
                session_id=session,
                action=action,
                nonce=self.nonce("market"),
                expiry_s=self.clock.now_s() + 3600,
                **kw,
            ),
        )

    async def open(self, session: str = "DA-1", **kw: Any) -> dict[str, Any]:
        r = await self.post("/sessions", self.command(session, SessionAction.OPEN, **kw))
        assert r.status_code == 201, r.text
        return dict(r.json())

    def offer(
        self,
        aggregator: str = "aggregator:1",
        pod: str = POD1,
        max_kw: float = 30,
        price_eur: float = 50,
        session: str = "DA-1",
        start: int = T40,
        count: int = 4,
        **kw: Any,
    ) -> Signed[Offer]:
        kw.setdefault("valid_until_s", DAY + 86_400)
        kw.setdefault("nonce", self.nonce(aggregator))
        return self.sign(
            aggregator,
            Offer(
                session_id=session,
                aggregator=dev_account(aggregator).address,
                pod=pod,
                direction=Direction.UP,
                mtu_start_s=start,
                mtu_count=count,
                max_w=int(max_kw * 1000),
                price_cents_per_mwh=int(price_eur * 100),
                **kw,
            ),
        )

    def dso_request(
        self,
        volume_kw: float = 25,
        session: str = "DA-1",
        start: int = T40,
        count: int = 4,
        eligible: dict[str, float] | None = None,
        **kw: Any,
    ) -> Signed[Request]:
        eligible = eligible or {POD1: 1.0, POD2: 0.8}
        kw.setdefault("valid_until_s", DAY + 86_400)
        kw.setdefault("nonce", self.nonce("dso"))
        return self.sign(
            "dso",
            Request(
                session_id=session,
                requester=dev_account("dso").address,
                direction=Direction.UP,
                mtu_start_s=start,
                mtu_count=count,
                volume_w=int(volume_kw * 1000),
                max_price_cents_per_mwh=20_000,
                eligible=[
                    Eligibility(pod=p, factor_ppm=int(f * 1_000_000)) for p, f in eligible.items()
                ],
                **kw,
            ),
        )

    def tso_request(
        self,
        volume_kw: float = 10,
        session: str = "DA-1",
        area: str = "AREA-A",
        start: int = T40,
        count: int = 4,
        **kw: Any,
    ) -> Signed[Request]:
        kw.setdefault("valid_until_s", DAY + 86_400)
        kw.setdefault("nonce", self.nonce("tso"))
        return self.sign(
            "tso",
            Request(
                session_id=session,
                requester=dev_account("tso").address,
                direction=Direction.UP,
                mtu_start_s=start,
                mtu_count=count,
                volume_w=int(volume_kw * 1000),
                max_price_cents_per_mwh=15_000,
                area=area,
                **kw,
            ),
        )

    def validation(
        self, outcome: MarketOutcome, reject: frozenset[str] | set[str] = frozenset(), **kw: Any
    ) -> Signed[Validation]:
        decisions = [
            Decision(
                award_hash=a.award_hash,
                approved=a.award_hash not in reject,
                reason=None if a.award_hash not in reject else "overvoltage:bus7",
            )
            for a in outcome.awards
        ]
        root = "0x" + commitment_root([d.leaf() for d in decisions]).hex()
        kw.setdefault("nonce", self.nonce("dso-validation"))
        return self.sign(
            "dso",
            Validation(
                session_id=outcome.session_id,
                round=outcome.round,
                awards_root=outcome.awards_root,
                decisions=decisions,
                decisions_root=root,
                **kw,
            ),
        )

    def order(
        self, award: Any, issuer: str = "dso", power_w: int | None = None, **kw: Any
    ) -> Signed[Order]:
        kw.setdefault("nonce", self.nonce(f"order:{issuer}"))
        kw.setdefault("expiry_s", self.clock.now_s() + 86_400 * 3)
        return self.sign(
            issuer,
            Order(
                session_id=award["session_id"] if isinstance(award, dict) else award.session_id,
                offer_hash=award["offer_hash"] if isinstance(award, dict) else award.offer_hash,
                request_hash=award["request_hash"]
                if isinstance(award, dict)
                else award.request_hash,
                mtu_start_s=award["mtu_start_s"] if isinstance(award, dict) else award.mtu_start_s,
                mtu_count=1,
                power_w=power_w or (award["power_w"] if isinstance(award, dict) else award.power_w),
                **kw,
            ),
        )

    # -- flows --------------------------------------------------------------------------------
    async def advance_to(self, t_s: int) -> None:
        """Move the scenario clock to ``t_s`` (the scheduler closes due gates on its own)."""
        while self.clock.now_s() < t_s:
            await self.clock.advance(min(self.clock.step_s, t_s - self.clock.now_s()))

    async def wait_state(
        self, session: str, *states: str, timeout_s: float = 20.0
    ) -> dict[str, Any]:
        import asyncio

        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            s = await self.get(f"/sessions/{session}")
            if s["state"] in states:
                return dict(s)
            if loop.time() > deadline:
                raise AssertionError(f"session {session} stayed {s['state']}, not {states}: {s}")
            await asyncio.sleep(0.02)

    async def round(self, session: str, n: int) -> Signed[MarketOutcome]:
        data = await self.get(f"/sessions/{session}/rounds/{n}")
        return Signed[MarketOutcome].model_validate(data)

    async def populate(self, session: str = "DA-1") -> None:
        """Three offers, a DSO request and a TSO request (all accepted)."""
        for env in (
            self.offer("aggregator:1", POD1, 30, 50, session),
            self.offer("aggregator:2", POD2, 20, 60, session),
            self.offer("aggregator:1", POD3, 50, 80, session),
            self.dso_request(session=session),
            self.tso_request(session=session),
        ):
            path = "/offers" if isinstance(env.message, Offer) else "/requests"
            r = await self.post(path, env)
            assert r.status_code == 201, r.text

    async def run_day_ahead(
        self, session: str = "DA-1", reject_first: bool = True
    ) -> dict[str, Any]:
        """Open, populate, close the gate on the clock, validate (rejecting one award in round
        1 if asked), and return the final session."""
        await self.open(session)
        await self.populate(session)
        await self.advance_to(GATE)
        await self.wait_state(session, "validating")
        r1 = (await self.round(session, 1)).message
        reject = {r1.awards[0].award_hash} if reject_first else set()
        r = await self.post(f"/sessions/{session}/validations", self.validation(r1, reject))
        assert r.status_code == 201, r.text
        if reject:
            r2 = (await self.round(session, 2)).message
            r = await self.post(f"/sessions/{session}/validations", self.validation(r2))
            assert r.status_code == 201, r.text
        return await self.wait_state(session, "final")
