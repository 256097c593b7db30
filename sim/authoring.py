"""Writing scenario files: a small TOML writer for the scenario's shape and the ``expected``
entries of a residual proof, so a generated file and a hand-written one read the same."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from sim.residual import ResidualProof

__all__ = ["expected_entries", "to_toml"]


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = repr(value)
        return text if ("." in text or "e" in text or "inf" in text) else text + ".0"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, Sequence):
        return "[" + ", ".join(_scalar(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as a TOML value")


def _is_table(value: Any) -> bool:
    return isinstance(value, Mapping)


def _is_table_array(value: Any) -> bool:
    return (
        isinstance(value, Sequence)
        and not isinstance(value, str)
        and len(value) > 0
        and all(isinstance(v, Mapping) for v in value)
    )


def _emit(table: Mapping[str, Any], prefix: str, out: list[str]) -> None:
    for key, value in table.items():
        if value is None or _is_table(value) or _is_table_array(value):
            continue
        out.append(f"{key} = {_scalar(value)}")
    for key, value in table.items():
        name = f"{prefix}.{key}" if prefix else key
        if _is_table(value):
            out.append("")
            out.append(f"[{name}]")
            _emit(value, name, out)
        elif _is_table_array(value):
            for item in value:
                out.append("")
                out.append(f"[[{name}]]")
                _emit(item, name, out)


def to_toml(document: Mapping[str, Any], header: str = "") -> str:
    """The TOML text of a scenario-shaped document (scalars, tables, arrays of tables).

    ``header``: comment lines written first (without the ``#``).
    """
    out = [f"# {line}".rstrip() for line in header.splitlines()]
    if out:
        out.append("")
    _emit(document, "", out)
    return "\n".join(out).strip() + "\n"


def expected_entries(proof: ResidualProof, why: Mapping[str, str]) -> list[dict[str, Any]]:
    """The ``expected`` entries of what remains, each with its ``why``: ``why`` maps an element
    (``'line:164'``) or a kind (``'voltage_high'``) to the explanation."""
    out = []
    for kind, element, first, last in proof.remaining_entries():
        text = why.get(element) or why.get(kind)
        if not text:
            raise KeyError(f"no explanation for {kind} at {element}")
        out.append(
            {"kind": kind, "element": element, "mtu_from": first, "mtu_to": last, "why": text}
        )
    return out
