"""Baseline methods beside the BRP's, by hand, and the market's and the auditor's
implementations agreeing on random histories."""

from __future__ import annotations

import random

from audit import baselines as auditor
from flexledger.messages import QuarterlyMeasure, id32
from flexledger.time import DAY_S, MTU_S
from market.service import baselines as market

POD = "IT001E00000001"
DAY = 1_796_083_200  # 2026-12-01


def _flat(days: dict[int, int]) -> dict[int, int]:
    """Days before DAY (1 = yesterday) with a flat value in every MTU."""
    return {DAY - k * DAY_S + i * MTU_S: wh for k, wh in days.items() for i in range(96)}


def test_high_x_of_y_by_hand() -> None:
    # the 3 days before: 100, 300, 200 Wh per MTU; the high 2 of 3 are 300 and 200 → 250
    measures = _flat({1: 100, 2: 300, 3: 200, 4: 999})
    b = market.high_x_of_y(measures, DAY, 2, 3)
    assert b is not None and set(b.values()) == {250} and len(b) == 96
    # an activated day is not eligible: days 2, 3, 4 → 999 and 300 → 650 (rounded half even)
    b = market.high_x_of_y(measures, DAY, 2, 3, excluded_days={DAY - DAY_S})
    assert b is not None and b[DAY] == 650
    # too few eligible days
    assert market.high_x_of_y(_flat({1: 1}), DAY, 2, 3) is None
    # a day with one MTU missing is not eligible: days 1 and 3 remain → 150
    holes = _flat({1: 100, 2: 300, 3: 200})
    del holes[DAY - 2 * DAY_S + 5 * MTU_S]
    b = market.high_x_of_y(holes, DAY, 2, 3)
    assert b is not None and b[DAY] == 150


def test_meter_before_after_by_hand() -> None:
    t = DAY + 40 * MTU_S
    measures = {t - k * MTU_S: wh for k, wh in ((1, 1000), (2, 1001), (3, 1002), (4, 1003))}
    # an activation from t to t + 2 MTUs: every MTU of the block has the hour before's mean
    activated = {t, t + MTU_S, t + 2 * MTU_S}
    assert market.meter_before_after(measures, t, activated) == 1002  # 1001.5 → 1002 (even)
    assert market.meter_before_after(measures, t + 2 * MTU_S, activated) == 1002
    assert market.activation_start(t + 2 * MTU_S, activated) == t
    assert market.meter_before_after({}, t, activated) is None


def test_method_names_round_trip_through_their_on_chain_ids() -> None:
    for name in ("brp", "meter_before_after", "high_4_of_5", "high_10_of_10"):
        assert market.method_name(id32(name)) == name
    assert market.method_name(id32("high_21_of_30")) is None
    assert market.parse_high("high_4_of_5") == (4, 5)
    assert auditor.parse_method("high_4_of_5") == ("high", 4, 5)


def test_measures_prefer_certified_complete_samples_over_history() -> None:
    t = DAY
    rows = [
        QuarterlyMeasure(pod=POD, mtu_start_s=t, e_wh=5, sample_count=225, certified=True),
        QuarterlyMeasure(pod=POD, mtu_start_s=t, e_wh=9, source="history", certified=True),
        QuarterlyMeasure(pod=POD, mtu_start_s=t + MTU_S, e_wh=7, sample_count=200, certified=True),
        QuarterlyMeasure(pod=POD, mtu_start_s=t + MTU_S, e_wh=8, source="history"),
    ]
    assert market.measure_table(rows) == {t: 5, t + MTU_S: 8}
    assert auditor.measures_by_mtu([r.model_dump() for r in rows]) == {t: 5, t + MTU_S: 8}


def test_market_and_auditor_agree_on_random_histories() -> None:
    rng = random.Random(7)
    for _ in range(20):
        measures = {
            DAY - k * DAY_S + i * MTU_S: rng.randint(-5_000, 20_000)
            for k in range(1, 15)
            for i in range(96)
            if rng.random() > 0.002
        }
        excluded = {DAY - rng.randint(1, 14) * DAY_S}
        x = rng.randint(1, 5)
        y = rng.randint(x, 10)
        assert market.high_x_of_y(measures, DAY, x, y, excluded) == auditor.high_x_of_y(
            measures, DAY, x, y, excluded
        )
        t = DAY - rng.randint(1, 10) * DAY_S + rng.randint(8, 95) * MTU_S
        activated = {t + k * MTU_S for k in range(rng.randint(1, 4))}
        assert market.meter_before_after(measures, t, activated) == auditor.meter_before_after(
            measures, t, activated
        )
