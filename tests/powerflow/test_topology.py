"""Radiality, supply and parallel transformers for switching remedies."""

from __future__ import annotations

import numpy as np
import pandapower as pp

from flexledger.powerflow import (
    BatchPowerFlow,
    GridConfig,
    is_radial,
    meshes,
    parallel_trafo_groups,
    unsupplied_buses,
)


def test_default_grid_is_radial_with_parallel_trafos(net: pp.pandapowerNet) -> None:
    # the two 110/20 kV trafos run in parallel between bus-bar pairs joined by switches:
    # that is one connection, not a mesh
    assert is_radial(net)
    assert parallel_trafo_groups(net) == [[0, 1], [2]]
    assert unsupplied_buses(net) == set()


def test_closing_a_tie_point_makes_a_mesh(net: pp.pandapowerNet) -> None:
    ties = net.switch.index[(net.switch.et == "l") & ~net.switch.closed]
    closed_tie = {int(ties[0]): True}
    assert not is_radial(net, closed_tie)
    loops = meshes(net, GridConfig(switches=closed_tie))
    assert len(loops) == 1 and len(loops[0]) > 3
    assert not is_radial(net, {int(t): True for t in ties})
    assert len(meshes(net, {int(t): True for t in ties})) == len(ties)
    # the caller's net is untouched
    assert not net.switch.loc[ties, "closed"].any()


def test_opening_a_feeder_switch_leaves_buses_unsupplied(
    net: pp.pandapowerNet, grid: BatchPowerFlow
) -> None:
    sw = net.switch[(net.switch.et == "l") & net.switch.closed]
    cut = int(sw.index[40])
    lost = unsupplied_buses(net, {cut: False})
    assert lost and is_radial(net, {cut: False})
    # the power flow agrees on which buses went dark
    result = grid.run(config=GridConfig(switches={cut: False}))
    assert set(result.bus_index[np.isnan(result.vm_pu[0])].tolist()) == lost
