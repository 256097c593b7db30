"""The grid's true state per MTU: element powers plus what the devices did, through the batched
power flow, re-run only for the MTUs that activations or events changed.

A meter's voltage at instant ``t`` is its bus voltage in the power flow of ``t``'s MTU *as it
was known at t*: when a set-point received at ``r`` changes an MTU, the new power flow holds
from ``r + 1`` on (``effective_from_s``), so a reading already taken never changes.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from flexledger.powerflow import BatchPowerFlow, BatchResult, GridConfig
from flexledger.time import MTU_S, MTUS_PER_DAY, SAMPLES_PER_MTU
from sim.grid import ElementPowers
from sim.pods import PodModel

__all__ = ["GridTruth", "MtuState", "compose_powers"]

log = logging.getLogger(__name__)


def compose_powers(
    powers: ElementPowers,
    pods: list[PodModel],
    *,
    with_activations: bool = True,
    mtus: NDArray[np.int64] | None = None,
) -> ElementPowers:
    """Element powers with the devices in them, per MTU (rows ``mtus`` of the day, or all 96).

    A device that is not a grid element adds its baseline to its POD's host element; every
    device adds its activation change (``with_activations``) to the element it acts on. Devices
    are averaged over each MTU's 225 steps.
    """
    rows = np.arange(MTUS_PER_DAY) if mtus is None else np.asarray(mtus, dtype=np.int64)
    out = powers.select(rows).copy()
    for pod in pods:
        for device, ref in zip(pod.devices, pod.device_refs, strict=True):
            w = np.zeros(device.baseline_w.shape)
            if device.adds_baseline:
                w = w + device.baseline_w
            if with_activations:
                w = w + device.delta_w
            if not w.any():
                continue
            mean_mw = w.reshape(MTUS_PER_DAY, SAMPLES_PER_MTU).mean(axis=1)[rows] / 1e6
            getattr(out, f"{ref.table}_p_mw")[:, ref.position] += ref.sign * mean_mw
            if device.tan_phi:
                q = getattr(out, f"{ref.table}_q_mvar")
                q[:, ref.position] += ref.sign * device.tan_phi * mean_mw
    return out


@dataclass(frozen=True)
class MtuState:
    """The power flow of one MTU as known from ``effective_from_s`` on."""

    effective_from_s: int
    vm_pu: NDArray[np.float64]  # [bus]
    line_loading_percent: NDArray[np.float64]  # [line]
    line_i_ka: NDArray[np.float64]  # [line]
    trafo_loading_percent: NDArray[np.float64]  # [trafo]
    converged: bool


class GridTruth:
    """Per-MTU power flows of the day, versioned (see the module docstring).

    Args:
        flow: the batched power flow of the scenario's grid.
        day_s: the delivery day's midnight, seconds.
        configs: the grid configuration of each MTU (events applied), 96 entries.
    """

    def __init__(self, flow: BatchPowerFlow, day_s: int, configs: list[GridConfig]) -> None:
        if len(configs) != MTUS_PER_DAY:
            raise ValueError("one configuration per MTU")
        self.flow = flow
        self.day_s = day_s
        self.configs = configs
        self._states: list[list[MtuState]] = [[] for _ in range(MTUS_PER_DAY)]
        self._dirty: dict[int, int] = {}  # mtu -> effective_from_s of the pending change
        self._lock = threading.Lock()
        self.runs = 0  # batched power-flow calls made
        self.solved = 0  # MTU power flows computed

    def solve(self, powers: ElementPowers, mtus: NDArray[np.int64], effective_from_s: int) -> None:
        """Run the power flows of ``mtus`` (``powers`` holds their rows, in that order): one
        batch call per distinct configuration among them."""
        mtus = np.asarray(mtus, dtype=np.int64)
        by_config: dict[GridConfig, list[int]] = {}
        for row, m in enumerate(mtus):
            by_config.setdefault(self.configs[int(m)], []).append(row)
        for config, rows in by_config.items():
            result: BatchResult = self.flow.run(powers.select(rows).injections(), config=config)
            self.runs += 1
            self.solved += len(rows)
            for k, row in enumerate(rows):
                m = int(mtus[row])
                start = self.day_s + m * MTU_S
                state = MtuState(
                    effective_from_s=max(start, effective_from_s),
                    vm_pu=result.vm_pu[k],
                    line_loading_percent=result.line_loading_percent[k],
                    line_i_ka=result.line_i_ka[k],
                    trafo_loading_percent=result.trafo_loading_percent[k],
                    converged=bool(result.converged[k]),
                )
                if not state.converged:
                    log.warning("the power flow of MTU %d did not converge", m)
                with self._lock:
                    self._states[m].append(state)

    def mark_dirty(self, mtus: range | list[int], effective_from_s: int) -> None:
        """These MTUs changed from ``effective_from_s`` on; re-run before they are read again."""
        with self._lock:
            for m in mtus:
                if 0 <= m < MTUS_PER_DAY:
                    prev = self._dirty.get(m)
                    self._dirty[m] = (
                        effective_from_s if prev is None else min(prev, effective_from_s)
                    )

    def dirty(self) -> dict[int, int]:
        with self._lock:
            return dict(self._dirty)

    def take_dirty(self) -> dict[int, int]:
        with self._lock:
            dirty, self._dirty = self._dirty, {}
            return dirty

    def state(self, mtu: int, t_s: int | None = None) -> MtuState:
        """The power flow of ``mtu`` as known at ``t_s`` (default: the latest)."""
        states = self._states[mtu]
        if not states:
            raise LookupError(f"MTU {mtu} has no power flow yet")
        if t_s is None:
            return states[-1]
        for state in reversed(states):
            if state.effective_from_s <= t_s:
                return state
        return states[0]

    def states(self, mtu: int) -> list[MtuState]:
        return list(self._states[mtu])

    def vm_at(self, mtu: int, bus_pos: int, t_s: NDArray[np.int64]) -> NDArray[np.float64]:
        """Voltage (p.u.) of one bus at these instants of one MTU, each as known at its instant."""
        states = self._states[mtu]
        if len(states) == 1:
            return np.full(len(t_s), states[0].vm_pu[bus_pos])
        starts = np.array([s.effective_from_s for s in states])
        which = np.clip(np.searchsorted(starts, t_s, side="right") - 1, 0, len(states) - 1)
        values = np.array([s.vm_pu[bus_pos] for s in states])
        return values[which]

    def latest(self) -> tuple[NDArray[np.float64], ...]:
        """``(vm_pu, line_loading_percent, trafo_loading_percent)`` ``[mtu, element]``, latest."""
        last = [s[-1] for s in self._states]
        return (
            np.array([s.vm_pu for s in last]),
            np.array([s.line_loading_percent for s in last]),
            np.array([s.trafo_loading_percent for s in last]),
        )
