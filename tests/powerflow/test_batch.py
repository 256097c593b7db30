"""The batched power flow agrees with plain pandapower runpp, the model of record."""

from __future__ import annotations

import copy

import numpy as np
import pandapower as pp
import pytest

from flexledger.powerflow import (
    BatchPowerFlow,
    BatchResult,
    GridConfig,
    GridModelError,
    Injections,
    NotConvergedError,
    is_radial,
    meshes,
    runpp_loop,
)

VM_TOL_PU = 1e-4
VA_TOL_DEGREE = 1e-2
LOADING_TOL_PERCENT = 1e-2  # percentage points
EXT_GRID_TOL_MW = 1e-3


def assert_agree(ours: BatchResult, ref: BatchResult) -> None:
    """Same converged scenarios, same NaN pattern, values within the stated tolerances."""
    np.testing.assert_array_equal(ours.converged, ref.converged)
    np.testing.assert_array_equal(np.isnan(ours.vm_pu), np.isnan(ref.vm_pu))
    assert np.nanmax(np.abs(ours.vm_pu - ref.vm_pu)) <= VM_TOL_PU
    dva = np.remainder(ours.va_degree - ref.va_degree + 180.0, 360.0) - 180.0
    assert np.nanmax(np.abs(dva)) <= VA_TOL_DEGREE
    np.testing.assert_array_equal(
        np.isnan(ours.line_loading_percent), np.isnan(ref.line_loading_percent)
    )
    assert np.nanmax(np.abs(ours.line_loading_percent - ref.line_loading_percent)) <= (
        LOADING_TOL_PERCENT
    )
    assert np.nanmax(np.abs(ours.trafo_loading_percent - ref.trafo_loading_percent)) <= (
        LOADING_TOL_PERCENT
    )
    assert np.nanmax(np.abs(ours.ext_grid_p_mw - ref.ext_grid_p_mw)) <= EXT_GRID_TOL_MW
    assert np.nanmax(np.abs(ours.ext_grid_q_mvar - ref.ext_grid_q_mvar)) <= EXT_GRID_TOL_MW


def test_batch_agrees_with_runpp_over_a_day(
    net: pp.pandapowerNet, grid: BatchPowerFlow, mtus: Injections
) -> None:
    ours = grid.run(mtus)
    ref = runpp_loop(net, mtus)
    assert ours.all_converged and ours.vm_pu.shape == (8, len(net.bus))
    np.testing.assert_array_equal(ours.bus_index, net.bus.index.to_numpy())
    assert_agree(ours, ref)
    # the high-DER grid really is stressed at the PV peak: the test covers a violation
    assert np.nanmax(ours.vm_pu) > 1.05
    # pandapower's signs: the slack sits at its set-point and supplies the net demand plus losses
    slack = grid.bus_positions(net.ext_grid.bus.to_numpy())
    np.testing.assert_allclose(ours.vm_pu[:, slack[0]], net.ext_grid.vm_pu.iloc[0], atol=1e-9)
    values = mtus.resolved(net)
    demand = values["load_p_mw"].sum(1) + values["storage_p_mw"].sum(1) - values["sgen_p_mw"].sum(1)
    losses = ours.ext_grid_p_mw[:, 0] - demand
    assert np.all(losses > 0) and np.all(losses < 0.05 * values["sgen_p_mw"].sum(1))


def test_tap_change_moves_voltages_and_agrees(
    net: pp.pandapowerNet, grid: BatchPowerFlow, mtus: Injections
) -> None:
    two = mtus.select([0, 4])
    base = grid.run(two)
    # +2 steps on the MV/LV trafo's HV-side tap: higher ratio, lower LV voltage
    lv_trafo = int(net.trafo.index[net.trafo.vn_lv_kv < 1][0])
    lv_buses = grid.bus_positions(net.bus.index[net.bus.vn_kv < 1])
    down = GridConfig(taps={lv_trafo: 2})
    moved = grid.run(two, config=down)
    assert np.all(moved.vm_pu[:, lv_buses] < base.vm_pu[:, lv_buses] - 0.03)
    assert_agree(moved, runpp_loop(net, two, config=down))
    # the two parallel HV/MV trafos together, −3 steps: MV voltages rise
    up = GridConfig(taps={0: -3, 1: -3})
    mv_buses = grid.bus_positions(net.bus.index[net.bus.vn_kv == 20])
    raised = grid.run(two, config=up)
    assert np.all(raised.vm_pu[:, mv_buses] > base.vm_pu[:, mv_buses] + 0.02)
    assert_agree(raised, runpp_loop(net, two, config=up))


def test_switching_agrees_with_runpp(
    net: pp.pandapowerNet, grid: BatchPowerFlow, mtus: Injections
) -> None:
    two = mtus.select([1, 4])
    # open a closed feeder switch: the buses behind it lose supply (NaN in both)
    sw = net.switch[(net.switch.et == "l") & net.switch.closed]
    cut = int(sw.index[40])
    cut_config = GridConfig(switches={cut: False})
    ours = grid.run(two, config=cut_config)
    assert np.isnan(ours.vm_pu).any()
    assert_agree(ours, runpp_loop(net, two, config=cut_config))
    # a remedy-style reconfiguration: close a tie point, open a switch on the loop it makes
    tie = int(net.switch.index[(net.switch.et == "l") & ~net.switch.closed][0])
    loop = meshes(net, {tie: True})[0]
    on_loop = [
        int(i)
        for i, row in sw.iterrows()
        if {net.line.at[row.element, "from_bus"], net.line.at[row.element, "to_bus"]} <= set(loop)
    ]
    moved = GridConfig(switches={tie: True, on_loop[len(on_loop) // 2]: False})
    assert is_radial(net, moved)
    ours = grid.run(two, config=moved)
    assert not np.isnan(ours.vm_pu).any()
    assert_agree(ours, runpp_loop(net, two, config=moved))


def test_configurations_are_cached(grid: BatchPowerFlow, mtus: Injections) -> None:
    first = grid.run(mtus.select([0]), config=GridConfig(taps={2: 1}))
    cached = len(grid._cache)
    again = grid.run(mtus.select([0]), config=GridConfig(taps={2: 1}))
    assert len(grid._cache) == cached
    np.testing.assert_array_equal(first.vm_pu, again.vm_pu)
    assert GridConfig(taps={2: 1}, switches={5: True}) == GridConfig({2: 1}, {5: True})
    with pytest.raises(KeyError, match="trafo 99"):
        grid.run(mtus.select([0]), config=GridConfig(taps={99: 1}))


def test_non_converged_scenarios_are_flagged(grid: BatchPowerFlow, mtus: Injections) -> None:
    assert mtus.load_p_mw is not None and mtus.load_q_mvar is not None
    factor = np.array([[1.0], [100.0]])
    stressed = Injections(
        load_p_mw=mtus.load_p_mw[:2] * factor, load_q_mvar=mtus.load_q_mvar[:2] * factor
    )
    result = grid.run(stressed)
    np.testing.assert_array_equal(result.converged, [True, False])
    assert np.isnan(result.vm_pu[1]).all() and not np.isnan(result.vm_pu[0]).any()
    with pytest.raises(NotConvergedError) as err:
        result.require_converged()
    assert err.value.scenarios == [1]


def test_voltage_dependent_loads_follow_pandapower(net: pp.pandapowerNet, mtus: Injections) -> None:
    zip_net = copy.deepcopy(net)
    zip_net.load["const_z_p_percent"] = 30.0
    zip_net.load["const_i_q_percent"] = 50.0
    two = mtus.select([2, 4])
    assert_agree(BatchPowerFlow(zip_net).run(two), runpp_loop(zip_net, two))


def test_bad_inputs_are_refused(net: pp.pandapowerNet, grid: BatchPowerFlow) -> None:
    with pytest.raises(ValueError, match="columns"):
        grid.run(Injections(load_p_mw=np.zeros((2, 3))))
    with pytest.raises(ValueError, match="scenarios"):
        Injections(load_p_mw=np.zeros((2, len(net.load))), sgen_p_mw=np.zeros((3, len(net.sgen))))
    gen_net = pp.create_empty_network()
    b = pp.create_bus(gen_net, 20.0)
    pp.create_ext_grid(gen_net, b)
    pp.create_gen(gen_net, b, p_mw=1.0)
    with pytest.raises(GridModelError, match="gen"):
        BatchPowerFlow(gen_net)
