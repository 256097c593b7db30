"""The day's grid as it was measured: the DSO's power flows on the SCD's quarterly measures
(I-01: the Light Nodes' certified energy, activations included) under the own remedies it
applied day ahead — what the voltages were after remedies and activations."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from dso.forecast import GridForecast, PodHistory
from dso.model import DsoGrid

__all__ = ["MeasuredVoltages", "measured_voltages"]


@dataclass
class MeasuredVoltages:
    """``vm_before_pu`` / ``vm_after_pu`` [mtu, bus]: measured POD powers without and with
    the day-ahead remedies; ``measured`` [mtu]: every POD had a measure in that MTU (else its
    day-ahead forecast fills in)."""

    mtu_start_s: NDArray[np.int64]
    bus_index: NDArray[np.int64]
    vm_before_pu: NDArray[np.float64]
    vm_after_pu: NDArray[np.float64]
    measured: NDArray[np.bool_]


def measured_voltages(
    grid: DsoGrid, forecast: GridForecast, plan: object, history: PodHistory, day_s: int
) -> MeasuredVoltages:
    """Power flows of the day on the measured POD powers (``history``: the delivery day's
    I-01, kW per MTU), the day-ahead ``forecast`` where a measure is missing, without and
    with the remedy ``plan`` (``GridAssessment.remedies``) chosen per MTU."""
    starts = np.asarray(forecast.mtu_start_s, dtype=np.int64)
    measured = np.ones(len(starts), dtype=bool)
    pods = {}
    for pod, fc in forecast.pod_p_kw.items():
        got = history.days(pod, day_s, 1)[0] if pod in history.pods else np.full(96, np.nan)
        got = got[: len(starts)]
        ok = np.isfinite(got)
        measured &= ok
        pods[pod] = np.where(ok, got, fc)
    inj = GridForecast(starts, pods, forecast.background, "day_ahead").injections(grid)
    base = grid.pf.run(inj)
    after = base.vm_pu.copy()
    choice = np.asarray(getattr(plan, "choice", np.zeros(len(starts), dtype=np.int64)))
    options = list(getattr(plan, "options", []))
    for o in sorted(set(int(c) for c in choice) - {0}):
        rows = np.flatnonzero(choice == o)
        res = grid.pf.run(inj.select(rows), config=options[o].config)
        after[rows] = res.vm_pu
    return MeasuredVoltages(starts, grid.bus_index, base.vm_pu, after, measured)
