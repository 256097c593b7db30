"""The settlement rule on hand-computed cases (no chain, no database).

Terms of every case unless said: tolerance 10 %, penalty 50 % of the award's price. An award of
40 kW held one MTU is 10,000 Wh; at 20,000 cents/MWh (200 €/MWh) that is 200 cents.
"""

from __future__ import annotations

import pytest

from flexledger.units import Direction
from market.service.settlement_rules import (
    ZERO_ROOT,
    ActivatedAward,
    PodMtuEvidence,
    SettlementTerms,
    WindowUsed,
    measurement_root,
    settle_pod_mtu,
)

POD = "IT001E00000001"
T = 1_764_547_200 + 40 * 900
H1 = "0x" + "11" * 32
H2 = "0x" + "22" * 32
ROOT_W = "0x" + "ab" * 32
ROOT_B = "0x" + "cd" * 32
TERMS = SettlementTerms(tolerance_ppm=100_000, penalty_ppm=500_000)


def award(
    h: str = H1,
    w: int = 40_000,
    activated: int | None = None,
    price: int = 20_000,
    direction: Direction = Direction.UP,
) -> ActivatedAward:
    return ActivatedAward(
        award_hash=h,
        offer_hash="0x" + "01" * 32,
        request_hash="0x" + "02" * 32,
        pod=POD,
        direction=direction,
        mtu_start_s=T,
        power_w=w,
        activated_w=w if activated is None else activated,
        price_cents_per_mwh=price,
    )


def evidence(baseline: int, measured: int, problem: str | None = None) -> PodMtuEvidence:
    return PodMtuEvidence(
        pod=POD,
        mtu_start_s=T,
        baseline_wh=baseline,
        measured_wh=measured,
        baseline_root=ROOT_B,
        windows=(WindowUsed(T, ROOT_W, "certified"),),
        problem=problem,
    )


def one(baseline: int, measured: int, a: ActivatedAward | None = None) -> tuple[int, ...]:
    (s,) = settle_pod_mtu(evidence(baseline, measured), [a or award()], TERMS)
    return s.delivered_wh, s.paid_wh, s.gross_cents, s.penalty_cents, s.amount_cents, s.claim_cents


def test_over_delivery_is_paid_the_awarded_energy_only() -> None:
    # baseline 12,000 Wh, nothing consumed: 12,000 delivered, 10,000 awarded → 200 cents
    assert one(12_000, 0) == (12_000, 10_000, 200, 0, 200, 0)
    (s,) = settle_pod_mtu(evidence(12_000, 0), [award()], TERMS)
    assert s.status == "paid" and s.reason is None
    assert (s.baseline_wh, s.measured_wh, s.awarded_wh) == (12_000, 0, 10_000)


def test_under_delivery_within_tolerance_has_no_penalty() -> None:
    # 9,500 of 10,000 Wh: 190 cents, the 500 Wh short are within the 1,000 Wh tolerance
    assert one(12_000, 2_500) == (9_500, 9_500, 190, 0, 190, 0)


def test_under_delivery_beyond_tolerance_is_penalised() -> None:
    # 7,000 of 10,000: gross 140; short beyond tolerance 10,000 − 1,000 − 7,000 = 2,000 Wh
    # at half of 20,000 cents/MWh = 20 cents → 120 cents
    assert one(12_000, 5_000) == (7_000, 7_000, 140, 20, 120, 0)
    (s,) = settle_pod_mtu(evidence(12_000, 5_000), [award()], TERMS)
    assert s.status == "partially_paid" and "7000 of 10000" in (s.reason or "")


def test_non_delivery_is_a_claim_never_a_negative_amount() -> None:
    # nothing moved: short 9,000 Wh × 10,000 cents/MWh = 90 cents claimed, 0 paid
    assert one(12_000, 12_000) == (0, 0, 0, 90, 0, 90)
    (s,) = settle_pod_mtu(evidence(12_000, 12_000), [award()], TERMS)
    assert s.status == "not_delivered"


def test_wrong_direction_is_not_delivered() -> None:
    # an up award but the POD consumed 2,000 Wh more than its baseline
    assert one(12_000, 14_000) == (-2_000, 0, 0, 90, 0, 90)
    (s,) = settle_pod_mtu(evidence(12_000, 14_000), [award()], TERMS)
    assert s.status == "not_delivered" and "wrong way" in (s.reason or "")


def test_injecting_pod_curtailed_down() -> None:
    # PV injecting 32 kW (baseline −8,000 Wh) curtailed to 12 kW (−3,000 Wh): a down award
    # of 20 kW (5,000 Wh) at 15,000 cents/MWh delivered −1 × (−8,000 − −3,000) = 5,000 Wh
    a = award(w=20_000, price=15_000, direction=Direction.DOWN)
    assert one(-8_000, -3_000, a) == (5_000, 5_000, 75, 0, 75, 0)
    # an up award at the same injecting POD (a battery injecting 8 kW more): 2,000 Wh
    up = award(w=8_000, price=15_000, direction=Direction.UP)
    assert one(-8_000, -10_000, up) == (2_000, 2_000, 30, 0, 30, 0)


def test_partial_order_caps_the_awarded_energy() -> None:
    # the DSO ordered 20 of the 40 kW awarded: 5,000 Wh paid at most
    a = award(activated=20_000)
    assert one(12_000, 0, a) == (12_000, 5_000, 100, 0, 100, 0)


def test_split_across_awards_credits_each_wh_once() -> None:
    # 9,001 Wh over 30 kW (H1) and 10 kW (H2): ⌊9001·3/4⌋ = 6,750, ⌊9001/4⌋ = 2,250, the
    # remaining 1 Wh to the smallest hash (H1)
    a1, a2 = award(H1, 30_000), award(H2, 10_000)
    s2, s1 = settle_pod_mtu(evidence(12_000, 2_999), [a2, a1], TERMS)
    assert (s1.delivered_wh, s2.delivered_wh) == (6_751, 2_250)
    assert s1.delivered_wh + s2.delivered_wh == 9_001
    # 6,751 of 7,500 (tolerance 750): paid; 2,250 of 2,500 (tolerance 250): paid
    assert (s1.status, s2.status) == ("paid", "paid")
    assert (s1.amount_cents, s2.amount_cents) == (135, 45)


def test_opposite_directions_at_one_pod_are_split_per_direction() -> None:
    up, down = award(H1, 40_000), award(H2, 40_000, direction=Direction.DOWN)
    s_up, s_down = settle_pod_mtu(evidence(12_000, 4_000), [up, down], TERMS)
    assert (s_up.delivered_wh, s_down.delivered_wh) == (8_000, -8_000)
    assert s_up.amount_cents == 150 and s_down.amount_cents == 0 and s_down.claim_cents == 90


def test_payment_rounds_half_to_even() -> None:
    # 10 Wh × 50,000 cents/MWh = 0.5 cent → 0; 30 Wh → 1.5 → 2
    zero = TERMS.__class__(tolerance_ppm=1_000_000, penalty_ppm=0)
    (s,) = settle_pod_mtu(evidence(10, 0), [award(w=40, price=50_000)], zero)
    assert (s.paid_wh, s.amount_cents) == (10, 0)
    (s,) = settle_pod_mtu(evidence(30, 0), [award(w=120, price=50_000)], zero)
    assert (s.paid_wh, s.amount_cents) == (30, 2)


def test_uncertified_evidence_is_unpaid_and_says_why() -> None:
    ev = evidence(12_000, 0, problem="window 1764583200 is mismatch: altered seqs [7]")
    (s,) = settle_pod_mtu(ev, [award()], TERMS)
    assert s.status == "unpaid_uncertified"
    assert s.reason == "window 1764583200 is mismatch: altered seqs [7]"
    assert (s.amount_cents, s.claim_cents, s.delivered_wh, s.measured_wh) == (0, 0, 0, 0)
    assert s.measurement_root == measurement_root([ROOT_W])


def test_measurement_root_of_no_window_is_zero() -> None:
    assert measurement_root([]) == ZERO_ROOT
    assert measurement_root([None]) == ZERO_ROOT
    assert measurement_root([ROOT_W]) != measurement_root([ROOT_W, ROOT_W])


def test_terms_are_checked() -> None:
    with pytest.raises(ValueError):
        SettlementTerms(tolerance_ppm=2_000_000)
    with pytest.raises(ValueError):
        settle_pod_mtu(
            evidence(0, 0), [award().__class__(**{**award().__dict__, "pod": "IT001E00000009"})]
        )
