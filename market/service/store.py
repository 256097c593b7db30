"""Reading the market's rows back as protocol messages and public views."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, Row, and_, select

from flexledger.messages import (
    Award,
    ClearingProvenance,
    MarketOutcome,
    Offer,
    Order,
    Request,
    Signed,
    Validation,
)
from market import db
from market.schemas import SessionPublic
from market.service.errors import NotFound

__all__ = [
    "award_of",
    "final_awards",
    "load_offer",
    "load_order",
    "load_request",
    "load_validation",
    "outcome",
    "remaining_w",
    "round_awards",
    "session_public",
    "session_row",
]

OfferEnv = Signed[Offer]
RequestEnv = Signed[Request]
ValidationEnv = Signed[Validation]
OrderEnv = Signed[Order]
OutcomeEnv = Signed[MarketOutcome]


def dump(envelope: Signed[Any]) -> dict[str, Any]:
    return envelope.model_dump(mode="json", serialize_as_any=True)


def load_offer(data: Any) -> Signed[Offer]:
    return OfferEnv.model_validate(data)


def load_request(data: Any) -> Signed[Request]:
    return RequestEnv.model_validate(data)


def load_validation(data: Any) -> Signed[Validation]:
    return ValidationEnv.model_validate(data)


def load_order(data: Any) -> Signed[Order]:
    return OrderEnv.model_validate(data)


def session_row(conn: Connection, session_id: str) -> Row[Any]:
    row = conn.execute(select(db.sessions).where(db.sessions.c.session_id == session_id)).first()
    if row is None:
        raise NotFound(f"no session {session_id!r}")
    return row


def session_public(row: Row[Any]) -> SessionPublic:
    return SessionPublic(
        session_id=row.session_id,
        kind=row.kind,
        state=row.state,
        delivery_start_s=row.delivery_start_s,
        mtu_count=row.mtu_count,
        gate_closure_s=row.gate_closure_s,
        pricing=row.pricing,
        round=row.round,
        round_limit=row.round_limit,
        order_book_root=row.order_book_root,
        offer_count=row.offer_count,
        request_count=row.request_count,
        awards_root=row.awards_root,
        total_cost_cents=row.total_cost_cents,
        award_count=row.award_count,
        txs={"open": row.open_tx, "close_gate": row.gate_tx, "outcome": row.outcome_tx},
        based_on=list(row.based_on or []),
        clearing=row.clearing,
        error=row.error,
    )


def award_of(row: Row[Any], session_id: str) -> Award:
    return Award(
        session_id=session_id,
        offer_hash=row.offer_hash,
        request_hash=row.request_hash,
        mtu_start_s=row.mtu_start_s,
        power_w=row.power_w,
        price_cents_per_mwh=row.price_cents_per_mwh,
        pod=row.pod,
        direction=row.direction,
        stage=row.stage,
        share_of_request=row.share_of_request,
    )


def round_awards(conn: Connection, session_id: str, round_: int) -> list[Award]:
    rows = conn.execute(
        select(db.awards)
        .where(db.awards.c.session_id == session_id, db.awards.c.round == round_)
        .order_by(db.awards.c.position)
    ).all()
    return [award_of(r, session_id) for r in rows]


def outcome(conn: Connection, session_id: str, round_: int, final: bool) -> Signed[MarketOutcome]:
    """The signed outcome of a round, rebuilt from the stored awards and signature."""
    o = db.outcomes.c
    row = conn.execute(
        select(db.outcomes).where(o.session_id == session_id, o.round == round_, o.final == final)
    ).first()
    if row is None:
        what = "final outcome" if final else f"round {round_}"
        raise NotFound(f"session {session_id!r} has no {what}")
    message = MarketOutcome(
        session_id=session_id,
        round=row.round,
        final=row.final,
        awards=round_awards(conn, session_id, row.round),
        awards_root=row.awards_root,
        total_cost_cents=row.total_cost_cents,
        provenance=ClearingProvenance.model_validate(row.provenance),
    )
    return OutcomeEnv(message=message, signer=row.signer, signature=row.signature)


def final_awards(conn: Connection, offer_hashes: Iterable[str] | None = None) -> list[Row[Any]]:
    """Award rows of every committed final outcome (optionally of some offers only)."""
    a, o = db.awards.c, db.outcomes.c
    q = select(db.awards).join(
        db.outcomes,
        and_(o.session_id == a.session_id, o.round == a.round, o.final.is_(True)),
    )
    if offer_hashes is not None:
        q = q.where(a.offer_hash.in_(list(offer_hashes)))
    return list(conn.execute(q).all())


def remaining_w(
    conn: Connection, offers: Iterable[tuple[str, Offer]], exclude_session: str | None = None
) -> dict[tuple[str, int], int]:
    """W still free per (offer, MTU): ``max_w`` less every committed final award of it."""
    offers = list(offers)
    used: dict[tuple[str, int], int] = defaultdict(int)
    for row in final_awards(conn, [h for h, _ in offers]):
        if row.session_id != exclude_session:
            used[(row.offer_hash, row.mtu_start_s)] += row.power_w
    return {
        (h, t): max(0, offer.max_w - used[(h, t)]) for h, offer in offers for t in offer.mtu_starts
    }
