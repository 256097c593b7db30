"""Activation orders (I-09): the DSO or TSO moves an award of its own request.

The market checks the order against the session's final outcome — every MTU of the order has
an award of that offer to that request, and the order's power is within each of them — records
it on chain (the contract checks the issuer's signature and role again) and announces it on
``flex/market/orders`` to the DSO TP, the SCD and the aggregator.
"""

from __future__ import annotations

import logging

from sqlalchemy import select

from flexledger.messages import Award, Order, OrderAnnouncement, Receipt, Signed, b32
from flexledger.time import MTU_S
from market import db
from market.service import store
from market.service.checks import authenticate, count, nonce_conflict, not_expired, struct_hash
from market.service.context import MarketContext
from market.service.errors import Invalid, NotFound, WrongRole, WrongState
from market.service.intake import _exists, _insert, _nonce_used, receipt
from market.service.settlement import is_settling

__all__ = ["order_awards", "submit_order"]

log = logging.getLogger(__name__)


def order_awards(ctx: MarketContext, order: Order) -> list[Award]:
    """The final awards an order moves, one per MTU; ``Invalid``/``NotFound`` otherwise."""
    with ctx.engine.connect() as conn:
        row = store.session_row(conn, order.session_id)
        if row.state != "final":
            raise WrongState(f"session {order.session_id} has no final outcome ({row.state})")
        awards = [
            a
            for a in store.round_awards(conn, order.session_id, row.round)
            if a.offer_hash == order.offer_hash and a.request_hash == order.request_hash
        ]
    if not awards:
        raise NotFound(
            f"the final outcome of {order.session_id} awards no offer {order.offer_hash} "
            f"to request {order.request_hash}"
        )
    by_mtu = {a.mtu_start_s: a for a in awards}
    moved = []
    for k in range(order.mtu_count):
        t = order.mtu_start_s + k * MTU_S
        award = by_mtu.get(t)
        if award is None:
            raise Invalid(
                f"MTU {t} is not awarded to this offer and request",
                {"field": "message.mtu_start_s"},
            )
        if order.power_w > award.power_w:
            raise Invalid(
                f"power_w {order.power_w} exceeds the {award.power_w} W awarded in MTU {t}",
                {"field": "message.power_w"},
            )
        moved.append(award)
    return moved


def submit_order(ctx: MarketContext, envelope: Signed[Order]) -> Receipt:
    """Check, record on chain, store and announce an activation order."""
    order = envelope.message
    signer = authenticate(ctx, envelope, "DSO", "TSO")
    h = struct_hash(envelope)
    with ctx.lock:
        if _exists(ctx, db.orders, h):
            return receipt(ctx, h, duplicate=True)
        not_expired(ctx, order.expiry_s, "expiry_s")
        with ctx.engine.connect() as conn:
            if is_settling(conn, order.session_id):
                raise WrongState(f"session {order.session_id} is being settled: no more orders")
        moved = order_awards(ctx, order)
        with ctx.engine.connect() as conn:
            req = conn.execute(
                select(db.requests.c.requester).where(db.requests.c.hash == order.request_hash)
            ).first()
            offer = conn.execute(
                select(db.offers.c.aggregator).where(db.offers.c.hash == order.offer_hash)
            ).first()
        if req is None or offer is None or req.requester != signer:
            raise count(ctx, WrongRole(f"{signer} did not post request {order.request_hash}"))
        if _nonce_used(ctx, db.orders, "issuer", signer, order.nonce):
            raise nonce_conflict(ctx, "order", signer, order.nonce)
        tx = ctx.chain.record_order(envelope, b32(h))
        _insert(
            ctx,
            db.orders,
            {
                "hash": h,
                "session_id": order.session_id,
                "issuer": signer,
                "offer_hash": order.offer_hash,
                "request_hash": order.request_hash,
                "mtu_start_s": order.mtu_start_s,
                "mtu_count": order.mtu_count,
                "power_w": order.power_w,
                "nonce": str(order.nonce),
                "expiry_s": order.expiry_s,
                "envelope": store.dump(envelope),
                "tx_hash": tx,
                "received_s": ctx.clock.now_s(),
            },
            "order",
        )
    announcement = OrderAnnouncement(
        order=envelope,
        order_hash=h,
        awards=moved,
        pod=moved[0].pod,
        direction=moved[0].direction,
        aggregator=offer.aggregator,
        tx_hash=tx,
    )
    ctx.announcer.publish(ctx.announcer.topics.market_orders(), announcement)
    log.info("order %s recorded (%s, %d MTUs)", h, order.session_id, order.mtu_count)
    return receipt(ctx, h)
