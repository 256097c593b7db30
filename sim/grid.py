"""The scenario's grid in the world: the SimBench net with its stated changes, its batched power
flow, and its element powers per MTU for the delivery day and the days before it."""

from __future__ import annotations

import copy
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandapower as pp
from numpy.typing import NDArray

from flexledger.powerflow import (
    BatchPowerFlow,
    GridConfig,
    Injections,
    load_grid,
    profile_steps,
    profiles_for_day,
)
from flexledger.powerflow.scenario_grid import apply_grid_changes
from flexledger.scenario import Scenario
from flexledger.time import MTUS_PER_DAY

__all__ = ["ElementPowers", "WorldGrid", "base_net", "shared_grid"]

log = logging.getLogger(__name__)

_nets: dict[str, pp.pandapowerNet] = {}
_nets_lock = threading.Lock()


def base_net(source: str | os.PathLike[str]) -> pp.pandapowerNet:
    """A fresh copy of the grid ``source`` (SimBench code or JSON path), loaded once per process.

    Loading a SimBench grid takes seconds; a deep copy of a loaded one, milliseconds.
    """
    key = os.fspath(source)
    with _nets_lock:
        net = _nets.get(key)
        if net is None:
            net = load_grid(key)
            _nets[key] = net
        return copy.deepcopy(net)


@dataclass(frozen=True)
class ElementPowers:
    """Active and reactive power of every load, sgen and storage per MTU (pandapower units and
    signs: loads and storages in load convention, sgens in generator convention, MW / Mvar).

    Arrays are ``[mtu, element]`` in the tables' row order; ``profile_days[mtu]`` is the day of
    the SimBench profile year each row replays.
    """

    load_p_mw: NDArray[np.float64]
    load_q_mvar: NDArray[np.float64]
    sgen_p_mw: NDArray[np.float64]
    sgen_q_mvar: NDArray[np.float64]
    storage_p_mw: NDArray[np.float64]
    storage_q_mvar: NDArray[np.float64]

    @property
    def n_mtus(self) -> int:
        return int(self.load_p_mw.shape[0])

    def copy(self) -> ElementPowers:
        return ElementPowers(*(a.copy() for a in self._arrays()))

    def _arrays(self) -> tuple[NDArray[np.float64], ...]:
        return (
            self.load_p_mw,
            self.load_q_mvar,
            self.sgen_p_mw,
            self.sgen_q_mvar,
            self.storage_p_mw,
            self.storage_q_mvar,
        )

    def select(self, rows: NDArray[np.int64] | list[int] | slice) -> ElementPowers:
        return ElementPowers(*(a[rows] for a in self._arrays()))

    def injections(self) -> Injections:
        return Injections(
            load_p_mw=self.load_p_mw,
            load_q_mvar=self.load_q_mvar,
            sgen_p_mw=self.sgen_p_mw,
            sgen_q_mvar=self.sgen_q_mvar,
            storage_p_mw=self.storage_p_mw,
            storage_q_mvar=self.storage_q_mvar,
        )


class WorldGrid:
    """The scenario's grid: net with the stated changes, batched power flow, element powers.

    Args:
        scenario: the scenario.
        base_dir: folder a relative JSON grid ``source`` is resolved against.

    Raises:
        flexledger.powerflow.GridFileError: the grid cannot be loaded or a change cannot be
            applied (the message names ``grid.changes.<i>``).
        ValueError: the profile year does not hold the delivery day and its history.
    """

    def __init__(self, scenario: Scenario, *, base_dir: str | os.PathLike[str] | None = None):
        spec = scenario.grid
        source: str | Path = spec.source
        if base_dir is not None and not Path(spec.source).is_absolute():
            candidate = Path(base_dir) / spec.source
            if candidate.is_file():
                source = candidate
        self.scenario = scenario
        self.net = base_net(source)
        self.changes = apply_grid_changes(self.net, spec.changes, source=str(spec.source))
        self.flow = BatchPowerFlow(self.net)
        self.profile_day = spec.profile_day
        total = profile_steps(self.net)
        if total == 0:
            raise ValueError(f"{spec.source}: the grid has no SimBench profiles to replay")
        last_day = total // MTUS_PER_DAY - 1
        if self.profile_day > last_day:
            raise ValueError(
                f"grid.profile_day {self.profile_day} is past the profiles' {last_day}"
            )
        if self.profile_day < scenario.history_days:
            raise ValueError(
                f"grid.profile_day {self.profile_day} leaves no room for history_days "
                f"{scenario.history_days} before it in the profile year"
            )
        self.load_pos = {int(i): k for k, i in enumerate(self.net.load.index)}
        self.sgen_pos = {int(i): k for k, i in enumerate(self.net.sgen.index)}
        self.storage_pos = {int(i): k for k, i in enumerate(self.net.storage.index)}
        self.line_pos = {int(i): k for k, i in enumerate(self.net.line.index)}
        self.bus_vn_kv = {int(b): float(v) for b, v in self.net.bus.vn_kv.items()}
        self._powers: dict[tuple[int, int], ElementPowers] = {}
        self._lock = threading.Lock()

    # -- element powers ----------------------------------------------------------------------

    def powers(self, day_offset: int = 0, n_days: int = 1) -> ElementPowers:
        """Element powers of ``n_days`` consecutive days from ``profile_day + day_offset``
        (``day_offset`` < 0: days before the delivery day), ``[96 × n_days, element]``.

        Computed once per window and kept; the arrays are read-only (copy to change them).
        """
        key = (day_offset, n_days)
        with self._lock:
            hit = self._powers.get(key)
        if hit is not None:
            return hit
        start = (self.profile_day + day_offset) * MTUS_PER_DAY
        inj = profiles_for_day(self.net, n_steps=MTUS_PER_DAY * n_days, start_step=start)
        values = inj.resolved(self.net)
        arrays = []
        for name in (
            "load_p_mw",
            "load_q_mvar",
            "sgen_p_mw",
            "sgen_q_mvar",
            "storage_p_mw",
            "storage_q_mvar",
        ):
            arr = np.array(values[name], dtype=np.float64)
            arr.setflags(write=False)
            arrays.append(arr)
        powers = ElementPowers(*arrays)
        with self._lock:
            self._powers[key] = powers
        return powers

    # -- configurations -------------------------------------------------------------------------

    def line_switches(self, line: int) -> list[int]:
        """The switches at the ends of ``line`` (opening them all takes the line out)."""
        sw = self.net.switch
        return [int(i) for i in sw.index[(sw.et == "l") & (sw.element == line)]]

    def event_config(self, base: GridConfig, kind: str, element: int, closed: bool) -> GridConfig:
        """``base`` with one topology event applied: a line out (or back), or a switch moved.

        Raises:
            ValueError: the element is not in the grid, or a line has no switches to open.
        """
        if kind == "switch":
            if element not in self.net.switch.index:
                raise ValueError(f"switch {element} is not in the grid")
            return base.with_switches({element: closed})
        if element not in self.net.line.index:
            raise ValueError(f"line {element} is not in the grid")
        switches = self.line_switches(element)
        if not switches:
            raise ValueError(f"line {element} has no switches: its outage cannot be represented")
        return base.with_switches(dict.fromkeys(switches, closed))


_grids: dict[str, WorldGrid] = {}
_SHARED_GRIDS = 4


def shared_grid(scenario: Scenario, *, base_dir: str | os.PathLike[str] | None = None) -> WorldGrid:
    """The :class:`WorldGrid` of this scenario's grid section, built once per process.

    Worlds never change their grid (only the tap and switch configurations they run it in), so
    several worlds of one scenario — a test's twin, a re-run — share it. Keyed by the grid
    section, the history length and the folder a relative grid file is resolved in.
    """
    key = "|".join(
        (scenario.grid.model_dump_json(), str(scenario.history_days), os.fspath(base_dir or ""))
    )
    with _nets_lock:
        hit = _grids.get(key)
    if hit is not None:
        return hit
    grid = WorldGrid(scenario, base_dir=base_dir)
    with _nets_lock:
        _grids[key] = grid
        while len(_grids) > _SHARED_GRIDS:
            _grids.pop(next(iter(_grids)))
    return grid
