"""Batched power flow over a pandapower net, computed by power-grid-model."""

from __future__ import annotations

import copy
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandapower as pp
from numpy.typing import NDArray
from power_grid_model import (
    ComponentAttributeFilterOptions,
    ComponentType,
    PowerGridModel,
    initialize_array,
)

from flexledger.powerflow.config import GridConfig
from flexledger.powerflow.grid_io import validate_net
from flexledger.powerflow.injections import Injections
from flexledger.powerflow.model import GridModelError, Layout, ModelInput, build_input
from flexledger.powerflow.result import BatchResult

__all__ = ["MODEL_OF_RECORD", "BatchPowerFlow"]

log = logging.getLogger(__name__)

MODEL_OF_RECORD: dict[str, Any] = {
    "algorithm": "nr",
    "calculate_voltage_angles": True,
    "init": "auto",
    "trafo_model": "t",
    "trafo_loading": "current",
    "voltage_depend_loads": True,
    "check_connectivity": True,
    "tolerance_mva": 1e-8,
}
"""The ``pandapower.runpp`` options the batched results are checked against: pandapower 3's
defaults, written out. ``pp.runpp(net)`` with no options computes exactly this."""

_OUTPUTS: dict[ComponentType, set[str] | list[str] | ComponentAttributeFilterOptions | None] = {
    ComponentType.node: ["u_pu", "u_angle", "energized"],
    ComponentType.line: ["i_from", "i_to", "energized"],
    ComponentType.transformer: ["i_from", "i_to", "energized"],
    ComponentType.source: ["p", "q"],
}


@dataclass
class _Built:
    input: ModelInput
    model: PowerGridModel
    node_pos: NDArray[np.int64]  # position in the node array per bus position


class BatchPowerFlow:
    """Many power flows of one pandapower grid in one power-grid-model batch call.

    The pandapower net is the model of record: this class translates its tables into
    power-grid-model input (see :mod:`flexledger.powerflow.model` for every choice) and its
    results agree with ``pandapower.runpp(net)`` — pandapower 3's default options, written out in
    :data:`MODEL_OF_RECORD` — within 1e-4 p.u. in voltage (tested on SimBench
    ``1-MVLV-semiurb-5.220-2-sw`` over a day of profiles, with taps moved and switches opened).

    A *configuration* (:class:`GridConfig`: tap position per trafo, closed/open per switch) is a
    different model; each is built once and kept in a small LRU cache, so a remedy search that
    tries many configurations pays the build (about 10 ms on the default grid) once each.
    Scenarios (load and generation, :class:`Injections`) are the batch dimension.

    The net is deep-copied at construction: later changes to the caller's net are not seen.
    Taps act as pandapower applies them: a net straight from SimBench has no
    ``tap_changer_type``, so pandapower 3 ignores its taps, and so does this class (and refuses a
    configuration that sets one) — load it with :func:`flexledger.powerflow.load_grid`, which
    calls :func:`~flexledger.powerflow.normalise_taps`.

    Args:
        net: a validated pandapower net (see :func:`flexledger.powerflow.load_grid`).
        threads: power-grid-model batch threading: ``-1`` sequential (default, polite on shared
            cores), ``0`` one per hardware thread, ``n`` that many.
        max_iterations: Newton-Raphson iterations before a scenario counts as not converged.
        error_tolerance_pu: Newton-Raphson voltage tolerance, p.u.
        cache_size: configurations kept built.

    Raises:
        GridModelError: the net's tables are broken, or it uses an element this class does not
            model (gen, trafo3w, impedance, ward, xward, dcline, …; phase-shifting taps).
    """

    def __init__(
        self,
        net: pp.pandapowerNet,
        *,
        threads: int = -1,
        max_iterations: int = 20,
        error_tolerance_pu: float = 1e-8,
        cache_size: int = 32,
    ) -> None:
        problems = validate_net(net)
        if problems:
            raise GridModelError("the net is not usable:\n  " + "\n  ".join(problems[:12]))
        self.net: pp.pandapowerNet = copy.deepcopy(net)
        self.layout = Layout.of(self.net)
        self.f_hz = float(getattr(self.net, "f_hz", 50.0) or 50.0)
        self.threads = threads
        self.max_iterations = max_iterations
        self.error_tolerance_pu = error_tolerance_pu
        self.cache_size = cache_size
        self._base_tap = np.nan_to_num(self.net.trafo.tap_pos.to_numpy(dtype=np.float64))
        self._base_closed = self.net.switch.closed.fillna(True).astype(bool).to_numpy()
        self._trafo_pos = {int(t): i for i, t in enumerate(self.layout.trafo_index)}
        self._switch_pos = {int(s): i for i, s in enumerate(self.layout.switch_index)}
        self._bus_pos = {int(b): i for i, b in enumerate(self.layout.bus_index)}
        self._cache: OrderedDict[bytes, _Built] = OrderedDict()
        self._lock = threading.Lock()
        self._calc_lock = threading.Lock()

    # -- indices -------------------------------------------------------------------------------

    @property
    def bus_index(self) -> NDArray[np.int64]:
        """pandapower bus indices, in the order of the bus axis of every result."""
        return self.layout.bus_index

    @property
    def line_index(self) -> NDArray[np.int64]:
        return self.layout.line_index

    @property
    def trafo_index(self) -> NDArray[np.int64]:
        return self.layout.trafo_index

    def bus_positions(self, buses: Any) -> NDArray[np.int64]:
        """Positions on the bus axis of these pandapower bus indices.

        Raises:
            KeyError: a bus is not in the grid.
        """
        try:
            return np.array(
                [self._bus_pos[int(b)] for b in np.atleast_1d(np.asarray(buses))], dtype=np.int64
            )
        except KeyError as exc:
            raise KeyError(f"bus {exc.args[0]} is not in the grid") from None

    # -- configurations ------------------------------------------------------------------------

    def config_state(
        self, config: GridConfig | None
    ) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
        """Tap position per trafo and closed flag per switch under ``config`` (table order).

        Raises:
            KeyError: the configuration names a trafo or switch that is not in the grid.
            GridModelError: it sets a tap on a trafo whose tap pandapower would not apply.
        """
        taps = self._base_tap.copy()
        closed = self._base_closed.copy()
        if config is None:
            return taps, closed
        for trafo, tap in config.taps.items():
            if trafo not in self._trafo_pos:
                raise KeyError(f"trafo {trafo} is not in the grid")
            pos = self._trafo_pos[trafo]
            if not self.layout.trafo_tap_acts[pos] and tap != taps[pos]:
                raise GridModelError(
                    f"trafo {trafo}: tap_pos would have no effect (no 'Ratio' tap changer; "
                    f"see flexledger.powerflow.normalise_taps)"
                )
            taps[pos] = tap
        for switch, is_closed in config.switches.items():
            if switch not in self._switch_pos:
                raise KeyError(f"switch {switch} is not in the grid")
            closed[self._switch_pos[switch]] = is_closed
        return taps, closed

    def _built(self, config: GridConfig | None) -> _Built:
        taps, closed = self.config_state(config)
        key = taps.tobytes() + closed.tobytes()
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        model_input = build_input(self.net, self.layout, taps, closed, self.f_hz)
        built = _Built(
            input=model_input,
            model=PowerGridModel(model_input.data),
            node_pos=np.searchsorted(model_input.data["node"]["id"], model_input.node_of_bus),
        )
        with self._lock:
            self._cache[key] = built
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return built

    def prepare(self, config: GridConfig | None = None) -> None:
        """Build (and cache) the model of a configuration now, so that a timed run does not."""
        self._built(config)

    # -- running -------------------------------------------------------------------------------

    def run(
        self, injections: Injections | None = None, *, config: GridConfig | None = None
    ) -> BatchResult:
        """Power flows of every scenario of ``injections`` under ``config``, in one batch call.

        Args:
            injections: load/sgen/storage powers per scenario ([scenario, element] arrays in
                table order, pandapower units and signs; see :class:`Injections`). ``None``: one
                scenario with the net's table values.
            config: tap positions and switch states; ``None``: the net's own.

        Returns:
            :class:`BatchResult` with ``vm_pu`` [scenario, bus], ``va_degree`` [scenario, bus],
            ``line_loading_percent`` / ``line_i_ka`` [scenario, line],
            ``trafo_loading_percent`` [scenario, trafo], ``ext_grid_p_mw`` / ``_q_mvar``
            [scenario, ext_grid], and ``converged`` [scenario]. Scenarios that do not converge are
            flagged and NaN, never silently wrong.
        """
        inj = injections if injections is not None else Injections()
        return self._solve(inj, config)

    def _solve(
        self,
        inj: Injections,
        config: GridConfig | None,
        probe_bus_pos: NDArray[np.int64] | None = None,
        probe_p_mw: NDArray[np.float64] | None = None,
        probe_q_mvar: NDArray[np.float64] | None = None,
    ) -> BatchResult:
        built = self._built(config)
        lay = self.layout
        values = inj.resolved(self.net)
        n = inj.n_scenarios
        n_load, n_sto, n_sgen, n_zip = (
            len(lay.load_index),
            len(lay.storage_index),
            len(lay.sgen_index),
            lay.n_zip,
        )
        n_probe = 0 if probe_bus_pos is None else len(probe_bus_pos)
        zeros = np.zeros((n, n_probe))
        load_p = values["load_p_mw"] * lay.load_scaling
        load_q = values["load_q_mvar"] * lay.load_scaling
        sto_p = values["storage_p_mw"] * lay.storage_scaling
        sto_q = values["storage_q_mvar"] * lay.storage_scaling
        sgen_p = values["sgen_p_mw"] * lay.sgen_scaling
        sgen_q = values["sgen_q_mvar"] * lay.sgen_scaling
        probe_p = probe_p_mw if probe_p_mw is not None else zeros
        probe_q = probe_q_mvar if probe_q_mvar is not None else zeros

        # sym_load (load convention): loads, storages, then the ZIP parts per bus
        sym_load = initialize_array("update", "sym_load", (n, n_load + n_sto + 3 * n_zip))
        sym_load["id"][:, :n_load] = lay.load_id
        sym_load["p_specified"][:, :n_load] = load_p * 1e6
        sym_load["q_specified"][:, :n_load] = load_q * 1e6
        cols = slice(n_load, n_load + n_sto)
        sym_load["id"][:, cols] = lay.storage_id
        sym_load["p_specified"][:, cols] = sto_p * 1e6
        sym_load["q_specified"][:, cols] = sto_q * 1e6
        if n_zip:
            # net demand at each ZIP bus, all elements (sgens and probes negative), as pandapower
            demand_p = load_p @ lay.load_to_zip + sto_p @ lay.storage_to_zip
            demand_p -= sgen_p @ lay.sgen_to_zip
            demand_q = load_q @ lay.load_to_zip + sto_q @ lay.storage_to_zip
            demand_q -= sgen_q @ lay.sgen_to_zip
            if n_probe and probe_bus_pos is not None:
                demand_p -= probe_p @ lay.bus_to_zip[probe_bus_pos]
                demand_q -= probe_q @ lay.bus_to_zip[probe_bus_pos]
            i_p, z_p, i_q, z_q = lay.zip_share
            parts = (
                (-(i_p + z_p) * demand_p, -(i_q + z_q) * demand_q),  # constant power removed
                (i_p * demand_p, i_q * demand_q),  # constant current
                (z_p * demand_p, z_q * demand_q),  # constant impedance
            )
            for part, (p_mw, q_mvar) in enumerate(parts):
                cols = slice(n_load + n_sto + part * n_zip, n_load + n_sto + (part + 1) * n_zip)
                sym_load["id"][:, cols] = lay.zip_id[part]
                sym_load["p_specified"][:, cols] = p_mw * 1e6
                sym_load["q_specified"][:, cols] = q_mvar * 1e6

        # sym_gen (generator convention): sgens, then the probes asked for
        sym_gen = initialize_array("update", "sym_gen", (n, n_sgen + n_probe))
        sym_gen["id"][:, :n_sgen] = lay.sgen_id
        sym_gen["p_specified"][:, :n_sgen] = sgen_p * 1e6
        sym_gen["q_specified"][:, :n_sgen] = sgen_q * 1e6
        if probe_bus_pos is not None and n_probe:
            sym_gen["id"][:, n_sgen:] = lay.probe_id[probe_bus_pos]
            sym_gen["p_specified"][:, n_sgen:] = probe_p * 1e6
            sym_gen["q_specified"][:, n_sgen:] = probe_q * 1e6

        update: dict[Any, Any] = {"sym_load": sym_load, "sym_gen": sym_gen}
        errors: tuple[str, ...] = ()
        failed = np.zeros(n, dtype=bool)
        with self._calc_lock:  # a power-grid-model instance computes one batch at a time
            out = built.model.calculate_power_flow(
                update_data=update,
                threading=self.threads,
                max_iterations=self.max_iterations,
                error_tolerance=self.error_tolerance_pu,
                output_component_types=_OUTPUTS,
                continue_on_batch_error=True,
            )
            batch_error = built.model.batch_error
        if batch_error is not None:
            failed[np.asarray(batch_error.failed_scenarios, dtype=np.int64)] = True
            errors = tuple(str(m) for m in batch_error.error_messages)
            log.warning("%d of %d scenarios failed: %s", int(failed.sum()), n, errors[:1])
        return self._result(built, out, failed, errors, config, inj.steps)

    def _result(
        self,
        built: _Built,
        out: dict[Any, Any],
        failed: NDArray[np.bool_],
        errors: tuple[str, ...],
        config: GridConfig | None,
        steps: NDArray[np.int64] | None,
    ) -> BatchResult:
        lay = self.layout
        node = out["node"]
        energized = node["energized"][:, built.node_pos].astype(bool)
        dead = ~energized | ~built.input.bus_active[np.newaxis, :]
        vm = np.where(dead, np.nan, node["u_pu"][:, built.node_pos])
        va = np.degrees(node["u_angle"][:, built.node_pos])
        va = np.where(dead, np.nan, -np.remainder(-va + 180.0, 360.0) + 180.0)

        line_i = np.maximum(out["line"]["i_from"], out["line"]["i_to"]) / 1e3
        line_on = built.input.line_active & out["line"]["energized"].astype(bool)
        line_i = np.where(line_on, line_i, np.nan)
        line_loading = line_i / lay.line_i_rated_ka * 100.0

        t_from = out["transformer"]["i_from"] * lay.trafo_vn_hv_kv
        t_to = out["transformer"]["i_to"] * lay.trafo_vn_lv_kv
        trafo_loading = np.maximum(t_from, t_to) * np.sqrt(3) / 1e3 / lay.trafo_s_rated_mva * 100.0
        trafo_on = built.input.trafo_active & out["transformer"]["energized"].astype(bool)
        trafo_loading = np.where(trafo_on, trafo_loading, np.nan)

        src_p = out["source"]["p"] / 1e6
        src_q = out["source"]["q"] / 1e6

        # a diverged scenario's rows hold whatever the solver left there
        bad = failed | ~np.isfinite(np.where(dead, 0.0, vm)).all(axis=1)
        for arr in (vm, va, line_i, line_loading, trafo_loading, src_p, src_q):
            arr[bad] = np.nan
        return BatchResult(
            config=config if config is not None else GridConfig(),
            bus_index=lay.bus_index,
            line_index=lay.line_index,
            trafo_index=lay.trafo_index,
            ext_grid_index=lay.ext_grid_index,
            vm_pu=vm,
            va_degree=va,
            line_loading_percent=line_loading,
            line_i_ka=line_i,
            trafo_loading_percent=trafo_loading,
            ext_grid_p_mw=src_p,
            ext_grid_q_mvar=src_q,
            converged=~bad,
            errors=errors,
            steps=steps,
        )
