"""Units, directions and the rounding, delivery-split and set-point rules of ARCHITECTURE.md.

Rounding happens once, here, and everywhere the same (round half to even on exact integers):
- measured energy per MTU, Wh = round(Σ P_W × 4 / 3600) over the MTU's samples;
- awarded energy per MTU, Wh = round(W / 4);
- a payment, cents = round(Wh × price_cents_per_MWh / 1,000,000).
Signs: active power at a POD is positive when it consumes (load convention). ``up`` is less
consumption or more injection; delivered energy = (+1 if up else −1) × (baseline − measured).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from enum import IntEnum
from typing import Final

from flexledger.time import MTU_S, SAMPLE_PERIOD_S

__all__ = [
    "PPM",
    "Direction",
    "awarded_wh",
    "cents_per_mwh",
    "delivered_wh",
    "eur_per_mwh",
    "kw_to_w",
    "measured_wh",
    "payment_cents",
    "round_half_even_div",
    "setpoint_target_w",
    "split_delivery",
    "w_to_kw",
]

PPM: Final = 1_000_000


class Direction(IntEnum):
    """``up`` raises voltage (less consumption / more injection); ``down`` lowers it."""

    UP = 0
    DOWN = 1

    @property
    def sign(self) -> int:
        return 1 if self is Direction.UP else -1

    @classmethod
    def parse(cls, value: str | int | Direction) -> Direction:
        if isinstance(value, str):
            try:
                return cls[value.upper()]
            except KeyError:
                raise ValueError(f"direction must be 'up' or 'down', not {value!r}") from None
        return cls(value)

    def __str__(self) -> str:
        return self.name.lower()


def round_half_even_div(numerator: int, denominator: int) -> int:
    """``round(numerator / denominator)`` with ties to even, exact for any integers."""
    if denominator <= 0:
        raise ValueError("denominator must be positive")
    q, r = divmod(numerator, denominator)
    twice = 2 * r
    if twice > denominator or (twice == denominator and q % 2 == 1):
        q += 1
    return q


def kw_to_w(p_kw: float) -> int:
    """kW to whole W, ties to even (what is hashed is always whole W)."""
    return round(p_kw * 1000)


def w_to_kw(p_w: int) -> float:
    return p_w / 1000


def cents_per_mwh(price_eur_per_mwh: float) -> int:
    return round(price_eur_per_mwh * 100)


def eur_per_mwh(price_cents_per_mwh: int) -> float:
    return price_cents_per_mwh / 100


def measured_wh(p_w_samples: Iterable[int]) -> int:
    """Energy of one MTU from its 4 s samples: round_half_even(Σ P_W × 4 / 3600)."""
    total = 0
    for p in p_w_samples:
        total += p
    return round_half_even_div(total * SAMPLE_PERIOD_S, 3600)


def awarded_wh(power_w: int) -> int:
    """Energy of an award of ``power_w`` held for one MTU: round_half_even(W / 4)."""
    return round_half_even_div(power_w * MTU_S, 3600)


def payment_cents(e_wh: int, price_cents_per_mwh: int) -> int:
    """round_half_even(Wh × cents/MWh / 1,000,000)."""
    return round_half_even_div(e_wh * price_cents_per_mwh, 1_000_000)


def delivered_wh(direction: Direction, baseline_wh: int, measured: int) -> int:
    """Delivered energy of a POD in an MTU: (+1 if up else −1) × (baseline − measured)."""
    return Direction(direction).sign * (baseline_wh - measured)


def split_delivery(total_wh: int, awards: Sequence[tuple[bytes, int]]) -> dict[bytes, int]:
    """Split a POD's delivered Wh in one MTU across its activated awards.

    ``awards`` are (award hash, awarded W). Each gets ⌊total × W / ΣW⌋; the integer remainder
    goes to the award with the smallest hash, so the shares add up to ``total_wh`` exactly and
    nothing is credited twice.
    """
    if not awards:
        raise ValueError("no award to split delivery across")
    hashes = [h for h, _ in awards]
    if len(set(hashes)) != len(hashes):
        raise ValueError("an award appears twice in one split")
    weights = [w for _, w in awards]
    if any(w < 0 for w in weights):
        raise ValueError("an awarded power is negative")
    weight_sum = sum(weights)
    if weight_sum == 0:
        shares = {h: 0 for h in hashes}
    else:
        shares = {h: (total_wh * w) // weight_sum for h, w in awards}
    shares[min(hashes)] += total_wh - sum(shares.values())
    return shares


def setpoint_target_w(baseline_wh: int, direction: Direction, power_w: int) -> int:
    """The POD's target mean active power in an MTU for a set-point of ``power_w``.

    A set-point is a change relative to the POD's committed baseline: an MTU baseline of
    ``baseline_wh`` is a mean power of 4 × Wh; ``up`` lowers consumption by ``power_w``.
    """
    if power_w < 0:
        raise ValueError("a set-point power is a non-negative magnitude; direction gives the sign")
    baseline_w = baseline_wh * 3600 // MTU_S
    return baseline_w - Direction(direction).sign * power_w
