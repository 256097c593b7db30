"""The Aggregator Platform's work: what the API's handlers and its market follower call.

- **Availability (I-12)**: an FR owner's signed ``DerStatus`` is checked (signature, the FR
  owner role this aggregator granted on chain, its own POD and resources, the day not over,
  replay), stored and forwarded to the SCD.
- **Customers (I-02)**: the customers that declared availability for a day, signed as a
  ``CustomerList`` and registered in the SCD.
- **Estimate**: per POD the expected baseline (mean of the same MTU over the recent days of
  I-01 history) and per declared resource its flexibility (``aggregator.resources``), priced by
  ``aggregator.pricing``.
- **Offers (I-05)**: per resource, direction and run of MTUs, signed and stored before they are
  posted to the market (a retry resends the same bytes: the market answers a duplicate).
- **Planning (I-13)**: from the final outcome (signed by a market operator — checked), a signed
  ``DerPlanning`` per FR owner and POD.
- **Payouts (I-17)**: once the market settled a session — the records checked on chain — each FR
  owner's net, less the fee, paid with ``Settlement.payOwners`` through the aggregator's
  allowance, once per session (the contract refuses a reference twice).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from eth_account.signers.local import LocalAccount
from sqlalchemy import Engine, delete, func, insert, select, update

from aggregator import db
from aggregator.offers import plan_offers
from aggregator.payouts import owner_payouts
from aggregator.planning import plan_items
from aggregator.portfolio import Portfolio
from aggregator.pricing import CostModel, offer_price_cents_per_mwh
from aggregator.resources import (
    FlexParams,
    pod_power_history,
    resource_flexibility,
    temperature_forecast_c,
)
from aggregator.schemas import FlexibilityPublic, OfferPublic, ResourceFlexPublic
from aggregator.settings import AggregatorSettings
from flexledger.messages import (
    AggregatorPayment,
    CustomerEntry,
    CustomerList,
    DerPlanning,
    DerStatus,
    MarketOutcome,
    Offer,
    Receipt,
    ResourceKind,
    SettlementOutcome,
    Signed,
    b32,
    h32,
    id32,
)
from flexledger.protocols import Clock
from flexledger.time import DAY_S, MTU_S, SAMPLES_PER_MTU, day_start_s
from flexledger.transport.api import ApiError
from flexledger.transport.http import ServiceError, SignedHttpClient
from node.contracts import FlexContracts
from node.eip712 import SignatureError
from node.signing import LocalSigner, message_hash, verify_envelope

__all__ = ["AggregatorService"]

log = logging.getLogger(__name__)
_KIND = {k.name.lower(): k for k in ResourceKind}
AvailabilityEnv = Signed[DerStatus]
OfferEnv = Signed[Offer]
PlanEnv = Signed[DerPlanning]


def _hash(envelope: Signed[Any]) -> str:
    return h32(message_hash(envelope.message))


def _dump(envelope: Signed[Any]) -> dict[str, Any]:
    return envelope.model_dump(mode="json", serialize_as_any=True)


@dataclass
class AggregatorService:
    """One aggregator: its key, portfolio, database, chain and the services it talks to."""

    settings: AggregatorSettings
    engine: Engine
    contracts: FlexContracts
    account: LocalAccount
    portfolio: Portfolio
    clock: Clock
    market: SignedHttpClient
    scd: SignedHttpClient
    lock: threading.RLock = field(default_factory=threading.RLock)

    def __post_init__(self) -> None:
        self.signer = LocalSigner(self.account, self.contracts.roles.domain())
        self.domain = self.signer.domain

    @property
    def address(self) -> str:
        return str(self.account.address)

    @property
    def fee_ppm(self) -> int:
        if self.settings.aggregator_fee_ppm is not None:
            return self.settings.aggregator_fee_ppm
        if self.portfolio.fee_percent is not None:
            return round(self.portfolio.fee_percent * 10_000)
        return 100_000

    def flex_params(self) -> FlexParams:
        s = self.settings
        return FlexParams(
            safety=s.aggregator_safety,
            min_w=s.aggregator_min_offer_w,
            up_window=s.aggregator_up_window,
            down_window=s.aggregator_down_window,
        )

    def cost_model(self) -> CostModel:
        return CostModel(margin=self.settings.aggregator_margin)

    # -- availability (I-12) ------------------------------------------------------------------

    def submit_availability(self, envelope: Signed[DerStatus]) -> tuple[Receipt, bool]:
        """Check and store an FR owner's availability; (receipt, newly stored)."""
        m = envelope.message
        try:
            signer = verify_envelope(envelope, self.domain)
        except SignatureError as exc:
            raise ApiError(401, "bad_signature", str(exc)) from exc
        h = _hash(envelope)
        with self.lock:
            with self.engine.connect() as conn:
                if conn.execute(
                    select(db.availabilities.c.hash).where(db.availabilities.c.hash == h)
                ).first():
                    return Receipt(kind="availability", hash=h, duplicate=True), False
            self._check_availability(m, signer)
            with self.engine.connect() as conn:
                used = conn.execute(
                    select(db.availabilities.c.hash).where(
                        db.availabilities.c.fr_owner == signer,
                        db.availabilities.c.nonce == str(m.nonce),
                    )
                ).first()
            if used is not None:
                raise ApiError(
                    409, "conflict", f"nonce {m.nonce} of {signer} was used for another message"
                )
            with self.engine.begin() as conn:
                conn.execute(
                    insert(db.availabilities).values(
                        hash=h,
                        day_s=m.day_s,
                        pod=m.pod,
                        fr_owner=signer,
                        nonce=str(m.nonce),
                        envelope=_dump(envelope),
                        received_s=self.clock.now_s(),
                        forwarded=False,
                    )
                )
        log.info("availability of %s for %s on day %d stored", signer, m.pod, m.day_s)
        return Receipt(kind="availability", hash=h, count=len(m.resources)), True

    def _check_availability(self, m: DerStatus, signer: str) -> None:
        if signer != m.fr_owner:
            raise ApiError(
                403, "wrong_role", f"signed by {signer}, not by the FR owner {m.fr_owner}"
            )
        if m.aggregator != self.address:
            raise ApiError(
                403, "wrong_role", f"the availability names aggregator {m.aggregator}, not this one"
            )
        roles = self.contracts.roles
        if not roles.has_role("FR_OWNER", signer) or roles.aggregator_of(signer) != self.address:
            raise ApiError(
                403, "wrong_role", f"{signer} is not an FR owner this aggregator granted on chain"
            )
        customer = self.portfolio.customer(m.pod)
        if customer is None or customer.fr_owner != signer:
            raise ApiError(403, "wrong_role", f"{m.pod} is not a POD of {signer} here")
        now = self.clock.now_s()
        if m.day_s + DAY_S <= now:
            raise ApiError(
                422, "expired", f"day {m.day_s} is over (now {now})", {"field": "message.day_s"}
            )
        for i, r in enumerate(m.resources):
            spec = customer.resource(r.resource_id)
            where = f"message.resources.{i}"
            if spec is None:
                raise ApiError(
                    422,
                    "invalid",
                    f"{m.pod} has no resource {r.resource_id!r}",
                    {"field": f"{where}.resource_id"},
                )
            if _KIND[spec.kind] != r.kind:
                raise ApiError(
                    422,
                    "invalid",
                    f"{r.resource_id} is a {spec.kind}, not a {r.kind.name.lower()}",
                    {"field": f"{where}.kind"},
                )
            if r.p_max_w > round(spec.p_max_kw * 1000):
                raise ApiError(
                    422,
                    "invalid",
                    f"{r.resource_id}: {r.p_max_w} W is above its rating",
                    {"field": f"{where}.p_max_w"},
                )
            if r.available_from_s < m.day_s or r.available_to_s > m.day_s + DAY_S:
                raise ApiError(
                    422,
                    "invalid",
                    f"{r.resource_id}: the available window is not within day {m.day_s}",
                    {"field": f"{where}.available_from_s"},
                )
            if r.available_from_s % MTU_S or r.available_to_s % MTU_S:
                raise ApiError(
                    422,
                    "invalid",
                    f"{r.resource_id}: the available window is not aligned to MTUs",
                    {"field": f"{where}.available_from_s"},
                )

    def availabilities(self, day_s: int, pod: str | None = None) -> list[Signed[DerStatus]]:
        """The newest availability of each POD for the day (or of one POD)."""
        a = db.availabilities.c
        q = select(db.availabilities).where(a.day_s == day_s).order_by(a.received_s, a.nonce)
        if pod is not None:
            q = q.where(a.pod == pod)
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
        newest: dict[str, Signed[DerStatus]] = {}
        for r in rows:
            newest[r.pod] = AvailabilityEnv.model_validate(r.envelope)
        return [newest[p] for p in sorted(newest)]

    async def forward_availability(self) -> int:
        """POST every availability not yet in the SCD; how many went."""
        a = db.availabilities.c
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(a.hash, a.envelope).where(a.forwarded.is_(False)).order_by(a.received_s)
            ).all()
        sent = 0
        for r in rows:
            try:
                await self.scd.post_envelope(
                    "/availability", AvailabilityEnv.model_validate(r.envelope)
                )
            except ServiceError as exc:
                log.warning("the SCD refused availability %s: %s", r.hash, exc)
                continue
            with self.engine.begin() as conn:
                conn.execute(
                    update(db.availabilities).where(a.hash == r.hash).values(forwarded=True)
                )
            sent += 1
        return sent

    # -- customers (I-02) ---------------------------------------------------------------------

    def customer_list(self, day_s: int, nonce: int) -> CustomerList | None:
        """The customers that declared availability for the day, with what they declared."""
        entries = []
        for env in self.availabilities(day_s):
            c = self.portfolio.customer(env.message.pod)
            if c is None:
                continue
            entries.append(
                CustomerEntry(
                    pod=c.pod,
                    fr_owner=c.fr_owner,
                    device=c.device,
                    bus=c.bus,
                    resources=list(env.message.resources),
                )
            )
        if not entries:
            return None
        return CustomerList(aggregator=self.address, day_s=day_s, customers=entries, nonce=nonce)

    async def register_customers(self, day_s: int) -> Receipt | None:
        """Forward the day's availabilities, then sign and post the customer list to the SCD
        (None when nobody declared availability)."""
        await self.forward_availability()
        with self.engine.connect() as conn:
            last = conn.execute(select(func.max(db.customer_lists.c.nonce))).scalar()
        cl = self.customer_list(day_s, int(last or 0) + 1)
        if cl is None:
            return None
        envelope = self.signer.sign(cl)
        receipt = Receipt.model_validate(await self.scd.post_envelope("/customers", envelope))
        with self.engine.begin() as conn:
            conn.execute(
                insert(db.customer_lists).values(
                    hash=_hash(envelope),
                    day_s=day_s,
                    nonce=cl.nonce,
                    envelope=_dump(envelope),
                    receipt=receipt.model_dump(mode="json"),
                    created_s=self.clock.now_s(),
                )
            )
        log.info("customer list of day %d: %d PODs registered", day_s, len(cl.customers))
        return receipt

    # -- estimate ------------------------------------------------------------------------------

    async def history(self, pod: str, day_s: int) -> dict[int, int]:
        """MTU start → Wh of ``pod`` over the history days before ``day_s`` (I-01): a certified
        Light Node value with all its samples, else the imported history."""
        days = self.settings.aggregator_history_days
        rows = await self.scd.get(
            "/measures/quarterly",
            {"pod": pod, "from_s": day_s - days * DAY_S, "to_s": day_s, "limit": 10_000},
        )
        lightnode: dict[int, int] = {}
        history: dict[int, int] = {}
        for r in rows:
            t, e = int(r["mtu_start_s"]), int(r["e_wh"])
            if r.get("source") == "history":
                history[t] = e
            elif r.get("certified") and int(r.get("sample_count", 0)) == SAMPLES_PER_MTU:
                lightnode[t] = e
        return history | lightnode

    def estimate_pod(
        self, pod: str, day_s: int, history: Mapping[int, int], declared: DerStatus
    ) -> FlexibilityPublic:
        """A POD's baseline and flexibility for the day from its history and declaration."""
        customer = self.portfolio.customer(pod)
        if customer is None:
            raise ValueError(f"{pod} is not in the portfolio")
        days = self.settings.aggregator_history_days
        power = pod_power_history(dict(history), day_s, days)
        baseline: list[int | None] = [
            round(sum(p) / len(p) * MTU_S / 3600) if p else None for p in power
        ]
        temperature = temperature_forecast_c(self.portfolio.weather)
        params, cost = self.flex_params(), self.cost_model()
        out = []
        for info in declared.resources:
            spec = customer.resource(info.resource_id)
            if spec is None:
                continue
            spec = spec.model_copy(update={"p_max_kw": min(spec.p_max_kw, info.p_max_w / 1000)})
            window = (
                (info.available_from_s - day_s) // MTU_S,
                (info.available_to_s - day_s) // MTU_S,
            )
            flex = resource_flexibility(
                spec, available=window, history_w=power, temperature_c=temperature, params=params
            )
            out.append(
                ResourceFlexPublic(
                    resource_id=spec.id,
                    kind=spec.kind,
                    price_cents_per_mwh=offer_price_cents_per_mwh(spec, cost),
                    up_w=list(flex.up_w),
                    down_w=list(flex.down_w),
                    note=flex.note,
                    budget_wh=flex.budget_wh,
                )
            )
        return FlexibilityPublic(pod=pod, day_s=day_s, baseline_wh=baseline, resources=out)

    async def estimate(self, day_s: int) -> list[FlexibilityPublic]:
        """Every POD that declared availability for the day."""
        out = []
        for env in self.availabilities(day_s):
            history = await self.history(env.message.pod, day_s)
            out.append(self.estimate_pod(env.message.pod, day_s, history, env.message))
        return out

    # -- offers (I-05) -------------------------------------------------------------------------

    async def make_offers(self, session_id: str) -> list[Signed[Offer]]:
        """Sign and store the session's offers (once: later calls return the stored ones)."""
        stored = self.stored_offers(session_id)
        if stored:
            return [o.offer for o in stored]
        session = await self.market.get(f"/sessions/{session_id}")
        start, count = int(session["delivery_start_s"]), int(session["mtu_count"])
        day = day_start_s(start)
        flex = await self.estimate(day)
        with self.engine.connect() as conn:
            last = conn.execute(select(func.max(db.offers.c.nonce))).scalar()
        first_nonce = int(last) + 1 if last is not None else self.clock.now_s() * 1000
        plans = plan_offers(
            session_id=session_id,
            aggregator=self.address,
            day_s=day,
            delivery_start_s=start,
            mtu_count=count,
            valid_until_s=start + count * MTU_S,
            resources=[
                (f.pod, r.resource_id, r.price_cents_per_mwh, r.up_w, r.down_w)
                for f in flex
                for r in f.resources
            ],
            first_nonce=first_nonce,
            min_w=self.settings.aggregator_min_offer_w,
        )
        now = self.clock.now_s()
        rows, envelopes = [], []
        for p in plans:
            env = self.signer.sign(p.offer)
            customer = self.portfolio.customer(p.pod)
            assert customer is not None
            envelopes.append(env)
            rows.append(
                {
                    "hash": _hash(env),
                    "session_id": session_id,
                    "pod": p.pod,
                    "resource_id": p.resource_id,
                    "fr_owner": customer.fr_owner,
                    "nonce": p.offer.nonce,
                    "envelope": _dump(env),
                    "created_s": now,
                }
            )
        if rows:
            with self.engine.begin() as conn:
                conn.execute(insert(db.offers), rows)
        log.info("session %s: %d offers signed", session_id, len(rows))
        return envelopes

    def stored_offers(self, session_id: str | None = None) -> list[OfferPublic]:
        o = db.offers.c
        q = select(db.offers).order_by(o.nonce)
        if session_id is not None:
            q = q.where(o.session_id == session_id)
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
        return [
            OfferPublic(
                hash=r.hash,
                pod=r.pod,
                resource_id=r.resource_id,
                fr_owner=r.fr_owner,
                offer=OfferEnv.model_validate(r.envelope),
                receipt=Receipt.model_validate(r.receipt) if r.receipt else None,
            )
            for r in rows
        ]

    async def post_offers(self, session_id: str) -> list[Receipt]:
        """POST every stored offer of the session the market has no receipt of yet."""
        receipts = []
        for o in self.stored_offers(session_id):
            if o.receipt is not None:
                receipts.append(o.receipt)
                continue
            receipt = Receipt.model_validate(await self.market.post_envelope("/offers", o.offer))
            with self.engine.begin() as conn:
                conn.execute(
                    update(db.offers)
                    .where(db.offers.c.hash == o.hash)
                    .values(receipt=receipt.model_dump(mode="json"))
                )
            receipts.append(receipt)
        return receipts

    # -- planning (I-13) -----------------------------------------------------------------------

    def _check_operator(self, envelope: Signed[Any], what: str) -> None:
        try:
            signer = verify_envelope(envelope, self.domain)
        except SignatureError as exc:
            raise ValueError(f"{what}: {exc}") from exc
        if not self.contracts.roles.has_role("MARKET_OPERATOR", signer):
            raise ValueError(f"{what}: signed by {signer}, not a market operator")

    async def plan(self, session_id: str) -> list[Signed[DerPlanning]]:
        """The FR owners' plans of the session's final outcome, signed and stored."""
        outcome = Signed[MarketOutcome].model_validate(
            await self.market.get(f"/sessions/{session_id}/outcome")
        )
        self._check_operator(outcome, f"the outcome of {session_id}")
        # a real-time session awards the day-ahead offers: look among all of ours
        mine = {o.hash: o for o in self.stored_offers()}
        groups: dict[tuple[str, str], list[Any]] = defaultdict(list)
        for a in outcome.message.awards:
            o = mine.get(a.offer_hash)
            if o is not None:
                groups[(o.fr_owner, o.pod)].append(a)
        now = self.clock.now_s()
        plans = []
        with self.engine.begin() as conn:
            conn.execute(delete(db.plans).where(db.plans.c.session_id == session_id))
            for k, ((owner, pod), awards) in enumerate(sorted(groups.items())):
                env = self.signer.sign(
                    DerPlanning(
                        aggregator=self.address,
                        fr_owner=owner,
                        pod=pod,
                        items=plan_items(awards),
                        nonce=now * 1000 + k,
                    )
                )
                plans.append(env)
                conn.execute(
                    insert(db.plans).values(
                        session_id=session_id,
                        fr_owner=owner,
                        pod=pod,
                        envelope=_dump(env),
                        created_s=now,
                    )
                )
        log.info("session %s: %d FR owner plans", session_id, len(plans))
        return plans

    def plans_of(self, fr_owner: str, session_id: str | None = None) -> list[Signed[DerPlanning]]:
        p = db.plans.c
        q = select(db.plans.c.envelope).where(p.fr_owner == fr_owner).order_by(p.session_id, p.pod)
        if session_id is not None:
            q = q.where(p.session_id == session_id)
        with self.engine.connect() as conn:
            return [PlanEnv.model_validate(r.envelope) for r in conn.execute(q).all()]

    # -- payouts (I-17) ------------------------------------------------------------------------

    async def pay_owners(self, session_id: str) -> list[AggregatorPayment]:
        """Pay the FR owners of a settled session (once; see the module docstring)."""
        done = self.payouts(session_id=session_id)
        if done:
            return done
        view = await self.market.get(f"/sessions/{session_id}/settlement")
        if view.get("state") != "settled":
            raise ValueError(f"session {session_id} is not settled ({view.get('state')})")
        owner_of = {o.hash: o.fr_owner for o in self.stored_offers()}
        lines: list[tuple[str, int, int]] = []
        for line in view["lines"]:
            env = Signed[SettlementOutcome].model_validate(line["outcome"])
            o = env.message
            if line["payee"] != self.address or o.offer_hash not in owner_of:
                continue
            self._check_operator(env, f"the settlement of award {o.award_hash}")
            info = await asyncio.to_thread(
                self.contracts.settlement.settlement_of, b32(o.award_hash)
            )
            if info is None or info.record_hash != message_hash(o) or info.payee != self.address:
                raise ValueError(f"award {o.award_hash}: its settlement is not on chain as served")
            lines.append((o.offer_hash, info.amount_cents, info.claim_cents))
        amounts = owner_payouts(lines, owner_of, self.fee_ppm)
        ref = id32(f"payout:{session_id}")
        owners = sorted(amounts)
        tx = await asyncio.to_thread(self._pay, ref, owners, [amounts[o] for o in owners])
        now = self.clock.now_s()
        if owners:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(db.payouts),
                    [
                        {
                            "session_id": session_id,
                            "fr_owner": o,
                            "amount_cents": amounts[o],
                            "ref": h32(ref),
                            "tx_hash": tx,
                            "created_s": now,
                        }
                        for o in owners
                    ],
                )
        log.info(
            "session %s: %d FR owners paid %d cents", session_id, len(owners), sum(amounts.values())
        )
        return self.payouts(session_id=session_id)

    def _pay(self, ref: bytes, owners: list[str], amounts: list[int]) -> str | None:
        settlement, token = self.contracts.settlement, self.contracts.token
        if settlement.ref_paid(self.address, ref):
            log.warning("payout %s was paid on chain before: not paid again", h32(ref))
            return None
        if not owners:
            return None
        total = sum(amounts)
        if token.allowance(self.address, settlement.address) < total:
            token.approve(self.account, settlement.address, total)
        receipt = settlement.pay_owners(self.account, ref, owners, amounts)
        return "0x" + bytes(receipt["transactionHash"]).hex()

    def payouts(
        self, *, fr_owner: str | None = None, session_id: str | None = None
    ) -> list[AggregatorPayment]:
        p = db.payouts.c
        q = select(db.payouts).order_by(p.session_id, p.fr_owner)
        if fr_owner is not None:
            q = q.where(p.fr_owner == fr_owner)
        if session_id is not None:
            q = q.where(p.session_id == session_id)
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
        return [
            AggregatorPayment(
                aggregator=self.address,
                fr_owner=r.fr_owner,
                amount_cents=int(r.amount_cents),
                ref=r.ref,
                tx_hash=r.tx_hash or r.ref,
            )
            for r in rows
        ]

    # -- on chain ------------------------------------------------------------------------------

    def grant_owners(self) -> int:
        """Grant the FR owner role to every owner of the portfolio not granted yet."""
        roles = self.contracts.roles
        granted = 0
        for owner in self.portfolio.owners:
            if roles.aggregator_of(owner) != self.address:
                roles.grant_fr_owner(self.account, owner)
                granted += 1
        return granted

    # -- following the market ------------------------------------------------------------------

    def _step_done(self, session_id: str, step: str) -> bool:
        s = db.session_steps.c
        with self.engine.connect() as conn:
            return (
                conn.execute(
                    select(s.step).where(s.session_id == session_id, s.step == step)
                ).first()
                is not None
            )

    def _mark(self, session_id: str, step: str, detail: Any = None) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                insert(db.session_steps).values(
                    session_id=session_id,
                    step=step,
                    detail=detail,
                    done_s=self.clock.now_s(),
                    attempts=1,
                )
            )

    async def follow_once(self) -> list[str]:
        """One look at the market: offers for open day-ahead sessions, plans for final ones,
        payouts for settled ones; what was done."""
        done = []
        for s in await self.market.get("/sessions", {"limit": 10_000}):
            sid, state = s["session_id"], s["state"]
            try:
                if (
                    state == "open"
                    and s["kind"] == "day_ahead"
                    and not self._step_done(sid, "offered")
                ):
                    await self.register_customers(day_start_s(int(s["delivery_start_s"])))
                    # nothing to offer yet (no availability declared): look again next time
                    if await self.make_offers(sid):
                        receipts = await self.post_offers(sid)
                        self._mark(sid, "offered", {"offers": len(receipts)})
                        done.append(f"{sid}: {len(receipts)} offers")
                elif state == "final" and not self._step_done(sid, "planned"):
                    plans = await self.plan(sid)
                    self._mark(sid, "planned", {"plans": len(plans)})
                    done.append(f"{sid}: {len(plans)} plans")
                if state == "final" and not self._step_done(sid, "paid"):
                    view = await self.market.get(f"/sessions/{sid}/settlement")
                    if view["state"] == "settled":
                        paid = await self.pay_owners(sid)
                        self._mark(sid, "paid", {"owners": len(paid)})
                        done.append(f"{sid}: {len(paid)} owners paid")
            except (ServiceError, ValueError) as exc:
                log.warning("session %s: %s", sid, exc)
        return done

    async def follow(self, wake: asyncio.Event | None = None) -> None:
        """``follow_once`` every ``aggregator_poll_s`` until cancelled, and at once whenever
        ``wake`` is set (the market's session events)."""
        while True:
            if wake is not None:
                wake.clear()
            try:
                await self.follow_once()
            except Exception:
                log.exception("following the market failed; trying again")
            if wake is None:
                await asyncio.sleep(self.settings.aggregator_poll_s)
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.aggregator_poll_s):
                    await wake.wait()

    def steps(self, session_id: str) -> dict[str, Any]:
        """What following the market did for a session: step → its detail (offered, planned,
        paid)."""
        s = db.session_steps.c
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(s.step, s.detail).where(s.session_id == session_id).order_by(s.done_s)
            ).all()
        return {r.step: r.detail for r in rows}
