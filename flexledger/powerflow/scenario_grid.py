"""The scenario's grid: its SimBench code (or pandapower JSON) with the scenario's stated changes.

One helper, shared by everyone who needs "the grid of this scenario": the world (``sim``) for the
grid's true state and the DSO for its model. Both must read the same changes the same way, so
they live here (floor 2), not in either actor.

What each :class:`flexledger.scenario.GridChange` kind does (pandapower units, in place):

- ``scale_sgen`` / ``scale_load``: multiply ``p_mw``, ``q_mvar`` and ``sn_mva`` of the sgens /
  loads named in ``elements`` and of every one at ``buses`` by ``factor``. SimBench profiles are
  relative, so the profiles scale with them.
- ``set_line_max_i``: ``max_i_ka`` of the lines in ``elements`` to ``value`` (kA).
- ``set_trafo_tap``: ``tap_pos`` of the trafos in ``elements`` to ``value`` (a whole number).
- ``add_sgen``: a PV generator of ``value`` MW rated power at each bus of ``buses``, with the PV
  profile most common in the grid (``type = "PV"``, ``q_mvar = 0``), named
  ``"scenario PV <bus>"``. Added rows take the next free sgen indices, in the order given.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandapower as pp
import pandas as pd

from flexledger.powerflow.grid_io import GridFileError, load_grid, validate_net
from flexledger.powerflow.profiles import clear_profile_cache
from flexledger.scenario import GridChange, GridSpec, Scenario

__all__ = ["apply_grid_changes", "scenario_grid"]

log = logging.getLogger(__name__)


def scenario_grid(
    scenario: Scenario | GridSpec, *, base_dir: str | os.PathLike[str] | None = None
) -> pp.pandapowerNet:
    """Load the scenario's grid and apply its stated changes.

    Args:
        scenario: the scenario (or only its ``grid`` section).
        base_dir: folder a relative JSON ``source`` is resolved against (the scenario file's
            folder); a SimBench code needs none.

    Returns:
        The changed, validated pandapower net (with its SimBench profiles, if any).

    Raises:
        GridFileError: the source cannot be loaded, a change names an element or bus that is not
            in the grid or lacks the value it needs, or the changed net does not validate.
    """
    spec = scenario.grid if isinstance(scenario, Scenario) else scenario
    source: str | Path = spec.source
    if base_dir is not None and not Path(spec.source).is_absolute():
        candidate = Path(base_dir) / spec.source
        if candidate.is_file():
            source = candidate
    net = load_grid(source)
    apply_grid_changes(net, spec.changes, source=str(spec.source))
    return net


def _check_ids(
    table: pd.DataFrame, ids: Iterable[int], what: str, source: str, i: int
) -> list[int]:
    ids = [int(x) for x in ids]
    missing = [x for x in ids if x not in table.index]
    if missing:
        raise GridFileError(f"{source}: grid.changes.{i}: {what} {missing} not in the grid")
    return ids


def _need(value: float | None, name: str, source: str, i: int, kind: str) -> float:
    if value is None:
        raise GridFileError(f"{source}: grid.changes.{i} ({kind}) needs '{name}'")
    return float(value)


def apply_grid_changes(
    net: pp.pandapowerNet, changes: Iterable[GridChange], *, source: str = "scenario"
) -> list[str]:
    """Apply a scenario's grid changes to ``net`` in place (see the module docstring).

    Returns:
        One line per change, saying what was changed and why (for logs and reports).

    Raises:
        GridFileError: a change that cannot be applied; the message names ``grid.changes.<i>``.
    """
    done: list[str] = []
    for i, change in enumerate(changes):
        kind = change.kind
        buses = _check_ids(net.bus, change.buses, "bus(es)", source, i)
        if kind in ("scale_sgen", "scale_load"):
            table_name = "sgen" if kind == "scale_sgen" else "load"
            table = net[table_name]
            factor = _need(change.factor, "factor", source, i, kind)
            rows = set(_check_ids(table, change.elements, table_name, source, i))
            rows |= {int(r) for r in table.index[table.bus.isin(buses)]}
            if not rows:
                raise GridFileError(f"{source}: grid.changes.{i} ({kind}) selects no element")
            sel = sorted(rows)
            for col in ("p_mw", "q_mvar", "sn_mva"):
                if col in table:
                    table.loc[sel, col] = table.loc[sel, col].astype(float) * factor
            done.append(f"{kind} x{factor:g} on {table_name} {sel}: {change.reason}")
        elif kind == "set_line_max_i":
            value = _need(change.value, "value", source, i, kind)
            lines = _check_ids(net.line, change.elements, "line(s)", source, i)
            net.line.loc[lines, "max_i_ka"] = value
            done.append(f"max_i_ka {value:g} kA on lines {lines}: {change.reason}")
        elif kind == "set_trafo_tap":
            value = _need(change.value, "value", source, i, kind)
            if value != int(value):
                raise GridFileError(f"{source}: grid.changes.{i}: a tap position is whole")
            trafos = _check_ids(net.trafo, change.elements, "trafo(s)", source, i)
            net.trafo.loc[trafos, "tap_pos"] = float(int(value))
            done.append(f"tap_pos {int(value)} on trafos {trafos}: {change.reason}")
        elif kind == "add_sgen":
            p_mw = _need(change.value, "value", source, i, kind)
            if not buses:
                raise GridFileError(f"{source}: grid.changes.{i} (add_sgen) needs 'buses'")
            pv = net.sgen[net.sgen.get("type", pd.Series(dtype=object)) == "PV"]
            profile = None
            if "profile" in net.sgen and len(pv):
                profile = str(pv.profile.value_counts().index[0])
            for bus in buses:
                idx = pp.create_sgen(
                    net,
                    bus,
                    p_mw=p_mw,
                    q_mvar=0.0,
                    sn_mva=p_mw,
                    name=f"scenario PV {bus}",
                    type="PV",
                )
                if profile is not None:
                    net.sgen.at[idx, "profile"] = profile
                if "scaling" in net.sgen and not np.isfinite(float(net.sgen.at[idx, "scaling"])):
                    net.sgen.at[idx, "scaling"] = 1.0
            done.append(f"add_sgen {p_mw:g} MW ({profile}) at buses {buses}: {change.reason}")
        else:  # pragma: no cover - the scenario schema admits no other kind
            raise GridFileError(f"{source}: grid.changes.{i}: unknown kind {kind!r}")
    for line in done:
        log.info("scenario grid change: %s", line)
    problems = validate_net(net)
    if problems:
        raise GridFileError(
            f"{source}: the changed grid is not usable:\n  " + "\n  ".join(problems)
        )
    clear_profile_cache()
    return done
