"""Session lifecycle: open, gate closure (on the clock or on command), clearing rounds, the
DSO's validation rounds, the final outcome.

State machine (``SessionPublic.state``)::

    open ──gate closure──▶ gate_closed ──clear──▶ validating(round n)
                                                   │  DSO validation, all approved
                                                   ├──────────────▶ final (outcome committed)
                                                   │  rejections, n < round limit
                                                   ├──▶ re-clear without them ▶ validating(n+1)
                                                   │  rejections, n = round limit
                                                   └──────────────▶ failed (reported)

Each transition first writes the chain (idempotently, ``market.service.chain``) and then the
database, inside ``ctx.lock``; a process that dies in between re-runs the step at start
(``recover``) and the chain step is then skipped as already done.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from flexledger.messages import (
    MarketOutcome,
    Offer,
    Request,
    SessionAction,
    SessionCommand,
    SessionNotice,
    Signed,
    Validation,
    b32,
)
from flexledger.time import MTU_S
from market import db
from market.schemas import SessionPublic
from market.service import settlement, store
from market.service.book import book_entries, root_of
from market.service.checks import authenticate, count, not_expired, struct_hash
from market.service.clearing_port import clear
from market.service.context import MarketContext
from market.service.errors import (
    ClearingFailed,
    Conflict,
    Invalid,
    MarketError,
    WrongState,
)

__all__ = [
    "apply_command",
    "clear_round",
    "close_gate",
    "finalize",
    "on_validation",
    "open_session",
    "recover",
    "tick",
]

log = logging.getLogger(__name__)


def _now(ctx: MarketContext) -> int:
    return ctx.clock.now_s()


def _notice(ctx: MarketContext, session_id: str, **kw: Any) -> None:
    try:
        topic = ctx.announcer.topics.market_session(session_id)
    except ValueError:
        log.warning("session %r has no topic-safe name: not announced", session_id)
        return
    ctx.announcer.publish(topic, SessionNotice(session_id=session_id, t_s=_now(ctx), **kw))


def _announce_outcome(ctx: MarketContext, envelope: Signed[MarketOutcome]) -> None:
    try:
        topic = ctx.announcer.topics.market_session(envelope.message.session_id)
    except ValueError:
        return
    ctx.announcer.publish(topic, envelope, retain=envelope.message.final)


# -- commands ------------------------------------------------------------------------------


def _check_command(ctx: MarketContext, envelope: Signed[SessionCommand]) -> tuple[str, bool]:
    """Verify an operator command; (its hash, True if it was received before)."""
    cmd = envelope.message
    signer = authenticate(ctx, envelope, "MARKET_OPERATOR")
    h = struct_hash(envelope)
    with ctx.engine.connect() as conn:
        if conn.execute(select(db.commands.c.hash).where(db.commands.c.hash == h)).first():
            return h, True
        not_expired(ctx, cmd.expiry_s, "expiry_s")
        used = conn.execute(
            select(db.commands.c.hash).where(
                db.commands.c.signer == signer, db.commands.c.nonce == str(cmd.nonce)
            )
        ).first()
    if used is not None:
        raise count(ctx, Conflict(f"command nonce {cmd.nonce} of {signer} was used before"))
    return h, False


def _store_command(
    conn: Connection, ctx: MarketContext, h: str, env: Signed[SessionCommand]
) -> None:
    conn.execute(
        insert(db.commands).values(
            hash=h,
            session_id=env.message.session_id,
            action=int(env.message.action),
            signer=env.signer,
            nonce=str(env.message.nonce),
            envelope=store.dump(env),
            received_s=_now(ctx),
        )
    )


def open_session(
    ctx: MarketContext, envelope: Signed[SessionCommand]
) -> tuple[SessionPublic, bool]:
    """Open a session on the operator's signed command; (the session, newly created)."""
    cmd = envelope.message
    if cmd.action != SessionAction.OPEN:
        raise Invalid("POST /sessions takes an open command", {"field": "message.action"})
    with ctx.lock:
        h, seen = _check_command(ctx, envelope)
        if seen:
            with ctx.engine.connect() as conn:
                return store.session_public(store.session_row(conn, cmd.session_id)), False
        try:
            ctx.announcer.topics.market_session(cmd.session_id)
        except ValueError as exc:
            raise Invalid(str(exc), {"field": "message.session_id"}) from exc
        if cmd.delivery_start_s % MTU_S:
            raise Invalid(
                "delivery_start_s is not MTU-aligned", {"field": "message.delivery_start_s"}
            )
        offset = (
            ctx.settings.da_gate_closure_offset_s
            if cmd.kind == "day_ahead"
            else ctx.settings.rt_gate_closure_offset_s
        )
        gate = cmd.delivery_start_s + offset
        now = _now(ctx)
        if gate <= now:
            raise Invalid(
                f"the gate of a session delivering from {cmd.delivery_start_s} closes at {gate}, "
                f"which has passed (now {now})",
                {"field": "message.delivery_start_s"},
            )
        with ctx.engine.connect() as conn:
            if conn.execute(
                select(db.sessions.c.session_id).where(db.sessions.c.session_id == cmd.session_id)
            ).first():
                raise count(ctx, Conflict(f"session {cmd.session_id!r} exists"))
        tx = ctx.chain.open_session(
            cmd.session_id,
            cmd.kind,
            cmd.delivery_start_s,
            cmd.mtu_count,
            ctx.settings.baseline_method,
            cmd.pricing,
        )
        with ctx.engine.begin() as conn:
            _store_command(conn, ctx, h, envelope)
            conn.execute(
                insert(db.sessions).values(
                    session_id=cmd.session_id,
                    kind=cmd.kind,
                    state="open",
                    delivery_start_s=cmd.delivery_start_s,
                    mtu_count=cmd.mtu_count,
                    gate_closure_s=gate,
                    pricing=cmd.pricing,
                    round=0,
                    round_limit=ctx.settings.round_limit,
                    open_tx=tx,
                    based_on=[],
                    opened_s=now,
                    updated_s=now,
                )
            )
            public = store.session_public(store.session_row(conn, cmd.session_id))
    log.info("session %s opened (%s, gate %d)", cmd.session_id, cmd.kind, gate)
    _notice(ctx, cmd.session_id, state="open", tx_hash=tx)
    ctx.wake()
    return public, True


def apply_command(
    ctx: MarketContext, session_id: str, envelope: Signed[SessionCommand]
) -> SessionPublic:
    """Close the gate, clear, finalize or settle a session on the operator's signed command."""
    cmd = envelope.message
    if cmd.session_id != session_id:
        raise Invalid("the command names another session", {"field": "message.session_id"})
    with ctx.lock:
        h, seen = _check_command(ctx, envelope)
        if not seen:
            with ctx.engine.connect() as conn:
                row = store.session_row(conn, session_id)
            if cmd.action == SessionAction.CLOSE_GATE:
                if row.state != "open":
                    raise WrongState(f"session {session_id} is {row.state}, not open")
                close_gate(ctx, session_id)
            elif cmd.action == SessionAction.CLEAR:
                if row.state != "gate_closed":
                    raise WrongState(f"session {session_id} is {row.state}, not gate_closed")
                clear_round(ctx, session_id)
            elif cmd.action == SessionAction.FINALIZE:
                if row.state != "validating":
                    raise WrongState(f"session {session_id} is {row.state}, not validating")
                finalize(ctx, session_id)
            elif cmd.action == SessionAction.SETTLE:
                if row.state != "final":
                    raise WrongState(f"session {session_id} is {row.state}, not final")
                settlement.settle_session(ctx, session_id)
            else:
                raise Invalid("use POST /sessions to open a session", {"field": "message.action"})
            with ctx.engine.begin() as conn:
                _store_command(conn, ctx, h, envelope)
        with ctx.engine.connect() as conn:
            return store.session_public(store.session_row(conn, session_id))


# -- gate closure ----------------------------------------------------------------------------


def _book(
    ctx: MarketContext, conn: Connection, row: Any
) -> tuple[list[tuple[str, Offer]], list[str], dict[tuple[str, int], int] | None, list[str]]:
    """The offers (hash, offer), request hashes, capacity (real-time) and base sessions of the
    book the session's gate closes on."""
    now = _now(ctx)
    start, end = row.delivery_start_s, row.delivery_start_s + row.mtu_count * MTU_S
    r = db.requests.c
    req_hashes = [
        x.hash
        for x in conn.execute(
            select(r.hash, r.envelope).where(r.session_id == row.session_id)
        ).all()
        if store.load_request(x.envelope).message.valid_until_s >= now
    ]
    o = db.offers.c
    if row.kind == "day_ahead":
        rows = conn.execute(select(o.hash, o.envelope).where(o.session_id == row.session_id)).all()
        offers = [(x.hash, store.load_offer(x.envelope).message) for x in rows]
        offers = [(h, m) for h, m in offers if m.valid_until_s >= now]
        return offers, req_hashes, None, []
    s = db.sessions.c
    bases = [
        x.session_id
        for x in conn.execute(
            select(s.session_id).where(
                s.kind == "day_ahead",
                s.state == "final",
                s.delivery_start_s < end,
                s.delivery_start_s + s.mtu_count * MTU_S > start,
            )
        ).all()
    ]
    rows = (
        conn.execute(select(o.hash, o.envelope).where(o.session_id.in_(bases))).all()
        if bases
        else []
    )
    candidates = []
    for x in rows:
        m = store.load_offer(x.envelope).message
        if (
            m.valid_until_s >= now
            and m.mtu_start_s < end
            and m.mtu_start_s + m.mtu_count * MTU_S > start
        ):
            candidates.append((x.hash, m))
    left = store.remaining_w(conn, candidates, exclude_session=row.session_id)
    capacity = {k: w for k, w in left.items() if start <= k[1] < end and w > 0}
    offered = {h for h, _ in capacity}
    return [c for c in candidates if c[0] in offered], req_hashes, capacity, bases


def close_gate(ctx: MarketContext, session_id: str) -> SessionPublic:
    """Commit the order book's root on chain, then run the first clearing round."""
    with ctx.lock:
        with ctx.engine.connect() as conn:
            row = store.session_row(conn, session_id)
            if row.state != "open":
                return store.session_public(row)
            offers, req_hashes, capacity, bases = _book(ctx, conn, row)
        entries = book_entries([h for h, _ in offers], req_hashes)
        root = root_of([e.leaf for e in entries])
        tx = ctx.chain.close_gate(session_id, b32(root), len(offers), len(req_hashes))
        with ctx.engine.begin() as conn:
            conn.execute(delete(db.book_entries).where(db.book_entries.c.session_id == session_id))
            if entries:
                conn.execute(
                    insert(db.book_entries),
                    [
                        {
                            "session_id": session_id,
                            "position": i,
                            "kind": e.kind,
                            "hash": e.hash,
                            "leaf": e.leaf,
                        }
                        for i, e in enumerate(entries)
                    ],
                )
            if capacity:
                conn.execute(
                    insert(db.book_capacity),
                    [
                        {
                            "session_id": session_id,
                            "offer_hash": h,
                            "mtu_start_s": t,
                            "remaining_w": w,
                        }
                        for (h, t), w in sorted(capacity.items())
                    ],
                )
            conn.execute(
                update(db.sessions)
                .where(db.sessions.c.session_id == session_id)
                .values(
                    state="gate_closed",
                    order_book_root=root,
                    offer_count=len(offers),
                    request_count=len(req_hashes),
                    gate_tx=tx,
                    based_on=bases,
                    updated_s=_now(ctx),
                )
            )
        log.info(
            "session %s: gate closed, %d offers, %d requests",
            session_id,
            len(offers),
            len(req_hashes),
        )
        _notice(ctx, session_id, state="gate_closed", order_book_root=root, tx_hash=tx)
        try:
            return clear_round(ctx, session_id)
        except ClearingFailed as exc:
            log.error("session %s: %s", session_id, exc)
            with ctx.engine.connect() as conn:
                return store.session_public(store.session_row(conn, session_id))


# -- clearing rounds -------------------------------------------------------------------------


def _rejected_keys(conn: Connection, session_id: str) -> list[tuple[str, str, int]]:
    """(offer, request, MTU) of every award a recorded validation of the session rejected."""
    v = db.validations.c
    rejected_hashes: set[str] = set()
    for x in conn.execute(select(v.envelope).where(v.session_id == session_id)).all():
        for d in store.load_validation(x.envelope).message.decisions:
            if not d.approved:
                rejected_hashes.add(d.award_hash)
    if not rejected_hashes:
        return []
    a = db.awards.c
    rows = conn.execute(
        select(a.offer_hash, a.request_hash, a.mtu_start_s).where(
            a.session_id == session_id, a.award_hash.in_(sorted(rejected_hashes))
        )
    ).all()
    return sorted({(r.offer_hash, r.request_hash, r.mtu_start_s) for r in rows})


def clear_round(ctx: MarketContext, session_id: str) -> SessionPublic:
    """Clear the committed book (without every award rejected so far) as the next round,
    sign it and publish it as a preliminary outcome."""
    with ctx.lock:
        with ctx.engine.connect() as conn:
            row = store.session_row(conn, session_id)
            entries = conn.execute(
                select(db.book_entries).where(db.book_entries.c.session_id == session_id)
            ).all()
            offer_hashes = [e.hash for e in entries if e.kind == "offer"]
            request_hashes = [e.hash for e in entries if e.kind == "request"]
            offers = [
                (x.hash, store.load_offer(x.envelope).message)
                for x in conn.execute(
                    select(db.offers.c.hash, db.offers.c.envelope).where(
                        db.offers.c.hash.in_(offer_hashes)
                    )
                ).all()
            ]
            requests: list[tuple[str, Request, Any]] = [
                (x.hash, store.load_request(x.envelope).message, x.stage)
                for x in conn.execute(
                    select(db.requests.c.hash, db.requests.c.envelope, db.requests.c.stage).where(
                        db.requests.c.hash.in_(request_hashes)
                    )
                ).all()
            ]
            capacity = None
            if row.kind == "real_time":
                capacity = {
                    (c.offer_hash, c.mtu_start_s): c.remaining_w
                    for c in conn.execute(
                        select(db.book_capacity).where(db.book_capacity.c.session_id == session_id)
                    ).all()
                }
            areas = {a.pod: a.area for a in conn.execute(select(db.areas)).all()}
            excluded = _rejected_keys(conn, session_id)
        try:
            cleared = clear(
                session_id=session_id,
                delivery_start_s=row.delivery_start_s,
                mtu_count=row.mtu_count,
                pricing=row.pricing,
                offers=offers,
                requests=requests,
                pod_area=areas,
                excluded=excluded,
                capacity=capacity,
                reliability_margin=ctx.settings.reliability_margin,
            )
        except ClearingFailed as exc:
            with ctx.engine.begin() as conn:
                conn.execute(
                    update(db.sessions)
                    .where(db.sessions.c.session_id == session_id)
                    .values(error=exc.message, updated_s=_now(ctx))
                )
            raise
        n = row.round + 1
        root = root_of(["0x" + a.leaf().hex() for a in cleared.awards])
        outcome = MarketOutcome(
            session_id=session_id,
            round=n,
            final=False,
            awards=cleared.awards,
            awards_root=root,
            total_cost_cents=cleared.total_cost_cents,
            provenance=cleared.provenance,
        )
        envelope = ctx.operator.sign(outcome)
        with ctx.engine.begin() as conn:
            _store_outcome(conn, ctx, envelope, excluded)
            if cleared.awards:
                conn.execute(
                    insert(db.awards),
                    [
                        {
                            "session_id": session_id,
                            "round": n,
                            "position": i,
                            "award_hash": a.award_hash,
                            "offer_hash": a.offer_hash,
                            "request_hash": a.request_hash,
                            "mtu_start_s": a.mtu_start_s,
                            "power_w": a.power_w,
                            "price_cents_per_mwh": a.price_cents_per_mwh,
                            "pod": a.pod,
                            "direction": int(a.direction),
                            "stage": a.stage,
                            "share_of_request": a.share_of_request,
                        }
                        for i, a in enumerate(cleared.awards)
                    ],
                )
            conn.execute(
                update(db.sessions)
                .where(db.sessions.c.session_id == session_id)
                .values(
                    state="validating",
                    round=n,
                    clearing=cleared.clearing,
                    error=None,
                    updated_s=_now(ctx),
                )
            )
            public = store.session_public(store.session_row(conn, session_id))
    log.info(
        "session %s: round %d, %d awards, %d cents",
        session_id,
        n,
        len(cleared.awards),
        cleared.total_cost_cents,
    )
    _announce_outcome(ctx, envelope)
    return public


def _store_outcome(
    conn: Connection,
    ctx: MarketContext,
    envelope: Signed[MarketOutcome],
    excluded: list[tuple[str, str, int]],
    tx: str | None = None,
) -> None:
    m = envelope.message
    conn.execute(
        insert(db.outcomes).values(
            session_id=m.session_id,
            round=m.round,
            final=m.final,
            awards_root=m.awards_root,
            total_cost_cents=m.total_cost_cents,
            award_count=len(m.awards),
            provenance=m.provenance.model_dump(mode="json"),
            signer=envelope.signer,
            signature=envelope.signature,
            excluded=[list(k) for k in excluded],
            tx_hash=tx,
            created_s=_now(ctx),
        )
    )


def on_validation(ctx: MarketContext, session_id: str, validation: Validation) -> None:
    """After a recorded validation round: finalize, re-clear, or give up at the round limit."""
    with ctx.lock:
        if validation.rejected_count == 0:
            finalize(ctx, session_id)
            return
        with ctx.engine.connect() as conn:
            row = store.session_row(conn, session_id)
        if row.round >= row.round_limit:
            reason = f"round limit {row.round_limit} reached with awards still rejected"
            with ctx.engine.begin() as conn:
                conn.execute(
                    update(db.sessions)
                    .where(db.sessions.c.session_id == session_id)
                    .values(state="failed", error=reason, updated_s=_now(ctx))
                )
            log.warning("session %s: %s", session_id, reason)
            _notice(ctx, session_id, state="failed", round=row.round, reason=reason)
            return
        try:
            clear_round(ctx, session_id)
        except ClearingFailed as exc:
            log.error("session %s: re-clearing failed: %s", session_id, exc)


def finalize(ctx: MarketContext, session_id: str) -> SessionPublic:
    """Commit the round the DSO approved as the final outcome, on chain and signed (I-08)."""
    with ctx.lock:
        with ctx.engine.connect() as conn:
            row = store.session_row(conn, session_id)
            if row.state == "final":
                return store.session_public(row)
            prelim = store.outcome(conn, session_id, row.round, final=False)
            v = db.validations.c
            approved = conn.execute(
                select(v.hash).where(
                    v.session_id == session_id, v.round == row.round, v.rejected_count == 0
                )
            ).first()
        if approved is None:
            raise WrongState(
                f"round {row.round} of {session_id} has no DSO validation approving it: the "
                "contract commits only an approved awards root"
            )
        m = prelim.message
        tx = ctx.chain.commit_outcome(
            session_id, b32(m.awards_root), m.total_cost_cents, len(m.awards)
        )
        final = ctx.operator.sign(m.model_copy(update={"final": True}))
        with ctx.engine.begin() as conn:
            o = db.outcomes.c
            excluded = conn.execute(
                select(o.excluded).where(
                    o.session_id == session_id, o.round == m.round, o.final.is_(False)
                )
            ).scalar_one()
            _store_outcome(conn, ctx, final, [tuple(k) for k in excluded], tx)
            conn.execute(
                update(db.sessions)
                .where(db.sessions.c.session_id == session_id)
                .values(
                    state="final",
                    awards_root=m.awards_root,
                    total_cost_cents=m.total_cost_cents,
                    award_count=len(m.awards),
                    outcome_tx=tx,
                    updated_s=_now(ctx),
                )
            )
            public = store.session_public(store.session_row(conn, session_id))
    log.info("session %s: final outcome committed (%d awards)", session_id, len(m.awards))
    _announce_outcome(ctx, final)
    _notice(ctx, session_id, state="final", round=m.round, awards_root=m.awards_root, tx_hash=tx)
    return public


# -- the clock -------------------------------------------------------------------------------


def tick(ctx: MarketContext) -> int | None:
    """Close every gate whose time has come; the next gate closure time, if any."""
    now = _now(ctx)
    s = db.sessions.c
    with ctx.engine.connect() as conn:
        due = [
            r.session_id
            for r in conn.execute(
                select(s.session_id).where(s.state == "open", s.gate_closure_s <= now)
            ).all()
        ]
    for session_id in due:
        try:
            close_gate(ctx, session_id)
        except MarketError as exc:
            log.error("session %s: gate closure failed: %s", session_id, exc.message)
    with ctx.engine.connect() as conn:
        nxt = conn.execute(
            select(s.gate_closure_s).where(s.state == "open").order_by(s.gate_closure_s).limit(1)
        ).scalar()
    return int(nxt) if nxt is not None else None


def recover(ctx: MarketContext) -> None:
    """Finish what a stopped process left half done: a closed gate never cleared, a recorded
    validation never acted upon, a settlement whose records are not all on chain."""
    s = db.sessions.c
    with ctx.engine.connect() as conn:
        rows = conn.execute(
            select(db.sessions).where(s.state.in_(["gate_closed", "validating"]))
        ).all()
    for row in rows:
        try:
            if row.state == "gate_closed" and row.error is None:
                clear_round(ctx, row.session_id)
                continue
            with ctx.engine.connect() as conn:
                v = conn.execute(
                    select(db.validations.c.envelope).where(
                        db.validations.c.session_id == row.session_id,
                        db.validations.c.round == row.round,
                    )
                ).first()
            if row.state == "validating" and v is not None:
                on_validation(ctx, row.session_id, store.load_validation(v.envelope).message)
        except MarketError as exc:
            log.error("session %s: recovery failed: %s", row.session_id, exc.message)
    settlement.recover(ctx)
