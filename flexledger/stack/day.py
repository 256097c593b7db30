"""One market day of a scenario on the embedded default (ARCHITECTURE.md, "One market day").

``run_day`` drives every actor of a stack through its public APIs and transports only, stage
by stage: the market operator's signed session commands over HTTP, the scenario clock, the
aggregators following the market by themselves (offers on open, plans on final, payouts on
settled; the driver waits on their ``/sessions/{id}/steps``), the DSO TP acting on the market's
MQTT session events (the driver waits on its ``GET /requests``), the TSO simulator, and waits on
public endpoints. One driver serves both stacks (:class:`DayStack`): the embedded
:class:`~flexledger.stack.services.EmbeddedStack` (one process) and the
:class:`~flexledger.stack.distributed.DistributedStack` (each actor its own process). It returns
a :class:`DayResult` with the figures of the day, the audits' verdicts and each stage's wall
time:

1. history and baselines: the DSO uploads the I-01 history, the BRP commits and uploads its
   I-03 baseline, FR owners declare availability (I-12), aggregators register customers (I-02);
2. day ahead: the market opens the session; aggregators offer (I-05), the DSO forecasts,
   assesses and requests (I-06), the TSO requests; at gate closure the market clears, the DSO
   validates each round over MQTT (I-07) until the outcome is final (I-08); plans (I-13);
3. the delivery day on the accelerated scenario clock: DSO and TSO order their awards (I-09),
   the DSO TP turns orders into set-points, Light Nodes sample, sign, publish and anchor
   (concentrator) every 4 s sample; a real-time session every 4 hours;
4. settlement (I-15) and payments (I-16, I-17);
5. the three audits (measurements, market, settlement).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from flexledger.messages import (
    DerStatus,
    MarketOutcome,
    Order,
    ResourceInfo,
    ResourceKind,
    SessionAction,
    SessionCommand,
    Signed,
)
from flexledger.time import DAY_S, MTU_S, RT_SESSION_MTUS, SAMPLES_PER_MTU
from flexledger.transport import SignedHttpClient
from node.keys import dev_account, load_account
from node.signing import LocalSigner

__all__ = ["DayResult", "DayStack", "SessionResult", "StageTimer", "run_day"]

log = logging.getLogger(__name__)

RT_BLOCK_S = 4 * 3600
_KINDS = {
    "pv": ResourceKind.PV,
    "battery": ResourceKind.BATTERY,
    "ev": ResourceKind.EV,
    "heat_pump": ResourceKind.HEAT_PUMP,
    "hvac": ResourceKind.HVAC,
    "other_load": ResourceKind.OTHER_LOAD,
}

Progress = Callable[[str, float, float], None]
"""``progress(stage, done, total)``: how the CLI draws its bars."""


@dataclass
class StageTimer:
    """Wall time per stage, in seconds, in the order they ran."""

    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        log.info("stage %s", name)
        try:
            yield
        finally:
            self.seconds[name] = round(time.perf_counter() - t0, 2)


@dataclass
class SessionResult:
    """One session: its final outcome's figures, its orders and settlement."""

    session_id: str
    kind: str
    delivery_start_s: int
    mtu_count: int
    requests: list[dict[str, Any]] = field(default_factory=list)
    offers: int = 0
    rounds: int = 0
    awards: list[dict[str, Any]] = field(default_factory=list)
    orders: int = 0
    settlement: dict[str, Any] | None = None
    audit_market: dict[str, Any] | None = None
    audit_settlement: dict[str, Any] | None = None


@dataclass
class DayResult:
    """What the day did, for the summary, the report and the tests."""

    scenario: str
    day_s: int
    pods: int
    timings: StageTimer = field(default_factory=StageTimer)
    sessions: list[SessionResult] = field(default_factory=list)
    assessment: Any = None
    samples_stored: int = 0
    windows: dict[str, int] = field(default_factory=dict)
    anchor_txs: int = 0
    payments_cents: dict[str, int] = field(default_factory=dict)
    payouts_cents: dict[str, int] = field(default_factory=dict)
    audit_measurements: dict[str, Any] = field(default_factory=dict)
    not_done: list[str] = field(default_factory=list)

    @property
    def audits_ok(self) -> bool:
        checks = [self.audit_measurements.get("ok", False)]
        for s in self.sessions:
            if s.audit_market is not None:
                checks.append(bool(s.audit_market.get("ok")))
            if s.audit_settlement is not None:
                checks.append(bool(s.audit_settlement.get("ok")))
        return all(checks)


class DayStack(Protocol):
    """What the day's driver needs of a started stack: where the services listen (``urls``),
    the chain (``contracts``, ``chain.book_path``, ``book.deploy_block``), the scenario and its
    world (history, BRP baselines, POD codes), signed HTTP clients, the scenario clock, and
    the Light Nodes."""

    scenario: Any
    world: Any
    day_s: int
    urls: Any
    chain: Any
    book: Any
    contracts: Any
    domain: Any
    concentrator: Any

    def client(
        self, url: str, key: str | None = None, timeout_s: float = 60.0
    ) -> SignedHttpClient: ...

    def now_s(self) -> int:
        """The scenario clock."""
        ...

    async def advance_to(self, t_s: int) -> None:
        """Move the scenario clock to ``t_s`` exactly (every actor sees it)."""
        ...

    async def start_light_nodes(self) -> None: ...

    async def setpoints_applied(self) -> int:
        """Set-points the world's BMS have applied so far (they came through a Light Node)."""
        ...

    def day_ahead_assessment(self) -> Any:
        """The DSO's day-ahead assessment object when it is in this process (the report's
        heatmap), else None."""
        ...


class _Day:
    """The steps of the day over one stack (see the module docstring)."""

    def __init__(self, stack: DayStack, progress: Progress | None) -> None:
        self.s = stack
        self.progress = progress or (lambda stage, done, total: None)
        self.day_s = stack.day_s
        self.market_op = stack.client(stack.urls.market, "dev:market")
        self.tso_market = stack.client(stack.urls.market, "dev:tso")
        self.scd_dso = stack.client(stack.urls.scd, "dev:dso")
        self.scd_brp = stack.client(stack.urls.scd, "dev:brp")
        self.scd_tso = stack.client(stack.urls.scd, "dev:tso")
        self.market_dso = stack.client(stack.urls.market, "dev:dso")
        self.dso = stack.client(stack.urls.dso)
        self.aggregators = {
            name: stack.client(url) for name, url in sorted(stack.urls.aggregators.items())
        }
        self._nonce = {"market": 1, "dso-order": 1, "owner": 1}
        from sim import TsoSimulator

        self.tso = TsoSimulator(stack.scenario, self.tso_market, self.scd_tso)
        self.result = DayResult(stack.scenario.name, self.day_s, len(stack.world.pod_codes))

    async def dso_requests(self, kind: str, start_s: int, timeout_s: float = 180) -> Any:
        """The DSO TP's requests of a session (its ``GET /requests``) once they are posted."""
        from flexledger.messages import Request
        from flexledger.transport.http import ServiceError

        deadline = time.monotonic() + timeout_s
        while True:
            try:
                body = await self.dso.get("/requests", {"day_s": start_s, "kind": kind})
            except ServiceError as exc:
                if exc.status != 404:
                    raise
                body = None
            if body is not None:
                requests, receipts = body["requests"], body["receipts"]
                if (requests or not body["needs"]) and len(receipts) == len(requests):
                    return [Signed[Request].model_validate(r) for r in requests]
            if time.monotonic() > deadline:
                raise TimeoutError(f"the DSO posted no requests for the {kind} from {start_s}")
            await asyncio.sleep(0.1)

    async def aggregator_steps(
        self, session: str, step: str, timeout_s: float = 120
    ) -> dict[str, Any]:
        """Aggregator name → detail of ``step`` (offered, planned, paid) once each aggregator
        following the market has done it for ``session`` (missing: not within the timeout)."""
        done: dict[str, Any] = {}
        deadline = time.monotonic() + timeout_s
        while True:
            for name, client in self.aggregators.items():
                if name not in done:
                    steps = await client.get(f"/sessions/{session}/steps")
                    if step in steps:
                        done[name] = steps[step] or {}
            if len(done) == len(self.aggregators):
                return done
            if time.monotonic() > deadline:
                missing = sorted(set(self.aggregators) - set(done))
                log.warning("session %s: %s not %s", session, missing, step)
                return done
            await asyncio.sleep(0.1)

    # -- helpers -----------------------------------------------------------------------------

    def _next(self, key: str) -> int:
        n = self._nonce[key]
        self._nonce[key] = n + 1
        return n

    async def advance_to(self, t_s: int) -> None:
        if self.s.now_s() < t_s:
            await self.s.advance_to(t_s)

    async def command(self, session: str, action: SessionAction, **kw: Any) -> Any:
        message = SessionCommand(
            session_id=session,
            action=action,
            nonce=self._next("market"),
            expiry_s=self.s.now_s() + 3600,
            **kw,
        )
        path = "/sessions" if action == SessionAction.OPEN else f"/sessions/{session}/commands"
        return await self.market_op.post_signed(path, message)

    async def session_state(self, session: str) -> dict[str, Any]:
        body: dict[str, Any] = await self.market_op.get(f"/sessions/{session}")
        return body

    async def wait_state(
        self, session: str, states: tuple[str, ...], timeout_s: float = 120
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            body = await self.session_state(session)
            if body.get("state") in states:
                return body
            if time.monotonic() > deadline:
                raise TimeoutError(f"session {session} is {body.get('state')}, not {states}")
            await asyncio.sleep(0.1)

    async def outcome(self, session: str) -> MarketOutcome:
        raw = await self.market_op.get(f"/sessions/{session}/outcome")
        return Signed[MarketOutcome].model_validate(raw).message

    # -- 1. history and baselines ------------------------------------------------------------

    async def history_and_baselines(self) -> None:
        from sim import Brp, upload_history

        s = self.s
        # the aggregators register their customers (I-02) themselves when the day-ahead
        # session opens, from the availability declared here
        await self.availability()
        self.progress("history", 2, 4)
        await upload_history(s.world, self.scd_dso)
        self.progress("history", 3, 4)
        brp = Brp(s.world, dev_account("brp").address)
        await asyncio.to_thread(brp.commit, s.contracts.baselines, dev_account("brp"))
        await brp.upload(self.scd_brp)
        self.progress("history", 4, 4)

    async def availability(self) -> None:
        """Every FR owner declares its resources for the day (I-12) to its aggregator."""
        s = self.s
        addresses = {a.name: load_account(a.key).address for a in s.scenario.aggregators}
        for pod in s.scenario.pods:
            if not pod.owner or not pod.resources or pod.aggregator not in s.urls.aggregators:
                continue
            owner = load_account(pod.owner)
            resources = [
                ResourceInfo(
                    resource_id=r.id,
                    kind=_KINDS[r.kind],
                    p_max_w=round(r.p_max_kw * 1000),
                    e_max_wh=round((r.e_max_kwh or 0) * 1000),
                    available_from_s=self.day_s + r.available_from_mtu * MTU_S,
                    available_to_s=self.day_s + r.available_to_mtu * MTU_S,
                )
                for r in pod.resources
            ]
            status = DerStatus(
                fr_owner=owner.address,
                aggregator=addresses[pod.aggregator],
                pod=pod.code,
                day_s=self.day_s,
                resources=resources,
                nonce=self._next("owner"),
            )
            envelope = LocalSigner(owner, s.domain).sign(status)
            url = s.urls.aggregators[pod.aggregator]
            async with _raw_client(url) as http:
                r = await http.post(
                    "/availability", json=envelope.model_dump(mode="json", serialize_as_any=True)
                )
                if r.status_code >= 300:
                    raise RuntimeError(f"availability of {pod.code}: {r.status_code} {r.text}")

    # -- 2. sessions ---------------------------------------------------------------------------

    async def run_session(
        self, session: str, kind: str, start_s: int, mtu_count: int
    ) -> SessionResult:
        """Open, offers and requests, gate closure, validation rounds until final, plans."""
        s = self.s
        res = SessionResult(session, kind, start_s, mtu_count)
        await self.command(
            session,
            SessionAction.OPEN,
            kind=kind,
            delivery_start_s=start_s,
            mtu_count=mtu_count,
        )
        if kind == "day_ahead":
            # the aggregators hear the session open and offer by themselves
            offered = await self.aggregator_steps(session, "offered")
            res.offers = sum(int(d.get("offers", 0)) for d in offered.values())
        # the DSO TP hears the session open on MQTT and posts its requests by itself
        requests = await self.dso_requests(kind, start_s)
        if kind == "day_ahead":
            self.result.assessment = s.day_ahead_assessment()
        res.requests = [
            {
                "requester": "dso",
                "direction": str(r.message.direction),
                "mtu_start_s": r.message.mtu_start_s,
                "mtu_count": r.message.mtu_count,
                "volume_w": r.message.volume_w,
                "eligible": {e.pod: e.factor_ppm for e in r.message.eligible},
            }
            for r in requests
        ]
        tso_kind = "day_ahead" if kind == "day_ahead" else "real_time"
        tso_receipts = await self.tso.post_requests(
            session, tso_kind, start_s=start_s, mtu_count=mtu_count, valid_until_s=start_s
        )
        res.requests += [{"requester": "tso"} for _ in tso_receipts]
        body = await self.session_state(session)
        gate = int(body.get("gate_closure_s") or start_s - 300)
        await self.advance_to(gate)
        final = await self.wait_state(session, ("final", "failed", "cancelled"), timeout_s=300)
        res.rounds = int(final.get("round") or final.get("rounds") or 0)
        if final.get("state") != "final":
            log.warning("session %s ended %s", session, final.get("state"))
            return res
        outcome = await self.outcome(session)
        res.rounds = outcome.round
        res.awards = [
            {**a.model_dump(mode="json"), "award_hash": a.award_hash} for a in outcome.awards
        ]
        # the aggregators plan their FR owners (I-13) by themselves on the final outcome
        await self.aggregator_steps(session, "planned")
        return res

    async def order(self, res: SessionResult) -> None:
        """DSO and TSO order every award of theirs; wait until each set-point reached its BMS."""
        from sim import group_orders

        if not res.awards:
            return
        s = self.s
        outcome = await self.outcome(res.session_id)
        dso_awards = [a for a in outcome.awards if a.stage == "dso"]
        signer = LocalSigner(dev_account("dso"), s.domain)
        before = await s.setpoints_applied()
        n = 0
        for run in group_orders(dso_awards):
            order = Order(
                session_id=res.session_id,
                offer_hash=run.offer_hash,
                request_hash=run.request_hash,
                mtu_start_s=run.mtu_start_s,
                mtu_count=run.mtu_count,
                power_w=run.power_w,
                nonce=self._next("dso-order"),
                expiry_s=run.mtu_start_s + run.mtu_count * MTU_S,
            )
            await self.market_dso.post_envelope("/orders", signer.sign(order))
            n += 1
        tso = await self.tso.order_awards(
            res.session_id, expiry_s=res.delivery_start_s + res.mtu_count * MTU_S
        )
        n += len(tso)
        res.orders = n
        # set-points travel market -> MQTT -> DSO TP -> MQTT -> Light Node -> BMS
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            got = await s.setpoints_applied() - before
            if got >= n:
                break
            await asyncio.sleep(0.05)
        got = await s.setpoints_applied() - before
        log.info("%s: %d orders, %d set-points reached the BMS", res.session_id, n, got)

    # -- 3. the delivery day -------------------------------------------------------------------

    async def delivery(self) -> None:
        blocks = DAY_S // RT_BLOCK_S
        for k in range(blocks):
            block_start = self.day_s + k * RT_BLOCK_S
            if k > 0:
                await self.advance_to(block_start - 2 * MTU_S)
                rt = await self.run_session(f"RT-{k}", "real_time", block_start, RT_SESSION_MTUS)
                self.result.sessions.append(rt)
                await self.order(rt)
            await self.advance_to(block_start + RT_BLOCK_S - (2 * MTU_S if k < blocks - 1 else 0))
            self.progress("delivery", k + 1, blocks)
        await self.advance_to(self.day_s + DAY_S + 2 * MTU_S)

    async def wait_certified(self, timeout_s: float = 300) -> None:
        """Until every window of the day of every POD is certified by the SCD."""
        s = self.s
        want = DAY_S // MTU_S
        deadline = time.monotonic() + timeout_s
        last_done, last_change = -1, time.monotonic()
        while True:
            counts: dict[str, int] = {}
            done = 0
            for pod in s.world.pod_codes:
                rows = await self.scd_dso.get(
                    "/windows", {"pod": pod, "from_s": self.day_s, "to_s": self.day_s + DAY_S}
                )
                items = rows.get("items", rows) if isinstance(rows, dict) else rows
                for w in items:
                    counts[w["status"]] = counts.get(w["status"], 0) + 1
                done += sum(1 for w in items if w["status"] == "certified")
            total = want * len(s.world.pod_codes)
            self.progress("certify", done, total)
            if done >= total:
                self.result.windows = counts
                # a window is certified only with all of its 225 samples stored and verified
                self.result.samples_stored = done * SAMPLES_PER_MTU
                return
            if done != last_done:
                last_done, last_change = done, time.monotonic()
            elif time.monotonic() - last_change > 20 and s.concentrator is not None:
                # a batch manifest lost under load leaves its windows "not anchored" at the
                # SCD: the concentrator publishes its manifests again
                n = await s.concentrator.republish()
                log.warning("certification stalled at %d windows: %d batches republished", done, n)
                last_change = time.monotonic()
            if time.monotonic() > deadline:
                self.result.windows = counts
                raise TimeoutError(f"{done} of {total} windows certified: {counts}")
            await asyncio.sleep(1.0)

    # -- 4. settlement -------------------------------------------------------------------------

    async def settle(self) -> None:
        s = self.s
        for payer in ("dso", "tso"):
            await asyncio.to_thread(
                s.contracts.token.approve,
                dev_account(payer),
                s.contracts.settlement.address,
                10**9,
            )
        await self.advance_to(self.day_s + DAY_S + 2 * MTU_S)
        for i, res in enumerate(self.result.sessions):
            self.progress("settlement", i, len(self.result.sessions))
            if not res.awards or not res.orders:
                continue
            await self.command(res.session_id, SessionAction.SETTLE)
            deadline = time.monotonic() + 120
            while True:
                view = await self.market_op.get(f"/sessions/{res.session_id}/settlement")
                if view.get("state") == "settled" or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.2)
            res.settlement = view
            for line in res.settlement.get("lines", []):
                out = line["outcome"]["message"]
                tso = dev_account("tso").address.lower()
                payer = "tso" if str(line["payer"]).lower() == tso else "dso"
                self.result.payments_cents[payer] = self.result.payments_cents.get(payer, 0) + int(
                    out["amount_cents"]
                )
            # the aggregators pay their FR owners (I-17) by themselves once it is settled
            await self.aggregator_steps(res.session_id, "paid")
            for name, agg in self.aggregators.items():
                paid = await agg.get("/payouts", {"session": res.session_id})
                self.result.payouts_cents[name] = self.result.payouts_cents.get(name, 0) + sum(
                    int(p["amount_cents"]) for p in paid
                )
        self.progress("settlement", 1, 1)

    # -- 5. audits -----------------------------------------------------------------------------

    async def audits(self) -> None:
        s = self.s
        # the measurement audit fetches and re-hashes every sample of the day: it runs in
        # worker processes (the auditor is another party anyway) while this process serves the
        # SCD's answers and runs the market and settlement audits
        pods = s.world.pod_codes
        parts = [pods[i::MEASUREMENT_AUDIT_WORKERS] for i in range(MEASUREMENT_AUDIT_WORKERS)]
        loop = asyncio.get_running_loop()
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(len(parts), mp_context=ctx) as pool:
            futures = [
                loop.run_in_executor(
                    pool,
                    audit_measurements_worker,
                    s.urls.scd,
                    s.urls.rpc,
                    str(s.chain.book_path),
                    part,
                    self.day_s,
                    self.day_s + DAY_S,
                    s.book.deploy_block,
                )
                for part in parts
                if part
            ]
            await self._market_and_settlement_audits()
            parts_done = await asyncio.gather(*futures)
        merged: dict[str, Any] = {"ok": all(p["ok"] for p in parts_done), "counts": {}}
        # the demo asks more than "no mismatch": every window of the day certified
        merged["problems"] = [w for p in parts_done for w in p["problems"]]
        for p in parts_done:
            for k, n in p["counts"].items():
                merged["counts"][k] = merged["counts"].get(k, 0) + n
        merged["ok"] = merged["ok"] and set(merged["counts"]) == {"certified"}
        self.result.audit_measurements = merged
        self.progress("audits", 3, 3)

    async def _market_and_settlement_audits(self) -> None:
        import httpx

        from audit import audit_settlement
        from audit.market import audit_market_session
        from flexledger.transport import SyncSignedHttpClient

        s = self.s
        with (
            SyncSignedHttpClient(s.urls.scd, timeout_s=120) as scd,
            SyncSignedHttpClient(s.urls.market, timeout_s=120) as market,
            httpx.Client(base_url=s.urls.market, timeout=120) as http,
        ):
            for res in self.result.sessions:
                if res.awards:
                    m = await asyncio.to_thread(
                        audit_market_session, http, s.contracts, res.session_id
                    )
                    res.audit_market = _report_dict(m)
            self.progress("audits", 2, 3)
            for res in self.result.sessions:
                if res.settlement is not None:
                    st = await asyncio.to_thread(
                        audit_settlement,
                        market,
                        scd,
                        s.contracts,
                        res.session_id,
                        from_block=s.book.deploy_block,
                    )
                    res.audit_settlement = _report_dict(st)


MEASUREMENT_AUDIT_WORKERS = 2


def audit_measurements_worker(
    scd_url: str,
    rpc_url: str,
    book_path: str,
    pods: list[str],
    from_s: int,
    to_s: int,
    from_block: int,
) -> dict[str, Any]:
    """``audit.audit_measurements`` of some PODs in a process of its own (the auditor's
    connections: the SCD's API and the chain); its verdict as plain data."""
    from audit import audit_measurements
    from flexledger.transport import SyncSignedHttpClient
    from node.addressbook import AddressBook
    from node.contracts import FlexContracts
    from node.devnet import connect

    contracts = FlexContracts.from_address_book(connect(rpc_url), AddressBook.load(book_path))
    with SyncSignedHttpClient(scd_url, timeout_s=300) as scd:
        rep = audit_measurements(
            scd, contracts, pods=pods, from_s=from_s, to_s=to_s, from_block=from_block
        )
    return {
        "ok": rep.ok,
        "counts": rep.counts(),
        "problems": [w.line() for w in rep.windows if w.status != "certified"][:200],
    }


def _report_dict(report: Any) -> dict[str, Any]:
    """An audit report as plain data: ``ok`` and its findings (whatever their shape)."""
    out: dict[str, Any] = {"ok": bool(getattr(report, "ok", False))}
    for attr in ("findings", "windows", "checks"):
        items = getattr(report, attr, None)
        if items is None:
            continue
        rows = []
        for f in list(items)[:2000]:
            d = getattr(f, "__dict__", None)
            rows.append({k: _plain(v) for k, v in d.items()} if d else str(f))
        out[attr] = rows
    summary = getattr(report, "summary", None)
    if callable(summary):
        out["summary"] = _plain(summary())
    elif summary is not None:
        out["summary"] = _plain(summary)
    return out


def _plain(v: Any) -> Any:
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, set)):
        return [_plain(x) for x in v]
    return str(v)


def _raw_client(url: str) -> Any:
    import httpx

    return httpx.AsyncClient(base_url=url, timeout=60)


async def run_day(stack: DayStack, progress: Progress | None = None) -> DayResult:
    """Run the whole market day on a started stack (see the module docstring)."""
    day = _Day(stack, progress)
    t = day.result.timings
    with t.stage("history and baselines"):
        await day.history_and_baselines()
    with t.stage("day-ahead session"):
        da = await day.run_session("DA", "day_ahead", day.day_s, 96)
        day.result.sessions.append(da)
    with t.stage("light nodes up"):
        await stack.start_light_nodes()
        await day.advance_to(day.day_s)
    with t.stage("day-ahead activation"):
        await day.order(da)
    with t.stage("delivery day and real-time sessions"):
        await day.delivery()
    with t.stage("certification"):
        await day.wait_certified()
    with t.stage("settlement and payments"):
        await day.settle()
    with t.stage("audits"):
        await day.audits()
    return day.result
