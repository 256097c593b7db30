"""Real-time state estimation: weighted least squares on field sensors (I-18) and forecast
pseudo-measurements, with bad-data detection by the largest normalised residual, on the topology
the DSO tracks from topology events.

**Model.** The network equations are pandapower's (the model of record): the DSO's net under the
tracked configuration is converted once per topology with ``pandapower.runpp`` to its bus/branch
model (``ppc``: fused bus-bus switches, transformer taps and shifts, line charging), from which
``makeYbus`` gives the bus admittance matrix and the from-end branch admittances. The state is
the voltage magnitude and angle of every supplied bus but the slack, whose voltage is the external
grid's set-point.

**Measurements** (:class:`Measurement`):

- a V&C sensor on a bus: its phase-to-neutral voltage ``v_mv`` (mV) → p.u. of ``vn_kv / √3``;
- a breaker IED on a line: the voltage at the line's from bus, the current through the line
  (``i_ma``, modelled at its from end: the two ends differ by the charging current only) and,
  when the IED gives them (not both zero), the active and reactive power flowing from that bus
  into the line (``p_w``, ``q_var``) — the world's IEDs measure no power (``sim.sensors``);
- pseudo-measurements: the forecast active and reactive net consumption at every bus that has
  load or generation (σ = ``pseudo_pct`` of the value, at least ``pseudo_floor_kw``), and
  zero-injection virtual measurements at buses with neither (σ = 0.1 kW).

Sensor σ is the sensor's noise (``noise_pct`` of the value; powers at least 0.1 % of the line's
rated power).

**Estimation.** Gauss–Newton on J(x) = Σ ((z − h(x)) / σ)², with the analytic Jacobian of the
power-flow equations (pandapower's ``dSbus_dV``, ``dSbr_dV``), from the forecast power flow as
starting point; each step through Hachtel's augmented system with a sparse LU (stable where the
normal equations are not: σ spans four orders of magnitude).

**Bad data.** After convergence, the residual covariance Ω = R − H G⁻¹ Hᵀ (its diagonal from
the same factorisation) gives every measurement's normalised residual |rᵢ| / √Ωᵢᵢ. While the
largest exceeds ``lnr_threshold`` (3.0), that measurement is flagged, removed, and the state
estimated again (at most ``max_removals`` times). Zero-injection virtual measurements are never
flagged.
"""

from __future__ import annotations

import copy
import logging
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandapower as pp
import scipy.linalg
import scipy.sparse as sp
import scipy.sparse.csgraph
import scipy.sparse.linalg
from numpy.typing import NDArray

from dso.model import DsoGrid
from flexledger.messages import SensorReading, TopologyEvent
from flexledger.powerflow import GridConfig, Injections, apply_config
from flexledger.scenario import SensorSpec

__all__ = [
    "Measurement",
    "StateEstimate",
    "StateEstimationError",
    "StateEstimator",
    "Topology",
    "sensor_measurements",
]

log = logging.getLogger(__name__)

MeasurementKind = Literal["v", "p", "q", "p_line", "q_line", "i_line"]


class StateEstimationError(RuntimeError):
    """The estimation did not converge or the system is not observable."""


@dataclass(frozen=True)
class Measurement:
    """One measurement for the estimator.

    ``kind``: ``v`` (bus voltage, p.u.), ``p``/``q`` (net consumption at a bus, MW/Mvar, load
    convention), ``p_line``/``q_line`` (flow from the line's from bus into it, MW/Mvar),
    ``i_line`` (current magnitude at the line's from end, kA);
    ``element``: pandapower bus or line index; ``std``: standard deviation in the same unit;
    ``label``: where it came from (``sensor:S1:v``, ``pseudo:bus:12:p``, ``zero:bus:7:q``).
    """

    kind: MeasurementKind
    element: int
    value: float
    std: float
    label: str
    node: int | None = None  # the model's own node (an auxiliary node has no pandapower bus)

    @property
    def virtual(self) -> bool:
        return self.label.startswith("zero:")

    @property
    def pseudo(self) -> bool:
        return self.label.startswith(("pseudo:", "zero:"))


@dataclass
class StateEstimate:
    """The estimated state of the grid.

    ``vm_pu``/``va_degree``: per bus (``bus_index`` order; NaN where not supplied);
    ``flagged``: labels of the measurements the bad-data test removed, with their normalised
    residuals; ``max_normalised_residual``: of the final estimate (among testable
    measurements); ``objective``: J at the solution; ``dof``: measurements minus states.
    """

    bus_index: NDArray[np.int64]
    vm_pu: NDArray[np.float64]
    va_degree: NDArray[np.float64]
    iterations: int
    objective: float
    dof: int
    flagged: list[tuple[str, float]] = field(default_factory=list)
    max_normalised_residual: float = 0.0
    n_measurements: int = 0

    def vm_of(self, bus: int) -> float:
        return float(self.vm_pu[int(np.flatnonzero(self.bus_index == bus)[0])])


class Topology:
    """The switching state and outages the DSO tracks from topology events (``flex/grid/topology``).

    ``switch:<i>`` events set a switch; ``line:<i>`` events take a line out of service
    (``closed = false``) or back. Events older than the last one seen for the same element are
    ignored (by ``seq``, then ``t_s``).
    """

    def __init__(self) -> None:
        self.switches: dict[int, bool] = {}
        self.lines_out: set[int] = set()
        self._last: dict[str, tuple[int, int]] = {}

    def apply(self, event: TopologyEvent) -> bool:
        """Record an event; ``False`` when it is stale or names nothing this tracker knows."""
        key = (event.seq, event.t_s)
        if self._last.get(event.element, (-1, -1)) >= key:
            return False
        kind, _, raw = event.element.partition(":")
        if kind not in ("switch", "line") or not raw.isdigit():
            log.warning("topology event for %r ignored: not switch:<i> or line:<i>", event.element)
            return False
        self._last[event.element] = key
        if kind == "switch":
            self.switches[int(raw)] = event.closed
        elif event.closed:
            self.lines_out.discard(int(raw))
        else:
            self.lines_out.add(int(raw))
        return True

    def config(self, grid: DsoGrid, base: GridConfig | None = None) -> GridConfig:
        """The tracked state as a configuration of ``grid``: switch events, and every outaged
        line's own switches opened (a line without a switch needs :meth:`grid_for`)."""
        base = base or GridConfig()
        switches = dict(self.switches)
        sw = grid.net.switch
        for line in self.lines_out:
            for s in sw.index[(sw.et == "l") & (sw.element == line)]:
                switches[int(s)] = False
        return base.with_switches(switches) if switches else base

    def unswitched_outages(self, grid: DsoGrid) -> set[int]:
        """Outaged lines that have no switch to open (the grid must be rebuilt without them)."""
        sw = grid.net.switch
        with_switch = set(int(e) for e in sw.element[sw.et == "l"])
        return {line for line in self.lines_out if line not in with_switch}


def sensor_measurements(
    grid: DsoGrid,
    readings: Iterable[SensorReading],
    sensors: Mapping[str, SensorSpec],
) -> list[Measurement]:
    """The estimator's measurements of the latest readings (see the module docstring).

    Readings of unknown sensors are skipped with a warning; of several readings of one sensor
    the one with the highest ``seq`` counts.
    """
    latest: dict[str, SensorReading] = {}
    for r in readings:
        if r.sensor_id not in sensors:
            log.warning("reading of unknown sensor %s skipped", r.sensor_id)
            continue
        if r.sensor_id not in latest or r.seq > latest[r.sensor_id].seq:
            latest[r.sensor_id] = r
    net = grid.net
    out: list[Measurement] = []
    for sid, r in sorted(latest.items()):
        spec = sensors[sid]
        noise = max(spec.noise_pct, 0.01) / 100
        if spec.line is not None:
            line = net.line.loc[spec.line]
            bus = int(line.from_bus)
            vn = float(net.bus.at[bus, "vn_kv"])
            rated_ka = float(line.max_i_ka)
            floor = 1e-3 * float(np.sqrt(3) * vn * rated_ka)
            if r.p_w or r.q_var:
                p, q = r.p_w / 1e6, r.q_var / 1e6
                out.append(
                    Measurement(
                        "p_line", spec.line, p, max(noise * abs(p), floor), f"sensor:{sid}:p"
                    )
                )
                out.append(
                    Measurement(
                        "q_line", spec.line, q, max(noise * abs(q), floor), f"sensor:{sid}:q"
                    )
                )
            if r.i_ma > 0:
                i = r.i_ma / 1e6
                out.append(
                    Measurement(
                        "i_line", spec.line, i, max(noise * i, 1e-3 * rated_ka), f"sensor:{sid}:i"
                    )
                )
        elif spec.bus is not None:
            bus = spec.bus
        else:
            continue
        vn = float(net.bus.at[bus, "vn_kv"])
        v = r.v_mv / 1e6 / (vn / np.sqrt(3))
        if v > 0:
            out.append(Measurement("v", bus, v, noise * v, f"sensor:{sid}:v"))
    return out


class StateEstimator:
    """WLS state estimation of one topology of the DSO's grid (see the module docstring).

    Args:
        grid: the DSO's grid.
        config: taps and switch states (the tracked topology); ``None``: the net's own.
        lines_out: lines out of service besides what ``config`` opens.
        pseudo_pct: σ of a pseudo-measurement as a share of its value.
        pseudo_floor_kw: smallest σ of a pseudo-measurement, kW (kvar).

    Raises:
        StateEstimationError: the network model cannot be built (its power flow diverges).
    """

    def __init__(
        self,
        grid: DsoGrid,
        config: GridConfig | None = None,
        *,
        lines_out: Iterable[int] = (),
        pseudo_pct: float = 0.2,
        pseudo_floor_kw: float = 1.0,
    ) -> None:
        from pandapower.pypower.idx_brch import F_BUS
        from pandapower.pypower.idx_bus import BUS_TYPE, NONE, REF, VA, VM
        from pandapower.pypower.makeYbus import makeYbus

        self.grid = grid
        self.config = config
        self.pseudo_pct = pseudo_pct
        self.pseudo_floor_mw = pseudo_floor_kw / 1e3
        net = apply_config(copy.deepcopy(grid.net), config)
        for line in lines_out:
            net.line.at[line, "in_service"] = False
        # A line open at one end is an antenna of charging current only; pandapower models its open
        # end as an auxiliary node that zero-injection measurements leave unobservable (its
        # voltage moves with its neighbour's). Out of the estimation model it goes: the charging
        # power it leaves out is a few kvar.
        sw = net.switch
        open_line_sw = (sw.et == "l") & ~sw.closed.astype(bool)
        for line in set(int(e) for e in sw.element[open_line_sw]):
            net.line.at[line, "in_service"] = False
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                pp.runpp(net, numba=False)
            except pp.LoadflowNotConverged as exc:
                raise StateEstimationError(f"the network model does not solve: {exc}") from exc
        ppc = net._ppc
        self.net = net
        self.base_mva = float(ppc["baseMVA"])
        self.ybus, self.yf, self.yt = makeYbus(self.base_mva, ppc["bus"], ppc["branch"])
        self.ybus = sp.csr_matrix(self.ybus)
        self.yf = sp.csr_matrix(self.yf)
        self.branch = ppc["branch"]
        self.f_bus = ppc["branch"][:, F_BUS].real.astype(np.int64)
        self.line_rows = net._pd2ppc_lookups["branch"]["line"]
        self.bus_of = net._pd2ppc_lookups["bus"]  # pandapower bus -> ppc bus
        types = ppc["bus"][:, BUS_TYPE].real
        self.ref = np.flatnonzero(types == REF)
        # live: connected to the slack through branches in service (an open line end's auxiliary
        # node can be in the model with no admittance at all)
        pattern = self.ybus.copy()
        pattern.setdiag(0)
        pattern.eliminate_zeros()
        _, comp = scipy.sparse.csgraph.connected_components(pattern != 0, directed=False)
        reach = np.isin(comp, comp[np.flatnonzero(types == REF)])
        self.live = np.flatnonzero((types != NONE) & reach)
        self.state_buses = np.setdiff1d(self.live, self.ref)
        self.v_ref = ppc["bus"][self.ref, VM].real * np.exp(
            1j * np.deg2rad(ppc["bus"][self.ref, VA].real)
        )
        self.n_ppc = len(types)
        # supplied pandapower buses and their ppc buses
        pos = np.array([self.bus_of[int(b)] for b in grid.bus_index])
        self.bus_ppc = pos
        self.bus_live = np.isin(pos, self.live) & np.isfinite(net.res_bus.vm_pu.to_numpy())

    # -- measurements --------------------------------------------------------------------------

    def pseudo_measurements(self, pseudo: Injections) -> list[Measurement]:
        """Forecast net consumption per bus (one scenario of ``pseudo``), and zero injections.

        Buses fused by a closed bus-bus switch are one node: their consumption is summed.
        """
        if pseudo.n_scenarios != 1:
            raise ValueError("pseudo-measurements come from one scenario")
        values = pseudo.resolved(self.grid.net)
        net = self.grid.net
        p = np.zeros(self.n_ppc)
        q = np.zeros(self.n_ppc)
        has = np.zeros(self.n_ppc, dtype=bool)
        for table, sign in (("load", 1.0), ("sgen", -1.0), ("storage", 1.0)):
            df = net.get(table, None)
            if df is None or not len(df):
                continue
            active = df.in_service.fillna(False).astype(bool).to_numpy()
            idx = np.array([self.bus_of[int(b)] for b in df.bus])
            scale = df.get("scaling", 1.0)
            scale = np.nan_to_num(np.asarray(scale, dtype=float) * np.ones(len(df)), nan=1.0)
            pv = values[f"{table}_p_mw"][0] * scale * sign * active
            qv = values[f"{table}_q_mvar"][0] * scale * sign * active
            np.add.at(p, idx, pv)
            np.add.at(q, idx, qv)
            # a probe at zero is not load or generation
            real = (
                active if table != "sgen" else active & (df.get("type") != "dso_probe").to_numpy()
            )
            np.add.at(has, idx[real], True)
        rep: dict[int, int] = {}
        for b in self.grid.bus_index:
            rep.setdefault(int(self.bus_of[int(b)]), int(b))
        out = []
        for node in self.state_buses:
            bus = rep.get(int(node))
            if bus is None:  # an auxiliary node (open line end): nothing connects there
                out.append(Measurement("p", -1, 0.0, 1e-4, f"zero:node:{node}:p", int(node)))
                out.append(Measurement("q", -1, 0.0, 1e-4, f"zero:node:{node}:q", int(node)))
                continue
            if has[node] or abs(p[node]) > 0 or abs(q[node]) > 0:
                sp_ = max(self.pseudo_pct * abs(p[node]), self.pseudo_floor_mw)
                sq_ = max(self.pseudo_pct * abs(q[node]), self.pseudo_floor_mw)
                out.append(Measurement("p", bus, float(p[node]), sp_, f"pseudo:bus:{bus}:p"))
                out.append(Measurement("q", bus, float(q[node]), sq_, f"pseudo:bus:{bus}:q"))
            else:
                out.append(Measurement("p", bus, 0.0, 1e-4, f"zero:bus:{bus}:p"))
                out.append(Measurement("q", bus, 0.0, 1e-4, f"zero:bus:{bus}:q"))
        return out

    # -- estimation ----------------------------------------------------------------------------

    def _h_and_jacobian(
        self, v: NDArray[np.complex128], ms: Sequence[Measurement]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        from pandapower.pypower.dSbr_dV import dSbr_dV
        from pandapower.pypower.dSbus_dV import dSbus_dV

        cols = self.state_buses
        n_s = len(cols)
        h = np.zeros(len(ms))
        jac = np.zeros((len(ms), 2 * n_s))
        kind = np.array([m.kind for m in ms])
        node = np.array(
            [self.bus_of[m.element] if m.kind in ("v", "p", "q") else -1 for m in ms],
            dtype=np.int64,
        )
        is_v = kind == "v"
        if is_v.any():
            rows = np.flatnonzero(is_v)
            h[rows] = np.abs(v[node[rows]])
            k = np.searchsorted(cols, node[rows])
            k_ok = (k < n_s) & (cols[np.minimum(k, n_s - 1)] == node[rows])
            jac[rows[k_ok], n_s + k[k_ok]] = 1.0
        is_bus = (kind == "p") | (kind == "q")
        if is_bus.any():
            rows = np.flatnonzero(is_bus)
            s_bus = v * np.conj(self.ybus @ v) * self.base_mva
            ds_dvm, ds_dva = dSbus_dV(self.ybus, v)
            a = sp.csr_matrix(ds_dva)[node[rows]][:, cols].toarray() * self.base_mva
            m_ = sp.csr_matrix(ds_dvm)[node[rows]][:, cols].toarray() * self.base_mva
            real = kind[rows] == "p"
            # load convention: consumption = −injection
            h[rows] = -np.where(real, s_bus[node[rows]].real, s_bus[node[rows]].imag)
            jac[rows, :n_s] = -np.where(real[:, None], a.real, a.imag)
            jac[rows, n_s:] = -np.where(real[:, None], m_.real, m_.imag)
        is_line = (kind == "p_line") | (kind == "q_line")
        if is_line.any():
            rows = np.flatnonzero(is_line)
            br = np.array(
                [
                    self.line_rows[0] + self.grid.net.line.index.get_loc(ms[int(i)].element)
                    for i in rows
                ]
            )
            dsf_dva, dsf_dvm, _, _, s_f, _ = dSbr_dV(self.branch, self.yf, self.yt, v)
            s_f = np.asarray(s_f).ravel()[br] * self.base_mva
            a = sp.csr_matrix(dsf_dva)[br][:, cols].toarray() * self.base_mva
            m_ = sp.csr_matrix(dsf_dvm)[br][:, cols].toarray() * self.base_mva
            real = kind[rows] == "p_line"
            h[rows] = np.where(real, s_f.real, s_f.imag)
            jac[rows, :n_s] = np.where(real[:, None], a.real, a.imag)
            jac[rows, n_s:] = np.where(real[:, None], m_.real, m_.imag)
        is_cur = kind == "i_line"
        if is_cur.any():
            rows = np.flatnonzero(is_cur)
            br = np.array(
                [
                    self.line_rows[0] + self.grid.net.line.index.get_loc(ms[int(i)].element)
                    for i in rows
                ]
            )
            yf = self.yf[br]
            i_f = yf @ v  # p.u. of the base current at the from bus
            d_va = (yf @ sp.diags(1j * v)).tocsc()[:, cols].toarray()
            d_vm = (yf @ sp.diags(v / np.abs(v))).tocsc()[:, cols].toarray()
            mag = np.maximum(np.abs(i_f), 1e-9)
            unit = (np.conj(i_f) / mag)[:, None]
            # kA per p.u. at the from bus: base MVA / (√3 · vn_kv)
            vn = np.array(
                [
                    self.grid.net.bus.at[
                        int(self.grid.net.line.at[ms[int(i)].element, "from_bus"]), "vn_kv"
                    ]
                    for i in rows
                ]
            )
            scale = self.base_mva / (np.sqrt(3) * vn)
            h[rows] = np.abs(i_f) * scale
            jac[rows, :n_s] = (unit * d_va).real * scale[:, None]
            jac[rows, n_s:] = (unit * d_vm).real * scale[:, None]
        return h, jac

    def _solve(
        self, ms: Sequence[Measurement], v0: NDArray[np.complex128], tol: float, max_iter: int
    ) -> tuple[NDArray[np.complex128], NDArray[np.float64], scipy.sparse.linalg.SuperLU, int]:
        """Gauss–Newton iterations, each step solved through Hachtel's augmented system
        ``[[R, H], [Hᵀ, 0]] [λ; Δx] = [z − h; 0]`` with a sparse LU: the normal equations would
        square the condition number, which the mix of zero-injection and pseudo-measurement
        weights makes too large for double precision, and a dense QR is slow.

        Returns the state, the residuals and the LU factors of the final augmented matrix."""
        z = np.array([m.value for m in ms])
        var = np.array([m.std for m in ms]) ** 2
        v = v0.copy()
        cols = self.state_buses
        n_s, m = len(cols), len(ms)
        for it in range(1, max_iter + 1):
            h, jac = self._h_and_jacobian(v, ms)
            lu = self._factor(var, jac)
            sol = lu.solve(np.concatenate([z - h, np.zeros(2 * n_s)]))
            dx = sol[m:]
            if not np.isfinite(dx).all():
                raise StateEstimationError("the WLS step is not finite (not observable?)")
            va = np.angle(v[cols]) + dx[:n_s]
            vm = np.abs(v[cols]) + dx[n_s:]
            v[cols] = vm * np.exp(1j * va)
            if np.max(np.abs(dx)) < tol:
                h, jac = self._h_and_jacobian(v, ms)
                return v, z - h, self._factor(var, jac), it
        raise StateEstimationError(f"WLS did not converge in {max_iter} iterations")

    @staticmethod
    def _factor(var: NDArray[np.float64], jac: NDArray[np.float64]) -> scipy.sparse.linalg.SuperLU:
        h_sp = sp.csc_matrix(jac)
        k = sp.bmat([[sp.diags(var), h_sp], [h_sp.T, None]], format="csc")
        try:
            return scipy.sparse.linalg.splu(k)
        except RuntimeError as exc:  # "Factor is exactly singular"
            raise StateEstimationError(f"the grid is not observable: {exc}") from exc

    def estimate(
        self,
        measurements: Sequence[Measurement],
        *,
        start: Injections | None = None,
        lnr_threshold: float = 3.0,
        max_removals: int = 5,
        tol: float = 1e-7,
        max_iter: int = 30,
    ) -> StateEstimate:
        """Estimate the state from ``measurements`` with bad-data removal (module docstring).

        Args:
            measurements: sensors and pseudo-measurements (:func:`sensor_measurements`,
                :meth:`pseudo_measurements`).
            start: one scenario whose power flow starts the iterations (default: the model's own
                power flow).
            lnr_threshold: largest normalised residual above which a measurement is bad data.
            max_removals: most measurements removed as bad data.
            tol: convergence tolerance on the state update (p.u. and rad).
            max_iter: Gauss–Newton iterations per estimate.

        Raises:
            StateEstimationError: no convergence, or not observable.
        """
        from pandapower.pypower.idx_bus import VA, VM

        ppc_bus = self.net._ppc["bus"]
        v0 = ppc_bus[:, VM].real * np.exp(1j * np.deg2rad(ppc_bus[:, VA].real))
        if start is not None:
            res = self.grid.pf.run(start, config=self.config)
            vm, va = res.vm_pu[0], np.deg2rad(res.va_degree[0])
            ok = np.isfinite(vm) & np.isfinite(va)
            v0[self.bus_ppc[ok]] = vm[ok] * np.exp(1j * va[ok])
        dead = np.setdiff1d(np.arange(self.n_ppc), self.live)
        v0[dead] = 1.0  # isolated nodes: no admittance, any non-zero voltage keeps the maths finite
        v0[self.ref] = self.v_ref
        active = list(measurements)
        flagged: list[tuple[str, float]] = []
        iterations = 0
        while True:
            v, r, lu, it = self._solve(active, v0, tol, max_iter)
            iterations += it
            std = np.array([m.std for m in active])
            candidates = np.flatnonzero([not m.virtual for m in active])
            # Ω = R − H G⁻¹ Hᵀ; the top-left block of the augmented matrix's inverse is
            # R⁻¹ Ω R⁻¹, so Ωᵢᵢ = σᵢ⁴ (K⁻¹)ᵢᵢ: one multi-right-hand-side solve.
            rhs = np.zeros((lu.shape[0], len(candidates)))
            rhs[candidates, np.arange(len(candidates))] = 1.0
            k_inv_diag = lu.solve(rhs)[candidates, np.arange(len(candidates))]
            omega = np.zeros(len(active))
            omega[candidates] = std[candidates] ** 4 * k_inv_diag
            testable = np.zeros(len(active), dtype=bool)
            testable[candidates] = omega[candidates] > 1e-10 * std[candidates] ** 2
            rn = np.where(testable, np.abs(r) / np.sqrt(np.where(testable, omega, 1.0)), 0.0)
            worst = int(np.argmax(rn))
            if rn[worst] <= lnr_threshold or len(flagged) >= max_removals:
                break
            flagged.append((active[worst].label, float(rn[worst])))
            log.warning(
                "bad data: %s (normalised residual %.1f) removed", active[worst].label, rn[worst]
            )
            del active[worst]
            v0 = v
        vm_all = np.abs(v)
        va_all = np.degrees(np.angle(v))
        vm = np.where(self.bus_live, vm_all[self.bus_ppc], np.nan)
        va = np.where(self.bus_live, va_all[self.bus_ppc], np.nan)
        return StateEstimate(
            bus_index=self.grid.bus_index,
            vm_pu=vm,
            va_degree=va,
            iterations=iterations,
            objective=float(np.sum((r / std) ** 2)),
            dof=len(active) - 2 * len(self.state_buses),
            flagged=flagged,
            max_normalised_residual=float(rn.max()) if len(rn) else 0.0,
            n_measurements=len(active),
        )
