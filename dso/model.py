"""The DSO's model of its grid: the scenario's pandapower net, the POD map, limits, remedy space.

The grid and the POD mapping (POD → bus, its loads, sgens and storages, whether it has flexible
resources) are data loaded with the scenario. Signs follow pandapower: loads and storages in load
convention, sgens in generator convention, so a POD's active power is its loads minus its
generators plus its storages.

Each POD gets one *probe* in the DSO's copy of the net: a zero sgen at its bus, appended after the
grid's own sgens. The DSO writes a POD's forecast (and any change of it: an award, a finite
difference) into that probe rather than into the POD's own elements, so one kW more or less "at
a POD" means the same thing everywhere, whatever is behind the meter.
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandapower as pp
from numpy.typing import NDArray

from flexledger.powerflow import (
    BatchPowerFlow,
    GridConfig,
    GridFileError,
    Injections,
    parallel_trafo_groups,
    profile_steps,
    profiles_for_day,
)
from flexledger.powerflow.scenario_grid import apply_grid_changes, scenario_grid
from flexledger.scenario import PodSpec, RemedySpace, Scenario, TapChangerSpec, load_scenario
from flexledger.time import MTUS_PER_DAY

__all__ = ["DsoGrid", "Limits", "PodInfo", "PodMappingError", "default_remedy_space", "pod_info"]

log = logging.getLogger(__name__)

PROBE_TYPE = "dso_probe"


class PodMappingError(ValueError):
    """A POD that cannot be placed in the grid: missing bus, element elsewhere, duplicates."""


@dataclass(frozen=True)
class Limits:
    """Operating limits the assessment checks (I-10): voltage band and branch loading.

    ``vm_min_pu``/``vm_max_pu``: voltage band, p.u. of each bus's nominal voltage (default
    0.95–1.05, EN 50160's ±10 % tightened as DSOs plan with); ``max_loading_percent``: lines and
    transformers, percent of rating.
    """

    vm_min_pu: float = 0.95
    vm_max_pu: float = 1.05
    max_loading_percent: float = 100.0

    def __post_init__(self) -> None:
        if not 0 < self.vm_min_pu < 1 < self.vm_max_pu:
            raise ValueError(f"voltage band {self.vm_min_pu}–{self.vm_max_pu} p.u. is not sane")
        if not self.max_loading_percent > 0:
            raise ValueError("max_loading_percent must be positive")


@dataclass(frozen=True)
class PodInfo:
    """A participating POD in the DSO's model.

    ``bus``: pandapower bus; ``loads``/``sgens``/``storages``: its pandapower elements;
    ``flexible``: it has declared flexible resources (eligible for requests); ``probe``: the
    sgen index of its probe in :attr:`DsoGrid.net`.
    """

    code: str
    bus: int
    loads: tuple[int, ...] = ()
    sgens: tuple[int, ...] = ()
    storages: tuple[int, ...] = ()
    flexible: bool = True
    probe: int = -1


@dataclass
class _Columns:
    """Column positions (table row order) of a POD's elements in an Injections array."""

    loads: NDArray[np.int64]
    sgens: NDArray[np.int64]
    storages: NDArray[np.int64]
    probe: int


@dataclass
class DsoGrid:
    """The DSO's grid: net with probes, POD map, limits, remedy space and its batched power flow.

    Build it with :meth:`from_scenario` (the scenario file: grid + changes, PODs, remedy space,
    limits) or :meth:`from_net`. ``base_net`` is the grid without the probes (SimBench profiles are
    read from it); ``net`` has one zero probe sgen per POD appended; ``pf`` is the
    :class:`~flexledger.powerflow.BatchPowerFlow` of ``net``.

    Raises (constructors):
        PodMappingError: a POD names a bus or element that is not in the grid, an element that is
            not at its bus, or one that another POD claims too; a POD code appears twice.
    """

    base_net: pp.pandapowerNet
    pods: dict[str, PodInfo]
    limits: Limits = field(default_factory=Limits)
    remedy_space: RemedySpace = field(default_factory=RemedySpace)
    profile_day: int | None = None
    net: pp.pandapowerNet = field(init=False, repr=False)
    pf: BatchPowerFlow = field(init=False, repr=False)
    monitored: NDArray[np.bool_] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.pods = _checked_pods(self.base_net, list(self.pods.values()))
        net = copy.deepcopy(self.base_net)
        placed: dict[str, PodInfo] = {}
        for code, pod in self.pods.items():
            idx = pp.create_sgen(
                net, pod.bus, p_mw=0.0, q_mvar=0.0, name=f"dso probe {code}", type=PROBE_TYPE
            )
            placed[code] = replace(pod, probe=int(idx))
        self.pods = placed
        self.net = net
        self.pf = BatchPowerFlow(net)
        slack = set(int(b) for b in net.ext_grid.bus[net.ext_grid.in_service.astype(bool)])
        self.monitored = np.array([int(b) not in slack for b in self.pf.bus_index], dtype=bool)
        self._columns = {code: self._pod_columns(pod) for code, pod in self.pods.items()}
        self._n_base_sgen = len(self.base_net.sgen)
        self._feeders: dict[int, int] | None = None

    # -- construction ---------------------------------------------------------------------------

    @classmethod
    def from_scenario(
        cls,
        scenario: Scenario | str | os.PathLike[str],
        *,
        base_dir: str | os.PathLike[str] | None = None,
        net: pp.pandapowerNet | None = None,
    ) -> DsoGrid:
        """The DSO's model of a scenario: its grid with the stated changes, PODs, remedies, limits.

        Args:
            scenario: a loaded :class:`~flexledger.scenario.Scenario` or the TOML file's path.
            base_dir: folder a relative grid file is resolved against (default: the file's).
            net: the scenario's grid source already loaded (not modified: copied, then the
                stated changes applied), to save loading it again.

        Raises:
            flexledger.scenario.ScenarioError: the file is malformed.
            GridFileError: the grid cannot be loaded or a change cannot be applied.
            PodMappingError: a POD cannot be placed (see the class docstring).
        """
        if not isinstance(scenario, Scenario):
            path = Path(scenario)
            scenario = load_scenario(path)
            base_dir = base_dir if base_dir is not None else path.parent
        spec = scenario.grid
        if net is None:
            net = scenario_grid(scenario, base_dir=base_dir)
        else:
            net = copy.deepcopy(net)
            apply_grid_changes(net, spec.changes, source=str(spec.source))
        return cls(
            base_net=net,
            pods={p.code: pod_info(p) for p in scenario.pods},
            limits=Limits(spec.vm_min_pu, spec.vm_max_pu, spec.max_loading_percent),
            remedy_space=scenario.remedies,
            profile_day=spec.profile_day,
        )

    @classmethod
    def from_net(
        cls,
        net: pp.pandapowerNet,
        pods: Sequence[PodInfo | PodSpec] = (),
        *,
        limits: Limits | None = None,
        remedy_space: RemedySpace | None = None,
        profile_day: int | None = None,
    ) -> DsoGrid:
        """A model of ``net`` (not modified) with these PODs; see :meth:`from_scenario`."""
        infos = [p if isinstance(p, PodInfo) else pod_info(p) for p in pods]
        codes = [p.code for p in infos]
        if len(set(codes)) != len(codes):
            dup = sorted({c for c in codes if codes.count(c) > 1})
            raise PodMappingError(f"POD {dup[0]} appears twice in the POD mapping")
        return cls(
            base_net=net,
            pods={p.code: p for p in infos},
            limits=limits or Limits(),
            remedy_space=remedy_space or RemedySpace(),
            profile_day=profile_day,
        )

    # -- indices --------------------------------------------------------------------------------

    @property
    def bus_index(self) -> NDArray[np.int64]:
        """pandapower bus indices in the order of every result's bus axis."""
        return self.pf.bus_index

    @property
    def line_index(self) -> NDArray[np.int64]:
        return self.pf.line_index

    @property
    def trafo_index(self) -> NDArray[np.int64]:
        return self.pf.trafo_index

    @property
    def flexible_pods(self) -> list[str]:
        """POD codes with flexible resources, sorted (the candidates of every request)."""
        return sorted(c for c, p in self.pods.items() if p.flexible)

    def feeders(self) -> dict[int, int]:
        """Feeder of every supplied bus: the first bus after the primary substation on its path
        from the slack (pandapower index), with the net's own switch states.

        The primary substation is every bus above 36 kV and the low-voltage side of every
        transformer fed from above 36 kV (with what closed bus-bus switches join to it); such a
        bus is its own feeder. Requests are grouped by feeder: flexibility on one MV feeder does
        little for a voltage violation on another.
        """
        if self._feeders is None:
            import networkx as nx
            import pandapower.topology as top

            graph = top.create_nxgraph(self.net, respect_switches=True)
            vn = self.net.bus.vn_kv
            station = {int(b) for b in self.net.bus.index[vn > 36.0]}
            trafo = self.net.trafo
            station |= {int(lv) for hv, lv in zip(trafo.hv_bus, trafo.lv_bus, strict=True)
                        if vn[hv] > 36.0}  # fmt: skip
            sw = self.net.switch
            bb = (sw.et == "b") & sw.closed.astype(bool)
            for a, b in zip(sw.bus[bb], sw.element[bb], strict=True):
                if int(a) in station or int(b) in station:
                    station |= {int(a), int(b)}
            feeder: dict[int, int] = {}
            for slack in self.net.ext_grid.bus:
                feeder[int(slack)] = int(slack)
                for parent, child in nx.bfs_edges(graph, int(slack)):
                    p, c = int(parent), int(child)
                    if c in feeder:
                        continue
                    feeder[c] = c if (c in station or p in station) else feeder[p]
            self._feeders = feeder
        return self._feeders

    def base_config(self) -> GridConfig:
        """The net's own tap positions and switch states (what "no remedy" means)."""
        return GridConfig()

    # -- injections -----------------------------------------------------------------------------

    def profile_injections(
        self, day: int | None = None, n_steps: int = MTUS_PER_DAY, *, start_step: int | None = None
    ) -> Injections:
        """The grid's own SimBench profiles (the scenario's true load and generation) as
        :class:`Injections` of :attr:`net` (probes at zero).

        Args:
            day: day of the SimBench profile year (default: the scenario's ``profile_day``).
            n_steps: quarter-hours.
            start_step: first quarter-hour of the profile year instead of ``day``.
        """
        if profile_steps(self.base_net) == 0:
            raise GridFileError("the grid has no SimBench profiles")
        if start_step is None and day is None:
            if self.profile_day is None:
                raise ValueError("no profile day: give one")
            day = self.profile_day
        inj = profiles_for_day(
            self.base_net, day if day is not None else 0, n_steps, start_step=start_step
        )
        return self.extend(inj)

    def extend(self, inj: Injections) -> Injections:
        """Injections of the base net (no probes) as injections of :attr:`net` (probes zero)."""
        values = inj.resolved(self.base_net)
        n = inj.n_scenarios
        n_probe = len(self.net.sgen) - len(self.base_net.sgen)
        sgen_p = np.hstack([values["sgen_p_mw"], np.zeros((n, n_probe))])
        sgen_q = np.hstack([values["sgen_q_mvar"], np.zeros((n, n_probe))])
        return Injections(
            load_p_mw=values["load_p_mw"],
            load_q_mvar=values["load_q_mvar"],
            sgen_p_mw=sgen_p,
            sgen_q_mvar=sgen_q,
            storage_p_mw=values["storage_p_mw"],
            storage_q_mvar=values["storage_q_mvar"],
            steps=inj.steps,
        )

    def pod_p_kw(self, inj: Injections) -> dict[str, NDArray[np.float64]]:
        """Each POD's net active power per scenario, kW, load convention (loads − sgens +
        storages + minus its probe's injection)."""
        values = inj.resolved(self.net)
        out: dict[str, NDArray[np.float64]] = {}
        for code, col in self._columns.items():
            p = values["load_p_mw"][:, col.loads].sum(axis=1)
            p = p - values["sgen_p_mw"][:, col.sgens].sum(axis=1)
            p = p + values["storage_p_mw"][:, col.storages].sum(axis=1)
            p = p - values["sgen_p_mw"][:, col.probe]
            out[code] = p * 1e3
        return out

    def with_pod_power(
        self,
        inj: Injections,
        pod_p_kw: Mapping[str, NDArray[np.float64] | float],
        pod_q_kvar: Mapping[str, NDArray[np.float64] | float] | None = None,
    ) -> Injections:
        """``inj`` with each named POD's net active power *set* to ``pod_p_kw`` (kW, load
        convention, per scenario or one value): the POD's own elements' P go to zero and the
        whole value goes into its probe. Reactive power is kept, except for the PODs in
        ``pod_q_kvar`` (kvar, load convention), whose Q is set the same way."""
        values = {k: np.array(v) for k, v in inj.resolved(self.net).items()}
        n = inj.n_scenarios
        for unit, given in (("p_mw", pod_p_kw), ("q_mvar", pod_q_kvar or {})):
            for code, kilo in given.items():
                col = self._col(code)
                values[f"load_{unit}"][:, col.loads] = 0.0
                values[f"sgen_{unit}"][:, col.sgens] = 0.0
                values[f"storage_{unit}"][:, col.storages] = 0.0
                values[f"sgen_{unit}"][:, col.probe] = -np.broadcast_to(
                    np.asarray(kilo) / 1e3, (n,)
                )
        return Injections(**values, steps=inj.steps)

    def with_pod_delta(
        self, inj: Injections, delta_kw: Mapping[str, NDArray[np.float64] | float]
    ) -> Injections:
        """``inj`` with each named POD's consumption *changed* by ``delta_kw`` (kW, load
        convention: ``-x`` is an ``up`` activation of ``x`` kW), through its probe."""
        values = {k: np.array(v) for k, v in inj.resolved(self.net).items()}
        n = inj.n_scenarios
        for code, d_kw in delta_kw.items():
            col = self._col(code)
            values["sgen_p_mw"][:, col.probe] -= np.broadcast_to(np.asarray(d_kw) / 1e3, (n,))
        return Injections(**values, steps=inj.steps)

    def _col(self, code: str) -> _Columns:
        try:
            return self._columns[code]
        except KeyError:
            raise PodMappingError(f"POD {code} is not in the DSO's POD mapping") from None

    def _pod_columns(self, pod: PodInfo) -> _Columns:
        net = self.net

        def pos(table: str, ids: tuple[int, ...]) -> NDArray[np.int64]:
            if not ids:
                return np.zeros(0, dtype=np.int64)
            return np.asarray(net[table].index.get_indexer(list(ids)), dtype=np.int64)

        return _Columns(
            loads=pos("load", pod.loads),
            sgens=pos("sgen", pod.sgens),
            storages=pos("storage", pod.storages),
            probe=int(net.sgen.index.get_loc(pod.probe)),
        )


def pod_info(spec: PodSpec) -> PodInfo:
    """A scenario POD as the DSO sees it: where it is and whether it is flexible."""
    return PodInfo(
        code=spec.code,
        bus=spec.bus,
        loads=tuple(spec.loads),
        sgens=tuple(spec.sgens),
        storages=tuple(spec.storages),
        flexible=bool(spec.resources),
    )


def _checked_pods(net: pp.pandapowerNet, pods: list[PodInfo]) -> dict[str, PodInfo]:
    """Check every POD against the grid; :class:`PodMappingError` names the first problem."""
    owner: dict[tuple[str, int], str] = {}
    out: dict[str, PodInfo] = {}
    for i, pod in enumerate(pods):
        where = f"pods.{i} ({pod.code})"
        if pod.code in out:
            raise PodMappingError(f"{where}: the POD code appears twice")
        if pod.bus not in net.bus.index:
            raise PodMappingError(f"{where}: bus {pod.bus} is not in the grid")
        if not bool(net.bus.at[pod.bus, "in_service"]):
            raise PodMappingError(f"{where}: bus {pod.bus} is out of service")
        for table, ids in (("load", pod.loads), ("sgen", pod.sgens), ("storage", pod.storages)):
            df = net.get(table, None)
            for e in ids:
                if df is None or e not in df.index:
                    raise PodMappingError(f"{where}: {table} {e} is not in the grid")
                at = int(df.at[e, "bus"])
                if at != pod.bus:
                    raise PodMappingError(
                        f"{where}: {table} {e} is at bus {at}, not at the POD's bus {pod.bus}"
                    )
                other = owner.setdefault((table, int(e)), pod.code)
                if other != pod.code:
                    raise PodMappingError(f"{where}: {table} {e} already belongs to POD {other}")
        out[pod.code] = pod
    return out


def default_remedy_space(net: pp.pandapowerNet) -> RemedySpace:
    """The remedy space of a grid without a scenario: its on-load tap changers only — every
    group of parallel transformers fed from above 36 kV with a ratio tap changer, moved together
    over its table range. No switching (which switch a tie point opens is the scenario's call).
    """
    changers = []
    vn = net.bus.vn_kv
    for group in parallel_trafo_groups(net):
        rows = net.trafo.loc[group]
        if not (vn[rows.hv_bus] > 36.0).all():
            continue
        if not (rows.get("tap_changer_type") == "Ratio").all():
            continue
        lo, hi = rows.tap_min.max(), rows.tap_max.min()
        if np.isfinite(lo) and np.isfinite(hi) and lo < hi:
            changers.append(TapChangerSpec(trafos=group, tap_min=int(lo), tap_max=int(hi)))
    return RemedySpace(tap_changers=changers)
