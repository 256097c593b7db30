"""Settlement (I-15, I-16): a session's activated awards paid from certified measurements.

The market operator's ``settle`` command (``SessionCommand`` action 4) on a final session,
once its delivery is over (``FLEX_SETTLE_DELAY_S`` after the last MTU):

1. **Prepare** (once): the awards of the final outcome that recorded orders activated, with
   their activated W (the orders' power, capped at the award's); for each POD and MTU with
   such awards the evidence, read from the SCD's public API and checked here against the chain
   — every window over the MTU ``certified`` by the SCD, its root the one anchored on chain,
   the MTU's quarterly measure certified with all 225 samples; the baseline of the session's
   method (``market.service.baselines``; the BRP's signed baseline by default, its values
   hashing to its signed root, signed by a BRP, that root committed on chain no later than the
   session's gate-closure block). ``settlement_rules`` turns evidence into figures; each
   award's ``SettlementOutcome`` is signed by the market operator and every outcome stored in
   one transaction (the run is ``settling``). From then on the figures never change: a re-run
   pushes the stored records, it does not recompute them.
2. **Push**: every payer (the request's DSO or TSO) must let Settlement move what it owes
   (``approve``; ``flexledger settlement approve`` is the payer's helper) — checked before any
   transaction. Each record goes on chain with ``Settlement.settle`` (its award proven against
   the committed awards root; the amount moves payer → aggregator, a claim is only recorded),
   idempotently (``MarketChain.settle`` skips a record already there); then ``markSettled``.
   The run is ``settled`` and announced on ``flex/market/{session}``.

Awards of the final outcome that no order activated are **not settled and not paid**: the use
case pays for energy moved, not for availability. They are listed as ``not_activated``.

A second settle command on a settled session is refused (409 ``wrong_state``); the contract
refuses a second record of an award as well (``SettlementAlreadySettled``).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Connection, insert, select, update

from flexledger.messages import (
    Award,
    BrpBaseline,
    DsoPayment,
    QuarterlyMeasure,
    SessionNotice,
    SettlementOutcome,
    Signed,
    b32,
    id32,
)
from flexledger.time import DAY_S, MTU_S, SAMPLES_PER_MTU, day_start_s
from flexledger.transport.http import ServiceError, ServiceUnreachableError
from market import db
from market.schemas import SettlementLine, SettlementPublic
from market.service import store
from market.service.baselines import (
    BRP,
    MBMA,
    high_x_of_y,
    measure_table,
    meter_before_after,
    method_name,
    parse_high,
)
from market.service.book import proof_of
from market.service.context import MarketContext
from market.service.errors import ChainFailure, ScdFailure, WrongState
from market.service.settlement_rules import (
    ZERO_ROOT,
    ActivatedAward,
    AwardSettlement,
    PodMtuEvidence,
    SettlementTerms,
    WindowUsed,
    settle_pod_mtu,
)
from node.contracts import ContractError, SessionState
from node.eip712 import SignatureError
from node.signing import message_hash, verify_envelope

__all__ = ["is_settling", "recover", "settle_session", "settlement_view"]

log = logging.getLogger(__name__)
ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
BaselineEnv = Signed[BrpBaseline]
OutcomeEnv = Signed[SettlementOutcome]


# -- the evidence -----------------------------------------------------------------------------


@dataclass
class _PodBaseline:
    brp: str
    root: str
    values: dict[int, int] = field(default_factory=dict)


@dataclass
class _BrpDay:
    """The BRP baselines of a day that hold, per POD, and why the others do not."""

    pods: dict[str, _PodBaseline] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)


def _brp_day(ctx: MarketContext, day_s: int, gate_block: int) -> _BrpDay:
    assert ctx.scd is not None
    out = _BrpDay()
    for entry in ctx.scd.baselines(day_s):
        try:
            env = BaselineEnv.model_validate(entry.get("baseline"))
        except ValidationError as exc:
            log.warning("day %d: the SCD served a malformed baseline: %s", day_s, exc)
            continue
        m = env.message
        why: str | None = None
        try:
            signer = verify_envelope(env, ctx.domain)
        except SignatureError as exc:
            why = (
                f"the baseline of BRP {m.brp} for day {day_s} does not hold ({exc}): changed "
                "after its root was committed"
            )
        else:
            if signer != m.brp or not ctx.roles.has("BRP", signer):
                why = f"the baseline of day {day_s} is not signed by a BRP ({signer})"
        if why is None:
            c = ctx.chain.contracts.baselines.baseline_of(m.brp, day_s)
            if m.day_s != day_s:
                why = f"the SCD served the baseline of day {m.day_s} for day {day_s}"
            elif c is None:
                why = f"BRP {m.brp} committed no baseline root for day {day_s}"
            elif "0x" + c.root.hex() != m.root:
                why = f"the baseline of BRP {m.brp} is not the root it committed for day {day_s}"
            elif c.committed_block > gate_block:
                why = (
                    f"the baseline root of BRP {m.brp} for day {day_s} was committed at block "
                    f"{c.committed_block}, after the gate closed (block {gate_block})"
                )
        for pod in m.pods:
            if why is not None:
                out.problems.setdefault(pod, why)
            elif pod not in out.pods:
                out.pods[pod] = _PodBaseline(m.brp, m.root)
        if why is None:
            for v in m.values:
                pb = out.pods[v.pod]
                if pb.brp == m.brp:
                    pb.values[v.mtu_start_s] = v.e_wh
    return out


def _window_problem(
    ctx: MarketContext, pod: str, start: int, w: dict[str, Any] | None
) -> str | None:
    """Why a window over an MTU cannot be paid from, or None when it is certified and its root
    is the one anchored on chain (direct anchors; a batch's windows the SCD checked)."""
    if w is None:
        return f"window {start} of {pod}: not anchored"
    status = w.get("status")
    if status != "certified":
        details = [
            f"{k.removesuffix('_seqs')} seqs {w[k][:10]}"
            for k in ("missing_seqs", "extra_seqs", "altered_seqs")
            if w.get(k)
        ]
        suffix = f" ({'; '.join(details)})" if details else ""
        return f"window {start} of {pod}: {status}{suffix}"
    if w.get("anchor", "direct") == "direct":
        root = ctx.chain.contracts.anchor.window_root(id32(pod), start)
        if root is None or "0x" + root.hex() != str(w.get("root", "")).lower():
            return f"window {start} of {pod}: the SCD's root is not the root anchored on chain"
    return None


def _measure_problem(pod: str, t: int, q: QuarterlyMeasure | None) -> str | None:
    if q is None:
        return f"MTU {t} of {pod}: no samples"
    if q.sample_count != SAMPLES_PER_MTU:
        return f"MTU {t} of {pod}: {q.sample_count} of {SAMPLES_PER_MTU} samples"
    if not q.certified:
        return f"MTU {t} of {pod}: not certified"
    return None


@dataclass(frozen=True)
class _Evidence:
    ev: PodMtuEvidence
    brp: str
    day_s: int


@dataclass
class _Method:
    """The session's baseline method and what it needs beside the BRP's baselines."""

    name: str
    lookback_days: int
    before_mtus: int
    activated_mtus: dict[str, set[int]]

    @property
    def history_s(self) -> int:
        """How far before the delivery day the method reads measures."""
        if parse_high(self.name) is not None:
            return self.lookback_days * DAY_S
        return DAY_S if self.name == MBMA else 0

    def baseline(
        self, pod: str, t: int, pb: _PodBaseline, table: dict[int, int]
    ) -> tuple[int | None, str | None]:
        """(baseline Wh, or None and why) of ``pod`` in MTU ``t``."""
        if self.name == BRP:
            value = pb.values.get(t)
            return value, None if value is not None else f"the BRP baseline has no MTU {t} of {pod}"
        activated = self.activated_mtus.get(pod, set())
        high = parse_high(self.name)
        if high is not None:
            values = high_x_of_y(
                table,
                day_start_s(t),
                *high,
                excluded_days={day_start_s(m) for m in activated},
                lookback_days=self.lookback_days,
            )
            value = None if values is None else values[t]
        else:
            value = meter_before_after(table, t, activated, self.before_mtus)
        if value is None:
            return None, f"{self.name}: too few measures of {pod} for a baseline of MTU {t}"
        return value, None


def _gather(
    ctx: MarketContext, method: _Method, gate_block: int, keys: set[tuple[str, int]]
) -> dict[tuple[str, int], _Evidence]:
    """The evidence of every (POD, MTU) in ``keys`` (see the module docstring)."""
    assert ctx.scd is not None
    window_s = ctx.chain.contracts.anchor.window_seconds()
    brp = {d: _brp_day(ctx, d, gate_block) for d in sorted({day_start_s(t) for _, t in keys})}
    by_pod: dict[str, list[int]] = defaultdict(list)
    for pod, t in keys:
        by_pod[pod].append(t)
    out: dict[tuple[str, int], _Evidence] = {}
    for pod, mtus in sorted(by_pod.items()):
        mtus.sort()
        end = mtus[-1] + MTU_S
        windows = {
            int(w["window_start_s"]): w
            for w in ctx.scd.windows(pod, mtus[0] - mtus[0] % window_s, end)
        }
        quarterly = ctx.scd.quarterly(pod, day_start_s(mtus[0]) - method.history_s, end)
        measured = {
            q.mtu_start_s: q
            for q in quarterly
            if q.source == "lightnode" and q.mtu_start_s >= mtus[0]
        }
        table = measure_table(quarterly) if method.name != BRP else {}
        for t in mtus:
            day = day_start_s(t)
            starts = range(t - t % window_s, t + MTU_S, window_s)
            used = tuple(
                WindowUsed(
                    s,
                    windows[s].get("root") if s in windows else None,
                    windows[s].get("status", "not_anchored") if s in windows else "not_anchored",
                )
                for s in starts
            )
            problem = next(
                (p for s in starts if (p := _window_problem(ctx, pod, s, windows.get(s)))), None
            ) or _measure_problem(pod, t, measured.get(t))
            pb = brp[day].pods.get(pod)
            baseline: int | None = None
            if pb is None:
                baseline_problem: str | None = brp[day].problems.get(
                    pod, f"no BRP baseline of {pod} for day {day} committed before gate closure"
                )
            else:
                baseline, baseline_problem = method.baseline(pod, t, pb, table)
            q = measured.get(t)
            out[(pod, t)] = _Evidence(
                PodMtuEvidence(
                    pod=pod,
                    mtu_start_s=t,
                    baseline_wh=baseline,
                    measured_wh=q.e_wh if q is not None else None,
                    baseline_root=pb.root if pb is not None else ZERO_ROOT,
                    windows=used,
                    problem=problem or baseline_problem,
                ),
                pb.brp if pb is not None else ZERO_ADDRESS,
                day,
            )
    return out


# -- activation -------------------------------------------------------------------------------


def _activated(conn: Connection, session_id: str, awards: list[Award]) -> dict[str, int]:
    """award hash → activated W: the recorded orders' power on it, capped at the award's."""
    by_key = {(a.offer_hash, a.request_hash, a.mtu_start_s): a for a in awards}
    o = db.orders.c
    moved: dict[str, int] = defaultdict(int)
    for row in conn.execute(select(db.orders).where(o.session_id == session_id)).all():
        for k in range(row.mtu_count):
            a = by_key.get((row.offer_hash, row.request_hash, row.mtu_start_s + k * MTU_S))
            if a is not None:
                moved[a.award_hash] += int(row.power_w)
    powers = {a.award_hash: a.power_w for a in awards}
    return {h: min(w, powers[h]) for h, w in moved.items() if w > 0}


def _activated_mtus(conn: Connection, pods: Iterable[str]) -> dict[str, set[int]]:
    """POD → every MTU in which a recorded order (any session) moves one of its offers."""
    o, f = db.orders.c, db.offers.c
    rows = conn.execute(
        select(f.pod, o.mtu_start_s, o.mtu_count)
        .join(db.offers, f.hash == o.offer_hash)
        .where(f.pod.in_(sorted(set(pods))))
    ).all()
    out: dict[str, set[int]] = defaultdict(set)
    for r in rows:
        out[r.pod].update(int(r.mtu_start_s) + k * MTU_S for k in range(r.mtu_count))
    return out


# -- the run ----------------------------------------------------------------------------------


def _run_row(conn: Connection, session_id: str) -> Any:
    return conn.execute(
        select(db.settlement_runs).where(db.settlement_runs.c.session_id == session_id)
    ).first()


def _outcome(session_id: str, s: AwardSettlement) -> SettlementOutcome:
    a = s.award
    return SettlementOutcome(
        session_id=session_id,
        award_hash=a.award_hash,
        offer_hash=a.offer_hash,
        pod=a.pod,
        mtu_start_s=a.mtu_start_s,
        awarded_wh=s.awarded_wh,
        baseline_wh=s.baseline_wh,
        measured_wh=s.measured_wh,
        delivered_wh=s.delivered_wh,
        amount_cents=s.amount_cents,
        claim_cents=s.claim_cents,
        windows_s=list(s.windows_s),
        measurement_root=s.measurement_root,
        baseline_root=s.baseline_root,
        status=s.status,
        reason=s.reason,
    )


def _prepare(ctx: MarketContext, session_id: str) -> None:
    """Compute, sign and store every outcome of the session (step 1), unless done before."""
    assert ctx.scd is not None
    now = ctx.clock.now_s()
    with ctx.engine.connect() as conn:
        row = store.session_row(conn, session_id)
        if _run_row(conn, session_id) is not None:
            return
        if row.state != "final":
            raise WrongState(f"session {session_id} is {row.state}: only a final one settles")
        end = row.delivery_start_s + row.mtu_count * MTU_S
        if now < end + ctx.settings.settle_delay_s:
            raise WrongState(
                f"session {session_id} delivers until {end}; it settles from "
                f"{end + ctx.settings.settle_delay_s} (now {now})"
            )
        awards = store.round_awards(conn, session_id, row.round)
        activated = _activated(conn, session_id, awards)
        aggregator = {
            x.hash: x.aggregator
            for x in conn.execute(
                select(db.offers.c.hash, db.offers.c.aggregator).where(
                    db.offers.c.hash.in_({a.offer_hash for a in awards})
                )
            ).all()
        }
        requester = {
            x.hash: x.requester
            for x in conn.execute(
                select(db.requests.c.hash, db.requests.c.requester).where(
                    db.requests.c.hash.in_({a.request_hash for a in awards})
                )
            ).all()
        }
        live = [a for a in awards if a.award_hash in activated]
        mtus_by_pod = _activated_mtus(conn, {a.pod for a in live})
    chain_s = ctx.chain.session(session_id)
    if chain_s.state != SessionState.OUTCOME_COMMITTED:
        raise WrongState(f"session {session_id} is {chain_s.state.name} on chain, not committed")
    method = method_name(chain_s.baseline_method)
    if method is None:
        raise WrongState(
            f"session {session_id} names an unknown baseline method "
            f"0x{chain_s.baseline_method.hex()} on chain"
        )
    terms = SettlementTerms(
        ctx.settings.settlement_tolerance_ppm, ctx.settings.settlement_penalty_ppm
    )
    keys = {(a.pod, a.mtu_start_s) for a in live}
    how = _Method(
        method,
        ctx.settings.baseline_lookback_days,
        ctx.settings.mbma_before_mtus,
        mtus_by_pod,
    )
    try:
        evidence = _gather(ctx, how, chain_s.gate_closed_block, keys)
    except (ServiceError, ServiceUnreachableError, ValidationError) as exc:
        raise ScdFailure(f"reading the SCD: {exc}") from exc
    except (ContractError, OSError) as exc:
        raise ChainFailure(f"reading the chain: {exc}") from exc
    groups: dict[tuple[str, int], list[ActivatedAward]] = defaultdict(list)
    for a in live:
        groups[(a.pod, a.mtu_start_s)].append(
            ActivatedAward(
                award_hash=a.award_hash,
                offer_hash=a.offer_hash,
                request_hash=a.request_hash,
                pod=a.pod,
                direction=a.direction,
                mtu_start_s=a.mtu_start_s,
                power_w=a.power_w,
                activated_w=activated[a.award_hash],
                price_cents_per_mwh=a.price_cents_per_mwh,
            )
        )
    settled: dict[str, tuple[AwardSettlement, _Evidence]] = {}
    for key, group in groups.items():
        for s in settle_pod_mtu(evidence[key].ev, group, terms):
            settled[s.award.award_hash] = (s, evidence[key])
    rows = []
    for position, a in enumerate(awards):
        if a.award_hash not in settled:
            continue
        s, ev = settled[a.award_hash]
        envelope = ctx.operator.sign(_outcome(session_id, s))
        rows.append(
            {
                "award_hash": a.award_hash,
                "session_id": session_id,
                "position": position,
                "pod": a.pod,
                "mtu_start_s": a.mtu_start_s,
                "status": s.status,
                "amount_cents": s.amount_cents,
                "claim_cents": s.claim_cents,
                "payer": requester[a.request_hash],
                "payee": aggregator[a.offer_hash],
                "brp": ev.brp,
                "day_s": ev.day_s,
                "record_hash": "0x" + message_hash(envelope.message).hex(),
                "envelope": store.dump(envelope),
                "created_s": now,
            }
        )
    with ctx.engine.begin() as conn:
        conn.execute(
            insert(db.settlement_runs).values(
                session_id=session_id,
                state="settling",
                baseline_method=method,
                tolerance_ppm=terms.tolerance_ppm,
                penalty_ppm=terms.penalty_ppm,
                not_activated=[a.award_hash for a in awards if a.award_hash not in activated],
                created_s=now,
                updated_s=now,
            )
        )
        if rows:
            conn.execute(insert(db.settlements), rows)
    log.info(
        "session %s: %d settlement outcomes signed (%s baseline), %d awards not activated",
        session_id,
        len(rows),
        method,
        len(awards) - len(rows),
    )


def _set_error(ctx: MarketContext, session_id: str, error: str | None) -> None:
    with ctx.engine.begin() as conn:
        conn.execute(
            update(db.settlement_runs)
            .where(db.settlement_runs.c.session_id == session_id)
            .values(error=error, updated_s=ctx.clock.now_s())
        )


def _push(ctx: MarketContext, session_id: str) -> None:
    """Put every stored record on chain, then mark the session settled (step 2)."""
    s = db.settlements.c
    with ctx.engine.connect() as conn:
        row = store.session_row(conn, session_id)
        leaves = [a.award_hash for a in store.round_awards(conn, session_id, row.round)]
        pending = conn.execute(
            select(db.settlements)
            .where(s.session_id == session_id, s.tx_hash.is_(None))
            .order_by(s.position)
        ).all()
    owed: dict[str, int] = defaultdict(int)
    for p in pending:
        owed[p.payer] += int(p.amount_cents)
    for payer, cents in sorted(owed.items()):
        have = ctx.chain.spendable_cents(payer)
        if have < cents:
            error = (
                f"payer {payer} lets Settlement move {have} cents (allowance and balance), "
                f"the session owes {cents}: the payer approves the Settlement contract "
                "('flexledger settlement approve') and the operator settles again"
            )
            _set_error(ctx, session_id, error)
            raise WrongState(error)
    index = {h: i for i, h in enumerate(leaves)}
    for p in pending:
        outcome = OutcomeEnv.model_validate(p.envelope).message
        proof = [b32(x) for x in proof_of(leaves, index[p.award_hash])]
        try:
            tx = ctx.chain.settle(
                outcome.eip712_message(),
                b32(p.record_hash),
                p.payer,
                p.payee,
                p.brp,
                int(p.day_s),
                proof,
            )
        except Exception as exc:
            _set_error(ctx, session_id, str(exc))
            raise
        with ctx.engine.begin() as conn:
            conn.execute(
                update(db.settlements).where(s.award_hash == p.award_hash).values(tx_hash=tx)
            )
    mark_tx = ctx.chain.mark_settled(session_id)
    with ctx.engine.begin() as conn:
        conn.execute(
            update(db.settlement_runs)
            .where(db.settlement_runs.c.session_id == session_id)
            .values(state="settled", mark_tx=mark_tx, error=None, updated_s=ctx.clock.now_s())
        )
    log.info("session %s settled (%d records sent)", session_id, len(pending))
    try:
        topic = ctx.announcer.topics.market_session(session_id)
    except ValueError:
        return
    ctx.announcer.publish(
        topic,
        SessionNotice(
            session_id=session_id, state="settled", t_s=ctx.clock.now_s(), tx_hash=mark_tx
        ),
    )


def settle_session(ctx: MarketContext, session_id: str) -> SettlementPublic:
    """Settle a final session (the module docstring): prepare once, then push to the chain."""
    if ctx.scd is None:
        raise WrongState("this market reads no SCD (FLEX_SCD_URL): it cannot settle")
    with ctx.lock:
        with ctx.engine.connect() as conn:
            store.session_row(conn, session_id)
            run = _run_row(conn, session_id)
        if run is not None and run.state == "settled":
            raise WrongState(f"session {session_id} is settled already")
        _prepare(ctx, session_id)
        _push(ctx, session_id)
    return settlement_view(ctx, session_id)


def recover(ctx: MarketContext) -> None:
    """Push the records of every run a stopped process left ``settling``."""
    with ctx.engine.connect() as conn:
        runs = conn.execute(
            select(db.settlement_runs.c.session_id).where(db.settlement_runs.c.state == "settling")
        ).all()
    for r in runs:
        try:
            with ctx.lock:
                _push(ctx, r.session_id)
        except Exception as exc:
            log.error("session %s: settlement not finished: %s", r.session_id, exc)


def is_settling(conn: Connection, session_id: str) -> bool:
    """Whether a settlement of the session has begun (orders are then refused)."""
    return _run_row(conn, session_id) is not None


def settlement_view(ctx: MarketContext, session_id: str) -> SettlementPublic:
    """The session's settlement as everyone may read it (``GET /sessions/{sid}/settlement``)."""
    s = db.settlements.c
    with ctx.engine.connect() as conn:
        row = store.session_row(conn, session_id)
        run = _run_row(conn, session_id)
        if run is None:
            return SettlementPublic(session_id=session_id, state="not_settled")
        stage = {a.award_hash: a.stage for a in store.round_awards(conn, session_id, row.round)}
        rows = conn.execute(
            select(db.settlements).where(s.session_id == session_id).order_by(s.position)
        ).all()
    lines = []
    for r in rows:
        env = OutcomeEnv.model_validate(r.envelope)
        payment = None
        if r.tx_hash and int(r.amount_cents) > 0:
            payment = DsoPayment(
                payer=r.payer,
                payee=r.payee,
                amount_cents=int(r.amount_cents),
                session_id=session_id,
                award_hash=r.award_hash,
                tx_hash=r.tx_hash,
                payer_role="tso" if stage.get(r.award_hash) == "tso" else "dso",
            )
        lines.append(
            SettlementLine(
                outcome=env,
                record_hash=r.record_hash,
                payer=r.payer,
                payee=r.payee,
                brp=r.brp,
                day_s=int(r.day_s),
                payment=payment,
                tx_hash=r.tx_hash,
            )
        )
    return SettlementPublic(
        session_id=session_id,
        state=run.state,
        baseline_method=run.baseline_method,
        tolerance_ppm=run.tolerance_ppm,
        penalty_ppm=run.penalty_ppm,
        lines=lines,
        not_activated=list(run.not_activated or []),
        amount_cents=sum(int(r.amount_cents) for r in rows),
        claim_cents=sum(int(r.claim_cents) for r in rows),
        mark_settled_tx=run.mark_tx,
        error=run.error,
    )
