"""The grid assessment: power flow per MTU, violations (I-10), own remedies (I-11), needs (I-06)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from dso.forecast import GridForecast
from dso.model import DsoGrid
from dso.remedies import (
    RemedyBlock,
    RemedyOption,
    RemedyPlan,
    describe_blocks,
    search_remedies,
)
from dso.requests import FlexNeed, NeedOptions, locate_needs
from dso.violations import excess_map, localise, violation_map
from flexledger.messages import GridConfiguration, Violation, ViolationAlert
from flexledger.powerflow import GridConfig, Injections
from flexledger.time import MTU_S, day_start_s

__all__ = ["GridAssessment", "assess"]

log = logging.getLogger(__name__)

Horizon = Literal["day_ahead", "real_time"]


@dataclass
class GridAssessment:
    """Everything one assessment found, in the DSO's words.

    Per MTU (``mtu_start_s``): bus voltages ``vm_before_pu`` / ``vm_after_pu`` ``[mtu, bus]``
    (before and after the DSO's own remedies; buses in ``bus_index`` order), ``before`` /
    ``after`` the I-10 violations, ``remedies`` the chosen remedy per MTU and its I-11 blocks,
    ``needs`` the located needs that go to the market as I-06 requests. ``timings_s`` says where
    the time went.
    """

    day_s: int
    horizon: Horizon
    mtu_start_s: NDArray[np.int64]
    bus_index: NDArray[np.int64]
    vm_before_pu: NDArray[np.float64]
    vm_after_pu: NDArray[np.float64]
    before: list[Violation]
    after: list[Violation]
    remedies: RemedyPlan
    needs: list[FlexNeed]
    limits: dict[str, float]
    not_converged: list[int] = field(default_factory=list)
    timings_s: dict[str, float] = field(default_factory=dict)

    @property
    def blocks(self) -> list[RemedyBlock]:
        return self.remedies.blocks

    @property
    def configurations(self) -> list[GridConfiguration]:
        """The I-11 messages: one per block of MTUs under an own remedy."""
        return self.remedies.configurations

    def alert(self, *, after_remedies: bool = False) -> ViolationAlert:
        """The I-10 alert to the DSO operator (before remedies unless asked)."""
        return ViolationAlert(
            day_s=self.day_s,
            horizon=self.horizon,
            vm_min_pu=self.limits["vm_min_pu"],
            vm_max_pu=self.limits["vm_max_pu"],
            max_loading_percent=self.limits["max_loading_percent"],
            violations=self.after if after_remedies else self.before,
        )

    @property
    def solved(self) -> list[Violation]:
        """Violations the own remedies removed."""
        left = {(v.kind, v.element, v.mtu_start_s) for v in self.after}
        return [v for v in self.before if (v.kind, v.element, v.mtu_start_s) not in left]

    def violated_elements(self, *, after_remedies: bool = False) -> dict[str, set[str]]:
        """kind → the elements violated in at least one MTU."""
        out: dict[str, set[str]] = {}
        for v in self.after if after_remedies else self.before:
            out.setdefault(v.kind, set()).add(v.element)
        return out

    def summary(self) -> dict[str, Any]:
        """A JSON-able summary (for the API, the CLI and logs)."""
        return {
            "day_s": self.day_s,
            "horizon": self.horizon,
            "mtus": len(self.mtu_start_s),
            "violations_before": len(self.before),
            "violations_after": len(self.after),
            "solved_by_remedies": len(self.solved),
            "remedy_blocks": len(self.blocks),
            "remedy_search": {
                "mode": self.remedies.mode,
                "power_flows": self.remedies.evaluated,
            },
            "needs": len(self.needs),
            "vm_range_before_pu": _range(self.vm_before_pu),
            "vm_range_after_pu": _range(self.vm_after_pu),
            "not_converged": self.not_converged,
            "timings_s": {k: round(v, 4) for k, v in self.timings_s.items()},
        }


def _range(vm: NDArray[np.float64]) -> list[float] | None:
    if not np.isfinite(vm).any():
        return None
    return [round(float(np.nanmin(vm)), 5), round(float(np.nanmax(vm)), 5)]


def assess(
    grid: DsoGrid,
    forecast: GridForecast | Injections,
    *,
    mtu_start_s: NDArray[np.int64] | list[int] | None = None,
    day_s: int | None = None,
    horizon: Horizon | None = None,
    base_config: GridConfig | None = None,
    remedies: bool = True,
    needs: bool = True,
    need_options: NeedOptions | None = None,
    max_exhaustive: int = 256,
) -> GridAssessment:
    """Assess the grid for a day (96 MTUs) or a real-time window (16 MTUs) ahead.

    1. **Power flow** for every MTU of the forecast, in one batched call through
       :mod:`flexledger.powerflow` (power-grid-model; pandapower's net is the model of record),
       under ``base_config`` (the net's own taps and switches, or the topology the DSO tracks).
    2. **Localisation** (I-10): every monitored bus outside ``[vm_min_pu, vm_max_pu]`` and every
       line and transformer above ``max_loading_percent`` (the DSO grid's limits), per MTU, with
       the excess (p.u. or percentage points). The slack bus is the TSO's and is not monitored.
    3. **Own remedies first** (I-11): the scenario's remedy space — OLTC tap groups, tie switches
       with the switches they open, radial — searched with batched power flows on the MTUs that
       have violations (:func:`dso.remedies.search_remedies`); a remedy that creates or worsens
       a violation is not taken. The grid is re-assessed under the chosen remedy of each MTU.
    4. **Needs** (I-06): what remains becomes located needs by kind, place and contiguous MTUs,
       with a volume in kW at the most effective POD and an effectiveness factor per eligible POD
       from finite-difference sensitivities of full power flows (:func:`dso.requests.locate_needs`).

    Args:
        grid: the DSO's grid (scenario grid, PODs, limits, remedy space).
        forecast: a :class:`~dso.forecast.GridForecast` (the DSO's forecast), or
            :class:`Injections` of ``grid.net`` (e.g. the scenario's true profiles:
            :meth:`DsoGrid.profile_injections`), one scenario per MTU.
        mtu_start_s: start of each MTU, seconds (taken from the forecast when it has them;
            otherwise consecutive MTUs from ``day_s``).
        day_s: the delivery day (midnight UTC, seconds); default: from ``mtu_start_s``.
        horizon: ``"day_ahead"`` or ``"real_time"`` (default: the forecast's, else day ahead).
        base_config: the configuration without remedies.
        remedies: search own remedies (off: the report shows the grid as it is).
        needs: size the located needs (off: stop after the remedies).
        need_options: margins and eligibility of the needs.
        max_exhaustive: largest remedy space searched exhaustively.

    Returns:
        :class:`GridAssessment`.

    Raises:
        ValueError: the MTU starts and the forecast disagree in length.
    """
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    if isinstance(forecast, GridForecast):
        inj = forecast.injections(grid)
        starts = forecast.mtu_start_s if mtu_start_s is None else np.asarray(mtu_start_s)
        horizon = horizon or forecast.horizon  # type: ignore[assignment]
    else:
        inj = forecast
        if mtu_start_s is None:
            if day_s is None:
                raise ValueError("give mtu_start_s or day_s for injections without MTU starts")
            mtu_start_s = [day_start_s(day_s) + i * MTU_S for i in range(inj.n_scenarios)]
        starts = np.asarray(mtu_start_s)
    starts = np.asarray(starts, dtype=np.int64)
    if len(starts) != inj.n_scenarios:
        raise ValueError(f"{len(starts)} MTU starts for {inj.n_scenarios} scenarios")
    day = day_start_s(int(starts[0])) if day_s is None else day_start_s(day_s)
    horizon_v: Horizon = horizon or "day_ahead"
    timings["prepare"] = time.perf_counter() - t0

    t = time.perf_counter()
    base = grid.pf.run(inj, config=base_config)
    vmap0 = violation_map(base, grid.limits, grid.monitored)
    kw = {
        "bus_index": grid.bus_index,
        "line_index": grid.line_index,
        "trafo_index": grid.trafo_index,
    }
    before = localise(vmap0, grid.limits, starts, **kw)
    timings["power_flow_and_localisation"] = time.perf_counter() - t

    t = time.perf_counter()
    arrays = (base.vm_pu, base.line_loading_percent, base.trafo_loading_percent)
    if remedies:
        plan = search_remedies(
            grid, inj, vmap0, arrays, starts, base_config=base_config, max_exhaustive=max_exhaustive
        )
        after_map = excess_map(
            plan.vm_pu,
            plan.line_loading_percent,
            plan.trafo_loading_percent,
            plan.converged,
            grid.limits,
            grid.monitored,
        )
    else:
        base_option = RemedyOption((), (), base_config or GridConfig(), 0)
        plan = RemedyPlan(
            options=[base_option],
            choice=np.zeros(len(starts), dtype=np.int64),
            mode="off",
            evaluated=0,
            vm_pu=base.vm_pu.copy(),
            line_loading_percent=base.line_loading_percent.copy(),
            trafo_loading_percent=base.trafo_loading_percent.copy(),
            converged=base.converged.copy(),
        )
        after_map = vmap0
    after = localise(after_map, grid.limits, starts, **kw)
    if remedies:
        plan.blocks = describe_blocks(plan, day, starts, before, after)
    timings["remedies"] = time.perf_counter() - t

    t = time.perf_counter()
    located: list[FlexNeed] = []
    if needs and after:
        located = locate_needs(grid, inj, plan, after_map, starts, need_options)
    timings["needs"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t0
    not_converged = [int(starts[i]) for i in np.flatnonzero(~plan.converged)]
    if not_converged:
        log.warning("%d MTU(s) did not converge: %s", len(not_converged), not_converged[:5])
    return GridAssessment(
        day_s=day,
        horizon=horizon_v,
        mtu_start_s=starts,
        bus_index=grid.bus_index,
        vm_before_pu=base.vm_pu,
        vm_after_pu=plan.vm_pu,
        before=before,
        after=after,
        remedies=plan,
        needs=located,
        limits={
            "vm_min_pu": grid.limits.vm_min_pu,
            "vm_max_pu": grid.limits.vm_max_pu,
            "max_loading_percent": grid.limits.max_loading_percent,
        },
        not_converged=not_converged,
        timings_s=timings,
    )
