"""What the DSO's own remedies cannot solve: an exhaustive search of the scenario's remedy space
with the batched power flow on the scenario's true day.

The rule (``flexledger.scenario.ExpectedViolation``): per MTU, a point of the remedy space is
*acceptable* when its power flow converges, nothing is beyond its limit that was not in the
base configuration, and no violation grows by more than 1e-4 p.u. / 0.1 percentage points; the
DSO takes the acceptable point with the fewest violations, then the least total excess (voltage
per 0.01 p.u., loading per percentage point), then the fewest operations; what it leaves
*remains*. The proof also records, per MTU, the smallest worst violation over *every* point of
the space (in margins: ≥ 1 means every point keeps a violation at least the margin beyond its
limit) and how many points are free of violations.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from flexledger.powerflow import (
    BatchPowerFlow,
    BatchResult,
    GridConfig,
    Injections,
    is_radial,
    unsupplied_buses,
)
from flexledger.scenario import ExpectedViolation, RemedySpace, Scenario
from flexledger.time import MTUS_PER_DAY

__all__ = [
    "EXCESS_TOL",
    "Excess",
    "MtuResidual",
    "RemedyPoint",
    "ResidualProof",
    "ViolationLine",
    "prove_residual",
    "remedy_points",
]

log = logging.getLogger(__name__)

EXCESS_TOL = 1e-9
"""Below this (p.u. or percentage points) an element is inside its limit."""
GROW_TOL_PU = 1e-4
GROW_TOL_PERCENT = 0.1
_KINDS = ("voltage_high", "voltage_low", "line_overload", "trafo_overload")
_PREFIX = {"voltage_high": "bus", "voltage_low": "bus", "line_overload": "line",
           "trafo_overload": "trafo"}  # fmt: skip


@dataclass(frozen=True)
class RemedyPoint:
    """One point of the remedy space: a position per tap-changer group and which ties operate."""

    taps: tuple[int, ...]
    ties: tuple[bool, ...]
    config: GridConfig
    operations: int

    def describe(self) -> str:
        taps = ", ".join(f"trafo {t}: {p}" for t, p in sorted(self.config.taps.items()))
        closed = [s for s, c in sorted(self.config.switches.items()) if c]
        opened = [s for s, c in sorted(self.config.switches.items()) if not c]
        parts = [f"taps {{{taps}}}" if taps else "taps as operated"]
        if closed or opened:
            parts.append(f"close {closed} open {opened}")
        return "; ".join(parts)


def remedy_points(
    flow: BatchPowerFlow, space: RemedySpace, base: GridConfig | None = None
) -> list[RemedyPoint]:
    """Every point of ``space`` (the base first): each tap-changer group at every position of its
    range (and its own), every subset of tie operations; with ``keep_radial``, subsets that mesh
    the grid or leave a supplied bus unsupplied are left out.

    Raises:
        ValueError: a tap changer or tie names a trafo or switch that is not in the grid.
    """
    net = flow.net
    base = base or GridConfig()
    taps0 = {
        int(t): int(p) for t, p in zip(net.trafo.index, net.trafo.tap_pos.fillna(0), strict=True)
    }
    taps0.update(base.taps)
    changers: list[tuple[list[int], list[int], int]] = []
    for k, spec in enumerate(space.tap_changers):
        for t in spec.trafos:
            if t not in net.trafo.index:
                raise ValueError(f"remedies.tap_changers.{k}: trafo {t} is not in the grid")
        start = taps0[spec.trafos[0]]
        positions = sorted(set(range(spec.tap_min, spec.tap_max + 1)) | {start})
        changers.append((list(spec.trafos), positions, start))
    ties: list[tuple[int, list[int]]] = []
    for k, tie in enumerate(space.tie_switches):
        for s in [tie.close, *tie.opens]:
            if s not in net.switch.index:
                raise ValueError(f"remedies.tie_switches.{k}: switch {s} is not in the grid")
        ties.append((tie.close, list(tie.opens)))

    def point(taps: tuple[int, ...], on: tuple[bool, ...]) -> RemedyPoint:
        tap_map: dict[int, int] = {}
        ops = 0
        for (trafos, _, start), pos in zip(changers, taps, strict=True):
            ops += abs(pos - start)
            if pos != start:
                tap_map.update(dict.fromkeys(trafos, pos))
        sw: dict[int, bool] = {}
        for (close, opens), used in zip(ties, on, strict=True):
            if used:
                sw[close] = True
                sw.update(dict.fromkeys(opens, False))
                ops += 1 + len(opens)
        config = base.with_taps(tap_map).with_switches(sw) if (tap_map or sw) else base
        return RemedyPoint(taps, on, config, ops)

    states = list(itertools.product((False, True), repeat=len(ties)))
    if space.keep_radial and ties:
        base_unsupplied = unsupplied_buses(net, base)
        kept = []
        for state in states:
            cfg = point(tuple(c[2] for c in changers), state).config
            switches = {**base.switches, **cfg.switches}
            if not any(state) or (
                is_radial(net, switches) and unsupplied_buses(net, switches) <= base_unsupplied
            ):
                kept.append(state)
            else:
                log.info("tie state %s left out: meshed or leaves buses unsupplied", state)
        states = kept
    start_taps = tuple(c[2] for c in changers)
    points = [point(start_taps, tuple(False for _ in ties))]
    for taps in itertools.product(*(c[1] for c in changers)):
        for state in states:
            p = point(tuple(taps), state)
            if p.operations:
                points.append(p)
    return points


@dataclass(frozen=True)
class Excess:
    """How far each element is beyond its limit per scenario (0 inside): ``[scenario, element]``."""

    high: NDArray[np.float64]
    low: NDArray[np.float64]
    line: NDArray[np.float64]
    trafo: NDArray[np.float64]
    converged: NDArray[np.bool_]

    @classmethod
    def of(
        cls,
        result: BatchResult,
        vm_min_pu: float,
        vm_max_pu: float,
        max_loading_percent: float,
        monitored: NDArray[np.bool_],
    ) -> Excess:
        vm = np.nan_to_num(result.vm_pu, nan=1.0)
        return cls(
            high=np.clip(vm - vm_max_pu, 0.0, None) * monitored,
            low=np.clip(vm_min_pu - vm, 0.0, None) * monitored,
            line=np.clip(np.nan_to_num(result.line_loading_percent) - max_loading_percent, 0, None),
            trafo=np.clip(
                np.nan_to_num(result.trafo_loading_percent) - max_loading_percent, 0, None
            ),
            converged=np.asarray(result.converged, dtype=bool),
        )

    def arrays(self) -> tuple[NDArray[np.float64], ...]:
        return (self.high, self.low, self.line, self.trafo)

    def count(self) -> NDArray[np.int64]:
        n = sum((a > EXCESS_TOL).sum(axis=1) for a in self.arrays())
        return np.where(self.converged, n, 1_000_000).astype(np.int64)

    def score(self) -> NDArray[np.float64]:
        total = (self.high.sum(axis=1) + self.low.sum(axis=1)) / 0.01
        total = total + self.line.sum(axis=1) + self.trafo.sum(axis=1)
        return self.count() + 1e-3 * np.where(self.converged, total, 0.0)

    def new_or_worse(self, base: Excess) -> NDArray[np.bool_]:
        bad = ~self.converged.copy()
        tols = (GROW_TOL_PU, GROW_TOL_PU, GROW_TOL_PERCENT, GROW_TOL_PERCENT)
        for now, before, tol in zip(self.arrays(), base.arrays(), tols, strict=True):
            created = (now > EXCESS_TOL) & (before <= EXCESS_TOL)
            grown = now > before + tol
            bad |= (created | grown).any(axis=1)
        return bad

    def worst(self, margin_pu: float, margin_percent: float) -> NDArray[np.float64]:
        """Per scenario the largest excess, in margins (voltage / margin_pu, loading /
        margin_percent); infinity for a scenario that did not converge."""
        v = np.maximum(self.high.max(axis=1, initial=0), self.low.max(axis=1, initial=0))
        ld = np.maximum(self.line.max(axis=1, initial=0), self.trafo.max(axis=1, initial=0))
        w = np.maximum(v / max(margin_pu, 1e-12), ld / max(margin_percent, 1e-12))
        return np.where(self.converged, w, np.inf)

    def lines(self, row: int, index: tuple[NDArray[np.int64], ...]) -> list[ViolationLine]:
        out = []
        for kind, values, idx in zip(_KINDS, self.arrays(), index, strict=True):
            for j in np.flatnonzero(values[row] > EXCESS_TOL):
                out.append(
                    ViolationLine(kind, f"{_PREFIX[kind]}:{int(idx[j])}", float(values[row, j]))
                )
        return out


@dataclass(frozen=True)
class ViolationLine:
    """One element beyond its limit: kind, ``'bus:12'``, excess (p.u. or percentage points)."""

    kind: str
    element: str
    excess: float


@dataclass
class MtuResidual:
    """The search's verdict for one MTU (see the module docstring)."""

    mtu: int
    base: list[ViolationLine]
    remaining: list[ViolationLine]
    chosen: int
    worst_min_margins: float
    clean_points: int


@dataclass
class ResidualProof:
    """The exhaustive search's result over a day (``mtus``: every MTU, 0 … 95)."""

    points: list[RemedyPoint]
    mtus: list[MtuResidual]
    evaluated: int
    seconds: float
    margin_vm_pu: float
    margin_loading_percent: float
    runs: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def residual_mtus(self) -> list[int]:
        return [m.mtu for m in self.mtus if m.remaining]

    def remaining_entries(self) -> list[tuple[str, str, int, int]]:
        """What remains as ``(kind, element, mtu_from, mtu_to)``: one per element and run of
        consecutive MTUs, in order of kind, element, first MTU."""
        by_key: dict[tuple[str, str], list[int]] = {}
        for m in self.mtus:
            for v in m.remaining:
                by_key.setdefault((v.kind, v.element), []).append(m.mtu)
        out = []
        for (kind, element), mtus in by_key.items():
            run_start = prev = mtus[0]
            for t in [*mtus[1:], None]:
                if t is not None and t == prev + 1:
                    prev = t
                    continue
                out.append((kind, element, run_start, prev))
                if t is not None:
                    run_start = prev = t
        order = {k: i for i, k in enumerate(_KINDS)}
        return sorted(out, key=lambda e: (order[e[0]], _element_key(e[1]), e[2]))

    def check(self, expected: Iterable[ExpectedViolation]) -> list[str]:
        """Problems with the scenario's promise (empty: it holds).

        The ``expected`` entries must be exactly what remains, and in every MTU where something
        remains no point of the space may be free of violations.
        """
        problems = []
        want = {(e.kind, e.element, e.mtu_from, e.mtu_to) for e in expected}
        have = set(self.remaining_entries())
        for e in sorted(have - want, key=lambda x: (x[0], _element_key(x[1]), x[2])):
            problems.append(f"remains but not expected: {e[0]} {e[1]} MTU {e[2]}..{e[3]}")
        for e in sorted(want - have, key=lambda x: (x[0], _element_key(x[1]), x[2])):
            problems.append(f"expected but does not remain: {e[0]} {e[1]} MTU {e[2]}..{e[3]}")
        for m in self.mtus:
            if m.remaining and m.clean_points:
                problems.append(f"MTU {m.mtu}: {m.clean_points} point(s) remove every violation")
        return problems

    def margin_mtus(self) -> list[int]:
        """Residual MTUs where every point keeps a violation of at least the margin."""
        return [m.mtu for m in self.mtus if m.remaining and m.worst_min_margins >= 1.0]


def _element_key(element: str) -> tuple[str, int]:
    prefix, _, number = element.partition(":")
    return prefix, int(number) if number.isdigit() else -1


def prove_residual(
    scenario: Scenario,
    flow: BatchPowerFlow,
    injections: Injections,
    *,
    base: GridConfig | None = None,
    progress: bool = False,
) -> ResidualProof:
    """Search every point of the scenario's remedy space on the day ``injections`` (96 MTUs).

    Args:
        scenario: limits, remedy space and margins.
        flow: the batched power flow of the scenario's grid (its stated changes applied).
        injections: the true day per MTU (element powers with the devices' own behaviour).
        base: the configuration "no remedy" stands for (default: the grid's own).
        progress: log each tap position as the search reaches it.

    Returns:
        The :class:`ResidualProof`.
    """
    t0 = time.perf_counter()
    spec = scenario.grid
    space = scenario.remedies
    slack = {int(b) for b in flow.net.ext_grid.bus}
    monitored = np.array([int(b) not in slack for b in flow.bus_index], dtype=bool)
    index = (flow.bus_index, flow.bus_index, flow.line_index, flow.trafo_index)
    margins = (space.margin_vm_pu, space.margin_loading_percent)

    def excess(result: BatchResult) -> Excess:
        return Excess.of(
            result, spec.vm_min_pu, spec.vm_max_pu, spec.max_loading_percent, monitored
        )

    points = remedy_points(flow, space, base)
    base_ex = excess(flow.run(injections, config=points[0].config))
    runs = 1
    n = injections.n_scenarios
    if n != MTUS_PER_DAY:
        raise ValueError(f"a day has {MTUS_PER_DAY} MTUs, the injections {n}")
    need = np.flatnonzero(base_ex.count() > 0)
    base_score = base_ex.score()
    best_score = base_score.copy()
    best_ops = np.zeros(n, dtype=np.int64)
    chosen = np.zeros(n, dtype=np.int64)
    worst_min = base_ex.worst(*margins)
    clean = (base_ex.count() == 0).astype(np.int64)
    chosen_lines: dict[int, list[ViolationLine]] = {
        int(m): base_ex.lines(int(m), index) for m in need
    }
    if need.size:
        sub = injections.select(need)
        sub_base = Excess(
            base_ex.high[need],
            base_ex.low[need],
            base_ex.line[need],
            base_ex.trafo[need],
            base_ex.converged[need],
        )
        last_taps: tuple[int, ...] | None = None
        for p_idx, point in enumerate(points[1:], start=1):
            if progress and point.taps != last_taps:
                log.info("remedy search: taps %s (%d/%d)", point.taps, p_idx, len(points))
                last_taps = point.taps
            ex = excess(flow.run(sub, config=point.config))
            runs += 1
            worst_min[need] = np.minimum(worst_min[need], ex.worst(*margins))
            clean[need] += ex.count() == 0
            score = ex.score()
            ok = ~ex.new_or_worse(sub_base) & (score < base_score[need])
            better = ok & (
                (score < best_score[need] - 1e-12)
                | (
                    (np.abs(score - best_score[need]) <= 1e-12)
                    & (point.operations < best_ops[need])
                )
            )
            for row in np.flatnonzero(better):
                m = int(need[row])
                best_score[m] = score[row]
                best_ops[m] = point.operations
                chosen[m] = p_idx
                chosen_lines[m] = ex.lines(int(row), index)
    mtus = []
    for m in range(n):
        base_lines = base_ex.lines(m, index)
        mtus.append(
            MtuResidual(
                mtu=m,
                base=base_lines,
                remaining=chosen_lines.get(m, []),
                chosen=int(chosen[m]),
                worst_min_margins=float(worst_min[m]),
                clean_points=int(clean[m]),
            )
        )
    return ResidualProof(
        points=points,
        mtus=mtus,
        evaluated=len(points),
        seconds=time.perf_counter() - t0,
        margin_vm_pu=space.margin_vm_pu,
        margin_loading_percent=space.margin_loading_percent,
        runs=runs,
    )
