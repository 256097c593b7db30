"""Loading a grid: a SimBench code or a pandapower JSON file, checked before it is used."""

from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandapower as pp
import pandas as pd

__all__ = ["DEFAULT_GRID", "GridFileError", "load_grid", "normalise_taps", "validate_net"]

log = logging.getLogger(__name__)

DEFAULT_GRID = "1-MVLV-semiurb-5.220-2-sw"
"""SimBench MV/LV semi-urban grid, high-DER scenario (2), with switches: the embedded default."""

_MAX_LISTED = 12


class GridFileError(ValueError):
    """A grid that cannot be used: unknown SimBench code, unreadable file, or broken tables.

    The message names the source and every problem found (up to a dozen), e.g.
    ``grid.json: line 12: to_bus 999 is not a bus``.
    """


def load_grid(name_or_path: str | os.PathLike[str], *, fix_taps: bool = True) -> pp.pandapowerNet:
    """Load a grid as a pandapower net and check it.

    Args:
        name_or_path: a SimBench code (``"1-MVLV-semiurb-5.220-2-sw"``, loaded through
            ``simbench.get_simbench_net``; the data ships in the simbench wheel) or the path of a
            pandapower JSON file (``pandapower.to_json``). A string that names an existing file,
            or ends in ``.json``, is a path.
        fix_taps: apply :func:`normalise_taps` (default), so that tap positions act in pandapower
            ≥ 3 as they did before. SimBench nets need it: their transformers have tap steps but
            no ``tap_changer_type``, and pandapower 3 then silently ignores ``tap_pos``.

    Returns:
        The net, validated by :func:`validate_net`.

    Raises:
        GridFileError: unknown SimBench code, missing or unreadable file, JSON that is not a
            pandapower net, or tables that do not hold together (the message names each problem).
    """
    source = os.fspath(name_or_path)
    path = Path(source)
    if path.is_file() or path.suffix.lower() == ".json":
        net = _load_json(path)
    else:
        net = _load_simbench(source)
    if fix_taps:
        normalise_taps(net)
    problems = validate_net(net)
    if problems:
        raise GridFileError(_problem_message(source, problems))
    return net


def _load_simbench(code: str) -> pp.pandapowerNet:
    import simbench

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            net = simbench.get_simbench_net(code)
    except (ValueError, KeyError, IndexError, FileNotFoundError) as exc:
        raise GridFileError(
            f"{code!r} is neither a grid file nor a known SimBench code "
            f"(like {DEFAULT_GRID!r}): {exc}"
        ) from exc
    return net


def _load_json(path: Path) -> pp.pandapowerNet:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise GridFileError(f"{path}: no such grid file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise GridFileError(f"{path}: cannot read the grid file: {exc}") from exc
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise GridFileError(
            f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})"
        ) from exc
    if not isinstance(doc, dict) or doc.get("_class") != "pandapowerNet":
        kind = type(doc).__name__ if not isinstance(doc, dict) else f"object {doc.get('_class')!r}"
        raise GridFileError(
            f"{path}: not a pandapower net (pandapower.to_json writes an object with "
            f'"_class": "pandapowerNet"; this file holds a JSON {kind})'
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            net = pp.from_json_string(text)
    except Exception as exc:  # pandapower raises anything from KeyError to UserWarning here
        raise GridFileError(f"{path}: pandapower cannot read this net: {exc}") from exc
    if not isinstance(net, pp.pandapowerNet):
        raise GridFileError(f"{path}: pandapower read a {type(net).__name__}, not a net")
    return net


def _problem_message(source: str, problems: list[str]) -> str:
    listed = problems[:_MAX_LISTED]
    more = len(problems) - len(listed)
    tail = f"\n  … and {more} more" if more > 0 else ""
    return f"{source}: the grid is not usable:\n  " + "\n  ".join(listed) + tail


def normalise_taps(net: pp.pandapowerNet) -> list[int]:
    """Give ratio tap changers their type, so that ``tap_pos`` acts in pandapower ≥ 3.

    pandapower 3 applies a transformer's tap position only when ``tap_changer_type`` is
    ``"Ratio"``, ``"Symmetrical"``, ``"Ideal"`` or ``"Tabular"``; with ``None`` (what SimBench and
    older files give) the tap is ignored without a warning. A transformer with a tap step in
    percent and no phase step is a ratio tap changer, so it gets ``"Ratio"``.

    Returns:
        The trafo indices changed (the net is changed in place).
    """
    trafo = net.trafo
    if trafo.empty or "tap_step_percent" not in trafo:
        return []
    if "tap_changer_type" not in trafo:
        trafo["tap_changer_type"] = None
    kind = trafo["tap_changer_type"]
    untyped = kind.isna() | (kind.astype(str).str.strip().isin(["", "None", "nan"]))
    step = pd.to_numeric(trafo["tap_step_percent"], errors="coerce")
    degree = pd.to_numeric(trafo.get("tap_step_degree", 0.0), errors="coerce")
    if not isinstance(degree, pd.Series):
        degree = pd.Series(degree, index=trafo.index)
    ratio = untyped & step.notna() & (step != 0) & (degree.isna() | (degree == 0))
    changed = [int(i) for i in trafo.index[ratio]]
    if changed:
        trafo["tap_changer_type"] = trafo["tap_changer_type"].astype(object)
        trafo.loc[ratio, "tap_changer_type"] = "Ratio"
        log.info("tap_changer_type set to 'Ratio' on trafos %s", changed)
    return changed


def _show(value: Any) -> str:
    """A table value as the user wrote it (``999``, not ``np.uint32(999)``)."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def _active(table: pd.DataFrame) -> pd.Series:
    if "in_service" not in table:
        return pd.Series(True, index=table.index)
    return table["in_service"].fillna(False).astype(bool)


def validate_net(net: Any) -> list[str]:
    """Check that a net's tables hold together well enough for a power flow.

    Checks what a power flow needs and pandapower would only report with an obscure traceback:
    the tables exist with their columns; every element refers to an existing bus; nominal
    voltages, ratings and impedances are finite and positive where they must be; there is an
    in-service ``ext_grid``; every switch refers to an existing element of its kind, and a line
    or trafo switch sits at one of that element's ends.

    Returns:
        One line per problem, naming table, index and column (empty when the net is usable).
    """
    if not isinstance(net, pp.pandapowerNet):
        return [f"not a pandapower net but a {type(net).__name__}"]
    problems: list[str] = []
    required: dict[str, tuple[str, ...]] = {
        "bus": ("vn_kv", "in_service"),
        "ext_grid": ("bus", "vm_pu", "va_degree", "in_service"),
        "line": (
            "from_bus",
            "to_bus",
            "length_km",
            "r_ohm_per_km",
            "x_ohm_per_km",
            "c_nf_per_km",
            "max_i_ka",
            "parallel",
            "df",
            "in_service",
        ),
        "trafo": (
            "hv_bus",
            "lv_bus",
            "sn_mva",
            "vn_hv_kv",
            "vn_lv_kv",
            "vk_percent",
            "vkr_percent",
            "pfe_kw",
            "i0_percent",
            "shift_degree",
            "in_service",
        ),
        "load": ("bus", "p_mw", "q_mvar", "in_service"),
        "sgen": ("bus", "p_mw", "q_mvar", "in_service"),
        "switch": ("bus", "element", "et", "closed"),
    }
    optional = {"storage": ("bus", "p_mw", "q_mvar", "in_service")}
    for table, cols in {**required, **optional}.items():
        if table not in net:
            if table in required:
                problems.append(f"table {table!r} is missing")
            continue
        df = net[table]
        if not isinstance(df, pd.DataFrame):
            problems.append(f"{table!r} is not a table but a {type(df).__name__}")
            continue
        missing = [c for c in cols if c not in df.columns]
        if missing:
            problems.append(f"{table}: missing column(s) {', '.join(missing)}")
    if problems:
        return problems

    buses = net.bus.index
    if not buses.is_unique:
        problems.append("bus: the index has duplicates")
    vn_kv = pd.to_numeric(net.bus.vn_kv, errors="coerce").to_numpy(dtype=float)
    bad_vn = net.bus.index[~(np.isfinite(vn_kv) & (vn_kv > 0))]
    problems += [
        f"bus {b}: vn_kv {_show(net.bus.at[b, 'vn_kv'])} is not a positive number" for b in bad_vn
    ]

    def check_bus_refs(table: str, cols: tuple[str, ...]) -> None:
        df = net[table]
        for col in cols:
            bad = ~df[col].isin(buses)
            problems.extend(
                f"{table} {i}: {col} {_show(df.at[i, col])} is not a bus" for i in df.index[bad]
            )

    def check_numbers(table: str, cols: tuple[str, ...], positive: bool) -> None:
        df = net[table]
        active = _active(df).to_numpy()
        for col in cols:
            values = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float)
            ok = np.isfinite(values) & ((values > 0) if positive else np.ones_like(values, bool))
            what = "a positive number" if positive else "a number"
            problems.extend(
                f"{table} {i}: {col} {_show(df.at[i, col])} is not {what}"
                for i in df.index[active & ~ok]
            )

    check_bus_refs("ext_grid", ("bus",))
    check_numbers("ext_grid", ("vm_pu",), positive=True)
    check_numbers("ext_grid", ("va_degree",), positive=False)
    if not _active(net.ext_grid).any():
        problems.append("ext_grid: no in-service external grid (the power flow needs a slack)")

    check_bus_refs("line", ("from_bus", "to_bus"))
    check_numbers("line", ("length_km", "max_i_ka", "parallel", "df"), positive=True)
    check_numbers("line", ("r_ohm_per_km", "x_ohm_per_km", "c_nf_per_km"), positive=False)

    check_bus_refs("trafo", ("hv_bus", "lv_bus"))
    check_numbers("trafo", ("sn_mva", "vn_hv_kv", "vn_lv_kv", "vk_percent"), positive=True)
    check_numbers("trafo", ("vkr_percent", "pfe_kw", "i0_percent", "shift_degree"), positive=False)

    for table in ("load", "sgen", "storage"):
        if table in net:
            check_bus_refs(table, ("bus",))
            check_numbers(table, ("p_mw", "q_mvar"), positive=False)

    sw = net.switch
    check_bus_refs("switch", ("bus",))
    bad_et = ~sw.et.isin(["b", "l", "t"])
    problems.extend(
        f"switch {i}: et {_show(sw.at[i, 'et'])} is not 'b', 'l' or 't'" for i in sw.index[bad_et]
    )
    ends = {
        "b": None,
        "l": (net.line, "from_bus", "to_bus"),
        "t": (net.trafo, "hv_bus", "lv_bus"),
    }
    for i, row in sw[~bad_et].iterrows():
        spec = ends[row.et]
        if spec is None:
            if row.element not in buses:
                problems.append(f"switch {i}: element {_show(row.element)} is not a bus")
            continue
        table, a, b = spec
        kind = "line" if row.et == "l" else "trafo"
        if row.element not in table.index:
            problems.append(f"switch {i}: element {_show(row.element)} is not a {kind}")
        elif row.bus not in (table.at[row.element, a], table.at[row.element, b]):
            problems.append(f"switch {i}: bus {row.bus} is not an end of {kind} {row.element}")
    return problems
