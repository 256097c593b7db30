"""Forecasts: day ahead per POD against persistence on held-out days, real time, background."""

from __future__ import annotations

import numpy as np
import pytest

from dso import (
    DsoGrid,
    PodHistory,
    background_forecast,
    day_ahead_forecast,
    evaluate,
    realtime_forecast,
)
from flexledger.scenario import Scenario
from flexledger.time import DAY_S, MTU_S, MTUS_PER_DAY

HISTORY_DAYS = 28


@pytest.fixture(scope="module")
def history(pv_grid: DsoGrid, pv_case: Scenario) -> PodHistory:
    """28 days of quarterly history of the case's PODs before its delivery day: their net power
    from the grid's own SimBench profiles, with 2 % measurement noise."""
    assert pv_grid.profile_day is not None
    first_step = (pv_grid.profile_day - HISTORY_DAYS) * MTUS_PER_DAY
    inj = pv_grid.profile_injections(start_step=first_step, n_steps=HISTORY_DAYS * MTUS_PER_DAY)
    rng = np.random.default_rng(5)
    p_kw = {pod: p * (1 + rng.normal(0, 0.02, p.shape)) for pod, p in pv_grid.pod_p_kw(inj).items()}
    return PodHistory.from_arrays(pv_case.day_s - HISTORY_DAYS * DAY_S, p_kw)


def test_forecast_beats_persistence_on_held_out_days(
    history: PodHistory, pv_case: Scenario
) -> None:
    held_out = [pv_case.day_s - k * DAY_S for k in range(7, 0, -1)]
    score = evaluate(history, held_out)
    assert score.pods == 25 and score.days == 7
    assert score.beats_persistence, str(score)
    assert abs(score.bias) < 0.25, str(score)
    print(score)


def test_day_ahead_forecast_feeds_the_grid(
    pv_grid: DsoGrid, history: PodHistory, pv_case: Scenario
) -> None:
    """The day-ahead forecast: 96 MTUs per POD, and its injections put exactly the POD's
    forecast at the POD (load convention) while the other elements follow the profiles of the
    previous days."""
    fc = day_ahead_forecast(pv_grid, history, pv_case.day_s)
    assert list(fc.mtu_start_s[:2]) == [pv_case.day_s, pv_case.day_s + MTU_S]
    inj = fc.injections(pv_grid)
    got = pv_grid.pod_p_kw(inj)
    for pod, p in fc.pod_p_kw.items():
        assert p.shape == (MTUS_PER_DAY,)
        assert got[pod] == pytest.approx(p, abs=1e-9)
    assert inj.n_scenarios == MTUS_PER_DAY


def test_background_is_the_recency_weighted_profile(pv_grid: DsoGrid) -> None:
    """Non-participating load: with a half-life of 2 days, yesterday weighs twice the day
    before; checked on one load against the profiles themselves."""
    assert pv_grid.profile_day is not None
    day = pv_grid.profile_day
    bg = background_forecast(pv_grid, day)
    prev = pv_grid.profile_injections(start_step=(day - 21) * MTUS_PER_DAY, n_steps=21 * 96)
    loads = prev.load_p_mw
    assert loads is not None and bg.load_p_mw is not None
    w = 0.5 ** (np.arange(21, 0, -1) / 2.0)
    expect = (loads[:, 5].reshape(21, 96) * w[:, None]).sum(axis=0) / w.sum()
    assert bg.load_p_mw[:, 5] == pytest.approx(expect, rel=1e-9)
    rt = background_forecast(pv_grid, day, 16, first_step=day * 96 + 40)
    assert rt.load_p_mw is not None
    assert rt.load_p_mw[:, 5] == pytest.approx(expect[40:56], rel=1e-9)


def test_realtime_forecast_corrects_by_the_latest_measure() -> None:
    da = np.full(96, 10.0)
    start = 1_785_024_000
    now = start + 40 * MTU_S
    rt = realtime_forecast(da, start, now, {now - MTU_S: 14.0}, horizon=16, decay=0.5)
    assert rt.shape == (16,)
    assert rt[0] == pytest.approx(10 + 4 * 0.5)
    assert rt[3] == pytest.approx(10 + 4 * 0.5**4)
    assert realtime_forecast(da, start, now, {}, horizon=4) == pytest.approx([10.0] * 4)


def test_measured_reactive_power_replaces_the_profile_q_and_lowers_the_voltage(
    pv_grid: DsoGrid, history: PodHistory, pv_case: Scenario
) -> None:
    """A real-time forecast that knows a POD's measured reactive power puts it in the POD's
    probe (its elements' profile Q out); an inductive 100 kvar load lowers its bus voltage."""
    from dso import assess
    from dso.forecast import GridForecast

    da = day_ahead_forecast(pv_grid, history, pv_case.day_s)
    pod = sorted(pv_grid.pods)[0]
    info = pv_grid.pods[pod]
    with_q = GridForecast(
        da.mtu_start_s, da.pod_p_kw, da.background, "real_time", {pod: np.full(96, 100.0)}
    )
    plain = da.injections(pv_grid).resolved(pv_grid.net)
    measured = with_q.injections(pv_grid).resolved(pv_grid.net)
    probe = list(pv_grid.net.sgen.index).index(info.probe)
    assert np.allclose(measured["sgen_q_mvar"][:, probe], -0.1)
    loads = [list(pv_grid.net.load.index).index(i) for i in info.loads]
    assert np.all(measured["load_q_mvar"][:, loads] == 0.0)
    assert np.array_equal(measured["load_p_mw"], plain["load_p_mw"])  # P untouched
    a_plain = assess(pv_grid, da)
    a_q = assess(pv_grid, with_q)
    col = int(np.flatnonzero(a_plain.bus_index == info.bus)[0])
    assert np.all(a_q.vm_before_pu[:, col] < a_plain.vm_before_pu[:, col] - 1e-4)
