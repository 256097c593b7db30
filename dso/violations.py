"""Violation localisation (I-10): every bus and MTU outside the voltage band, every line and
transformer over its limit, and by how much."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from dso.model import Limits
from flexledger.messages import Violation
from flexledger.powerflow import BatchResult

__all__ = ["EXCESS_TOL", "ViolationMap", "excess_map", "localise", "violation_map"]

EXCESS_TOL = 1e-9
"""Below this (p.u. or percentage points) an element is inside its limit: power-flow noise."""


@dataclass(frozen=True)
class ViolationMap:
    """How far each element is beyond its limit, per scenario (0 inside the limit).

    ``vm_high_pu`` / ``vm_low_pu`` ``[scenario, bus]``: p.u. above ``vm_max_pu`` / below
    ``vm_min_pu`` (monitored buses only; unsupplied buses count as 0 here and are flagged by the
    remedy search instead); ``line_over_percent`` ``[scenario, line]`` and
    ``trafo_over_percent`` ``[scenario, trafo]``: percentage points above
    ``max_loading_percent``; ``converged`` ``[scenario]``.
    """

    vm_high_pu: NDArray[np.float64]
    vm_low_pu: NDArray[np.float64]
    line_over_percent: NDArray[np.float64]
    trafo_over_percent: NDArray[np.float64]
    converged: NDArray[np.bool_]

    @property
    def n_scenarios(self) -> int:
        return int(self.vm_high_pu.shape[0])

    def violated(self) -> tuple[NDArray[np.bool_], ...]:
        """Masks (high, low, line, trafo) of what is beyond its limit."""
        return (
            self.vm_high_pu > EXCESS_TOL,
            self.vm_low_pu > EXCESS_TOL,
            self.line_over_percent > EXCESS_TOL,
            self.trafo_over_percent > EXCESS_TOL,
        )

    def count(self) -> NDArray[np.int64]:
        """Violations per scenario (a scenario that did not converge counts as 10⁶)."""
        n = sum(m.sum(axis=1) for m in self.violated())
        return np.where(self.converged, n, 1_000_000).astype(np.int64)

    def any(self) -> NDArray[np.bool_]:
        """Scenarios with at least one violation (or no convergence)."""
        return np.asarray(self.count() > 0)

    def score(self) -> NDArray[np.float64]:
        """A scalar badness per scenario: violations first, then total excess (voltages counted
        per 0.01 p.u., loadings per percentage point, both times 1e-3)."""
        excess = (
            (self.vm_high_pu.sum(axis=1) + self.vm_low_pu.sum(axis=1)) / 0.01
            + self.line_over_percent.sum(axis=1)
            + self.trafo_over_percent.sum(axis=1)
        )
        return self.count() + 1e-3 * np.where(self.converged, excess, 0.0)

    def new_or_worse(
        self, base: ViolationMap, tol_pu: float = 1e-4, tol_percent: float = 0.1
    ) -> NDArray[np.bool_]:
        """Scenarios where something is beyond its limit that was not in ``base`` (same shape),
        or an existing violation grew by more than the tolerance; or no convergence."""
        bad = ~self.converged.copy()
        pairs = (
            (self.vm_high_pu, base.vm_high_pu, tol_pu),
            (self.vm_low_pu, base.vm_low_pu, tol_pu),
            (self.line_over_percent, base.line_over_percent, tol_percent),
            (self.trafo_over_percent, base.trafo_over_percent, tol_percent),
        )
        for now, before, tol in pairs:
            created = (now > EXCESS_TOL) & (before <= EXCESS_TOL)
            grown = now > before + tol
            bad |= (created | grown).any(axis=1)
        return bad

    def take(self, rows: NDArray[np.int64] | list[int]) -> ViolationMap:
        """The map of these scenarios only."""
        r = np.asarray(rows, dtype=np.int64)
        return ViolationMap(
            self.vm_high_pu[r],
            self.vm_low_pu[r],
            self.line_over_percent[r],
            self.trafo_over_percent[r],
            self.converged[r],
        )


def violation_map(
    result: BatchResult, limits: Limits, monitored: NDArray[np.bool_] | None = None
) -> ViolationMap:
    """How far every element of every scenario of ``result`` is beyond ``limits``.

    Args:
        result: batched power-flow results.
        limits: voltage band (p.u.) and loading limit (percent).
        monitored: buses whose voltage is checked (bus-axis mask; default all). The DSO leaves
            the slack bus out: its voltage is the TSO's.
    """
    return excess_map(
        result.vm_pu,
        result.line_loading_percent,
        result.trafo_loading_percent,
        result.converged,
        limits,
        monitored,
    )


def excess_map(
    vm_pu: NDArray[np.float64],
    line_loading_percent: NDArray[np.float64],
    trafo_loading_percent: NDArray[np.float64],
    converged: NDArray[np.bool_],
    limits: Limits,
    monitored: NDArray[np.bool_] | None = None,
) -> ViolationMap:
    """:func:`violation_map` of plain arrays (``[scenario, element]``; NaN = not supplied)."""
    vm = np.nan_to_num(vm_pu, nan=1.0)
    high = np.clip(vm - limits.vm_max_pu, 0.0, None)
    low = np.clip(limits.vm_min_pu - vm, 0.0, None)
    if monitored is not None:
        high = high * monitored
        low = low * monitored
    cap = limits.max_loading_percent
    line = np.clip(np.nan_to_num(line_loading_percent) - cap, 0.0, None)
    trafo = np.clip(np.nan_to_num(trafo_loading_percent) - cap, 0.0, None)
    return ViolationMap(high, low, line, trafo, np.asarray(converged, dtype=bool).copy())


def localise(
    vmap: ViolationMap,
    limits: Limits,
    mtu_start_s: NDArray[np.int64] | list[int],
    *,
    bus_index: NDArray[np.int64],
    line_index: NDArray[np.int64],
    trafo_index: NDArray[np.int64],
) -> list[Violation]:
    """Every element beyond its limit in every MTU, as I-10 :class:`Violation` lines.

    Ordered by MTU, then kind (voltage high, voltage low, line, trafo), then element. ``value``
    is the voltage (p.u.) or loading (percent), ``limit`` the limit crossed, ``excess`` how far
    beyond it (p.u. or percentage points).
    """
    starts = np.asarray(mtu_start_s, dtype=np.int64)
    out: list[Violation] = []
    high, low, line, trafo = vmap.violated()
    specs = (
        ("voltage_high", high, vmap.vm_high_pu, bus_index, "bus", limits.vm_max_pu, +1),
        ("voltage_low", low, vmap.vm_low_pu, bus_index, "bus", limits.vm_min_pu, -1),
        ("line_overload", line, vmap.line_over_percent, line_index, "line",
         limits.max_loading_percent, +1),
        ("trafo_overload", trafo, vmap.trafo_over_percent, trafo_index, "trafo",
         limits.max_loading_percent, +1),
    )  # fmt: skip
    found: list[tuple[int, int, int, Violation]] = []
    for order, (kind, mask, excess, index, prefix, limit, sign) in enumerate(specs):
        for s, e in zip(*np.nonzero(mask), strict=True):
            x = float(excess[s, e])
            found.append(
                (
                    int(s),
                    order,
                    int(index[e]),
                    Violation(
                        kind=kind,  # type: ignore[arg-type]
                        element=f"{prefix}:{int(index[e])}",
                        mtu_start_s=int(starts[s]),
                        value=round(limit + sign * x, 6),
                        limit=limit,
                        excess=round(x, 6),
                    ),
                )
            )
    found.sort(key=lambda t: (t[0], t[1], t[2]))
    out = [v for *_, v in found]
    return out
