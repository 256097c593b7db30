"""Real-time state estimation: accuracy at 1 % sensor noise, bad data, topology tracking."""

from __future__ import annotations

import copy

import numpy as np
import pandapower as pp
import pytest

from dso import DsoGrid, StateEstimator, Topology, sensor_measurements
from flexledger.messages import SensorReading, TopologyEvent
from flexledger.powerflow import Injections
from flexledger.scenario import Scenario

NOON = 48
_COLUMNS = {
    "load_p_mw": ("load", "p_mw"),
    "load_q_mvar": ("load", "q_mvar"),
    "sgen_p_mw": ("sgen", "p_mw"),
    "sgen_q_mvar": ("sgen", "q_mvar"),
    "storage_p_mw": ("storage", "p_mw"),
    "storage_q_mvar": ("storage", "q_mvar"),
}


@pytest.fixture(scope="module")
def truth(pv_grid: DsoGrid, pv_truth: Injections) -> pp.pandapowerNet:
    """The true state at noon, by plain pandapower."""
    net = copy.deepcopy(pv_grid.net)
    values = pv_truth.select([NOON]).resolved(net)
    for name, (table, col) in _COLUMNS.items():
        net[table][col] = values[name][0]
    pp.runpp(net, numba=False)
    return net


def _readings(
    truth: pp.pandapowerNet, case: Scenario, noise: float, seed: int
) -> list[SensorReading]:
    """What the world's field sensors report (``sim.sensors``): phase-to-neutral voltage, and on
    a line the current (the larger of its two ends) and the from bus's voltage, no power."""
    rng = np.random.default_rng(seed)
    out = []
    for s in case.sensors:
        bus = s.bus if s.bus is not None else int(truth.line.from_bus[s.line])
        factor = 1 + rng.normal(0, noise)
        v_mv = truth.res_bus.vm_pu[bus] * truth.bus.vn_kv[bus] / np.sqrt(3) * 1e6 * factor
        i_ma = 0.0 if s.line is None else truth.res_line.i_ka[s.line] * 1e6 * factor
        out.append(SensorReading(sensor_id=s.id, t_s=0, v_mv=round(v_mv), i_ma=round(i_ma), seq=1))
    return out


@pytest.fixture(scope="module")
def estimator(pv_grid: DsoGrid) -> StateEstimator:
    """Pseudo-measurements weighted as good as they are here (5 %, see ``pseudo``)."""
    return StateEstimator(pv_grid, pseudo_pct=0.05)


@pytest.fixture(scope="module")
def pseudo(pv_grid: DsoGrid, pv_truth: Injections) -> Injections:
    """The forecast: every element's true power with 5 % independent error (the scenario
    schema's default forecast noise)."""
    rng = np.random.default_rng(3)
    values = pv_truth.select([NOON]).resolved(pv_grid.net)
    noisy = {k: v * (1 + rng.normal(0, 0.05, v.shape)) for k, v in values.items()}
    return Injections(**noisy)  # type: ignore[arg-type]


def _max_error(estimate_vm: np.ndarray, truth: pp.pandapowerNet, grid: DsoGrid) -> float:
    true_vm = truth.res_bus.vm_pu.reindex(grid.bus_index).to_numpy()
    return float(np.nanmax(np.abs(estimate_vm - true_vm)))


def test_recovers_the_true_state_at_one_percent_noise(
    pv_grid: DsoGrid,
    pv_case: Scenario,
    truth: pp.pandapowerNet,
    estimator: StateEstimator,
    pseudo: Injections,
) -> None:
    """Sensors at 1 % noise and 5 %-error forecast pseudo-measurements: every bus within
    0.005 p.u. of the true state, over three noise draws (at a 3σ threshold a good reading is
    flagged now and then: at most one per draw)."""
    for seed in range(3):
        readings = _readings(truth, pv_case, 0.01, seed)
        ms = sensor_measurements(pv_grid, readings, {s.id: s for s in pv_case.sensors})
        ms += estimator.pseudo_measurements(pseudo)
        est = estimator.estimate(ms, start=pseudo)
        err = _max_error(est.vm_pu, truth, pv_grid)
        assert err < 0.005, f"seed {seed}: max |dV| {err:.4f} p.u."
        assert len(est.flagged) <= 1, est.flagged
        assert est.dof > 0


@pytest.mark.parametrize(
    ("sensor", "field", "factor", "label"),
    [
        ("V25", "v_mv", 1.10, "sensor:V25:v"),
        ("V60", "v_mv", 0.92, "sensor:V60:v"),
        ("L10", "i_ma", 1.6, "sensor:L10:i"),
    ],
)
def test_flags_a_gross_error(
    pv_grid: DsoGrid,
    pv_case: Scenario,
    truth: pp.pandapowerNet,
    estimator: StateEstimator,
    pseudo: Injections,
    sensor: str,
    field: str,
    factor: float,
    label: str,
) -> None:
    """One reading off by 8–10 % (a voltage) or 60 % (a line current): the largest normalised
    residual test flags exactly it, and the estimate stays within 0.005 p.u."""
    readings = [
        r
        if r.sensor_id != sensor
        else r.model_copy(update={field: round(getattr(r, field) * factor)})
        for r in _readings(truth, pv_case, 0.01, 11)
    ]
    ms = sensor_measurements(pv_grid, readings, {s.id: s for s in pv_case.sensors})
    ms += estimator.pseudo_measurements(pseudo)
    est = estimator.estimate(ms, start=pseudo)
    assert [f for f, _ in est.flagged] == [label]
    assert est.flagged[0][1] > 3.0
    assert est.max_normalised_residual <= 3.0
    assert _max_error(est.vm_pu, truth, pv_grid) < 0.005


def test_topology_events_are_tracked(pv_grid: DsoGrid) -> None:
    topo = Topology()
    assert topo.apply(TopologyEvent(element="switch:243", closed=True, t_s=10, seq=1))
    assert topo.apply(TopologyEvent(element="line:17", closed=False, t_s=10, seq=2))
    assert not topo.apply(TopologyEvent(element="line:17", closed=True, t_s=5, seq=2))  # stale
    config = topo.config(pv_grid)
    assert config.switches[243] is True
    line_switches = pv_grid.net.switch.index[
        (pv_grid.net.switch.et == "l") & (pv_grid.net.switch.element == 17)
    ]
    assert len(line_switches) and all(config.switches[int(s)] is False for s in line_switches)
    assert topo.unswitched_outages(pv_grid) == set()
    assert topo.apply(TopologyEvent(element="line:17", closed=True, t_s=20, seq=3))
    assert topo.lines_out == set()
