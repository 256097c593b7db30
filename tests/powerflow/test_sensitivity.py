"""Voltage sensitivities by batched finite differences agree with full runpp differences."""

from __future__ import annotations

import copy

import numpy as np
import pandapower as pp

from flexledger.powerflow import BatchPowerFlow, Injections, voltage_sensitivity


def test_sensitivities_match_runpp_differences(
    net: pp.pandapowerNet, grid: BatchPowerFlow, mtus: Injections
) -> None:
    noon = mtus.select([4])
    buses = [int(net.load.bus.iloc[200]), int(net.trafo.lv_bus.iloc[-1]), int(net.sgen.bus.iloc[0])]
    sens = voltage_sensitivity(grid, noon, buses, delta_kw=10.0, reactive=True)
    assert sens.dvm_pu_per_kw.shape == (1, len(net.bus), 3)
    assert sens.dvm_pu_per_kvar is not None

    ref = copy.deepcopy(net)
    values = noon.resolved(ref)
    for table in ("load", "sgen", "storage"):
        ref[table]["p_mw"] = values[f"{table}_p_mw"][0]
        ref[table]["q_mvar"] = values[f"{table}_q_mvar"][0]
    pp.runpp(ref)
    vm0 = ref.res_bus.vm_pu.to_numpy().copy()
    np.testing.assert_allclose(sens.base_vm_pu[0], vm0, atol=1e-4)
    for j, bus in enumerate(buses):
        probe = pp.create_sgen(ref, bus, p_mw=0.010)
        pp.runpp(ref)
        expected = (ref.res_bus.vm_pu.to_numpy() - vm0) / 10.0
        ref.sgen.drop(probe, inplace=True)
        got = sens.dvm_pu_per_kw[0, :, j]
        assert np.max(np.abs(got - expected)) <= 1e-3 * np.max(np.abs(expected))
    # injecting in the LV grid raises the voltage there (on the MV bus-bar, in reverse flow
    # through the 110/20 kV trafos, it need not: the trafos' reactive losses grow)
    assert sens.factor(buses[0], buses[0]) > 0 and sens.factor(buses[1], buses[1]) > 0
    assert sens.dvm_pu_per_kvar[0, grid.bus_positions([buses[1]])[0], 1] > 0


def test_many_base_points_in_one_batch(grid: BatchPowerFlow, mtus: Injections) -> None:
    buses = grid.bus_index[[10, 150]]
    sens = voltage_sensitivity(grid, mtus, buses, observe=buses)
    assert sens.dvm_pu_per_kw.shape == (8, 2, 2)
    single = voltage_sensitivity(grid, mtus.select([3]), buses, observe=buses)
    np.testing.assert_allclose(sens.dvm_pu_per_kw[3], single.dvm_pu_per_kw[0], rtol=1e-9)
