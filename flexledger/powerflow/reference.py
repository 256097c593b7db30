"""The reference: plain ``pandapower.runpp``, one scenario at a time."""

from __future__ import annotations

import copy
import logging
import warnings
from typing import Any

import numpy as np
import pandapower as pp

from flexledger.powerflow.config import GridConfig
from flexledger.powerflow.injections import Injections
from flexledger.powerflow.result import BatchResult

__all__ = ["apply_config", "runpp_loop"]

log = logging.getLogger(__name__)


def apply_config(net: pp.pandapowerNet, config: GridConfig | None) -> pp.pandapowerNet:
    """Write a configuration's tap positions and switch states into ``net`` (in place).

    Raises:
        KeyError: it names a trafo or switch that is not in the net.
    """
    if config is None:
        return net
    for trafo, tap in config.taps.items():
        if trafo not in net.trafo.index:
            raise KeyError(f"trafo {trafo} is not in the grid")
        net.trafo.at[trafo, "tap_pos"] = tap
    for switch, closed in config.switches.items():
        if switch not in net.switch.index:
            raise KeyError(f"switch {switch} is not in the grid")
        net.switch.at[switch, "closed"] = closed
    return net


def runpp_loop(
    net: pp.pandapowerNet,
    injections: Injections | None = None,
    *,
    config: GridConfig | None = None,
    copy_net: bool = True,
    **runpp_kwargs: Any,
) -> BatchResult:
    """Run ``pandapower.runpp`` once per scenario and collect the results like a batch.

    This is the reference the batched power flow is checked and benchmarked against: a copy of
    ``net`` gets the configuration, then for each scenario its load/sgen/storage ``p_mw`` and
    ``q_mvar`` columns are overwritten and ``pp.runpp(net, **runpp_kwargs)`` runs (no options:
    pandapower's defaults, the model of record). A scenario that does not converge is flagged
    (``converged`` False) and NaN.

    Args:
        net: the pandapower net (not modified, unless ``copy_net`` is False).
        injections: scenarios, as for :meth:`BatchPowerFlow.run`; ``None``: the table values.
        config: tap positions and switch states written into the copy first.
        copy_net: work on a deep copy (default). ``False`` writes into ``net`` itself and saves
            the copy's time (the benchmark times the loop alone).
        runpp_kwargs: passed to every ``pp.runpp`` call.

    Returns:
        :class:`BatchResult` with the same shapes and conventions as the batched one.
    """
    net = apply_config(copy.deepcopy(net) if copy_net else net, config)
    inj = injections if injections is not None else Injections()
    values = inj.resolved(net)
    n = inj.n_scenarios
    n_bus, n_line, n_trafo, n_eg = len(net.bus), len(net.line), len(net.trafo), len(net.ext_grid)
    vm = np.full((n, n_bus), np.nan)
    va = np.full((n, n_bus), np.nan)
    line_loading = np.full((n, n_line), np.nan)
    line_i = np.full((n, n_line), np.nan)
    trafo_loading = np.full((n, n_trafo), np.nan)
    eg_p = np.full((n, n_eg), np.nan)
    eg_q = np.full((n, n_eg), np.nan)
    converged = np.zeros(n, dtype=bool)
    errors: list[str] = []
    has_storage = "storage" in net and len(net.storage) > 0
    for s in range(n):
        net.load["p_mw"] = values["load_p_mw"][s]
        net.load["q_mvar"] = values["load_q_mvar"][s]
        net.sgen["p_mw"] = values["sgen_p_mw"][s]
        net.sgen["q_mvar"] = values["sgen_q_mvar"][s]
        if has_storage:
            net.storage["p_mw"] = values["storage_p_mw"][s]
            net.storage["q_mvar"] = values["storage_q_mvar"][s]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                pp.runpp(net, **runpp_kwargs)
        except pp.LoadflowNotConverged as exc:
            errors.append(f"scenario {s}: {exc}")
            continue
        converged[s] = True
        vm[s] = net.res_bus.vm_pu.to_numpy()
        va[s] = net.res_bus.va_degree.to_numpy()
        line_loading[s] = net.res_line.loading_percent.to_numpy()
        line_i[s] = net.res_line.i_ka.to_numpy()
        trafo_loading[s] = net.res_trafo.loading_percent.to_numpy()
        eg_p[s] = net.res_ext_grid.p_mw.to_numpy()
        eg_q[s] = net.res_ext_grid.q_mvar.to_numpy()
    va = -np.remainder(-va + 180.0, 360.0) + 180.0
    return BatchResult(
        config=config if config is not None else GridConfig(),
        bus_index=net.bus.index.to_numpy(dtype=np.int64),
        line_index=net.line.index.to_numpy(dtype=np.int64),
        trafo_index=net.trafo.index.to_numpy(dtype=np.int64),
        ext_grid_index=net.ext_grid.index.to_numpy(dtype=np.int64),
        vm_pu=vm,
        va_degree=va,
        line_loading_percent=line_loading,
        line_i_ka=line_i,
        trafo_loading_percent=trafo_loading,
        ext_grid_p_mw=eg_p,
        ext_grid_q_mvar=eg_q,
        converged=converged,
        errors=tuple(errors),
        steps=inj.steps,
    )
