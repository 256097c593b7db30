"""Devices never leave their physical limits, whatever they are told (property tests)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from flexledger.units import Direction
from sim.devices import (
    N_STEPS,
    STEP_H,
    Battery,
    Command,
    ElectricVehicle,
    FlexibleLoad,
    PvCurtailment,
    ThermalLoad,
)

TOL = 1e-6
SETTINGS = settings(max_examples=40, deadline=None)

commands = st.lists(
    st.tuples(
        st.integers(0, N_STEPS - 1),  # start
        st.integers(1, 2_700),  # length in steps (up to 3 h)
        st.floats(-60_000, 60_000, allow_nan=False),  # W
    ),
    max_size=3,
)


def _commands(raw: list[tuple[int, int, float]]) -> list[Command]:
    return [Command(f"c{i}", s, min(s + n, N_STEPS), d) for i, (s, n, d) in enumerate(raw)]


def _ramp_ok(delta: np.ndarray, ramp: float, excused: np.ndarray) -> bool:
    steps = np.abs(np.diff(np.concatenate(([0.0], delta))))
    return bool(np.all((steps <= ramp + TOL) | excused))


@SETTINGS
@given(
    p_max=st.floats(1_000, 50_000),
    hours=st.floats(0.1, 4.0),
    soc=st.floats(0.0, 1.0),
    ramp=st.floats(50, 60_000),
    raw=commands,
)
def test_battery_stays_within_soc_power_and_ramp(
    p_max: float, hours: float, soc: float, ramp: float, raw: list[tuple[int, int, float]]
) -> None:
    e_max = p_max * hours
    b = Battery("bat", p_max, e_max, soc, np.zeros(N_STEPS), ramp, adds_baseline=True)
    b.set_commands(_commands(raw), 0)
    assert np.all(b.energy_wh >= -TOL) and np.all(b.energy_wh <= e_max + TOL)
    assert np.all(np.abs(b.delta_w) <= p_max + TOL)
    # only hitting empty or full stops it faster than its ramp
    at_bound = (b.energy_wh[1:] <= TOL) | (b.energy_wh[1:] >= e_max - TOL)
    after_bound = np.concatenate(([False], at_bound[:-1]))
    assert _ramp_ok(b.delta_w, ramp, at_bound | after_bound)
    # the energy follows the power, with the efficiency
    eta = b.efficiency
    flow = np.where(b.delta_w > 0, b.delta_w * eta, b.delta_w / eta) * STEP_H
    assert np.allclose(np.diff(b.energy_wh), flow, atol=1e-6)


@SETTINGS
@given(raw=commands, later=commands, k0=st.integers(0, N_STEPS - 1))
def test_resimulating_never_changes_the_past(
    raw: list[tuple[int, int, float]], later: list[tuple[int, int, float]], k0: int
) -> None:
    first = _commands(raw)
    added = [Command(f"l{i}", max(c.start, k0), max(c.end, k0 + 1), c.delta_w)
             for i, c in enumerate(_commands(later))]  # fmt: skip
    b = Battery("bat", 20_000, 40_000, 0.5, np.zeros(N_STEPS), 2_000, adds_baseline=True)
    b.set_commands(first, 0)
    past = b.delta_w[:k0].copy()
    b.set_commands(first + added, k0)
    assert np.array_equal(b.delta_w[:k0], past)
    fresh = Battery("bat", 20_000, 40_000, 0.5, np.zeros(N_STEPS), 2_000, adds_baseline=True)
    fresh.set_commands(first + added, 0)
    assert np.allclose(fresh.delta_w, b.delta_w, atol=1e-9)


@SETTINGS
@given(peak=st.floats(1_000, 300_000), ramp=st.floats(100, 1e6), raw=commands)
def test_pv_curtails_between_zero_and_what_is_available(
    peak: float, ramp: float, raw: list[tuple[int, int, float]]
) -> None:
    hours = np.arange(N_STEPS) * STEP_H
    available = peak * np.clip(np.sin((hours - 6) / 14 * np.pi), 0, None)
    pv = PvCurtailment("pv", peak, -available, ramp, adds_baseline=False)
    pv.set_commands(_commands(raw), 0)
    assert np.all(pv.delta_w >= -TOL)
    assert np.all(pv.delta_w <= available + TOL)
    assert pv.capability_w(Direction.UP, 0, N_STEPS) == 0.0


@SETTINGS
@given(
    p_max=st.floats(3_000, 22_000),
    arrive=st.integers(0, N_STEPS - 3_000),
    stay=st.integers(300, 10_000),
    need_h=st.floats(0.0, 6.0),
    raw=commands,
)
def test_ev_charges_within_limits_and_still_leaves_full(
    p_max: float, arrive: int, stay: int, need_h: float, raw: list[tuple[int, int, float]]
) -> None:
    depart = min(arrive + stay, N_STEPS)
    ev = ElectricVehicle("ev", p_max, arrive, depart, p_max * need_h, p_max)
    ev.set_commands(_commands(raw), 0)
    p = ev.power_w
    assert np.all(p >= -TOL) and np.all(p <= p_max + TOL)
    assert np.all(np.abs(p[:arrive]) <= TOL) and np.all(np.abs(p[depart:]) <= TOL)
    assert np.all(ev.energy_wh <= ev.need_wh + 1e-6)
    # whatever it was asked, it leaves with what it needed
    assert abs(ev.energy_wh[depart] - ev.need_wh) <= 1e-6


@SETTINGS
@given(
    p_max=st.floats(2_000, 300_000),
    level=st.floats(0.0, 1.0),
    band_c=st.floats(0.5, 3.0),
    ramp_share=st.floats(1 / 225, 1.0),
    raw=commands,
)
def test_thermal_load_stays_in_its_comfort_band_and_comes_back(
    p_max: float, level: float, band_c: float, ramp_share: float, raw: list[tuple[int, int, float]]
) -> None:
    band_wh = p_max * 0.5 * band_c
    ramp = ramp_share * p_max  # full power within an MTU at the slowest
    base = np.full(N_STEPS, level * p_max)
    cmds = [c for c in _commands(raw) if c.end <= N_STEPS - 10 * 900]  # 10 h left to recover
    hvac = ThermalLoad("hvac", "hvac", p_max, base, band_wh, band_c, ramp, adds_baseline=True)
    hvac.set_commands(cmds, 0)
    p = hvac.power_w
    assert np.all(p >= -TOL) and np.all(p <= p_max + TOL)
    assert np.all(np.abs(hvac.thermal_wh) <= band_wh + TOL)
    assert np.all(np.abs(hvac.temperature_deviation_c) <= band_c + TOL)
    # back at its set-point: by its rebound, or on its own when its power is at a limit
    assert abs(hvac.thermal_wh[-1]) <= max(1.0, 0.05 * band_wh)
    # only reaching the edge of the comfort band stops it faster than its ramp
    at_edge = np.abs(hvac.thermal_wh[1:]) >= band_wh - 1e-6
    after_edge = np.concatenate(([False], at_edge[:-1]))
    assert _ramp_ok(hvac.delta_w, ramp, at_edge | after_edge)


@SETTINGS
@given(p_max=st.floats(1_000, 300_000), level=st.floats(0.0, 1.0), raw=commands)
def test_flexible_load_stays_within_zero_and_its_rating(
    p_max: float, level: float, raw: list[tuple[int, int, float]]
) -> None:
    load = FlexibleLoad("load", p_max, np.full(N_STEPS, level * p_max), p_max, adds_baseline=False)
    load.set_commands(_commands(raw), 0)
    assert np.all(load.power_w >= -TOL) and np.all(load.power_w <= p_max + TOL)


def test_ev_defers_then_catches_up() -> None:
    """An up activation defers charging; the energy comes back after it (rebound)."""
    ev = ElectricVehicle("ev", 11_000, 15_300, N_STEPS, 30_000, 11_000)
    ev.set_commands([Command("o", 15_750, 15_975, -11_000)], 15_000)  # 18:30-18:45
    assert np.allclose(ev.delta_w[15_750:15_975], -11_000)
    assert ev.delta_w[15_975:].sum() == pytest_approx(11_000 * 225)
    assert abs(ev.delta_w.sum()) < 1e-6


def test_thermal_rebound_repays_the_energy() -> None:
    base = np.full(N_STEPS, 100_000.0)
    hvac = ThermalLoad("hvac", "hvac", 250_000, base, 187_500, 1.5, 1e9, adds_baseline=True)
    hvac.set_commands([Command("o", 10_000, 10_225, -50_000)], 0)
    assert np.allclose(hvac.delta_w[10_000:10_225], -50_000)
    deferred = -hvac.delta_w[10_000:10_225].sum()
    repaid = hvac.delta_w[10_225:].sum()
    assert hvac.delta_w[10_225:].min() >= 0
    assert hvac.delta_w[10_225:].max() <= 0.2 * 250_000 + 1e-6  # a gentle recovery
    assert 0.6 * deferred < repaid < deferred  # the building drifted back by some itself


def pytest_approx(value: float) -> object:
    import pytest

    return pytest.approx(value, rel=1e-9, abs=1e-6)
