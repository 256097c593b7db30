"""The one place the service meets the clearing engine (``market.clearing``).

The service stores signed offers and requests and award rows; the engine clears typed inputs
(``ClearingBook``) and returns a ``ClearingResult``. This module builds the one from the other
and back, so that the rest of the service never depends on the engine's internals:

- a day-ahead session clears its offers as signed;
- a real-time session clears the day-ahead offers' *remaining* capacity, which differs per MTU
  (what the day-ahead and earlier real-time awards left). The engine takes one ``max_w`` per
  offer, so each (offer, MTU) with capacity left becomes an offer of its own under a derived
  hash, mapped back to the signed offer's hash in the awards;
- awards come back in economic order (price, offer hash, request hash, MTU: a total order an
  auditor rebuilds from the lines alone), quantised to whole W by the engine before anything
  is hashed, with each award's share of its request;
- the provenance records the engine's name, version, solver, pricing, options and per-stage
  figures (cost, objective, gap, unmet W), which the session publishes for the auditor.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from eth_utils import keccak

from flexledger.messages import Award, ClearingProvenance, Offer, PricingRule, Request, b32
from flexledger.units import awarded_wh, payment_cents
from market.clearing import (
    AwardKey,
    ClearingBook,
    ClearingOffer,
    ClearingRequest,
    DsoFirstClearing,
    InfeasibleClearingError,
    Stage,
)
from market.service.errors import ClearingFailed

log = logging.getLogger(__name__)

__all__ = ["ClearedRound", "award_cost_cents", "clear", "derived_hash"]


@dataclass(frozen=True)
class ClearedRound:
    """A round's awards in economic order, their total cost and how they were computed."""

    awards: list[Award]
    total_cost_cents: int
    provenance: ClearingProvenance
    clearing: dict[str, Any] = field(default_factory=dict)


def award_cost_cents(power_w: int, price_cents_per_mwh: int) -> int:
    """What an award costs, as settlement will count it: cents of its MTU's energy."""
    return payment_cents(awarded_wh(power_w), price_cents_per_mwh)


def derived_hash(offer_hash: str, mtu_start_s: int) -> str:
    """The engine-side name of one MTU of a real-time offer's remaining capacity."""
    return "0x" + keccak(b32(offer_hash) + mtu_start_s.to_bytes(8, "big")).hex()


def _finite(x: float) -> float | None:
    return None if x is None or math.isnan(x) or math.isinf(x) else float(x)


def clear(
    *,
    session_id: str,
    delivery_start_s: int,
    mtu_count: int,
    pricing: PricingRule,
    offers: Sequence[tuple[str, Offer]],
    requests: Sequence[tuple[str, Request, Stage]],
    pod_area: Mapping[str, str],
    excluded: Collection[tuple[str, str, int]] = (),
    capacity: Mapping[tuple[str, int], int] | None = None,
    reliability_margin: float = 0.1,
) -> ClearedRound:
    """Clear one round: DSO stage, then TSO stage on what is left; ``ClearingFailed`` if the
    engine cannot (a typed ``InfeasibleClearingError``, never a silent partial result)."""
    engine_offers: list[ClearingOffer] = []
    back: dict[str, str] = {}  # engine-side hash -> signed offer hash
    for h, offer in offers:
        base = ClearingOffer.from_message(offer, h)
        if capacity is None:
            engine_offers.append(base)
            back[base.hash] = base.hash
            continue
        for t in base.mtu_starts:
            left = capacity.get((base.hash, t), 0)
            if left <= 0 or left < base.min_w:
                continue
            dh = derived_hash(base.hash, t)
            back[dh] = base.hash
            engine_offers.append(
                ClearingOffer(
                    hash=dh,
                    pod=base.pod,
                    direction=base.direction,
                    mtu_starts=(t,),
                    max_w=left,
                    min_w=base.min_w,
                    price_cents_per_mwh=base.price_cents_per_mwh,
                )
            )
    engine_requests = [ClearingRequest.from_message(r, h, stage) for h, r, stage in requests]
    book = ClearingBook.of(session_id, engine_offers, engine_requests, pod_area)
    in_book = set(back)
    req_hashes = {r.hash for r in engine_requests}
    keys: list[AwardKey] = []
    for offer_hash, request_hash, t in excluded:
        oh = offer_hash if capacity is None else derived_hash(offer_hash, t)
        if oh in in_book and request_hash in req_hashes:
            keys.append(AwardKey(oh, request_hash, t))
    engine = DsoFirstClearing(
        pricing=pricing,
        start_s=delivery_start_s,
        mtu_count=mtu_count,
        reliability_margin=reliability_margin,
    )
    try:
        result = engine.compute(book, excluded=keys)
    except InfeasibleClearingError as exc:
        raise ClearingFailed(f"the clearing failed: {exc}") from exc
    except Exception as exc:  # an engine bug: record it on the session rather than loop on it
        log.exception("clearing engine error in %s", session_id)
        raise ClearingFailed(f"the clearing engine failed: {type(exc).__name__}: {exc}") from exc
    awards = [
        Award(
            session_id=session_id,
            offer_hash=back[a.offer_hash],
            request_hash=a.request_hash,
            mtu_start_s=a.mtu_start_s,
            power_w=a.power_w,
            price_cents_per_mwh=a.price_cents_per_mwh,
            pod=a.pod,
            direction=a.direction,
            stage=a.stage,
            share_of_request=a.share_of_request,
        )
        for a in result.awards
        if a.power_w > 0
    ]
    awards.sort(key=lambda a: (a.price_cents_per_mwh, a.offer_hash, a.request_hash, a.mtu_start_s))
    total = sum(award_cost_cents(a.power_w, a.price_cents_per_mwh) for a in awards)
    run = result.provenance
    stages = {
        s: {
            "cost_cents": r.cost_cents,
            "objective_eur": _finite(r.objective_eur),
            "mip_gap": _finite(r.mip_gap),
            "mip_gap_eur": _finite(r.mip_gap_eur),
            "unmet_w": r.unmet_w,
            "status": r.status,
        }
        for s, r in result.stages.items()
    }
    clearing = {
        "name": run.name,
        "version": run.version,
        "solver": run.solver,
        "pricing": run.pricing,
        "mip_gap": _finite(run.mip_gap),
        "options": {k: v for k, v in run.options.items() if _json_plain(v)},
        "stages": stages,
    }
    return ClearedRound(
        awards=awards,
        total_cost_cents=total,
        provenance=result.to_provenance().model_copy(
            update={"mip_gap": _finite(run.mip_gap) or 0.0}
        ),
        clearing=clearing,
    )


def _json_plain(v: Any) -> bool:
    if isinstance(v, float):
        return not (math.isnan(v) or math.isinf(v))
    return v is None or isinstance(v, str | int | bool)
