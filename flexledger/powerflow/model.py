"""power-grid-model input arrays built straight from pandapower tables.

This is the translation of pandapower's power-flow model into power-grid-model's, element by
element, so that a batch calculation gives what ``pandapower.runpp`` gives. The choices that are
not one-to-one, and why:

- **Buses joined by a closed bus-bus switch** (``z_ohm == 0``) are one node, as pandapower fuses
  them. Results are reported per pandapower bus (fused buses share a voltage).
- **Open line and trafo switches** disconnect that end of the branch (``from_status`` /
  ``to_status = 0``): the branch stays energised from its other end, charging current included,
  as pandapower's auxiliary open-end bus does.
- **ext_grid** is an ideal slack in pandapower; power-grid-model's ``source`` has an internal
  impedance, so it gets a short-circuit power of :data:`SOURCE_SK_VA` (1e15 VA: the voltage
  drop behind it is about 4e-11 p.u. per MW through it, 2.4e-9 p.u. at 60 MW).
- **Transformers** get ``sn`` and ``p0`` times ``parallel``; the clock is ``shift_degree / 30``
  (which must be a whole number). ``vector_group`` is ``None`` in SimBench and pandapower's
  symmetric power flow ignores it, so the windings are chosen only to be consistent with the
  clock: D/yn for an odd clock, YN/yn for an even one (they only matter for zero sequence). A tap
  acts only where pandapower applies it (``tap_changer_type`` ``"Ratio"`` or ``"Symmetrical"``
  with no phase step); ``tap_size`` in V is ``vn_<tap_side>_kv × tap_step_percent × 10``.
  power-grid-model's transformer is a π model with the magnetising admittance split between
  both ends; pandapower's default is the ``'t'`` model. That is the one known difference: on
  the default grid at most 3e-6 p.u. in voltage and 2e-4 percentage points in loading over its
  highest-voltage day (against ``runpp(trafo_model="pi")`` the results agree to 1e-9 p.u.).
  Small enough that the model of record stays pandapower's default.
- **Loads** are constant power when pandapower's ZIP shares (``const_z_*``/``const_i_*``) are
  zero. Otherwise pandapower (``voltage_depend_loads=True``, its default) averages the shares of
  the loads at a bus and applies them to that bus's whole net demand, sgens and storages
  included; each such bus gets a constant-current and a constant-impedance ``sym_load`` and a
  constant-power offset that together compute exactly that.
- **Storages** are loads in load convention (``p_mw > 0`` charges). SimBench storages are
  PV-plus-battery systems that only inject: their table ``p_mw`` is negative and their profile
  positive, so their absolute values are negative (injection). Nothing is flipped.
- **Probes**: one zero ``sym_gen`` per bus, so a sensitivity batch can inject at any bus.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
import pandapower as pp
import pandas as pd
from numpy.typing import NDArray
from power_grid_model import LoadGenType, WindingType, initialize_array

__all__ = ["SOURCE_SK_VA", "GridModelError", "Layout", "ModelInput", "build_input"]

SOURCE_SK_VA: Final = 1e15
"""Short-circuit power given to power-grid-model sources that stand for pandapower's ideal slack."""

_UNSUPPORTED_TABLES: Final = (
    "gen",
    "trafo3w",
    "impedance",
    "ward",
    "xward",
    "dcline",
    "motor",
    "asymmetric_load",
    "asymmetric_sgen",
    "svc",
    "tcsc",
    "ssc",
    "vsc",
    "bus_dc",
    "line_dc",
)

_RATIO_TAPS: Final = frozenset({"Ratio", "Symmetrical"})


class GridModelError(ValueError):
    """The net uses something the batched power flow does not model (named in the message)."""


def _bool(series: pd.Series) -> NDArray[np.bool_]:
    return series.fillna(False).astype(bool).to_numpy()


def _float(series: pd.Series, default: float = 0.0) -> NDArray[np.float64]:
    return pd.to_numeric(series, errors="coerce").fillna(default).to_numpy(dtype=np.float64)


def _positions(index: pd.Index, values: pd.Series | NDArray[np.int64]) -> NDArray[np.int64]:
    pos = index.get_indexer(np.asarray(values))
    if (pos < 0).any():
        raise GridModelError(f"unknown bus index in {np.asarray(values)[pos < 0][:5].tolist()}")
    return pos.astype(np.int64)


class _Ids:
    """Hands out power-grid-model ids, unique over all components as it requires."""

    def __init__(self) -> None:
        self.next = 0

    def take(self, n: int) -> NDArray[np.int64]:
        ids = np.arange(self.next, self.next + n, dtype=np.int64)
        self.next += n
        return ids


def _zip_buses(
    load: pd.DataFrame, load_bus: NDArray[np.int64], bus_in: NDArray[np.bool_]
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Buses with voltage-dependent demand and their shares, as ``runpp`` computes them.

    pandapower (``voltage_depend_loads=True``, its default) averages the ZIP shares of the active
    loads at a bus and applies them to the bus's whole net demand: loads, storages *and* sgens
    (as negative demand). Reproduced here exactly, quirk included.
    """
    cols = ("const_i_p_percent", "const_z_p_percent", "const_i_q_percent", "const_z_q_percent")
    shares = np.vstack(
        [_float(load.get(c, pd.Series(0.0, load.index))) / 100 for c in cols]
    ).reshape(4, len(load))
    active = _bool(load.in_service) & bus_in[load_bus] if len(load) else np.zeros(0, bool)
    buses = np.unique(load_bus[active])
    per_bus = np.zeros((4, len(buses)))
    for k, b in enumerate(buses):
        at = active & (load_bus == b)
        per_bus[:, k] = shares[:, at].mean(axis=1)
    keep = np.any(per_bus != 0, axis=0)
    return buses[keep].astype(np.int64), per_bus[:, keep]


@dataclass(frozen=True)
class Layout:
    """What does not change between configurations: element order, ids and fixed parameters.

    Element order is the row order of the pandapower tables; every array here is in that order.
    """

    bus_index: NDArray[np.int64]
    line_index: NDArray[np.int64]
    trafo_index: NDArray[np.int64]
    load_index: NDArray[np.int64]
    sgen_index: NDArray[np.int64]
    storage_index: NDArray[np.int64]
    switch_index: NDArray[np.int64]
    ext_grid_index: NDArray[np.int64]
    shunt_index: NDArray[np.int64]
    bus_vn_kv: NDArray[np.float64]
    # bus positions of element ends
    line_from: NDArray[np.int64]
    line_to: NDArray[np.int64]
    trafo_hv: NDArray[np.int64]
    trafo_lv: NDArray[np.int64]
    load_bus: NDArray[np.int64]
    sgen_bus: NDArray[np.int64]
    storage_bus: NDArray[np.int64]
    ext_grid_bus: NDArray[np.int64]
    shunt_bus: NDArray[np.int64]
    # ids (node id of a bus = its position; only the root of a fused group is a node)
    source_id: NDArray[np.int64]
    line_id: NDArray[np.int64]
    trafo_id: NDArray[np.int64]
    load_id: NDArray[np.int64]
    storage_id: NDArray[np.int64]
    sgen_id: NDArray[np.int64]
    probe_id: NDArray[np.int64]  # one zero sym_gen per bus position
    shunt_id: NDArray[np.int64]
    # fixed ratings for loading results
    line_i_rated_ka: NDArray[np.float64]  # max_i_ka × df × parallel
    trafo_vn_hv_kv: NDArray[np.float64]
    trafo_vn_lv_kv: NDArray[np.float64]
    trafo_s_rated_mva: NDArray[np.float64]  # sn_mva × parallel × df
    trafo_tap_acts: NDArray[np.bool_]  # pandapower applies tap_pos
    # pandapower's scaling column
    load_scaling: NDArray[np.float64]
    sgen_scaling: NDArray[np.float64]
    storage_scaling: NDArray[np.float64]
    # voltage-dependent (ZIP) buses, pandapower's way: see _zip_buses
    zip_bus_pos: NDArray[np.int64]  # [n_zip]
    zip_share: NDArray[np.float64]  # [4, n_zip]: const_i_p, const_z_p, const_i_q, const_z_q
    zip_id: NDArray[np.int64]  # [3, n_zip]: constant-power offset, current part, impedance part
    load_to_zip: NDArray[np.float64]  # [n_load, n_zip] 1 where an active load sits at the bus
    sgen_to_zip: NDArray[np.float64]  # [n_sgen, n_zip]
    storage_to_zip: NDArray[np.float64]  # [n_storage, n_zip]
    bus_to_zip: NDArray[np.float64]  # [n_bus, n_zip] for the probes

    @property
    def n_zip(self) -> int:
        return len(self.zip_bus_pos)

    @property
    def n_bus(self) -> int:
        return len(self.bus_index)

    @classmethod
    def of(cls, net: pp.pandapowerNet) -> Layout:
        for table in _UNSUPPORTED_TABLES:
            if table in net and isinstance(net[table], pd.DataFrame) and len(net[table]):
                df = net[table]
                active = _bool(df["in_service"]) if "in_service" in df else np.ones(len(df), bool)
                if active.any():
                    raise GridModelError(
                        f"{table}: {int(active.sum())} in-service element(s); the batched power "
                        f"flow models ext_grid, bus, line, trafo, load, sgen, storage, shunt and "
                        f"switch only"
                    )
        bus = net.bus.index
        ids = _Ids()
        ids.take(len(bus))  # node ids are bus positions
        storage = net.storage if "storage" in net else pd.DataFrame(columns=net.load.columns)
        shunt = net.shunt if "shunt" in net else pd.DataFrame(columns=["bus"])
        n_load = len(net.load)

        bus_in = _bool(net.bus.in_service)
        load_bus = _positions(bus, net.load.bus)
        sgen_bus = _positions(bus, net.sgen.bus)
        storage_bus = _positions(bus, storage.bus)
        zip_pos, zip_share = _zip_buses(net.load, load_bus, bus_in)

        def incidence(element_bus: NDArray[np.int64], active: NDArray[np.bool_]) -> np.ndarray:
            return ((element_bus[:, None] == zip_pos[None, :]) & active[:, None]).astype(float)

        trafo = net.trafo
        kind = trafo.get("tap_changer_type", pd.Series(None, trafo.index, dtype=object))
        degree = _float(trafo.get("tap_step_degree", pd.Series(0.0, trafo.index)))
        table_dep = _bool(trafo.get("tap_dependency_table", pd.Series(False, trafo.index)))
        if table_dep.any():
            raise GridModelError(
                f"trafo {trafo.index[table_dep].tolist()}: tap_dependency_table is not supported"
            )
        tap_acts = (
            kind.isin(_RATIO_TAPS).to_numpy()
            & np.isfinite(_float(trafo.tap_step_percent, np.nan))
            & np.isfinite(_float(trafo.tap_pos, np.nan))
        )
        if np.any(tap_acts & (degree != 0)):
            raise GridModelError("trafo: phase-shifting taps (tap_step_degree ≠ 0) not supported")
        if kind.isin(["Ideal", "Tabular"]).any():
            raise GridModelError("trafo: 'Ideal' and 'Tabular' tap changers are not supported")

        line = net.line
        g_us = _float(line.get("g_us_per_km", pd.Series(0.0, line.index)))
        if np.any((_float(line.c_nf_per_km) == 0) & (g_us != 0)):
            raise GridModelError("line: g_us_per_km without c_nf_per_km cannot be modelled")
        parallel_t = _float(trafo.parallel, 1.0)
        return cls(
            bus_index=bus.to_numpy(dtype=np.int64),
            line_index=line.index.to_numpy(dtype=np.int64),
            trafo_index=trafo.index.to_numpy(dtype=np.int64),
            load_index=net.load.index.to_numpy(dtype=np.int64),
            sgen_index=net.sgen.index.to_numpy(dtype=np.int64),
            storage_index=storage.index.to_numpy(dtype=np.int64),
            switch_index=net.switch.index.to_numpy(dtype=np.int64),
            ext_grid_index=net.ext_grid.index.to_numpy(dtype=np.int64),
            shunt_index=shunt.index.to_numpy(dtype=np.int64),
            bus_vn_kv=_float(net.bus.vn_kv),
            line_from=_positions(bus, line.from_bus),
            line_to=_positions(bus, line.to_bus),
            trafo_hv=_positions(bus, trafo.hv_bus),
            trafo_lv=_positions(bus, trafo.lv_bus),
            load_bus=load_bus,
            sgen_bus=sgen_bus,
            storage_bus=storage_bus,
            ext_grid_bus=_positions(bus, net.ext_grid.bus),
            shunt_bus=_positions(bus, shunt.bus),
            source_id=ids.take(len(net.ext_grid)),
            line_id=ids.take(len(line)),
            trafo_id=ids.take(len(trafo)),
            load_id=ids.take(n_load),
            storage_id=ids.take(len(storage)),
            sgen_id=ids.take(len(net.sgen)),
            probe_id=ids.take(len(bus)),
            shunt_id=ids.take(len(shunt)),
            line_i_rated_ka=_float(line.max_i_ka)
            * _float(line.df, 1.0)
            * _float(line.parallel, 1.0),
            trafo_vn_hv_kv=_float(trafo.vn_hv_kv),
            trafo_vn_lv_kv=_float(trafo.vn_lv_kv),
            trafo_s_rated_mva=_float(trafo.sn_mva)
            * parallel_t
            * _float(trafo.get("df", pd.Series(1.0, trafo.index)), 1.0),
            trafo_tap_acts=tap_acts,
            load_scaling=_float(net.load.get("scaling", pd.Series(1.0, net.load.index)), 1.0),
            sgen_scaling=_float(net.sgen.get("scaling", pd.Series(1.0, net.sgen.index)), 1.0),
            storage_scaling=_float(storage.get("scaling", pd.Series(1.0, storage.index)), 1.0),
            zip_bus_pos=zip_pos,
            zip_share=zip_share,
            zip_id=ids.take(3 * len(zip_pos)).reshape(3, len(zip_pos)),
            load_to_zip=incidence(load_bus, _bool(net.load.in_service) & bus_in[load_bus]),
            sgen_to_zip=incidence(sgen_bus, _bool(net.sgen.in_service) & bus_in[sgen_bus]),
            storage_to_zip=incidence(storage_bus, _bool(storage.in_service) & bus_in[storage_bus]),
            bus_to_zip=incidence(np.arange(len(bus), dtype=np.int64), bus_in),
        )


@dataclass(frozen=True)
class ModelInput:
    """power-grid-model input for one configuration, and how its nodes map back to buses."""

    data: dict[str, np.ndarray]
    node_of_bus: NDArray[np.int64]  # node id (= root bus position) per bus position
    bus_active: NDArray[np.bool_]  # bus in service (fused groups share it)
    line_active: NDArray[np.bool_]  # in service with at least one end connected
    trafo_active: NDArray[np.bool_]


def _fuse_buses(
    net: pp.pandapowerNet, layout: Layout, closed: NDArray[np.bool_], bus_in: NDArray[np.bool_]
) -> NDArray[np.int64]:
    """Union-find over closed bus-bus switches without impedance, as pandapower fuses buses."""
    parent = np.arange(layout.n_bus, dtype=np.int64)

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = int(parent[i])
        return i

    sw = net.switch
    is_bb = (sw.et == "b").to_numpy() & closed
    if not is_bb.any():
        return parent
    z_ohm = _float(sw.get("z_ohm", pd.Series(0.0, sw.index)))
    a = _positions(net.bus.index, sw.bus.to_numpy()[is_bb])
    b = _positions(net.bus.index, sw.element.to_numpy()[is_bb])
    for k, (i, j, z) in enumerate(zip(a, b, z_ohm[is_bb], strict=True)):
        if not (bus_in[i] and bus_in[j]):
            continue
        if z != 0:
            name = sw.index[is_bb][k]
            raise GridModelError(f"switch {name}: closed bus-bus switch with z_ohm {z} ≠ 0")
        if not math.isclose(layout.bus_vn_kv[i], layout.bus_vn_kv[j], rel_tol=1e-9):
            name = sw.index[is_bb][k]
            raise GridModelError(f"switch {name}: joins buses of different vn_kv")
        ri, rj = root(int(i)), root(int(j))
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)
    return np.array([root(i) for i in range(layout.n_bus)], dtype=np.int64)


def _windings(shift_degree: NDArray[np.float64]) -> tuple[NDArray[np.int8], ...]:
    steps = shift_degree / 30.0
    clock = np.rint(steps)
    if np.any(np.abs(steps - clock) > 1e-9):
        raise GridModelError(
            f"trafo: shift_degree {shift_degree[np.abs(steps - clock) > 1e-9].tolist()} is not a "
            f"multiple of 30° (power-grid-model needs a whole clock number)"
        )
    clock_i = np.mod(clock.astype(np.int64), 12).astype(np.int8)
    odd = clock_i % 2 == 1
    w_from = np.where(odd, WindingType.delta, WindingType.wye_n).astype(np.int8)
    w_to = np.full(len(clock_i), WindingType.wye_n, dtype=np.int8)
    return w_from, w_to, clock_i


def build_input(
    net: pp.pandapowerNet,
    layout: Layout,
    tap_pos: NDArray[np.float64],
    closed: NDArray[np.bool_],
    f_hz: float,
) -> ModelInput:
    """Build power-grid-model input arrays for one tap and switch configuration.

    Args:
        net: the pandapower net (its tables in the row order of ``layout``).
        layout: :meth:`Layout.of` of the same net.
        tap_pos: tap position per trafo, in ``layout.trafo_index`` order.
        closed: switch state per switch, in ``layout.switch_index`` order.
        f_hz: system frequency (line charging and leakage).
    """
    bus_in = _bool(net.bus.in_service)
    node_of_bus = _fuse_buses(net, layout, closed, bus_in)
    roots = np.unique(node_of_bus)
    nodes = initialize_array("input", "node", len(roots))
    nodes["id"] = roots
    nodes["u_rated"] = layout.bus_vn_kv[roots] * 1e3

    # open switches disconnect the end of the line / trafo they sit at
    sw = net.switch
    opened = ~closed
    line_from_ok = np.ones(len(layout.line_index), bool)
    line_to_ok = np.ones(len(layout.line_index), bool)
    trafo_hv_ok = np.ones(len(layout.trafo_index), bool)
    trafo_lv_ok = np.ones(len(layout.trafo_index), bool)
    et = sw.et.to_numpy()
    sw_bus = sw.bus.to_numpy()
    sw_elem = sw.element.to_numpy()
    line_pos = pd.Index(layout.line_index)
    trafo_pos = pd.Index(layout.trafo_index)
    bus_at = layout.bus_index
    for k in np.flatnonzero(opened & (et == "l")):
        p = line_pos.get_loc(sw_elem[k])
        if bus_at[layout.line_from[p]] == sw_bus[k]:
            line_from_ok[p] = False
        else:
            line_to_ok[p] = False
    for k in np.flatnonzero(opened & (et == "t")):
        p = trafo_pos.get_loc(sw_elem[k])
        if bus_at[layout.trafo_hv[p]] == sw_bus[k]:
            trafo_hv_ok[p] = False
        else:
            trafo_lv_ok[p] = False

    line = net.line
    line_in = _bool(line.in_service)
    lf = line_in & line_from_ok & bus_in[layout.line_from]
    lt = line_in & line_to_ok & bus_in[layout.line_to]
    length = _float(line.length_km)
    par = _float(line.parallel, 1.0)
    c_f = _float(line.c_nf_per_km) * 1e-9 * length * par
    g_s = _float(line.get("g_us_per_km", pd.Series(0.0, line.index))) * 1e-6 * length * par
    lines = initialize_array("input", "line", len(line))
    lines["id"] = layout.line_id
    lines["from_node"] = node_of_bus[layout.line_from]
    lines["to_node"] = node_of_bus[layout.line_to]
    lines["from_status"] = lf
    lines["to_status"] = lt
    lines["r1"] = _float(line.r_ohm_per_km) * length / par
    lines["x1"] = _float(line.x_ohm_per_km) * length / par
    lines["c1"] = c_f
    with np.errstate(divide="ignore", invalid="ignore"):
        lines["tan1"] = np.where(c_f > 0, g_s / (2 * np.pi * f_hz * c_f), 0.0)
    lines["i_n"] = layout.line_i_rated_ka * 1e3

    trafo = net.trafo
    t_in = _bool(trafo.in_service)
    par_t = _float(trafo.parallel, 1.0)
    sn_va = _float(trafo.sn_mva) * 1e6 * par_t
    w_from, w_to, clock = _windings(_float(trafo.shift_degree))
    tap_hv = (trafo.tap_side.astype(str).str.lower() != "lv").to_numpy()
    acts = layout.trafo_tap_acts
    step = np.where(acts, _float(trafo.tap_step_percent), 0.0)
    neutral = np.where(acts, _float(trafo.tap_neutral), 0.0)
    tap_min = _float(trafo.tap_min, np.nan)
    tap_max = _float(trafo.tap_max, np.nan)
    pos = np.where(acts, tap_pos, 0.0)
    lo = np.where(acts & np.isfinite(tap_min), np.minimum(tap_min, pos), np.minimum(pos, neutral))
    hi = np.where(acts & np.isfinite(tap_max), np.maximum(tap_max, pos), np.maximum(pos, neutral))
    v_tap_side = np.where(tap_hv, layout.trafo_vn_hv_kv, layout.trafo_vn_lv_kv) * 1e3
    trafos = initialize_array("input", "transformer", len(trafo))
    trafos["id"] = layout.trafo_id
    trafos["from_node"] = node_of_bus[layout.trafo_hv]
    trafos["to_node"] = node_of_bus[layout.trafo_lv]
    trafos["from_status"] = t_in & trafo_hv_ok & bus_in[layout.trafo_hv]
    trafos["to_status"] = t_in & trafo_lv_ok & bus_in[layout.trafo_lv]
    trafos["u1"] = layout.trafo_vn_hv_kv * 1e3
    trafos["u2"] = layout.trafo_vn_lv_kv * 1e3
    trafos["sn"] = sn_va
    trafos["uk"] = _float(trafo.vk_percent) / 100
    trafos["pk"] = _float(trafo.vkr_percent) / 100 * sn_va
    trafos["i0"] = _float(trafo.i0_percent) / 100
    trafos["p0"] = _float(trafo.pfe_kw) * 1e3 * par_t
    trafos["winding_from"] = w_from
    trafos["winding_to"] = w_to
    trafos["clock"] = clock
    trafos["tap_side"] = np.where(tap_hv, 0, 1)
    trafos["tap_pos"] = np.rint(pos)
    trafos["tap_min"] = np.rint(lo)
    trafos["tap_max"] = np.rint(hi)
    trafos["tap_nom"] = np.rint(neutral)
    trafos["tap_size"] = v_tap_side * step / 100

    eg = net.ext_grid
    sources = initialize_array("input", "source", len(eg))
    sources["id"] = layout.source_id
    sources["node"] = node_of_bus[layout.ext_grid_bus]
    sources["status"] = _bool(eg.in_service) & bus_in[layout.ext_grid_bus]
    sources["u_ref"] = _float(eg.vm_pu, 1.0)
    sources["u_ref_angle"] = np.deg2rad(_float(eg.va_degree))
    sources["sk"] = SOURCE_SK_VA
    sources["rx_ratio"] = 0.1

    load = net.load
    n_load = len(layout.load_index)
    storage = net.storage if "storage" in net else None
    n_sto = len(layout.storage_index)
    n_zip = layout.n_zip
    sym_load = initialize_array("input", "sym_load", n_load + n_sto + 3 * n_zip)
    sym_load["type"] = LoadGenType.const_power
    rows = slice(0, n_load)
    sym_load["id"][rows] = layout.load_id
    sym_load["node"][rows] = node_of_bus[layout.load_bus]
    sym_load["status"][rows] = _bool(load.in_service) & bus_in[layout.load_bus]
    sym_load["p_specified"][rows] = _float(load.p_mw) * layout.load_scaling * 1e6
    sym_load["q_specified"][rows] = _float(load.q_mvar) * layout.load_scaling * 1e6
    if storage is not None and n_sto:
        rows = slice(n_load, n_load + n_sto)
        sym_load["id"][rows] = layout.storage_id
        sym_load["node"][rows] = node_of_bus[layout.storage_bus]
        sym_load["status"][rows] = _bool(storage.in_service) & bus_in[layout.storage_bus]
        sym_load["p_specified"][rows] = _float(storage.p_mw) * layout.storage_scaling * 1e6
        sym_load["q_specified"][rows] = _float(storage.q_mvar) * layout.storage_scaling * 1e6
    # ZIP parts per voltage-dependent bus; their powers are set with every batch update
    zip_types = (LoadGenType.const_power, LoadGenType.const_current, LoadGenType.const_impedance)
    for part, load_type in enumerate(zip_types):
        rows = slice(n_load + n_sto + part * n_zip, n_load + n_sto + (part + 1) * n_zip)
        sym_load["id"][rows] = layout.zip_id[part]
        sym_load["node"][rows] = node_of_bus[layout.zip_bus_pos]
        sym_load["status"][rows] = True
        sym_load["type"][rows] = load_type
        sym_load["p_specified"][rows] = 0.0
        sym_load["q_specified"][rows] = 0.0

    sgen = net.sgen
    n_sgen = len(layout.sgen_index)
    sym_gen = initialize_array("input", "sym_gen", n_sgen + layout.n_bus)
    sym_gen["id"][:n_sgen] = layout.sgen_id
    sym_gen["node"][:n_sgen] = node_of_bus[layout.sgen_bus]
    sym_gen["status"][:n_sgen] = _bool(sgen.in_service) & bus_in[layout.sgen_bus]
    sym_gen["p_specified"][:n_sgen] = _float(sgen.p_mw) * layout.sgen_scaling * 1e6
    sym_gen["q_specified"][:n_sgen] = _float(sgen.q_mvar) * layout.sgen_scaling * 1e6
    sym_gen["id"][n_sgen:] = layout.probe_id
    sym_gen["node"][n_sgen:] = node_of_bus
    sym_gen["status"][n_sgen:] = bus_in
    sym_gen["p_specified"][n_sgen:] = 0.0
    sym_gen["q_specified"][n_sgen:] = 0.0
    sym_gen["type"] = LoadGenType.const_power

    data: dict[str, np.ndarray] = {
        "node": nodes,
        "line": lines,
        "transformer": trafos,
        "source": sources,
        "sym_load": sym_load,
        "sym_gen": sym_gen,
    }
    if len(layout.shunt_index):
        shunt = net.shunt
        vn_v = _float(shunt.vn_kv) * 1e3
        steps = _float(shunt.get("step", pd.Series(1.0, shunt.index)), 1.0)
        shunts = initialize_array("input", "shunt", len(shunt))
        shunts["id"] = layout.shunt_id
        shunts["node"] = node_of_bus[layout.shunt_bus]
        shunts["status"] = _bool(shunt.in_service) & bus_in[layout.shunt_bus]
        # pandapower gives the shunt's consumption at vn_kv (load convention): S = V² · conj(Y)
        shunts["g1"] = _float(shunt.p_mw) * 1e6 * steps / vn_v**2
        shunts["b1"] = -_float(shunt.q_mvar) * 1e6 * steps / vn_v**2
        shunts["g0"] = shunts["g1"]
        shunts["b0"] = shunts["b1"]
        data["shunt"] = shunts
    return ModelInput(
        data=data,
        node_of_bus=node_of_bus,
        bus_active=bus_in[node_of_bus] & bus_in,
        line_active=line_in & (lf | lt),
        trafo_active=t_in & (trafos["from_status"].astype(bool) | trafos["to_status"].astype(bool)),
    )
