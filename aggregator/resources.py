"""How much each resource can move, MTU by MTU, as the aggregator models it (pure, no I/O).

An offer's MTUs are awarded one by one: the market may take every MTU of every offer at full
power. So each energy-limited resource spreads its energy budget over *all* the MTUs it offers in
a direction, and each offered W is deliverable even then. Every figure is scaled by
``FlexParams.safety`` (ramps, forecast errors) and offered only inside the resource's available
window (the portfolio's ∩ what its FR owner declared for the day, I-12) and the direction's
service window.

Models, per kind (``up`` = less consumption or more injection):

- **battery**: idle on its own; ``up`` discharges, ``down`` charges, within ``p_max``. Energy
  budget: ``soc × E × η`` up, ``(1 − soc) × E / η`` down, spread over the offered MTUs.
- **pv** (curtailment, ``down`` only): at most the injection the POD *surely* has in that MTU:
  the smallest injection ``max(0, −P)`` of the POD at that MTU over the recent history days
  (I-01), capped at ``p_max`` — its PV produces at least that.
- **ev**: plugged in over its window needing ``(1 − soc) × E``; uncontrolled it charges at
  ``p_max`` from arrival. ``up`` defers charging in the MTUs where it surely charges (45 minutes
  of margin for the arrival, ±15 % on the need) by at most the slack it has to still finish before
  departure. No ``down`` (it already charges at full power when plugged in).
- **heat_pump / hvac**: its share of ``p_max`` follows the forecast temperature (heating below
  16 °C, cooling above 24 °C for a heat pump; 25 % fans plus cooling above 21 °C for an air
  conditioner in its window), bounded over ±``temperature_margin_c``; ``up`` sheds at most the
  smallest share it surely runs at, ``down`` adds at most what the largest share leaves; both
  within the comfort band's energy (``E``, else ``p_max`` × 0.5 h per °C of band), after
  which it returns to its set-point (rebound).
- **other_load**: a load running at about half its rating in its window; sheds or adds
  ``other_load_share × p_max``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from flexledger.scenario import ResourceSpec, WeatherSpec
from flexledger.time import MTU_S, MTUS_PER_DAY
from flexledger.units import Direction

__all__ = [
    "FlexParams",
    "ResourceFlex",
    "Window",
    "pod_power_history",
    "resource_flexibility",
    "temperature_forecast_c",
]

H = MTU_S / 3600  # hours per MTU
Window = tuple[int, int]


@dataclass(frozen=True)
class FlexParams:
    """The aggregator's modelling choices (``AggregatorSettings``)."""

    safety: float = 0.9
    battery_efficiency: float = 0.95
    ev_arrival_margin_mtus: int = 3
    ev_need_margin: float = 0.15
    temperature_margin_c: float = 3.0
    band_hours_per_c: float = 0.5
    other_load_share: float = 0.4
    min_w: int = 1000
    up_window: Window = (0, MTUS_PER_DAY)
    down_window: Window = (0, MTUS_PER_DAY)

    def window(self, direction: Direction) -> Window:
        return self.up_window if direction is Direction.UP else self.down_window


@dataclass(frozen=True)
class ResourceFlex:
    """What one resource offers per MTU of the day (index 0…95), W, in each direction."""

    resource_id: str
    kind: str
    up_w: tuple[int, ...]
    down_w: tuple[int, ...]
    note: str = ""
    budget_wh: dict[str, int] = field(default_factory=dict)

    def w(self, direction: Direction) -> tuple[int, ...]:
        return self.up_w if direction is Direction.UP else self.down_w


def temperature_forecast_c(weather: WeatherSpec | None) -> list[float] | None:
    """The day's forecast outdoor temperature at the middle of each MTU (a cosine between the
    forecast's minimum and maximum, peaking at its peak hour)."""
    if weather is None:
        return None
    mean = (weather.t_max_c + weather.t_min_c) / 2
    amp = (weather.t_max_c - weather.t_min_c) / 2
    return [
        mean + amp * math.cos(2 * math.pi * ((i + 0.5) / MTUS_PER_DAY - weather.peak_hour / 24))
        for i in range(MTUS_PER_DAY)
    ]


def pod_power_history(values: dict[int, int], day_s: int, days: int) -> list[list[float]]:
    """Per MTU of the day, the POD's mean power (W) at that MTU on each of the ``days`` days
    before ``day_s`` that are measured (``values``: MTU start → Wh, I-01)."""
    out: list[list[float]] = [[] for _ in range(MTUS_PER_DAY)]
    for k in range(1, days + 1):
        d = day_s - k * 86_400
        for i in range(MTUS_PER_DAY):
            wh = values.get(d + i * MTU_S)
            if wh is not None:
                out[i].append(wh / H)
    return out


def _mtus(
    resource: ResourceSpec, available: Window, direction: Direction, p: FlexParams
) -> list[int]:
    lo, hi = p.window(direction)
    a = max(resource.available_from_mtu, available[0], lo)
    b = min(resource.available_to_mtu, available[1], hi)
    return list(range(a, b))


def _spread(
    mtus: Sequence[int], cap_w: Sequence[float], budget_wh: float, p: FlexParams
) -> list[int]:
    """W per MTU of the day: ``safety ×`` min(cap, budget spread evenly over ``mtus``)."""
    out = [0] * MTUS_PER_DAY
    if not mtus or budget_wh <= 0:
        return out
    even = budget_wh / (len(mtus) * H)
    for i in mtus:
        w = int(p.safety * min(cap_w[i], even))
        out[i] = w if w >= p.min_w else 0
    return out


def _thermal_shares(kind: str, temp_c: float) -> float:
    if kind == "hvac":
        return min(max(0.25 + 0.75 * (temp_c - 21.0) / 12.0, 0.0), 1.0)
    heating = min(max((16.0 - temp_c) / 20.0, 0.0), 1.0)
    cooling = min(max((temp_c - 24.0) / 14.0, 0.0), 1.0)
    return min(0.8 * max(heating, cooling), 1.0)


def resource_flexibility(
    resource: ResourceSpec,
    *,
    available: Window,
    history_w: list[list[float]] | None = None,
    temperature_c: list[float] | None = None,
    params: FlexParams = FlexParams(),
) -> ResourceFlex:
    """What ``resource`` can offer per MTU and direction (see the module docstring).

    ``available``: the MTUs its FR owner declared it available (I-12); ``history_w``: the POD's
    power per MTU on recent days (``pod_power_history``); ``temperature_c``: the forecast.
    """
    p = params
    p_max = resource.p_max_kw * 1000
    e_max = resource.e_max_kwh * 1000
    up_mtus = _mtus(resource, available, Direction.UP, p)
    down_mtus = _mtus(resource, available, Direction.DOWN, p)
    zero = [0] * MTUS_PER_DAY
    full = [p_max] * MTUS_PER_DAY
    kind = resource.kind
    note = ""
    budget: dict[str, int] = {}
    if kind == "battery":
        eta = p.battery_efficiency
        up_e = resource.soc_init * e_max * eta
        down_e = (1 - resource.soc_init) * e_max / eta
        budget = {"up": int(up_e), "down": int(down_e)}
        up = _spread(up_mtus, full, up_e, p)
        down = _spread(down_mtus, full, down_e, p)
    elif kind == "pv":
        sure = [0.0] * MTUS_PER_DAY
        if history_w:
            sure = [min(p_max, max(0.0, -max(h))) if h else 0.0 for h in history_w]
        up = zero
        down = _spread(down_mtus, sure, math.inf, p)
        note = "curtails at most the injection the POD had at that MTU on every recent day"
    elif kind == "ev":
        need = (1 - resource.soc_init) * e_max
        arrive, depart = resource.available_from_mtu, resource.available_to_mtu
        m = p.ev_arrival_margin_mtus
        sure_mtus = int(need * (1 - p.ev_need_margin) / (p_max * H))
        charging = set(range(arrive + m, arrive + sure_mtus - m))
        slack = (depart - arrive - m) * p_max * H - need * (1 + p.ev_need_margin)
        budget = {"up": int(max(slack, 0.0))}
        up = _spread([i for i in up_mtus if i in charging], full, slack, p)
        down = zero
        note = "defers charging while it surely charges, by at most its slack before departure"
    elif kind in ("heat_pump", "hvac"):
        if temperature_c is None:
            return ResourceFlex(resource.id, kind, tuple(zero), tuple(zero), "no forecast")
        band_c = resource.comfort_band_c or (1.5 if kind == "hvac" else 1.0)
        band_wh = e_max or p_max * p.band_hours_per_c * band_c
        lo_share, hi_share = [], []
        for t in temperature_c:
            probe = [t + p.temperature_margin_c * k / 4 for k in range(-4, 5)]
            shares = [_thermal_shares(kind, x) for x in probe]
            lo_share.append(min(shares))
            hi_share.append(max(shares))
        up_cap = [s * p_max for s in lo_share]
        down_cap = [(1 - s) * p_max for s in hi_share]
        budget = {"up": int(band_wh), "down": int(band_wh)}
        up = _spread([i for i in up_mtus if up_cap[i] > 0], up_cap, band_wh, p)
        down = _spread([i for i in down_mtus if down_cap[i] > 0], down_cap, band_wh, p)
        note = "within its comfort band, then back to its set-point (rebound)"
    else:
        cap = [p.other_load_share * p_max] * MTUS_PER_DAY
        up = _spread(up_mtus, cap, math.inf, p)
        down = _spread(down_mtus, cap, math.inf, p)
    return ResourceFlex(resource.id, kind, tuple(up), tuple(down), note, budget)
