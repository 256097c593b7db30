"""Topology checks for switching remedies: radiality, supply, parallel transformers."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import networkx as nx
import pandapower as pp
import pandapower.topology as top

from flexledger.powerflow.config import GridConfig

__all__ = ["is_radial", "meshes", "parallel_trafo_groups", "unsupplied_buses"]


def _with_switches(
    net: pp.pandapowerNet, switches: Mapping[int, bool] | GridConfig | None
) -> pp.pandapowerNet:
    states = switches.switches if isinstance(switches, GridConfig) else dict(switches or {})
    if not states:
        return net
    unknown = [s for s in states if s not in net.switch.index]
    if unknown:
        raise KeyError(f"switch {unknown[0]} is not in the grid")
    view = copy.copy(net)  # shallow: only the switch table is replaced
    table = net.switch.copy()
    for switch, closed in states.items():
        table.at[switch, "closed"] = bool(closed)
    view["switch"] = table
    return view


def _fused_graph(net: pp.pandapowerNet) -> tuple[nx.Graph, dict[Any, Any], list[tuple[Any, ...]]]:
    """In-service topology with closed bus-bus switches contracted and parallel branches merged.

    Returns the simple graph, the bus → fused-node map and the branches ``(bus, bus, key)`` that
    close on themselves after fusing (a branch between two buses joined by a bus-bus switch).
    """
    multi = top.create_nxgraph(net, respect_switches=True, include_out_of_service=False)
    fused: nx.utils.UnionFind = nx.utils.UnionFind(multi.nodes)
    branches = []
    for a, b, key in multi.edges(keys=True):
        if key[0] == "switch":
            fused.union(a, b)
        else:
            branches.append((a, b, key))
    node_of = {bus: fused[bus] for bus in multi.nodes}
    simple = nx.Graph()
    simple.add_nodes_from(set(node_of.values()))
    self_loops = []
    for a, b, key in branches:
        u, v = node_of[a], node_of[b]
        if u == v:
            self_loops.append((a, b, key))
        else:
            simple.add_edge(u, v)
    return simple, node_of, self_loops


def is_radial(
    net: pp.pandapowerNet, switches: Mapping[int, bool] | GridConfig | None = None
) -> bool:
    """Whether the grid has no meshes with these switch states (see :func:`meshes`).

    Args:
        net: the pandapower net (not modified).
        switches: switch index → closed, overriding ``net.switch.closed`` (or a
            :class:`GridConfig`, whose switch states are used).

    A radial grid may still leave buses unsupplied; check :func:`unsupplied_buses` as well.
    """
    return not meshes(net, switches)


def meshes(
    net: pp.pandapowerNet, switches: Mapping[int, bool] | GridConfig | None = None
) -> list[list[int]]:
    """The independent loops of the in-service grid, each as the pandapower buses on it.

    Built with ``pandapower.topology.create_nxgraph(respect_switches=True)``, then: buses joined
    by a closed bus-bus switch count as one node, and parallel branches between the same two
    nodes (parallel transformers in a substation, double cables) count as one connection — they
    do not make a distribution grid meshed. Each loop is reported by one representative bus per
    fused node, in loop order; a branch whose two ends are fused by a bus-bus switch is a loop of
    its own, reported as its two end buses.
    """
    simple, _, self_loops = _fused_graph(_with_switches(net, switches))
    loops = [[int(n) for n in cycle] for cycle in nx.cycle_basis(simple)]
    loops.extend([int(a), int(b)] for a, b, _ in self_loops)
    return loops


def unsupplied_buses(
    net: pp.pandapowerNet, switches: Mapping[int, bool] | GridConfig | None = None
) -> set[int]:
    """In-service buses with no path to an in-service ext_grid under these switch states."""
    view = _with_switches(net, switches)
    return {int(b) for b in top.unsupplied_buses(view, respect_switches=True)}


def parallel_trafo_groups(
    net: pp.pandapowerNet, switches: Mapping[int, bool] | GridConfig | None = None
) -> list[list[int]]:
    """Groups of in-service trafos that connect the same two (fused) buses, i.e. run in parallel.

    An OLTC remedy moves a group's taps together, or the parallel transformers circulate reactive
    power between them. Singletons are included, so every in-service trafo is in exactly one
    group; groups and their members are sorted by trafo index.
    """
    _, node_of, _ = _fused_graph(_with_switches(net, switches))
    groups: dict[tuple[Any, Any], list[int]] = {}
    trafo = net.trafo[net.trafo.in_service.fillna(False).astype(bool)]
    for idx, hv, lv in zip(trafo.index, trafo.hv_bus, trafo.lv_bus, strict=True):
        key = (node_of.get(hv, ("bus", hv)), node_of.get(lv, ("bus", lv)))
        groups.setdefault(key, []).append(int(idx))
    return sorted(sorted(g) for g in groups.values())
