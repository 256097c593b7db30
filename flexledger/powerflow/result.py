"""Results of a batch of power flows, per scenario, indexed like the pandapower tables."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from flexledger.powerflow.config import GridConfig

__all__ = ["BatchResult", "NotConvergedError"]


class NotConvergedError(RuntimeError):
    """Raised by :meth:`BatchResult.require_converged` when some scenarios did not converge."""

    def __init__(self, scenarios: list[int], messages: list[str]) -> None:
        self.scenarios = scenarios
        self.messages = messages
        shown = ", ".join(map(str, scenarios[:10])) + (" …" if len(scenarios) > 10 else "")
        super().__init__(f"{len(scenarios)} scenario(s) did not converge: {shown}")


@dataclass(frozen=True)
class BatchResult:
    """Power-flow results of many scenarios of one grid configuration.

    Arrays are ``[scenario, element]``; the element axis follows the pandapower table's row order,
    whose index values are in ``bus_index``, ``line_index``, ``trafo_index``, ``ext_grid_index``.
    A scenario that did not converge has ``converged[s] == False`` and NaN everywhere in row
    ``s``. A bus that is out of service or not supplied (islanded by open switches) is NaN, as in
    pandapower's ``res_bus``; so are out-of-service or unsupplied lines and trafos (a line fed from
    one end only, its other end open, carries its charging current and is not NaN).

    Units and conventions (pandapower's):

    - ``vm_pu``: voltage magnitude, p.u. of the bus's ``vn_kv``;
    - ``va_degree``: voltage angle, degrees, including transformer phase shifts (e.g. −150° on the
      LV side of a Dyn5 transformer), in (−180, 180];
    - ``line_loading_percent``: ``max(i_from, i_to) / (max_i_ka × df × parallel) × 100``;
    - ``line_i_ka``: ``max(i_from, i_to)``, kA;
    - ``trafo_loading_percent``: ``max(i_hv × vn_hv_kv, i_lv × vn_lv_kv) × √3 / (sn_mva × parallel
      × df) × 100`` (pandapower's default ``trafo_loading="current"``: rated voltages, actual
      currents);
    - ``ext_grid_p_mw``, ``ext_grid_q_mvar``: power the external grid supplies (positive when the
      grid imports from it, negative when it feeds back).
    """

    config: GridConfig
    bus_index: NDArray[np.int64]
    line_index: NDArray[np.int64]
    trafo_index: NDArray[np.int64]
    ext_grid_index: NDArray[np.int64]
    vm_pu: NDArray[np.float64]
    va_degree: NDArray[np.float64]
    line_loading_percent: NDArray[np.float64]
    line_i_ka: NDArray[np.float64]
    trafo_loading_percent: NDArray[np.float64]
    ext_grid_p_mw: NDArray[np.float64]
    ext_grid_q_mvar: NDArray[np.float64]
    converged: NDArray[np.bool_]
    errors: tuple[str, ...] = ()
    steps: NDArray[np.int64] | None = None

    @property
    def n_scenarios(self) -> int:
        return int(self.vm_pu.shape[0])

    @property
    def all_converged(self) -> bool:
        return bool(self.converged.all())

    def require_converged(self) -> BatchResult:
        """This result, or :class:`NotConvergedError` naming the scenarios that failed."""
        if not self.all_converged:
            failed = np.flatnonzero(~self.converged).tolist()
            raise NotConvergedError(failed, list(self.errors))
        return self

    def frame(self, quantity: str) -> pd.DataFrame:
        """One quantity as a DataFrame: rows = scenarios (``steps`` if set), columns = indices.

        ``quantity`` is a field name such as ``"vm_pu"`` or ``"line_loading_percent"``.
        """
        values = getattr(self, quantity)
        columns = {
            "vm_pu": self.bus_index,
            "va_degree": self.bus_index,
            "line_loading_percent": self.line_index,
            "line_i_ka": self.line_index,
            "trafo_loading_percent": self.trafo_index,
            "ext_grid_p_mw": self.ext_grid_index,
            "ext_grid_q_mvar": self.ext_grid_index,
        }[quantity]
        index = self.steps if self.steps is not None else np.arange(self.n_scenarios)
        return pd.DataFrame(values, index=index, columns=columns)
