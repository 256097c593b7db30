"""Load and generation scenarios: what a batch power flow is asked to compute."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import pandapower as pp
from numpy.typing import ArrayLike, NDArray

__all__ = ["Injections"]

_TABLE_OF = {
    "load_p_mw": ("load", "p_mw"),
    "load_q_mvar": ("load", "q_mvar"),
    "sgen_p_mw": ("sgen", "p_mw"),
    "sgen_q_mvar": ("sgen", "q_mvar"),
    "storage_p_mw": ("storage", "p_mw"),
    "storage_q_mvar": ("storage", "q_mvar"),
}


@dataclass(frozen=True)
class Injections:
    """Active and reactive power of every load, sgen and storage, per scenario.

    Each field is an array ``[scenario, element]`` in the row order of the pandapower table
    (``net.load``, ``net.sgen``, ``net.storage``), or ``None`` for "the value in the table"
    (broadcast to every scenario). The values are what would be written into the table's
    ``p_mw`` / ``q_mvar`` columns: pandapower's ``scaling`` column still applies on top, and the
    sign conventions are pandapower's:

    - load and storage: load convention, ``p_mw > 0`` consumes (a storage charges);
    - sgen: generator convention, ``p_mw > 0`` injects.

    ``steps`` optionally labels the scenarios (e.g. the quarter-hour index of a profile year).
    """

    load_p_mw: NDArray[np.float64] | None = None
    load_q_mvar: NDArray[np.float64] | None = None
    sgen_p_mw: NDArray[np.float64] | None = None
    sgen_q_mvar: NDArray[np.float64] | None = None
    storage_p_mw: NDArray[np.float64] | None = None
    storage_q_mvar: NDArray[np.float64] | None = None
    steps: NDArray[np.int64] | None = None

    def __post_init__(self) -> None:
        n: int | None = None
        for name in _TABLE_OF:
            value = getattr(self, name)
            if value is None:
                continue
            arr = np.array(value, dtype=np.float64)
            if arr.ndim == 1:
                arr = arr[np.newaxis, :]
            if arr.ndim != 2:
                raise ValueError(f"{name} must be [scenario, element], got shape {arr.shape}")
            if n is not None and arr.shape[0] != n:
                raise ValueError(f"{name} has {arr.shape[0]} scenarios, another field has {n}")
            n = arr.shape[0]
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)
        if self.steps is not None:
            steps = np.asarray(self.steps, dtype=np.int64).reshape(-1)
            if n is not None and len(steps) != n:
                raise ValueError(f"steps has {len(steps)} labels for {n} scenarios")
            object.__setattr__(self, "steps", steps)

    @property
    def n_scenarios(self) -> int:
        """Number of scenarios (1 when every field is ``None``)."""
        for name in _TABLE_OF:
            value = getattr(self, name)
            if value is not None:
                return int(value.shape[0])
        return 1 if self.steps is None else len(self.steps)

    def __len__(self) -> int:
        return self.n_scenarios

    def select(self, scenarios: ArrayLike | slice) -> Injections:
        """The scenarios at these positions (an index array, a list or a slice)."""
        pick: Any = scenarios if isinstance(scenarios, slice) else np.asarray(scenarios)
        kw: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            kw[f.name] = None if value is None else value[pick]
        return Injections(**kw)

    def resolved(self, net: pp.pandapowerNet) -> dict[str, NDArray[np.float64]]:
        """Every field as a full ``[scenario, element]`` array, ``None`` filled from ``net``.

        Raises:
            ValueError: an array's element count differs from the table's row count.
        """
        n = self.n_scenarios
        out: dict[str, NDArray[np.float64]] = {}
        for name, (table, col) in _TABLE_OF.items():
            df = net.get(table)
            n_elem = 0 if df is None else len(df)
            value = getattr(self, name)
            if value is None:
                row = (
                    np.zeros(0) if df is None else np.nan_to_num(df[col].to_numpy(dtype=np.float64))
                )
                out[name] = np.broadcast_to(row, (n, n_elem))
            else:
                if value.shape[1] != n_elem:
                    raise ValueError(
                        f"{name} has {value.shape[1]} columns, net.{table} has {n_elem} rows"
                    )
                out[name] = value
        return out
