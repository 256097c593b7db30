"""Signed submissions: offers (I-05), requests (I-06), DSO validations (I-07).

Each goes through ``market.service.checks`` (signature 401, role 403, clock 422/409, replay)
and then the checks of its own kind; nothing is stored unless every check passes. The same
signed message twice answers its original receipt (``duplicate``); a nonce reused for other
content is a conflict. Nonces are scoped per kind and signer (an operator's DSO signs
requests, validations and orders, each with its own sequence).
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import Table, insert, select
from sqlalchemy.exc import IntegrityError

from flexledger.messages import Offer, Receipt, Request, Signed, Validation
from flexledger.time import MTU_S
from market import db
from market.service import sessions, store
from market.service.book import proof_of
from market.service.checks import authenticate, count, nonce_conflict, not_expired, struct_hash
from market.service.context import MarketContext
from market.service.errors import (
    Conflict,
    GateClosed,
    Invalid,
    NotFound,
    WrongRole,
    WrongState,
)

__all__ = ["receipt", "submit_offer", "submit_request", "submit_validation"]

log = logging.getLogger(__name__)


def receipt(ctx: MarketContext, h: str, *, duplicate: bool = False) -> Receipt:
    """The receipt of a stored submission; with its proof once its session's gate closed."""
    with ctx.engine.connect() as conn:
        for kind, table in (("offer", db.offers), ("request", db.requests)):
            row = conn.execute(select(table.c.session_id).where(table.c.hash == h)).first()
            if row is None:
                continue
            e = db.book_entries.c
            entry = conn.execute(
                select(e.position, e.leaf).where(e.session_id == row.session_id, e.hash == h)
            ).first()
            if entry is None:
                return Receipt(kind=kind, hash=h, session_id=row.session_id, duplicate=duplicate)  # type: ignore[arg-type]
            leaves = [
                x.leaf
                for x in conn.execute(
                    select(e.leaf).where(e.session_id == row.session_id).order_by(e.position)
                ).all()
            ]
            root = store.session_row(conn, row.session_id).order_book_root
            return Receipt(
                kind=kind,  # type: ignore[arg-type]
                hash=h,
                session_id=row.session_id,
                leaf=entry.leaf,
                root=root,
                proof=proof_of(leaves, entry.position),
                duplicate=duplicate,
            )
        for kind, table in (("validation", db.validations), ("order", db.orders)):
            row = conn.execute(
                select(table.c.session_id, table.c.tx_hash).where(table.c.hash == h)
            ).first()
            if row is not None:
                return Receipt(
                    kind=kind,  # type: ignore[arg-type]
                    hash=h,
                    session_id=row.session_id,
                    tx_hash=row.tx_hash,
                    duplicate=duplicate,
                )
    raise NotFound(f"no submission with hash {h}")


def _exists(ctx: MarketContext, table: Table, h: str) -> bool:
    with ctx.engine.connect() as conn:
        return conn.execute(select(table.c.hash).where(table.c.hash == h)).first() is not None


def _nonce_used(ctx: MarketContext, table: Table, signer_col: str, signer: str, nonce: int) -> bool:
    with ctx.engine.connect() as conn:
        return (
            conn.execute(
                select(table.c.hash).where(
                    table.c[signer_col] == signer, table.c.nonce == str(nonce)
                )
            ).first()
            is not None
        )


def _open_session(ctx: MarketContext, session_id: str) -> Any:
    """The session a submission goes to, while its gate is open on the clock."""
    with ctx.engine.connect() as conn:
        try:
            row = store.session_row(conn, session_id)
        except NotFound as exc:
            raise Invalid(exc.message, {"field": "message.session_id"}) from exc
    now = ctx.clock.now_s()
    if row.state != "open" or now >= row.gate_closure_s:
        raise count(
            ctx, GateClosed(f"the gate of session {session_id} closed at {row.gate_closure_s}")
        )
    return row


def _within(row: Any, mtu_start_s: int, mtu_count: int) -> None:
    start, end = row.delivery_start_s, row.delivery_start_s + row.mtu_count * MTU_S
    if mtu_start_s < start or mtu_start_s + mtu_count * MTU_S > end:
        raise Invalid(
            f"MTUs [{mtu_start_s}, {mtu_start_s + mtu_count * MTU_S}) are outside the session's "
            f"delivery [{start}, {end})",
            {"field": "message.mtu_start_s"},
        )


def _insert(ctx: MarketContext, table: Table, values: dict[str, Any], what: str) -> None:
    try:
        with ctx.engine.begin() as conn:
            conn.execute(insert(table).values(**values))
    except IntegrityError as exc:  # another process took the nonce first
        raise count(ctx, Conflict(f"{what}: stored concurrently by another writer")) from exc


def submit_offer(ctx: MarketContext, envelope: Signed[Offer]) -> Receipt:
    """Accept an aggregator's offer for a day-ahead session (``duplicate`` when seen before)."""
    offer = envelope.message
    signer = authenticate(ctx, envelope, "AGGREGATOR")
    if signer != offer.aggregator:
        raise count(ctx, WrongRole(f"signed by {signer}, not by the offer's aggregator"))
    h = struct_hash(envelope)
    with ctx.lock:
        if _exists(ctx, db.offers, h):
            return receipt(ctx, h, duplicate=True)
        not_expired(ctx, offer.valid_until_s, "valid_until_s")
        row = _open_session(ctx, offer.session_id)
        if row.kind != "day_ahead":
            raise Invalid(
                "offers go to day-ahead sessions; real-time sessions clear what is left of them",
                {"field": "message.session_id"},
            )
        _within(row, offer.mtu_start_s, offer.mtu_count)
        if _nonce_used(ctx, db.offers, "aggregator", signer, offer.nonce):
            raise nonce_conflict(ctx, "offer", signer, offer.nonce)
        _insert(
            ctx,
            db.offers,
            {
                "hash": h,
                "session_id": offer.session_id,
                "aggregator": signer,
                "pod": offer.pod,
                "direction": int(offer.direction),
                "mtu_start_s": offer.mtu_start_s,
                "mtu_count": offer.mtu_count,
                "max_w": offer.max_w,
                "min_w": offer.min_w,
                "price_cents_per_mwh": offer.price_cents_per_mwh,
                "valid_until_s": offer.valid_until_s,
                "nonce": str(offer.nonce),
                "envelope": store.dump(envelope),
                "received_s": ctx.clock.now_s(),
            },
            "offer",
        )
    log.debug("offer %s stored for %s", h, offer.session_id)
    return receipt(ctx, h)


def submit_request(ctx: MarketContext, envelope: Signed[Request]) -> Receipt:
    """Accept a DSO request (eligible PODs with factors) or a TSO request (an area)."""
    req = envelope.message
    signer = authenticate(ctx, envelope, "DSO", "TSO")
    if signer != req.requester:
        raise count(ctx, WrongRole(f"signed by {signer}, not by the request's requester"))
    # The request's shape says which role it needs: eligible PODs are a DSO request, an area
    # alone a TSO request (docs/API.md).
    stage = "dso" if req.eligible else "tso"
    if stage == "dso" and not ctx.roles.has("DSO", signer):
        raise count(ctx, WrongRole(f"{signer} is not a DSO: only a DSO lists eligible PODs"))
    if stage == "tso" and not ctx.roles.has("TSO", signer):
        if ctx.roles.has("DSO", signer):
            raise Invalid("a DSO request lists its eligible PODs", {"field": "message.eligible"})
        raise count(ctx, WrongRole(f"{signer} is not a TSO: only a TSO requests by area"))
    h = struct_hash(envelope)
    with ctx.lock:
        if _exists(ctx, db.requests, h):
            return receipt(ctx, h, duplicate=True)
        not_expired(ctx, req.valid_until_s, "valid_until_s")
        row = _open_session(ctx, req.session_id)
        _within(row, req.mtu_start_s, req.mtu_count)
        if stage == "tso":
            with ctx.engine.connect() as conn:
                known = conn.execute(
                    select(db.areas.c.pod).where(db.areas.c.area == req.area).limit(1)
                ).first()
            if known is None:
                raise Invalid(
                    f"area {req.area!r} has no POD in the market's areas", {"field": "message.area"}
                )
        if _nonce_used(ctx, db.requests, "requester", signer, req.nonce):
            raise nonce_conflict(ctx, "request", signer, req.nonce)
        _insert(
            ctx,
            db.requests,
            {
                "hash": h,
                "session_id": req.session_id,
                "requester": signer,
                "stage": stage,
                "direction": int(req.direction),
                "mtu_start_s": req.mtu_start_s,
                "mtu_count": req.mtu_count,
                "volume_w": req.volume_w,
                "max_price_cents_per_mwh": req.max_price_cents_per_mwh,
                "area": req.area,
                "nonce": str(req.nonce),
                "envelope": store.dump(envelope),
                "received_s": ctx.clock.now_s(),
            },
            "request",
        )
    return receipt(ctx, h)


def submit_validation(ctx: MarketContext, session_id: str, envelope: Signed[Validation]) -> Receipt:
    """Record the DSO's validation of the current round on chain, then act on it."""
    v = envelope.message
    if v.session_id != session_id:
        raise Invalid("the validation names another session", {"field": "message.session_id"})
    signer = authenticate(ctx, envelope, "DSO")
    h = struct_hash(envelope)
    with ctx.lock:
        if _exists(ctx, db.validations, h):
            return receipt(ctx, h, duplicate=True)
        with ctx.engine.connect() as conn:
            row = store.session_row(conn, session_id)
            if row.state != "validating":
                raise count(
                    ctx, WrongState(f"session {session_id} is {row.state}: no round to validate")
                )
            if v.round != row.round:
                raise count(
                    ctx,
                    WrongState(
                        f"round {v.round} is not the round awaiting validation ({row.round})"
                    ),
                )
            prelim = store.outcome(conn, session_id, row.round, final=False).message
        if v.awards_root != prelim.awards_root:
            raise Invalid(
                f"awards_root {v.awards_root} is not round {row.round}'s {prelim.awards_root}",
                {"field": "message.awards_root"},
            )
        published = [a.award_hash for a in prelim.awards]
        decided = [d.award_hash for d in v.decisions]
        if sorted(decided) != sorted(published):
            missing = sorted(set(published) - set(decided))
            unknown = sorted(set(decided) - set(published))
            raise Invalid(
                "a validation decides every award of its round exactly once",
                {"field": "message.decisions", "missing": missing, "unknown": unknown},
            )
        if _nonce_used(ctx, db.validations, "dso", signer, v.nonce):
            raise nonce_conflict(ctx, "validation", signer, v.nonce)
        tx = ctx.chain.record_validation(envelope)
        _insert(
            ctx,
            db.validations,
            {
                "hash": h,
                "session_id": session_id,
                "round": v.round,
                "dso": signer,
                "nonce": str(v.nonce),
                "approved_count": v.approved_count,
                "rejected_count": v.rejected_count,
                "envelope": store.dump(envelope),
                "tx_hash": tx,
                "received_s": ctx.clock.now_s(),
            },
            "validation",
        )
        log.info(
            "session %s: round %d validated (%d approved, %d rejected)",
            session_id,
            v.round,
            v.approved_count,
            v.rejected_count,
        )
        sessions.on_validation(ctx, session_id, v)
    return receipt(ctx, h)
