"""Python leaf encodings (flexledger.messages.leaves) equal the contracts' leaf views."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node import leaves
from node.contracts import Sample, Window

from .conftest import Chain

b32 = st.binary(min_size=32, max_size=32)
u64 = st.integers(0, 2**64 - 1)
u32 = st.integers(0, 2**32 - 1)
i64 = st.integers(-(2**63), 2**63 - 1)
SETTINGS = settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@SETTINGS
@given(pod=b32, t=u64, p_w=i64, q_var=i64, v_mv=u64, seq=u64)
def test_sample_leaf(
    chain_session: Chain, pod: bytes, t: int, p_w: int, q_var: int, v_mv: int, seq: int
) -> None:
    s = Sample(pod, t, p_w, q_var, v_mv, seq)
    expected = leaves.sample_leaf(pod, t, p_w, q_var, v_mv, seq)
    assert chain_session.c.anchor.sample_leaf(s) == expected


@SETTINGS
@given(pod=b32, h=b32, received_at=u64)
def test_setpoint_leaf(chain_session: Chain, pod: bytes, h: bytes, received_at: int) -> None:
    assert chain_session.c.anchor.setpoint_leaf(pod, h, received_at) == leaves.setpoint_leaf(
        pod, h, received_at
    )


@SETTINGS
@given(pod=b32, start=u64, root=b32, count=u32, sp=b32)
def test_window_leaf(
    chain_session: Chain, pod: bytes, start: int, root: bytes, count: int, sp: bytes
) -> None:
    w = Window(pod, start, root, count, sp)
    assert chain_session.c.anchor.window_leaf(w) == leaves.window_leaf(pod, start, root, count, sp)


@SETTINGS
@given(h=b32)
def test_order_book_leaves(chain_session: Chain, h: bytes) -> None:
    m = chain_session.c.market
    assert m.offer_leaf(h) == leaves.offer_leaf(h)
    assert m.request_leaf(h) == leaves.request_leaf(h)
    assert m.offer_leaf(h) != m.request_leaf(h)


@SETTINGS
@given(session=b32, offer=b32, request=b32, mtu=u64, power=u64, price=u64)
def test_award_leaf(
    chain_session: Chain,
    session: bytes,
    offer: bytes,
    request: bytes,
    mtu: int,
    power: int,
    price: int,
) -> None:
    on_chain = chain_session.c.market.award_leaf(session, offer, request, mtu, power, price)
    assert on_chain == leaves.award_leaf(session, offer, request, mtu, power, price)


@SETTINGS
@given(pod=b32, mtu=u64, e_wh=i64)
def test_baseline_leaf(chain_session: Chain, pod: bytes, mtu: int, e_wh: int) -> None:
    assert chain_session.c.baselines.baseline_leaf(pod, mtu, e_wh) == leaves.baseline_leaf(
        pod, mtu, e_wh
    )


@SETTINGS
@given(award=b32, approved=st.booleans(), reason=b32)
def test_decision_leaf(chain_session: Chain, award: bytes, approved: bool, reason: bytes) -> None:
    assert chain_session.c.market.decision_leaf(award, approved, reason) == leaves.decision_leaf(
        award, approved, reason
    )
