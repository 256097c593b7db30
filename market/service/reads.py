"""Public reads: everything committed is readable by every participant and the auditor."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import Select, select

from flexledger.messages import MarketOutcome, Signed
from market import db
from market.schemas import (
    AreaPublic,
    AwardProof,
    BookEntryPublic,
    CapacityPublic,
    MtuPower,
    OfferPublic,
    OrderBookPublic,
    OrderPublic,
    RequestPublic,
    SessionPublic,
    ValidationPublic,
)
from market.service import store
from market.service.activation import order_awards
from market.service.book import proof_of
from market.service.context import MarketContext
from market.service.errors import MarketError, NotFound

__all__ = [
    "areas",
    "award_proof",
    "final_outcome",
    "offer",
    "offers",
    "order_book",
    "orders",
    "request",
    "requests",
    "round_outcome",
    "session",
    "sessions",
    "validations",
]

MAX_LIMIT = 10_000


def _page(q: Select[Any], col: Any, limit: int, after: str | None) -> Select[Any]:
    if after:
        q = q.where(col > after)
    return q.order_by(col).limit(min(max(limit, 1), MAX_LIMIT))


def sessions(
    ctx: MarketContext, limit: int = 1000, after: str | None = None
) -> list[SessionPublic]:
    with ctx.engine.connect() as conn:
        rows = conn.execute(
            _page(select(db.sessions), db.sessions.c.session_id, limit, after)
        ).all()
    return [store.session_public(r) for r in rows]


def session(ctx: MarketContext, session_id: str) -> SessionPublic:
    with ctx.engine.connect() as conn:
        return store.session_public(store.session_row(conn, session_id))


def _offer_public(conn: Any, row: Any) -> OfferPublic:
    env = store.load_offer(row.envelope)
    left = store.remaining_w(conn, [(row.hash, env.message)])
    return OfferPublic(
        hash=row.hash,
        offer=env,
        remaining=[MtuPower(mtu_start_s=t, power_w=w) for (_, t), w in sorted(left.items())],
    )


def offers(
    ctx: MarketContext,
    session_id: str | None = None,
    aggregator: str | None = None,
    pod: str | None = None,
    limit: int = 1000,
    after: str | None = None,
) -> list[OfferPublic]:
    o = db.offers.c
    q = select(db.offers)
    if session_id:
        q = q.where(o.session_id == session_id)
    if aggregator:
        q = q.where(o.aggregator == aggregator)
    if pod:
        q = q.where(o.pod == pod)
    with ctx.engine.connect() as conn:
        return [_offer_public(conn, r) for r in conn.execute(_page(q, o.hash, limit, after)).all()]


def offer(ctx: MarketContext, h: str) -> OfferPublic:
    with ctx.engine.connect() as conn:
        row = conn.execute(select(db.offers).where(db.offers.c.hash == h.lower())).first()
        if row is None:
            raise NotFound(f"no offer {h}")
        return _offer_public(conn, row)


def requests(
    ctx: MarketContext, session_id: str | None = None, limit: int = 1000, after: str | None = None
) -> list[RequestPublic]:
    r = db.requests.c
    q = select(db.requests)
    if session_id:
        q = q.where(r.session_id == session_id)
    with ctx.engine.connect() as conn:
        rows = conn.execute(_page(q, r.hash, limit, after)).all()
    return [
        RequestPublic(hash=x.hash, request=store.load_request(x.envelope), stage=x.stage)
        for x in rows
    ]


def request(ctx: MarketContext, h: str) -> RequestPublic:
    with ctx.engine.connect() as conn:
        x = conn.execute(select(db.requests).where(db.requests.c.hash == h.lower())).first()
    if x is None:
        raise NotFound(f"no request {h}")
    return RequestPublic(hash=x.hash, request=store.load_request(x.envelope), stage=x.stage)


def order_book(ctx: MarketContext, session_id: str) -> OrderBookPublic:
    """Before the gate closes: what was submitted. After: exactly the committed book."""
    with ctx.engine.connect() as conn:
        row = store.session_row(conn, session_id)
        e = db.book_entries.c
        entries = conn.execute(
            select(db.book_entries).where(e.session_id == session_id).order_by(e.position)
        ).all()
        if row.state == "open":
            offer_rows = conn.execute(
                select(db.offers.c.envelope)
                .where(db.offers.c.session_id == session_id)
                .order_by(db.offers.c.hash)
            ).all()
            req_rows = conn.execute(
                select(db.requests.c.envelope)
                .where(db.requests.c.session_id == session_id)
                .order_by(db.requests.c.hash)
            ).all()
        else:
            oh = [x.hash for x in entries if x.kind == "offer"]
            rh = [x.hash for x in entries if x.kind == "request"]
            offer_rows = conn.execute(
                select(db.offers.c.envelope)
                .where(db.offers.c.hash.in_(oh))
                .order_by(db.offers.c.hash)
            ).all()
            req_rows = conn.execute(
                select(db.requests.c.envelope)
                .where(db.requests.c.hash.in_(rh))
                .order_by(db.requests.c.hash)
            ).all()
        cap = conn.execute(
            select(db.book_capacity)
            .where(db.book_capacity.c.session_id == session_id)
            .order_by(db.book_capacity.c.offer_hash, db.book_capacity.c.mtu_start_s)
        ).all()
    return OrderBookPublic(
        session_id=session_id,
        kind=row.kind,
        state=row.state,
        offers=[store.load_offer(x.envelope) for x in offer_rows],
        requests=[store.load_request(x.envelope) for x in req_rows],
        entries=[BookEntryPublic(kind=x.kind, hash=x.hash, leaf=x.leaf) for x in entries],
        root=row.order_book_root,
        tx_hash=row.gate_tx,
        based_on=list(row.based_on or []),
        capacity=[
            CapacityPublic(
                offer_hash=c.offer_hash, mtu_start_s=c.mtu_start_s, remaining_w=c.remaining_w
            )
            for c in cap
        ],
    )


def round_outcome(ctx: MarketContext, session_id: str, round_: int) -> Signed[MarketOutcome]:
    with ctx.engine.connect() as conn:
        store.session_row(conn, session_id)
        return store.outcome(conn, session_id, round_, final=False)


def final_outcome(ctx: MarketContext, session_id: str) -> Signed[MarketOutcome]:
    with ctx.engine.connect() as conn:
        row = store.session_row(conn, session_id)
        if row.state != "final":
            raise NotFound(f"session {session_id} has no final outcome yet ({row.state})")
        return store.outcome(conn, session_id, row.round, final=True)


def validations(ctx: MarketContext, session_id: str) -> list[ValidationPublic]:
    v = db.validations.c
    with ctx.engine.connect() as conn:
        store.session_row(conn, session_id)
        rows = conn.execute(
            select(db.validations).where(v.session_id == session_id).order_by(v.round)
        ).all()
    return [
        ValidationPublic(
            hash=x.hash,
            round=x.round,
            validation=store.load_validation(x.envelope),
            tx_hash=x.tx_hash,
        )
        for x in rows
    ]


def award_proof(ctx: MarketContext, session_id: str, award_hash: str) -> AwardProof:
    with ctx.engine.connect() as conn:
        row = store.session_row(conn, session_id)
        if row.state != "final":
            raise NotFound(f"session {session_id} has no committed awards yet ({row.state})")
        awards = store.round_awards(conn, session_id, row.round)
    leaves = [a.award_hash for a in awards]
    try:
        i = leaves.index(award_hash.lower())
    except ValueError:
        raise NotFound(f"no award {award_hash} in the final outcome of {session_id}") from None
    return AwardProof(
        award=awards[i],
        award_hash=leaves[i],
        root=row.awards_root,
        proof=proof_of(leaves, i),
        round=row.round,
        tx_hash=row.outcome_tx,
    )


def orders(
    ctx: MarketContext, session_id: str | None = None, limit: int = 1000, after: str | None = None
) -> list[OrderPublic]:
    o = db.orders.c
    q = select(db.orders)
    if session_id:
        q = q.where(o.session_id == session_id)
    with ctx.engine.connect() as conn:
        rows = conn.execute(_page(q, o.hash, limit, after)).all()
    out = []
    for x in rows:
        env = store.load_order(x.envelope)
        try:
            moved = order_awards(ctx, env.message)
        except MarketError:
            moved = []
        out.append(OrderPublic(hash=x.hash, order=env, awards=moved, tx_hash=x.tx_hash))
    return out


def areas(ctx: MarketContext) -> list[AreaPublic]:
    with ctx.engine.connect() as conn:
        rows = conn.execute(select(db.areas).order_by(db.areas.c.pod)).all()
    return [AreaPublic(pod=r.pod, area=r.area) for r in rows]


def counters(ctx: MarketContext) -> dict[str, int]:
    return dict(defaultdict(int, ctx.counters))
