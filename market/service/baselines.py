"""Baseline methods beside the BRP's: high-X-of-Y and meter-before/meter-after.

The BRP baseline (I-03) pays unless the session, on chain, names another method
(``FlexMarket`` session ``baselineMethod`` = ``id32`` of its name). The names:

- ``brp``: the BRP's signed baseline whose root was committed before gate closure.
- ``high_X_of_Y`` (1 ≤ X ≤ Y ≤ 20, e.g. ``high_4_of_5``): of the Y most recent eligible days
  before the delivery day (eligible: every MTU measured, and no activation of the POD that
  day), the X with the highest consumption over the whole day; the baseline of an MTU is the
  mean of those X days' same MTU, ``round_half_even`` to whole Wh. Days are looked for up to
  ``lookback_days`` back; fewer than X eligible days → no baseline.
- ``meter_before_after``: the mean of the ``before_mtus`` MTUs right before the POD's
  activation block (the maximal run of consecutive activated MTUs of that POD, over every
  session) that holds the MTU, ``round_half_even``; the same value for every MTU of the block.

A measure is the SCD's certified quarterly value with all 225 samples, else the imported
history value (``source = history``). ``audit.baselines`` implements the same methods again.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from typing import Final

from flexledger.messages import QuarterlyMeasure, id32
from flexledger.time import DAY_S, MTU_S, MTUS_PER_DAY, SAMPLES_PER_MTU
from flexledger.units import round_half_even_div

__all__ = [
    "BRP",
    "MBMA",
    "activation_start",
    "high_x_of_y",
    "measure_table",
    "meter_before_after",
    "method_name",
    "parse_high",
]

BRP: Final = "brp"
MBMA: Final = "meter_before_after"
_HIGH = re.compile(r"^high_(\d{1,2})_of_(\d{1,2})$")
_KNOWN: dict[bytes, str] = {id32(n): n for n in (BRP, MBMA)} | {
    id32(f"high_{x}_of_{y}"): f"high_{x}_of_{y}" for y in range(1, 21) for x in range(1, y + 1)
}


def method_name(method_id: bytes) -> str | None:
    """The name of an on-chain ``baselineMethod`` id, None when it is none of the known ones."""
    return _KNOWN.get(bytes(method_id))


def parse_high(name: str) -> tuple[int, int] | None:
    """(X, Y) of ``high_X_of_Y``; None for another name."""
    m = _HIGH.match(name)
    if m is None:
        return None
    x, y = int(m.group(1)), int(m.group(2))
    return (x, y) if 1 <= x <= y <= 20 else None


def measure_table(measures: Iterable[QuarterlyMeasure]) -> dict[int, int]:
    """MTU start → Wh: the certified, complete Light Node value, else the history value."""
    lightnode: dict[int, int] = {}
    history: dict[int, int] = {}
    for m in measures:
        if m.source == "lightnode":
            if m.certified and m.sample_count == SAMPLES_PER_MTU:
                lightnode[m.mtu_start_s] = m.e_wh
        else:
            history[m.mtu_start_s] = m.e_wh
    return history | lightnode


def high_x_of_y(
    measures: Mapping[int, int],
    day_s: int,
    x: int,
    y: int,
    excluded_days: Collection[int] = (),
    lookback_days: int = 45,
) -> dict[int, int] | None:
    """The high-X-of-Y baseline of ``day_s`` per MTU start, or None (too few eligible days)."""
    days: list[tuple[int, list[int]]] = []
    for k in range(1, lookback_days + 1):
        d = day_s - k * DAY_S
        if d in excluded_days:
            continue
        values = [measures.get(d + i * MTU_S) for i in range(MTUS_PER_DAY)]
        if any(v is None for v in values):
            continue
        days.append((d, [int(v) for v in values if v is not None]))
        if len(days) == y:
            break
    if len(days) < x:
        return None
    # highest whole-day consumption first; the more recent day first among equals
    top = sorted(days, key=lambda dv: (-sum(dv[1]), -dv[0]))[:x]
    return {
        day_s + i * MTU_S: round_half_even_div(sum(v[i] for _, v in top), x)
        for i in range(MTUS_PER_DAY)
    }


def activation_start(mtu_s: int, activated: Collection[int]) -> int:
    """The first MTU of the run of consecutive activated MTUs that holds ``mtu_s``."""
    start = mtu_s
    while start - MTU_S in activated:
        start -= MTU_S
    return start


def meter_before_after(
    measures: Mapping[int, int], mtu_s: int, activated: Collection[int], before_mtus: int = 4
) -> int | None:
    """The meter-before/meter-after baseline of ``mtu_s``, or None (a value before missing)."""
    start = activation_start(mtu_s, activated)
    values = [measures.get(start - k * MTU_S) for k in range(1, before_mtus + 1)]
    if any(v is None for v in values):
        return None
    return round_half_even_div(sum(int(v) for v in values if v is not None), before_mtus)
