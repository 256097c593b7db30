"""Settlement: once per award, baseline before gate closure, token balances conserve."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.contract_errors import (
    BaselineRegistryAlreadyCommitted,
    ERC20InsufficientAllowance,
    SettlementAlreadySettled,
    SettlementAmountAndClaim,
    SettlementBaselineLate,
    SettlementBaselineMismatch,
    SettlementLengthMismatch,
    SettlementNotOwnersAggregator,
    SettlementPayeeNotAggregator,
    SettlementPayerNotBuyer,
    SettlementRefUsed,
    SettlementUnbaselinedPayment,
    SettlementUnknownAward,
    SettlementWrongSessionState,
)
from node.eip712 import hash_struct
from node.ids import id32
from node.leaves import baseline_leaf
from node.merkle import MerkleTree

from .conftest import TOKEN_CENTS, Chain
from .flows import DAY, Cleared, clear


def commit_baseline(chain: Chain, day: int = DAY) -> MerkleTree:
    tree = MerkleTree([baseline_leaf(chain.pod, DAY + 900 * k, 1_000 + k) for k in range(96)])
    chain.c.baselines.commit_baseline(chain.p.brp, day, tree.root, 1)
    return tree


def record(cleared: Cleared, i: int, baseline_root: bytes, amount: int = 0,
           claim: int = 0) -> dict[str, Any]:
    return {
        "session": cleared.session,
        "awardHash": cleared.award_hashes[i],
        "baselineWh": 10_000,
        "measuredWh": 9_000 if amount else 10_400,
        "deliveredWh": 1_000 if amount else -400,
        "amountCents": amount,
        "claimCents": claim,
        "measurementRoot": b"\x4d" * 32,
        "baselineRoot": baseline_root,
    }


def balances(chain: Chain) -> dict[str, int]:
    p = chain.p
    accounts = [p.dso, p.tso, p.aggregator, p.aggregator2, p.owner, p.owner2, p.market,
                p.deployer, p.outsider]
    return {a.address: chain.c.token.balance_of(a.address) for a in accounts}


def test_baseline_committed_once(chain: Chain) -> None:
    tree = commit_baseline(chain)
    b = chain.c.baselines.baseline_of(chain.p.brp.address, DAY)
    assert b is not None and b.root == tree.root and b.pod_count == 1
    assert b.committed_block == chain.w3.eth.block_number
    with pytest.raises(BaselineRegistryAlreadyCommitted):
        chain.c.baselines.commit_baseline(chain.p.brp, DAY, b"\x01" * 32, 1)
    assert chain.c.baselines.baseline_of(chain.p.brp.address, DAY) == b
    assert chain.c.baselines.verify_baseline(chain.p.brp.address, DAY, tree.leaves[3],
                                             tree.proof(3))
    assert not chain.c.baselines.verify_baseline(
        chain.p.brp.address, DAY, baseline_leaf(chain.pod, DAY + 2700, 999), tree.proof(3))


def test_settle_once_and_balances_conserve(chain: Chain) -> None:
    c, p = chain.c, chain.p
    baseline = commit_baseline(chain)
    cleared = clear(chain)
    c.token.approve(p.dso, c.settlement.address, 10_000)
    before = balances(chain)
    supply = c.token.total_supply()

    rec = record(cleared, 0, baseline.root, amount=2_500)
    receipt = c.settlement.settle(p.market, rec, p.dso.address, p.aggregator.address,
                                  p.brp.address, DAY, cleared.awards.proof(0))
    after = balances(chain)
    assert after[p.dso.address] == before[p.dso.address] - 2_500
    assert after[p.aggregator.address] == before[p.aggregator.address] + 2_500
    assert sum(after.values()) == sum(before.values()) == supply == c.token.total_supply()

    info = c.settlement.settlement_of(cleared.award_hashes[0])
    assert info is not None
    assert (info.baseline_wh, info.measured_wh, info.delivered_wh) == (10_000, 9_000, 1_000)
    assert (info.amount_cents, info.claim_cents) == (2_500, 0)
    assert (info.payer, info.payee) == (p.dso.address, p.aggregator.address)
    assert info.measurement_root == b"\x4d" * 32 and info.baseline_root == baseline.root
    assert info.settled_block == receipt["blockNumber"]
    assert info.record_hash == hash_struct("SettlementRecord", rec)
    assert c.settlement.hash_record(rec) == info.record_hash

    with pytest.raises(SettlementAlreadySettled):
        c.settlement.settle(p.market, rec, p.dso.address, p.aggregator.address,
                            p.brp.address, DAY, cleared.awards.proof(0))
    assert balances(chain) == after


def test_penalty_is_a_claim_not_moved(chain: Chain) -> None:
    c, p = chain.c, chain.p
    baseline = commit_baseline(chain)
    cleared = clear(chain)
    c.token.approve(p.dso, c.settlement.address, 10_000)
    before = balances(chain)
    rec = record(cleared, 1, baseline.root, amount=0, claim=300)
    c.settlement.settle(p.market, rec, p.dso.address, p.aggregator.address, p.brp.address,
                        DAY, cleared.awards.proof(1))
    assert balances(chain) == before
    info = c.settlement.settlement_of(cleared.award_hashes[1])
    assert info is not None and info.claim_cents == 300 and info.amount_cents == 0
    with pytest.raises(SettlementAmountAndClaim):
        c.settlement.settle(p.market, record(cleared, 2, baseline.root, amount=5, claim=3),
                            p.dso.address, p.aggregator.address, p.brp.address, DAY,
                            cleared.awards.proof(2))


def test_settle_checks(chain: Chain) -> None:
    c, p = chain.c, chain.p
    baseline = commit_baseline(chain)
    cleared = clear(chain)
    c.token.approve(p.dso, c.settlement.address, 10_000)
    proof0 = cleared.awards.proof(0)
    rec = record(cleared, 0, baseline.root, amount=100)

    def settle(r: dict[str, Any] = rec, payer: str = p.dso.address,
               payee: str = p.aggregator.address, proof: list[bytes] = proof0,
               day: int = DAY) -> None:
        c.settlement.settle(p.market, r, payer, payee, p.brp.address, day, proof)

    with pytest.raises(SettlementUnknownAward):
        settle(dict(rec, awardHash=id32("forged")))
    with pytest.raises(SettlementUnknownAward):
        settle(proof=cleared.awards.proof(1))
    with pytest.raises(SettlementBaselineMismatch):
        settle(dict(rec, baselineRoot=b"\x01" * 32))
    with pytest.raises(SettlementBaselineMismatch):  # no baseline for that day
        settle(day=DAY + 86_400)
    with pytest.raises(SettlementUnbaselinedPayment):
        settle(dict(rec, baselineRoot=bytes(32)))
    with pytest.raises(SettlementPayerNotBuyer):
        settle(payer=p.aggregator2.address)
    with pytest.raises(SettlementPayeeNotAggregator):
        settle(payee=p.owner.address)
    with pytest.raises(ERC20InsufficientAllowance):
        settle(dict(rec, amountCents=10_001))
    # an unbaselined record can still be recorded, unpaid
    settle(dict(rec, baselineRoot=bytes(32), amountCents=0))
    assert c.settlement.settlement_of(cleared.award_hashes[0]) is not None


def test_baseline_after_gate_closure_is_refused(chain: Chain) -> None:
    c, p = chain.c, chain.p
    cleared = clear(chain)
    late = commit_baseline(chain)  # committed after the gate closed
    c.token.approve(p.dso, c.settlement.address, 10_000)
    with pytest.raises(SettlementBaselineLate):
        c.settlement.settle(p.market, record(cleared, 0, late.root, amount=10), p.dso.address,
                            p.aggregator.address, p.brp.address, DAY, cleared.awards.proof(0))


def test_no_settlement_once_session_settled(chain: Chain) -> None:
    c, p = chain.c, chain.p
    baseline = commit_baseline(chain)
    cleared = clear(chain)
    c.market.mark_settled(p.market, cleared.session)
    with pytest.raises(SettlementWrongSessionState):
        c.settlement.settle(p.market, record(cleared, 0, baseline.root), p.dso.address,
                            p.aggregator.address, p.brp.address, DAY, cleared.awards.proof(0))


def test_pay_owners(chain: Chain) -> None:
    c, p = chain.c, chain.p
    c.token.transfer(p.dso, p.aggregator.address, 5_000)
    c.roles.grant_fr_owner(p.aggregator, p.owner.address)
    c.roles.grant_fr_owner(p.aggregator2, p.owner2.address)
    c.token.approve(p.aggregator, c.settlement.address, 5_000)
    before = balances(chain)
    ref = id32("payout-2026-01-01")
    with pytest.raises(SettlementNotOwnersAggregator):  # owner2 belongs to aggregator2
        c.settlement.pay_owners(p.aggregator, ref, [p.owner.address, p.owner2.address],
                                [100, 200])
    with pytest.raises(SettlementLengthMismatch):
        c.settlement.pay_owners(p.aggregator, ref, [p.owner.address], [100, 200])
    c.settlement.pay_owners(p.aggregator, ref, [p.owner.address], [1_200])
    after = balances(chain)
    assert after[p.owner.address] == before[p.owner.address] + 1_200
    assert after[p.aggregator.address] == before[p.aggregator.address] - 1_200
    assert sum(after.values()) == sum(before.values())
    assert c.settlement.ref_paid(p.aggregator.address, ref)
    with pytest.raises(SettlementRefUsed):
        c.settlement.pay_owners(p.aggregator, ref, [p.owner.address], [1])
    # a revoked owner is no longer payable
    c.roles.revoke_fr_owner(p.aggregator, p.owner.address)
    with pytest.raises(SettlementNotOwnersAggregator):
        c.settlement.pay_owners(p.aggregator, id32("payout-2"), [p.owner.address], [1])


@settings(max_examples=6, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(amounts=st.lists(st.integers(0, 3_000), min_size=3, max_size=3))
def test_balances_conserve_over_settlements(chain: Chain, amounts: list[int]) -> None:
    w3 = chain.w3
    snap = w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
    try:
        c, p = chain.c, chain.p
        baseline = commit_baseline(chain)
        cleared = clear(chain)
        c.token.approve(p.tso, c.settlement.address, TOKEN_CENTS)
        supply = c.token.total_supply()
        before = balances(chain)
        for i, amount in enumerate(amounts):
            payee = p.aggregator if i % 2 == 0 else p.aggregator2
            c.settlement.settle(p.market, record(cleared, i, baseline.root, amount=amount),
                                p.tso.address, payee.address, p.brp.address, DAY,
                                cleared.awards.proof(i))
        after = balances(chain)
        assert sum(after.values()) == sum(before.values()) == supply
        assert before[p.tso.address] - after[p.tso.address] == sum(amounts)
        assert after[p.aggregator.address] - before[p.aggregator.address] == amounts[0] + amounts[2]
        assert after[p.aggregator2.address] - before[p.aggregator2.address] == amounts[1]
    finally:
        w3.provider.make_request("evm_revert", [snap])  # type: ignore[arg-type]
