"""Effectiveness factors against finite differences of full pandapower power flows."""

from __future__ import annotations

import copy

import numpy as np
import pandapower as pp
import pytest

from dso import DsoGrid, GridAssessment, sensitivities
from flexledger.powerflow import Injections, apply_config, voltage_sensitivity

_COLUMNS = {
    "load_p_mw": ("load", "p_mw"),
    "load_q_mvar": ("load", "q_mvar"),
    "sgen_p_mw": ("sgen", "p_mw"),
    "sgen_q_mvar": ("sgen", "q_mvar"),
    "storage_p_mw": ("storage", "p_mw"),
    "storage_q_mvar": ("storage", "q_mvar"),
}


def _pandapower_dv(
    grid: DsoGrid, inj: Injections, config: object, bus: int, pod_buses: list[int], delta_kw: float
) -> np.ndarray:
    """dV at ``bus`` per kW less injected (more consumed) at each POD bus, by ``runpp``."""
    net = apply_config(copy.deepcopy(grid.net), config)  # type: ignore[arg-type]
    values = inj.resolved(net)
    for name, (table, col) in _COLUMNS.items():
        net[table][col] = values[name][0]
    pp.runpp(net, numba=False)
    base = float(net.res_bus.vm_pu[bus])
    probe = pp.create_load(net, pod_buses[0], p_mw=0.0)
    out = []
    for b in pod_buses:
        net.load.at[probe, "bus"] = b
        net.load.at[probe, "p_mw"] = delta_kw / 1000
        pp.runpp(net, numba=False)
        out.append((base - float(net.res_bus.vm_pu[bus])) / delta_kw)
    return np.array(out)


def test_factors_agree_with_pandapower_finite_differences(
    pv_grid: DsoGrid, pv_truth: Injections, pv_assessment: GridAssessment
) -> None:
    """For each request: the factors of its eligible PODs (and of the best one, 1.0) equal the
    voltage change at the critical bus per kW at each POD, from plain pandapower runs with
    10 kW more consumption there, normalised by the best POD — within 0.01."""
    for need in pv_assessment.needs:
        element, _ = need.critical.split("@")
        bus = int(element.split(":")[1])
        t = int(np.flatnonzero(pv_assessment.mtu_start_s == need.factors_at_s)[0])
        pods = list(need.factors)
        config = pv_assessment.remedies.config_of(t)
        dv = _pandapower_dv(
            pv_grid, pv_truth.select([t]), config, bus, [pv_grid.pods[p].bus for p in pods], 10.0
        )
        ref = np.clip(dv / dv.max(), 0, 1)
        assert pods[int(np.argmax(dv))] == need.best_pod
        got = np.array([need.factors[p] for p in pods])
        assert got == pytest.approx(ref, abs=0.01), need.zone


def test_probe_sensitivities_match_powerflow_voltage_sensitivity(
    pv_grid: DsoGrid, pv_truth: Injections
) -> None:
    """The DSO's per-POD sensitivities (its own probes, batched) equal
    ``flexledger.powerflow.voltage_sensitivity`` at the POD buses (1 %)."""
    inj = pv_truth.select([48])
    pods = pv_grid.flexible_pods[:6]
    mine = sensitivities(pv_grid, inj, pods)[0]
    theirs = voltage_sensitivity(pv_grid.pf, inj, [pv_grid.pods[p].bus for p in pods])
    assert mine.dvm_pu_per_kw == pytest.approx(theirs.dvm_pu_per_kw[0], rel=0.01, abs=1e-9)
