"""From what each resource can move to the offers (I-05) the aggregator signs (pure).

One offer per resource, direction and run of consecutive MTUs with the same power: the market
awards MTUs one by one, so an offer of ``max_w`` over a run means "any of these MTUs, up to
``max_w`` each" — which ``aggregator.resources`` made deliverable even if every MTU is taken.
Powers are floored to ``step_w`` so that runs stay long. Offers are divisible (``min_w`` 0).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from flexledger.messages import Offer
from flexledger.time import MTU_S
from flexledger.units import Direction

__all__ = ["OfferPlan", "offer_runs", "plan_offers"]


@dataclass(frozen=True)
class OfferPlan:
    """An offer to make: for which POD and resource, and the unsigned message."""

    pod: str
    resource_id: str
    offer: Offer


def offer_runs(
    w_per_mtu: Iterable[int], first: int, last: int, step_w: int = 500, min_w: int = 1000
) -> list[tuple[int, int, int]]:
    """(first MTU index, MTU count, W) of each run of equal floored power within
    ``[first, last)`` of the day; runs below ``min_w`` are left out."""
    w = [(x // step_w) * step_w for x in w_per_mtu]
    runs: list[tuple[int, int, int]] = []
    i = first
    while i < last:
        j = i
        while j + 1 < last and w[j + 1] == w[i]:
            j += 1
        if w[i] >= min_w:
            runs.append((i, j - i + 1, w[i]))
        i = j + 1
    return runs


def plan_offers(
    *,
    session_id: str,
    aggregator: str,
    day_s: int,
    delivery_start_s: int,
    mtu_count: int,
    valid_until_s: int,
    resources: Iterable[tuple[str, str, int, Iterable[int], Iterable[int]]],
    first_nonce: int,
    step_w: int = 500,
    min_w: int = 1000,
) -> list[OfferPlan]:
    """Offers of a session delivering ``mtu_count`` MTUs from ``delivery_start_s`` (within the
    day ``day_s``). ``resources``: (POD, resource id, price cents/MWh, up W per MTU of the day,
    down W per MTU of the day). Nonces count up from ``first_nonce``."""
    first = (delivery_start_s - day_s) // MTU_S
    last = first + mtu_count
    plans: list[OfferPlan] = []
    nonce = first_nonce
    for pod, resource_id, price, up_w, down_w in resources:
        for direction, w in ((Direction.UP, list(up_w)), (Direction.DOWN, list(down_w))):
            for i, count, power in offer_runs(w, max(first, 0), min(last, len(w)), step_w, min_w):
                offer = Offer(
                    session_id=session_id,
                    aggregator=aggregator,
                    pod=pod,
                    direction=direction,
                    mtu_start_s=day_s + i * MTU_S,
                    mtu_count=count,
                    max_w=power,
                    min_w=0,
                    price_cents_per_mwh=price,
                    valid_until_s=valid_until_s,
                    nonce=nonce,
                )
                plans.append(OfferPlan(pod, resource_id, offer))
                nonce += 1
    return plans
