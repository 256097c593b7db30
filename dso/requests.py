"""Located flexibility requests (I-06) from what the DSO's own remedies left.

What remains after the remedies is grouped by kind and place — voltage violations by MV feeder,
an overload by its line or transformer — into *blocks* of contiguous MTUs. Each block becomes one
request: a direction, its MTUs, a volume in kW at the most effective POD, and per eligible POD its
effectiveness factor in [0, 1].

Effectiveness (ARCHITECTURE.md): how much one kW at a POD counts toward the request at the
violated element, from sensitivities by finite differences of full power flows — one batched run
at the block's worst MTU under its remedy configuration, the base point plus one scenario per
flexible POD with ``delta_kw`` more injection at the POD's probe — normalised by the most
effective POD. Voltage violations use dV/dP at the bus; overloads use d(loading)/dP of the line or
transformer, and the direction follows the sign (reverse flow from PV is relieved by ``down``).

Volume: for every violated element and MTU of the block, the kW at the best POD that brings it
back inside the limit with a margin (``margin_pu``, ``margin_percent``); the block's volume is the
largest. The linearisation is then checked with a power flow of the block with that volume at the
best POD, and the volume raised by what remains (at most three times).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from dso.model import DsoGrid
from dso.remedies import RemedyPlan
from dso.violations import EXCESS_TOL, ViolationMap, violation_map
from flexledger.messages import Eligibility, Request
from flexledger.messages.grid import ViolationKind
from flexledger.powerflow import GridConfig, Injections
from flexledger.time import MTU_S
from flexledger.units import PPM, Direction, kw_to_w

__all__ = ["FlexNeed", "NeedOptions", "build_requests", "locate_needs", "sensitivities"]

log = logging.getLogger(__name__)

_KINDS: tuple[ViolationKind, ...] = (
    "voltage_high",
    "voltage_low",
    "line_overload",
    "trafo_overload",
)


@dataclass(frozen=True)
class NeedOptions:
    """How needs are sized.

    ``margin_pu``: voltage margin inside the band a request aims for, p.u.; ``margin_percent``:
    loading margin below the limit, percentage points; ``delta_kw``: finite-difference step, kW;
    ``min_factor``: smallest effectiveness factor that makes a POD eligible; ``max_checks``:
    power-flow checks of a volume.
    """

    margin_pu: float = 0.002
    margin_percent: float = 2.0
    delta_kw: float = 10.0
    min_factor: float = 0.05
    max_checks: int = 3


@dataclass(frozen=True)
class FlexNeed:
    """A located need for flexibility, before it is signed as an I-06 request.

    ``volume_kw`` is at ``best_pod``; ``factors`` maps every eligible POD to its effectiveness
    factor (``best_pod`` has 1.0); ``elements`` are the violated elements the block covers and
    ``critical`` the one (with its MTU start) the volume was sized on; ``factors_at_s`` the MTU
    whose operating point (the block's worst) the sensitivities were computed at;
    ``solved_by_volume`` says whether the check power flow with ``volume_kw`` at ``best_pod``
    removed every violation of the block; ``unsolvable`` names elements no flexible POD relieves.
    """

    kind: ViolationKind
    zone: str
    direction: Direction
    mtu_start_s: int
    mtu_count: int
    volume_kw: float
    best_pod: str | None
    factors: dict[str, float]
    elements: list[str]
    critical: str
    worst_excess: float
    factors_at_s: int = 0
    solved_by_volume: bool = False
    unsolvable: list[str] = field(default_factory=list)

    @property
    def mtu_end_s(self) -> int:
        return self.mtu_start_s + self.mtu_count * MTU_S


@dataclass(frozen=True)
class Sensitivity:
    """Per kW of extra *injection* at each POD: change of every bus voltage (p.u.), line and
    trafo loading (percentage points), at one operating point. Arrays ``[element, pod]``."""

    pods: list[str]
    dvm_pu_per_kw: NDArray[np.float64]
    dline_percent_per_kw: NDArray[np.float64]
    dtrafo_percent_per_kw: NDArray[np.float64]


def sensitivities(
    grid: DsoGrid,
    injections: Injections,
    pods: Sequence[str],
    *,
    config: GridConfig | None = None,
    delta_kw: float = 10.0,
) -> list[Sensitivity]:
    """Sensitivities of every bus voltage and branch loading to each POD's injection.

    One batched power flow: for every scenario of ``injections``, the base point plus one
    scenario per POD with ``delta_kw`` more injection at the POD's probe; forward differences.

    Returns:
        One :class:`Sensitivity` per scenario of ``injections``.
    """
    pods = list(pods)
    n, k = injections.n_scenarios, len(pods)
    values = injections.resolved(grid.net)
    tiled = {name: np.repeat(v, k + 1, axis=0) for name, v in values.items()}
    probe_cols = [grid.net.sgen.index.get_loc(grid.pods[p].probe) for p in pods]
    for j, col in enumerate(probe_cols):
        tiled["sgen_p_mw"][j + 1 :: k + 1, col] += delta_kw / 1e3
    res = grid.pf.run(Injections(**tiled), config=config)  # type: ignore[arg-type]
    out = []
    for s in range(n):
        rows = slice(s * (k + 1), (s + 1) * (k + 1))
        vm, line, trafo = (
            res.vm_pu[rows],
            res.line_loading_percent[rows],
            res.trafo_loading_percent[rows],
        )
        out.append(
            Sensitivity(
                pods=pods,
                dvm_pu_per_kw=np.nan_to_num((vm[1:] - vm[0]).T / delta_kw),
                dline_percent_per_kw=np.nan_to_num((line[1:] - line[0]).T / delta_kw),
                dtrafo_percent_per_kw=np.nan_to_num((trafo[1:] - trafo[0]).T / delta_kw),
            )
        )
    return out


def _keys(grid: DsoGrid, vmap: ViolationMap) -> dict[tuple[str, str], NDArray[np.bool_]]:
    """(kind, zone) → [MTU, element] mask of what is violated, for each kind's element axis."""
    feeders = grid.feeders()
    out: dict[tuple[str, str], NDArray[np.bool_]] = {}
    high, low, line, trafo = vmap.violated()
    for kind, mask in (("voltage_high", high), ("voltage_low", low)):
        cols = np.flatnonzero(mask.any(axis=0))
        for c in cols:
            bus = int(grid.bus_index[c])
            zone = f"feeder:{feeders.get(bus, bus)}"
            key = (kind, zone)
            if key not in out:
                out[key] = np.zeros_like(mask)
            out[key][:, c] = mask[:, c]
    for kind, mask, index, prefix in (
        ("line_overload", line, grid.line_index, "line"),
        ("trafo_overload", trafo, grid.trafo_index, "trafo"),
    ):
        for c in np.flatnonzero(mask.any(axis=0)):
            m = np.zeros_like(mask)
            m[:, c] = mask[:, c]
            out[(kind, f"{prefix}:{int(index[c])}")] = m
    return out


def _runs(mask: NDArray[np.bool_], starts: NDArray[np.int64]) -> list[tuple[int, int]]:
    """Contiguous runs (first, last position) of true MTUs with consecutive starts."""
    runs: list[tuple[int, int]] = []
    idx = np.flatnonzero(mask)
    for i in idx:
        if runs and runs[-1][1] == i - 1 and starts[i] == starts[i - 1] + MTU_S:
            runs[-1] = (runs[-1][0], int(i))
        else:
            runs.append((int(i), int(i)))
    return runs


def locate_needs(
    grid: DsoGrid,
    injections: Injections,
    plan: RemedyPlan,
    after: ViolationMap,
    mtu_start_s: NDArray[np.int64],
    options: NeedOptions | None = None,
) -> list[FlexNeed]:
    """Turn the violations left after the remedies into located needs (see the module docstring).

    Args:
        grid: the DSO's grid.
        injections: the assessed scenarios (one per MTU).
        plan: the remedy plan (its configuration per MTU).
        after: the violations left per MTU under the plan.
        mtu_start_s: the MTUs' starts, seconds.
        options: margins, finite-difference step, eligibility threshold.

    Returns:
        One :class:`FlexNeed` per (kind, place, contiguous MTU block), in MTU order.
    """
    opts = options or NeedOptions()
    pods = grid.flexible_pods
    starts = np.asarray(mtu_start_s, dtype=np.int64)
    excess_of = {
        "voltage_high": after.vm_high_pu,
        "voltage_low": after.vm_low_pu,
        "line_overload": after.line_over_percent,
        "trafo_overload": after.trafo_over_percent,
    }
    names = {
        "voltage_high": ("bus", grid.bus_index),
        "voltage_low": ("bus", grid.bus_index),
        "line_overload": ("line", grid.line_index),
        "trafo_overload": ("trafo", grid.trafo_index),
    }
    needs: list[FlexNeed] = []
    for (kind, zone), mask in sorted(_keys(grid, after).items()):
        excess = np.where(mask, excess_of[kind], 0.0)
        prefix, index = names[kind]
        for first, last in _runs(np.asarray(mask.any(axis=1)), starts):
            rows = np.arange(first, last + 1)
            need = _size_block(
                grid, injections, plan, kind, zone, excess[rows], rows, starts, pods, prefix,
                index, opts,
            )  # fmt: skip
            needs.append(need)
    needs.sort(key=lambda x: (x.mtu_start_s, _KINDS.index(x.kind), x.zone))
    return needs


def _relief(
    kind: str, sens: Sensitivity, elements: NDArray[np.int64], direction: Direction
) -> NDArray[np.float64]:
    """[element, pod]: how far one kW in ``direction`` at each POD moves each element back
    toward its limit (p.u. or percentage points per kW; negative = away from it)."""
    if kind == "voltage_high":
        return sens.dvm_pu_per_kw[elements]  # down = less injection lowers the voltage
    if kind == "voltage_low":
        return sens.dvm_pu_per_kw[elements]  # up = more injection raises it
    g = sens.dline_percent_per_kw if kind == "line_overload" else sens.dtrafo_percent_per_kw
    return -direction.sign * g[elements]


def _size_block(
    grid: DsoGrid,
    injections: Injections,
    plan: RemedyPlan,
    kind: str,
    zone: str,
    excess: NDArray[np.float64],
    rows: NDArray[np.int64],
    starts: NDArray[np.int64],
    pods: list[str],
    prefix: str,
    index: NDArray[np.int64],
    opts: NeedOptions,
) -> FlexNeed:
    elements = np.flatnonzero((excess > EXCESS_TOL).any(axis=0))
    names = [f"{prefix}:{int(index[e])}" for e in elements]
    worst_row = int(np.argmax(excess[:, elements].sum(axis=1)))
    worst = float(excess.max())
    margin = opts.margin_pu if kind.startswith("voltage") else opts.margin_percent
    t_worst = int(rows[worst_row])
    blank = FlexNeed(
        kind=kind,  # type: ignore[arg-type]
        zone=zone,
        direction=Direction.DOWN if kind == "voltage_high" else Direction.UP,
        mtu_start_s=int(starts[rows[0]]),
        mtu_count=len(rows),
        volume_kw=0.0,
        best_pod=None,
        factors={},
        elements=names,
        critical=f"{names[0]}@{int(starts[t_worst])}",
        worst_excess=round(worst, 6),
        unsolvable=list(names),
    )
    if not pods:
        return blank
    sens = sensitivities(
        grid,
        injections.select([t_worst]),
        pods,
        config=plan.config_of(t_worst),
        delta_kw=opts.delta_kw,
    )[0]
    if kind.startswith("voltage"):
        direction = blank.direction
    else:
        # the direction whose best POD relieves the most
        up = _relief(kind, sens, elements, Direction.UP)
        direction = Direction.UP if up.max() >= -up.min() else Direction.DOWN
    relief = _relief(kind, sens, elements, direction)  # [element, pod]
    best_relief = relief.max(axis=1)
    fixable = best_relief > 1e-9
    if not fixable.any():
        return blank
    need_kw = np.where(
        fixable[np.newaxis, :],
        (excess[:, elements] + margin) / np.where(fixable, best_relief, 1.0)[np.newaxis, :],
        0.0,
    ).max(axis=0)
    crit = int(np.argmax(np.where(fixable, need_kw, -np.inf)))
    j_best = int(np.argmax(relief[crit]))
    r_best = relief[:, j_best]
    factors_all = np.clip(relief[crit] / relief[crit, j_best], 0.0, 1.0)
    factors = {
        pods[j]: round(float(f), 6)
        for j, f in enumerate(factors_all)
        if f >= opts.min_factor or j == j_best
    }
    usable = r_best > 1e-9
    volume = float(
        np.max(
            np.where(
                usable[np.newaxis, :],
                (excess[:, elements] + margin) / np.where(usable, r_best, 1.0),
                0.0,
            )
        )
    )
    crit_row = int(np.argmax(excess[:, elements[crit]]))
    unsolvable = [names[i] for i in np.flatnonzero(~usable)]

    # check the linearisation with full power flows, raise the volume by what remains
    solved = False
    pod = pods[j_best]
    for _ in range(opts.max_checks):
        left = _left_after(grid, injections, plan, rows, pod, direction, volume, kind, elements)
        left = np.where(usable[np.newaxis, :], left, 0.0)
        if not (left > EXCESS_TOL).any():
            solved = True
            break
        volume += float(np.max((left + margin / 2) / np.where(usable, r_best, 1.0)))
    return FlexNeed(
        kind=kind,  # type: ignore[arg-type]
        zone=zone,
        direction=direction,
        mtu_start_s=blank.mtu_start_s,
        mtu_count=blank.mtu_count,
        volume_kw=round(volume, 3),
        best_pod=pod,
        factors=dict(sorted(factors.items(), key=lambda kv: (-kv[1], kv[0]))),
        elements=names,
        critical=f"{names[crit]}@{int(starts[rows[crit_row]])}",
        worst_excess=blank.worst_excess,
        factors_at_s=int(starts[t_worst]),
        solved_by_volume=solved,
        unsolvable=unsolvable,
    )


def _left_after(
    grid: DsoGrid,
    injections: Injections,
    plan: RemedyPlan,
    rows: NDArray[np.int64],
    pod: str,
    direction: Direction,
    volume_kw: float,
    kind: str,
    elements: NDArray[np.int64],
) -> NDArray[np.float64]:
    """Excess of the block's elements with ``volume_kw`` delivered at ``pod``: [row, element]."""
    delta = -direction.sign * volume_kw  # load convention: up = less consumption
    out = np.zeros((len(rows), len(elements)))
    configs: dict[int, list[int]] = {}
    for i, t in enumerate(rows):
        configs.setdefault(int(plan.choice[t]), []).append(i)
    for opt_idx, pos in configs.items():
        inj = grid.with_pod_delta(injections.select(rows[pos]), {pod: delta})
        res = grid.pf.run(inj, config=plan.options[opt_idx].config)
        vmap = violation_map(res, grid.limits, grid.monitored)
        arr = {
            "voltage_high": vmap.vm_high_pu,
            "voltage_low": vmap.vm_low_pu,
            "line_overload": vmap.line_over_percent,
            "trafo_overload": vmap.trafo_over_percent,
        }[kind]
        out[pos] = arr[:, elements]
    return out


def build_requests(
    needs: Sequence[FlexNeed],
    *,
    session_id: str,
    requester: str,
    nonce_start: int,
    valid_until_s: int,
    max_price_cents_per_mwh: int,
    mtu_window: tuple[int, int] | None = None,
) -> list[Request]:
    """The I-06 requests of these needs (unsigned): one per need with a best POD.

    Args:
        needs: from :func:`locate_needs`.
        session_id: the market session the requests are for.
        requester: the DSO's address.
        nonce_start: nonce of the first request; the others follow.
        valid_until_s: the requests' validity (typically the session's gate closure).
        max_price_cents_per_mwh: the DSO's price cap.
        mtu_window: ``(first_s, end_s)``: only the MTUs of the session (a real-time session's
            four hours); needs are cut to it.

    Returns:
        Requests with ``volume_w`` at the best POD and eligible PODs with ``factor_ppm``.
    """
    out: list[Request] = []
    nonce = nonce_start
    for need in needs:
        if need.best_pod is None or need.volume_kw <= 0:
            continue
        start, end = need.mtu_start_s, need.mtu_end_s
        if mtu_window is not None:
            start, end = max(start, mtu_window[0]), min(end, mtu_window[1])
            if end <= start:
                continue
        eligible = [
            Eligibility(pod=pod, factor_ppm=min(PPM, max(0, round(f * PPM))))
            for pod, f in need.factors.items()
        ]
        out.append(
            Request(
                session_id=session_id,
                requester=requester,
                direction=need.direction,
                mtu_start_s=start,
                mtu_count=(end - start) // MTU_S,
                volume_w=max(1, kw_to_w(need.volume_kw)),
                max_price_cents_per_mwh=max_price_cents_per_mwh,
                eligible=eligible,
                valid_until_s=valid_until_s,
                nonce=nonce,
            )
        )
        nonce += 1
    return out
