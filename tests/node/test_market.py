"""Market sessions move forward only; validations and orders are checked against roles."""

from __future__ import annotations

import pytest

from node.contract_errors import (
    FlexMarketEmptyDelivery,
    FlexMarketInvalidKind,
    FlexMarketInvalidSignature,
    FlexMarketOrderExists,
    FlexMarketOutcomeNotValidated,
    FlexMarketRoundOutOfOrder,
    FlexMarketSessionExists,
    FlexMarketSignerNotDso,
    FlexMarketSignerNotIssuer,
    FlexMarketWrongState,
)
from node.contracts import SessionKind, SessionState
from node.eip712 import hash_struct
from node.ids import id32
from node.merkle import MerkleTree

from .conftest import Chain
from .flows import DAY, clear, open_session, order, order_hash, sign, validation


def test_session_lifecycle_moves_forward_only(chain: Chain) -> None:
    c, p = chain.c, chain.p
    session = id32("RT-1")
    assert c.market.session_of(session).state == SessionState.NONE
    with pytest.raises(FlexMarketWrongState):
        c.market.close_gate(p.market, session, b"\x01" * 32, 1, 1)
    c.market.open_session(p.market, session, SessionKind.REAL_TIME, DAY, 16, b"\x0b" * 32,
                          b"\x0c" * 32)
    s = c.market.session_of(session)
    assert (s.state, s.kind, s.delivery_start, s.mtu_count) == (
        SessionState.OPEN, SessionKind.REAL_TIME, DAY, 16)
    assert (s.baseline_method, s.pricing_rule) == (b"\x0b" * 32, b"\x0c" * 32)
    with pytest.raises(FlexMarketSessionExists):
        c.market.open_session(p.market, session, 0, DAY, 16, b"\x0b" * 32, b"\x0c" * 32)
    # no outcome and no validation before the gate closes
    with pytest.raises(FlexMarketWrongState):
        c.market.commit_outcome(p.market, session, b"\x01" * 32, 1, 1)
    v = validation(session, 1, b"\x01" * 32)
    with pytest.raises(FlexMarketWrongState):
        c.market.record_validation(p.market, v, sign(chain, p.dso, "Validation", v))

    book = MerkleTree([id32("leaf-a"), id32("leaf-b")])
    receipt = c.market.close_gate(p.market, session, book.root, 1, 1)
    s = c.market.session_of(session)
    assert s.state == SessionState.GATE_CLOSED
    assert s.order_book_root == book.root
    assert s.gate_closed_block == receipt["blockNumber"]
    with pytest.raises(FlexMarketWrongState) as err:
        c.market.close_gate(p.market, session, book.root, 1, 1)
    assert err.value.kwargs["actual"] == SessionState.GATE_CLOSED
    assert c.market.verify_order_book(session, book.leaves[1], book.proof(1))
    assert not c.market.verify_order_book(session, id32("leaf-c"), book.proof(1))

    awards = MerkleTree([id32("award-1")])
    v = validation(session, 1, awards.root)
    c.market.record_validation(p.market, v, sign(chain, p.dso, "Validation", v))
    c.market.commit_outcome(p.market, session, awards.root, 99, 1)
    assert c.market.session_of(session).state == SessionState.OUTCOME_COMMITTED
    assert c.market.verify_award(session, awards.leaves[0], [])
    for step in (
        lambda: c.market.close_gate(p.market, session, book.root, 1, 1),
        lambda: c.market.commit_outcome(p.market, session, awards.root, 99, 1),
        lambda: c.market.record_validation(
            p.market, validation(session, 2, awards.root),
            sign(chain, p.dso, "Validation", validation(session, 2, awards.root))),
    ):
        with pytest.raises(FlexMarketWrongState):
            step()
    c.market.mark_settled(p.market, session)
    assert c.market.session_of(session).state == SessionState.SETTLED
    with pytest.raises(FlexMarketWrongState):
        c.market.mark_settled(p.market, session)


def test_open_session_arguments(chain: Chain) -> None:
    c, p = chain.c, chain.p
    with pytest.raises(FlexMarketInvalidKind):
        c.market.open_session(p.market, id32("x"), 2, DAY, 96, bytes(32), bytes(32))
    with pytest.raises(FlexMarketEmptyDelivery):
        c.market.open_session(p.market, id32("x"), 0, DAY, 0, bytes(32), bytes(32))


def test_validation_rounds_and_signatures(chain: Chain) -> None:
    c, p = chain.c, chain.p
    session = open_session(chain)
    c.market.close_gate(p.market, session, b"\x01" * 32, 1, 1)
    first = MerkleTree([id32("a1"), id32("a2")])
    v1 = validation(session, 1, first.root, rejected=1, approved=1)
    # signed by a TSO, an aggregator, or malformed: refused
    with pytest.raises(FlexMarketSignerNotDso) as err:
        c.market.record_validation(p.market, v1, sign(chain, p.tso, "Validation", v1))
    assert err.value.kwargs["signer"] == p.tso.address
    with pytest.raises(FlexMarketSignerNotDso):
        c.market.record_validation(p.market, v1, sign(chain, p.aggregator, "Validation", v1))
    with pytest.raises(FlexMarketInvalidSignature):
        c.market.record_validation(p.market, v1, b"\x01" * 64)
    # a signature over other content recovers another key
    sig = sign(chain, p.dso, "Validation", v1)
    tampered = dict(v1, rejectedCount=0)
    with pytest.raises(FlexMarketSignerNotDso):
        c.market.record_validation(p.market, tampered, sig)
    # rounds in order
    v2 = validation(session, 2, first.root)
    with pytest.raises(FlexMarketRoundOutOfOrder):
        c.market.record_validation(p.market, v2, sign(chain, p.dso, "Validation", v2))
    c.market.record_validation(p.market, v1, sig)
    record = c.market.validation_of(session, 1)
    assert record is not None
    assert record.dso == p.dso.address
    assert record.validation_hash == hash_struct("Validation", v1)
    assert c.market.hash_validation(v1) == record.validation_hash
    # the round rejected an award: its root cannot be the outcome
    with pytest.raises(FlexMarketOutcomeNotValidated):
        c.market.commit_outcome(p.market, session, first.root, 10, 2)
    second = MerkleTree([id32("a1")])
    v2 = validation(session, 2, second.root, approved=1)
    c.market.record_validation(p.market, v2, sign(chain, p.dso, "Validation", v2))
    with pytest.raises(FlexMarketOutcomeNotValidated):  # not the approved root
        c.market.commit_outcome(p.market, session, first.root, 10, 2)
    c.market.commit_outcome(p.market, session, second.root, 10, 1)
    assert c.market.session_of(session).validation_rounds == 2


def test_outcome_needs_a_validation(chain: Chain) -> None:
    c, p = chain.c, chain.p
    session = open_session(chain)
    c.market.close_gate(p.market, session, b"\x01" * 32, 1, 1)
    with pytest.raises(FlexMarketOutcomeNotValidated):
        c.market.commit_outcome(p.market, session, b"\x02" * 32, 10, 1)


def test_orders_signed_by_dso_or_tso_once(chain: Chain) -> None:
    c, p = chain.c, chain.p
    cleared = clear(chain)
    o = order(cleared.session, cleared.offer_hashes[0], cleared.request_hashes[0])
    oh = order_hash(o)
    assert c.market.hash_order(o) == oh
    c.market.record_order(p.market, o, sign(chain, p.dso, "Order", o))
    assert c.market.order_issuer(oh) == p.dso.address
    with pytest.raises(FlexMarketOrderExists):
        c.market.record_order(p.market, o, sign(chain, p.dso, "Order", o))
    o2 = order(cleared.session, cleared.offer_hashes[1], cleared.request_hashes[1], nonce=2)
    c.market.record_order(p.market, o2, sign(chain, p.tso, "Order", o2))
    assert c.market.order_issuer(order_hash(o2)) == p.tso.address
    # wrong role, tampered content, malformed signature
    o3 = order(cleared.session, cleared.offer_hashes[2], cleared.request_hashes[0], nonce=3)
    with pytest.raises(FlexMarketSignerNotIssuer):
        c.market.record_order(p.market, o3, sign(chain, p.aggregator, "Order", o3))
    with pytest.raises(FlexMarketSignerNotIssuer):
        c.market.record_order(p.market, dict(o3, powerW=1), sign(chain, p.dso, "Order", o3))
    with pytest.raises(FlexMarketInvalidSignature):
        c.market.record_order(p.market, o3, b"\x00" * 65)
    # a signature from another domain (another verifying contract) does not count
    from node.eip712 import Domain, sign_typed

    foreign = Domain(chain_id=chain.w3.eth.chain_id, verifying_contract=c.market.address)
    with pytest.raises(FlexMarketSignerNotIssuer):
        c.market.record_order(p.market, o3, sign_typed(p.dso, foreign, "Order", o3))
    assert c.market.order_issuer(order_hash(o3)) is None


def test_orders_only_after_outcome(chain: Chain) -> None:
    c, p = chain.c, chain.p
    session = open_session(chain)
    o = order(session, id32("o"), id32("r"))
    with pytest.raises(FlexMarketWrongState):
        c.market.record_order(p.market, o, sign(chain, p.dso, "Order", o))


def test_awards_verify_against_the_committed_root(chain: Chain) -> None:
    c = chain.c
    cleared = clear(chain)
    for i, h in enumerate(cleared.award_hashes):
        assert c.market.verify_award(cleared.session, h, cleared.awards.proof(i))
    assert not c.market.verify_award(cleared.session, id32("forged"), cleared.awards.proof(0))
    assert not c.market.verify_award(id32("other"), cleared.award_hashes[0],
                                     cleared.awards.proof(0))
    for i, leaf in enumerate(cleared.book.leaves):
        assert c.market.verify_order_book(cleared.session, leaf, cleared.book.proof(i))
