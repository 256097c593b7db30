"""The rounding, delivery-split and set-point rules of ARCHITECTURE.md."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flexledger.units import (
    Direction,
    awarded_wh,
    delivered_wh,
    measured_wh,
    payment_cents,
    round_half_even_div,
    setpoint_target_w,
    split_delivery,
)


@given(st.integers(-(10**15), 10**15), st.integers(1, 10**9))
def test_round_half_even_div_is_exact(n: int, d: int) -> None:
    # Python's round() on a Fraction is exact and rounds ties to even.
    assert round_half_even_div(n, d) == round(Fraction(n, d))


def test_measured_wh_ties_go_to_even() -> None:
    # 225 samples of 10 W: 10 × 225 × 4 / 3600 = 2.5 Wh -> 2 (even)
    assert measured_wh([10] * 225) == 2
    # 14 W: 3.5 Wh -> 4
    assert measured_wh([14] * 225) == 4
    assert measured_wh([4000] * 225) == 1000  # 4 kW for 15 min is 1 kWh
    assert measured_wh([-4000] * 225) == -1000  # injection


def test_awarded_wh_and_payment() -> None:
    assert awarded_wh(4000) == 1000
    assert awarded_wh(10) == 2  # 2.5 -> 2
    assert awarded_wh(14) == 4  # 3.5 -> 4
    # 1000 Wh at 150 €/MWh = 15000 cents/MWh -> 15 cents
    assert payment_cents(1000, 15_000) == 15
    assert payment_cents(500, 1) == 0  # 0.0005 -> 0
    assert payment_cents(1500, 1000) == 2  # 1.5 -> 2


def test_delivered_sign_convention() -> None:
    # up: consumption fell from 1000 to 400 Wh -> 600 delivered
    assert delivered_wh(Direction.UP, 1000, 400) == 600
    # down: consumption rose -> delivered positive
    assert delivered_wh(Direction.DOWN, 1000, 1300) == 300
    # wrong direction gives a negative delivery
    assert delivered_wh(Direction.UP, 1000, 1300) == -300
    # an injecting POD (negative baseline) curtailed: injection -2000 -> -500 is a down delivery
    assert delivered_wh(Direction.DOWN, -2000, -500) == 1500


hashes = st.binary(min_size=32, max_size=32)


@given(
    st.integers(-(10**9), 10**9),
    st.lists(
        st.tuples(hashes, st.integers(0, 10**7)), min_size=1, max_size=12, unique_by=lambda t: t[0]
    ),
)
def test_split_conserves_and_remainder_goes_to_smallest_hash(
    total: int, awards: list[tuple[bytes, int]]
) -> None:
    shares = split_delivery(total, awards)
    assert sum(shares.values()) == total
    weight = sum(w for _, w in awards)
    smallest = min(h for h, _ in awards)
    for h, w in awards:
        expected = (total * w) // weight if weight else 0
        if h != smallest:
            assert shares[h] == expected
        else:
            assert 0 <= shares[h] - expected < len(awards) or weight == 0


def test_split_example_by_hand() -> None:
    a, b = b"\x01" * 32, b"\x02" * 32
    # 100 Wh over 1 kW and 2 kW awards: 33 and 66, the remainder 1 to the smaller hash
    assert split_delivery(100, [(b, 2000), (a, 1000)]) == {a: 34, b: 66}
    with pytest.raises(ValueError, match="twice"):
        split_delivery(1, [(a, 1), (a, 2)])


def test_setpoint_target() -> None:
    # baseline 1000 Wh in an MTU is 4000 W mean; up 1500 W -> 2500 W
    assert setpoint_target_w(1000, Direction.UP, 1500) == 2500
    assert setpoint_target_w(1000, Direction.DOWN, 1500) == 5500
    assert setpoint_target_w(-500, Direction.DOWN, 1000) == -1000  # less injection
    with pytest.raises(ValueError):
        setpoint_target_w(1000, Direction.UP, -1)


def test_direction_parse() -> None:
    assert Direction.parse("up") is Direction.UP
    assert Direction.parse(1) is Direction.DOWN
    with pytest.raises(ValueError, match="up"):
        Direction.parse("sideways")
