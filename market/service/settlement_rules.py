"""The settlement rule: from a POD's certified energy and its baseline to each award's amount.

Pure, no I/O: ``market.service.settlement`` gathers the evidence and calls ``settle_pod_mtu``
once per POD and MTU that has activated awards. docs/NOTES-settlement.md states the same rules
in prose; ``audit.settlement`` implements them again, independently.

For one POD in one MTU, with the evidence ``PodMtuEvidence`` (baseline Wh, certified measured
Wh, the windows used):

1. Not payable evidence (a window not certified, a sample missing or altered, the MTU's samples
   incomplete, no baseline committed before gate closure, a baseline that no longer hashes to
   its committed root): every award of the POD in the MTU is ``unpaid_uncertified`` with the
   reason; amount and claim 0, measured and delivered Wh 0 (nothing certified was measured).
2. Otherwise, per direction, the POD's delivered Wh is
   ``(+1 up / -1 down) × (baseline − measured)`` (``flexledger.units.delivered_wh``) and it is
   split across that direction's activated awards in proportion to their activated W
   (``flexledger.units.split_delivery``: the remainder to the smallest award hash), so nothing
   is credited twice.
3. Per award, ``awarded_wh`` is the energy of its activated W (``flexledger.units.awarded_wh``:
   the order's power, capped at the award's). Paid energy is ``min(delivered, awarded)``, never
   below zero; the gross payment is ``payment_cents(paid, price)`` at the award's price (the
   session's pricing rule set it at clearing).
4. Tolerance and penalty: ``tolerance_wh = round(awarded × tolerance_ppm / 1e6)``. The shortfall
   beyond it, ``short = max(0, awarded − tolerance_wh − max(delivered, 0))``, costs
   ``round(short × price × penalty_ppm / 1e12)`` cents. ``net = gross − penalty``;
   ``amount = max(net, 0)`` moves, ``claim = max(−net, 0)`` is recorded, never moved.
5. Status: ``not_delivered`` when the award's delivered share is ≤ 0 (none, or the wrong
   direction), ``paid`` when there is no shortfall beyond the tolerance, else
   ``partially_paid``.

Every rounding is ``round_half_even`` on exact integers, as ARCHITECTURE.md fixes it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from eth_utils import keccak

from flexledger.messages import b32, h32
from flexledger.messages.settlement import SettlementStatus
from flexledger.units import (
    PPM,
    Direction,
    awarded_wh,
    delivered_wh,
    payment_cents,
    round_half_even_div,
    split_delivery,
)

__all__ = [
    "ZERO_ROOT",
    "ActivatedAward",
    "AwardSettlement",
    "PodMtuEvidence",
    "SettlementTerms",
    "WindowUsed",
    "measurement_root",
    "settle_pod_mtu",
]

ZERO_ROOT = h32(bytes(32))


@dataclass(frozen=True)
class SettlementTerms:
    """The market's settlement terms (``MarketSettings``): tolerance and penalty in ppm.

    ``tolerance_ppm``: the share of the awarded energy that may go undelivered without
    penalty. ``penalty_ppm``: the price of one undelivered Wh beyond the tolerance, as a share
    of the award's price.
    """

    tolerance_ppm: int = 100_000
    penalty_ppm: int = 500_000

    def __post_init__(self) -> None:
        if not 0 <= self.tolerance_ppm <= PPM:
            raise ValueError("tolerance_ppm must be within [0, 1,000,000]")
        if self.penalty_ppm < 0:
            raise ValueError("penalty_ppm must not be negative")


@dataclass(frozen=True)
class ActivatedAward:
    """An award of the final outcome that recorded orders activated, as settlement sees it."""

    award_hash: str
    offer_hash: str
    request_hash: str
    pod: str
    direction: Direction
    mtu_start_s: int
    power_w: int
    activated_w: int
    price_cents_per_mwh: int

    @property
    def awarded_wh(self) -> int:
        """Energy the orders asked of this award in its MTU, Wh."""
        return awarded_wh(self.activated_w)


@dataclass(frozen=True)
class WindowUsed:
    """A measurement window over the MTU: its start, anchored root and certification."""

    window_start_s: int
    root: str | None
    status: str


@dataclass(frozen=True)
class PodMtuEvidence:
    """What settlement knows of one POD in one MTU.

    ``problem`` is None when the figures are payable: every window certified, the MTU's
    samples complete, the baseline committed before gate closure and intact.
    """

    pod: str
    mtu_start_s: int
    baseline_wh: int | None
    measured_wh: int | None
    baseline_root: str = ZERO_ROOT
    windows: tuple[WindowUsed, ...] = ()
    problem: str | None = None

    @property
    def measurement_root(self) -> str:
        return measurement_root([w.root for w in self.windows])


def measurement_root(roots: Sequence[str | None]) -> str:
    """keccak256(root_1 ‖ … ‖ root_m) of the window roots used, in window order (PROTOCOL.md);
    zero when none. A window without a root (never anchored) adds nothing."""
    used = [b32(r) for r in roots if r]
    return h32(keccak(b"".join(used))) if used else ZERO_ROOT


@dataclass(frozen=True)
class AwardSettlement:
    """One award's settlement: the figures of its SettlementOutcome (I-15) and how they came."""

    award: ActivatedAward
    baseline_wh: int
    measured_wh: int
    delivered_wh: int
    awarded_wh: int
    paid_wh: int
    gross_cents: int
    penalty_cents: int
    amount_cents: int
    claim_cents: int
    status: SettlementStatus
    reason: str | None
    windows_s: tuple[int, ...]
    measurement_root: str
    baseline_root: str
    extra: dict[str, int] = field(default_factory=dict)


def _unpaid(award: ActivatedAward, ev: PodMtuEvidence, reason: str) -> AwardSettlement:
    return AwardSettlement(
        award=award,
        baseline_wh=ev.baseline_wh or 0,
        measured_wh=0,
        delivered_wh=0,
        awarded_wh=award.awarded_wh,
        paid_wh=0,
        gross_cents=0,
        penalty_cents=0,
        amount_cents=0,
        claim_cents=0,
        status="unpaid_uncertified",
        reason=reason,
        windows_s=tuple(w.window_start_s for w in ev.windows),
        measurement_root=ev.measurement_root,
        baseline_root=ev.baseline_root,
    )


def _pay(
    award: ActivatedAward, ev: PodMtuEvidence, share_wh: int, terms: SettlementTerms
) -> AwardSettlement:
    assert ev.baseline_wh is not None and ev.measured_wh is not None
    e_awarded = award.awarded_wh
    price = award.price_cents_per_mwh
    paid = max(0, min(share_wh, e_awarded))
    gross = payment_cents(paid, price)
    tolerance = round_half_even_div(e_awarded * terms.tolerance_ppm, PPM)
    short = max(0, e_awarded - tolerance - max(share_wh, 0))
    penalty = round_half_even_div(short * price * terms.penalty_ppm, PPM * 1_000_000)
    net = gross - penalty
    status: SettlementStatus
    if share_wh <= 0:
        status = "not_delivered"
        reason = (
            f"delivered {share_wh} Wh: the POD moved the wrong way"
            if share_wh < 0
            else "nothing delivered"
        )
    elif short == 0:
        status, reason = "paid", None
    else:
        status = "partially_paid"
        reason = f"delivered {share_wh} of {e_awarded} Wh (tolerance {tolerance} Wh)"
    return AwardSettlement(
        award=award,
        baseline_wh=ev.baseline_wh,
        measured_wh=ev.measured_wh,
        delivered_wh=share_wh,
        awarded_wh=e_awarded,
        paid_wh=paid,
        gross_cents=gross,
        penalty_cents=penalty,
        amount_cents=max(net, 0),
        claim_cents=max(-net, 0),
        status=status,
        reason=reason,
        windows_s=tuple(w.window_start_s for w in ev.windows),
        measurement_root=ev.measurement_root,
        baseline_root=ev.baseline_root,
        extra={"short_wh": short, "tolerance_wh": tolerance},
    )


def settle_pod_mtu(
    evidence: PodMtuEvidence,
    awards: Sequence[ActivatedAward],
    terms: SettlementTerms = SettlementTerms(),
) -> list[AwardSettlement]:
    """Settle every activated award of one POD in one MTU (see the module docstring), in the
    order given."""
    for a in awards:
        if (a.pod, a.mtu_start_s) != (evidence.pod, evidence.mtu_start_s):
            raise ValueError(
                f"award {a.award_hash} is not of {evidence.pod} @ {evidence.mtu_start_s}"
            )
    if evidence.problem is not None or evidence.baseline_wh is None or evidence.measured_wh is None:
        reason = evidence.problem or "no certified measurement or baseline"
        return [_unpaid(a, evidence, reason) for a in awards]
    shares: dict[str, int] = {}
    by_direction: dict[Direction, list[ActivatedAward]] = defaultdict(list)
    for a in awards:
        by_direction[Direction(a.direction)].append(a)
    for direction, group in by_direction.items():
        total = delivered_wh(direction, evidence.baseline_wh, evidence.measured_wh)
        split = split_delivery(total, [(b32(a.award_hash), a.activated_w) for a in group])
        shares.update({h32(h): wh for h, wh in split.items()})
    return [_pay(a, evidence, shares[a.award_hash], terms) for a in awards]
