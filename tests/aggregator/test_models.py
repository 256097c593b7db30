"""The aggregator's pure steps by hand: resource models, pricing, offer runs, plans, payouts."""

from __future__ import annotations

import pytest

from aggregator.offers import offer_runs, plan_offers
from aggregator.payouts import owner_payouts
from aggregator.planning import plan_items
from aggregator.pricing import CostModel, offer_price_cents_per_mwh
from aggregator.resources import FlexParams, pod_power_history, resource_flexibility
from flexledger.messages import Award
from flexledger.scenario import ResourceSpec
from flexledger.units import Direction

DAY = 1_796_083_200
P = FlexParams(safety=1.0, min_w=1)


def test_battery_spreads_its_energy_over_every_offered_mtu() -> None:
    # 100 kW, 200 kWh at 30 %: up 0.3 × 200 × 0.95 = 57 kWh over 16 MTUs (4 h) → 14.25 kW;
    # down 0.7 × 200 / 0.95 = 147.37 kWh over 8 MTUs (2 h) → 73.68 kW
    bat = ResourceSpec(id="b", kind="battery", p_max_kw=100, e_max_kwh=200, soc_init=0.3)
    params = FlexParams(safety=1.0, min_w=1, up_window=(68, 84), down_window=(40, 48))
    f = resource_flexibility(bat, available=(0, 96), params=params)
    assert set(f.up_w[68:84]) == {14_250} and sum(f.up_w) == 16 * 14_250
    assert set(f.down_w[40:48]) == {73_684} and f.down_w[48] == 0
    # the worst case (every offered MTU awarded) stays within the state of charge
    assert sum(f.up_w) * 0.25 <= 0.3 * 200_000 * 0.95
    # what the FR owner declared limits the window
    f = resource_flexibility(bat, available=(70, 72), params=params)
    assert [i for i, w in enumerate(f.up_w) if w] == [70, 71]
    assert f.up_w[70] == 100_000  # 57 kWh over 30 minutes: capped at its rating


def test_pv_curtails_only_what_the_pod_surely_injected() -> None:
    pv = ResourceSpec(id="pv", kind="pv", p_max_kw=50)
    # the POD injected 30 kW and 20 kW at MTU 48 on two recent days, consumed at MTU 10
    history = {DAY - 86_400 + 48 * 900: -7_500, DAY - 2 * 86_400 + 48 * 900: -5_000}
    history |= {DAY - 86_400 + 10 * 900: 1_000, DAY - 2 * 86_400 + 10 * 900: 1_000}
    power = pod_power_history(history, DAY, 2)
    f = resource_flexibility(pv, available=(0, 96), history_w=power, params=P)
    assert f.down_w[48] == 20_000 and f.down_w[10] == 0 and not any(f.up_w)


def test_ev_defers_only_while_it_surely_charges() -> None:
    # 11 kW, needs 0.5 × 60 = 30 kWh from MTU 68 to 96: it surely charges (±15 % need,
    # 45 min arrival margin) in [68 + 3, 68 + ⌊25.5 / 2.75⌋ − 3) = [71, 74); slack
    # (28 − 3) × 2.75 − 34.5 = 34.25 kWh over 3 MTUs → capped at 11 kW
    ev = ResourceSpec(
        id="ev",
        kind="ev",
        p_max_kw=11,
        e_max_kwh=60,
        soc_init=0.5,
        available_from_mtu=68,
        available_to_mtu=96,
    )
    f = resource_flexibility(ev, available=(0, 96), params=P)
    assert [i for i, w in enumerate(f.up_w) if w] == [71, 72, 73]
    assert set(w for w in f.up_w if w) == {11_000} and not any(f.down_w)


def test_thermal_needs_a_forecast_and_stays_in_its_band() -> None:
    hp = ResourceSpec(id="hp", kind="heat_pump", p_max_kw=10, comfort_band_c=1.0)
    assert not any(resource_flexibility(hp, available=(0, 96), params=P).up_w)
    cold = [0.0] * 96  # 0 °C all day: heating share 0.8 × 0.8 … 0.8 × 0.95 (±3 °C)
    f = resource_flexibility(hp, available=(0, 96), temperature_c=cold, params=P)
    # band 10 kW × 0.5 h = 5 kWh over 96 MTUs (24 h) = 208 W, below the share caps
    assert set(f.up_w) == {208} and set(f.down_w) == {208}


def test_prices_carry_the_kind_and_the_margin() -> None:
    bat = ResourceSpec(id="b", kind="battery", p_max_kw=1, e_max_kwh=1, cost_eur_per_mwh=80)
    pv = ResourceSpec(id="p", kind="pv", p_max_kw=1, cost_eur_per_mwh=60)
    hp = ResourceSpec(id="h", kind="heat_pump", p_max_kw=1, cost_eur_per_mwh=90)
    cost = CostModel(margin=0.05, battery_efficiency=0.95, rebound_loss=0.2)
    assert offer_price_cents_per_mwh(bat, cost) == round(80 / 0.95**2 * 1.05 * 100)  # 9307
    assert offer_price_cents_per_mwh(pv, cost) == 6300
    assert offer_price_cents_per_mwh(hp, cost) == 11340


def test_offer_runs_merge_equal_power_and_drop_small() -> None:
    w = [0] * 96
    w[40:44] = [5_200, 5_400, 5_000, 800]
    w[50] = 3_000
    assert offer_runs(w, 0, 96, step_w=500, min_w=1000) == [(40, 3, 5_000), (50, 1, 3_000)]
    plans = plan_offers(
        session_id="DA-1",
        aggregator="0x" + "11" * 20,
        day_s=DAY,
        delivery_start_s=DAY + 42 * 900,
        mtu_count=10,
        valid_until_s=DAY + 86_400,
        resources=[("IT001E00000001", "bat", 9_000, w, [0] * 96)],
        first_nonce=7,
    )
    # clipped to the session's MTUs 42…51
    assert [(p.offer.mtu_start_s, p.offer.mtu_count, p.offer.max_w) for p in plans] == [
        (DAY + 42 * 900, 1, 5_000),
        (DAY + 50 * 900, 1, 3_000),
    ]
    assert [p.offer.nonce for p in plans] == [7, 8]
    assert all(p.offer.direction is Direction.UP for p in plans)


def _award(offer: str, t: int, w: int) -> Award:
    return Award(
        session_id="DA-1",
        offer_hash=offer,
        request_hash="0x" + "ee" * 32,
        mtu_start_s=t,
        power_w=w,
        price_cents_per_mwh=1,
        pod="IT001E00000001",
        direction=Direction.UP,
        stage="dso",
        share_of_request=1.0,
    )


def test_plan_items_merge_consecutive_mtus_of_one_offer() -> None:
    o1, o2 = "0x" + "01" * 32, "0x" + "02" * 32
    items = plan_items(
        [
            _award(o1, DAY + 900, 5),
            _award(o1, DAY, 5),
            _award(o1, DAY + 1800, 6),
            _award(o2, DAY, 1),
        ]
    )
    assert [(i.offer_hash, i.mtu_start_s, i.mtu_count, i.power_w) for i in items] == [
        (o1, DAY, 2, 5),
        (o2, DAY, 1, 1),
        (o1, DAY + 1800, 1, 6),
    ]


def test_owner_payouts_net_claims_and_keep_the_fee() -> None:
    a, b = "0xA", "0xB"
    owner_of = {"o1": a, "o2": a, "o3": b}
    lines = [("o1", 1_000, 0), ("o2", 0, 150), ("o3", 0, 90), ("other", 500, 0)]
    # a: (1000 − 150) × 0.88 = 748; b owes 90: 0, never negative; 'other' is not ours
    assert owner_payouts(lines, owner_of, 120_000) == {a: 748, b: 0}
    with pytest.raises(ValueError):
        owner_payouts(lines, owner_of, 2_000_000)
