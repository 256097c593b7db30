"""Settlement end to end on a real chain, a real SCD (over HTTP, fed over Mosquitto) and the
market: certified windows are paid by the rule, a tampered window and a window with a missing
sample are not and say why, awards without an order are not settled, balances conserve, a
session is settled once, and a baseline changed after its root was committed is caught."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_utils import keccak
from sqlalchemy import select, update

from audit.settlement import audit_settlement
from flexledger.messages import (
    Award,
    MarketOutcome,
    MeasureHistory,
    QuarterlyMeasure,
    SessionAction,
    SettlementOutcome,
    Signed,
    b32,
    id32,
)
from flexledger.transport.brokers import free_port
from flexledger.transport.http import SyncSignedHttpClient
from flexledger.units import awarded_wh, payment_cents, split_delivery
from market.schemas import SettlementPublic
from market.service.scd import HttpScdReader
from node.contract_errors import SettlementAlreadySettled
from node.contracts import FlexContracts, SessionState
from node.keys import dev_account
from node.merkle import MerkleTree
from node.signing import LocalSigner
from scd.db import baselines as scd_baselines
from tests.market.helpers import DAY, POD1, POD2, POD3, T40
from tests.market.settlement_helpers import (
    BASELINE_WH,
    END,
    T41,
    LoopHttp,
    SettlementWorld,
    SettlingMarket,
    settlement_world,
    wait_windows,
)

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(120)]

AGGREGATORS = [dev_account(n).address for n in ("aggregator:1", "aggregator:2")]
PAYERS = [dev_account(n).address for n in ("dso", "tso")]


def _balances(c: FlexContracts) -> dict[str, int]:
    return {a: c.token.balance_of(a) for a in AGGREGATORS + PAYERS}


def _power(awards: list[Award]) -> int:
    return sum(a.power_w for a in awards)


def _paid_cents(awards: list[Award], delivered_wh: int) -> dict[str, int]:
    """What each award of one POD and MTU earns when the POD delivered ``delivered_wh`` and
    every award was ordered in full: its share, capped at its energy, at its price."""
    shares = split_delivery(delivered_wh, [(b32(a.award_hash), a.power_w) for a in awards])
    out = {}
    for a in awards:
        share = shares[b32(a.award_hash)]
        out[a.award_hash] = payment_cents(min(share, awarded_wh(a.power_w)), a.price_cents_per_mwh)
    return out


async def _settlement(w: SettlementWorld, session: str = "DA-1") -> SettlementPublic:
    return SettlementPublic.model_validate(await w.market.get(f"/sessions/{session}/settlement"))


async def test_settle_a_day_from_certified_windows(
    contracts: FlexContracts, tmp_path: Path
) -> None:
    async with settlement_world(contracts, tmp_path) as w:
        outcome = await w.day_ahead()
        a1, a2, a3 = (w.awards_of(p, T40) for p in (POD1, POD2, POD3))
        assert a1 and a2 and a3, outcome
        for a in a1 + a2 + a3 + w.awards_of(POD1, T41):
            await w.order(a)
        # POD1 delivers in full at T40 and misses a sample at T41; POD2's anchored window is
        # not what it published (tampered); POD3 delivers half
        await w.nodes.window(POD1, T40, 80_000 - _power(a1))
        p41 = 80_000 - _power(w.awards_of(POD1, T41))
        await w.nodes.window(POD1, T41, p41, drop=frozenset({100}))
        await w.nodes.window(POD2, T40, 80_000 - _power(a2), alter=frozenset({7}))
        await w.nodes.window(POD3, T40, 80_000 - _power(a3) // 2)
        await wait_windows(
            w.scd,
            {
                (POD1, T40): "certified",
                (POD1, T41): "pending",
                (POD2, T40): "mismatch",
                (POD3, T40): "certified",
            },
        )
        assert (await _settlement(w)).state == "not_settled"

        # not before the delivery is over
        early = await w.market.post(
            "/sessions/DA-1/commands", w.market.command("DA-1", SessionAction.SETTLE)
        )
        assert early.status_code == 409 and early.json()["error"]["code"] == "wrong_state"

        # a payer who approved too little stops the run before any transaction
        before = _balances(contracts)
        r = await w.settle()
        assert r.status_code == 409 and "approve" in r.json()["error"]["message"], r.text
        assert (await _settlement(w)).state == "settling"
        assert _balances(contracts) == before
        w.approve()
        r = await w.settle()
        assert r.status_code == 200, r.text
        s = await _settlement(w)
        assert s.state == "settled" and s.mark_settled_tx and s.error is None
        assert contracts.market.session_of(id32("DA-1")).state == SessionState.SETTLED

        lines = {x.outcome.message.award_hash: x for x in s.lines}
        ordered = a1 + a2 + a3 + w.awards_of(POD1, T41)
        assert set(lines) == {a.award_hash for a in ordered}
        assert set(s.not_activated) == {
            a.award_hash for a in outcome.awards if a.award_hash not in lines
        }
        assert s.not_activated  # the T41 awards of POD2 and POD3

        # POD1 at T40: delivered what was awarded, paid at its price
        for h, cents in _paid_cents(a1, awarded_wh(_power(a1))).items():
            o = lines[h].outcome.message
            assert (o.status, o.amount_cents, o.claim_cents) == ("paid", cents, 0)
            assert o.baseline_wh == BASELINE_WH
        # POD1 at T41: a sample missing → pending window → not paid, and why
        for a in w.awards_of(POD1, T41):
            o = lines[a.award_hash].outcome.message
            assert o.status == "unpaid_uncertified" and o.amount_cents == 0
            assert "pending" in (o.reason or "") and "missing" in (o.reason or "")
        # POD2: the anchored root is not the samples' → mismatch → not paid
        for a in a2:
            o = lines[a.award_hash].outcome.message
            assert o.status == "unpaid_uncertified" and "mismatch" in (o.reason or "")
        # POD3: half delivered → partially paid, the penalty beyond the 10 % tolerance deducted
        for a in a3:
            o = lines[a.award_hash].outcome.message
            assert o.status == "partially_paid"
            assert o.delivered_wh * 2 == awarded_wh(_power(a3)) or len(a3) > 1
            e = awarded_wh(a.power_w)
            gross = payment_cents(o.delivered_wh, a.price_cents_per_mwh)
            short = e - e // 10 - o.delivered_wh
            penalty = round(short * a.price_cents_per_mwh * 0.5 / 1_000_000)
            assert o.amount_cents == max(gross - penalty, 0)

        # every line: signed by the operator, on chain with the same record, windows' roots
        window_root = contracts.anchor.window_root(id32(POD1), T40)
        assert window_root is not None
        for line in s.lines:
            o = line.outcome.message
            info = contracts.settlement.settlement_of(b32(o.award_hash))
            assert info is not None and "0x" + info.record_hash.hex() == line.record_hash
            assert contracts.settlement.hash_record(o.eip712_message()) == b32(line.record_hash)
            assert (info.amount_cents, info.claim_cents) == (o.amount_cents, o.claim_cents)
            assert info.payee == line.payee and info.payer == line.payer
            assert line.tx_hash and line.outcome.signer == dev_account("market").address
        o1 = lines[a1[0].award_hash].outcome.message
        assert o1.windows_s == [T40]
        assert o1.measurement_root == "0x" + keccak(window_root).hex()

        # token balances conserve: what the payers lost, the aggregators got, = Σ amounts
        after = _balances(contracts)
        paid = sum(before[p] - after[p] for p in PAYERS)
        got = sum(after[a] - before[a] for a in AGGREGATORS)
        assert paid == got == s.amount_cents > 0

        # an award cannot be settled twice: not by the market, not on chain
        again = await w.settle()
        assert again.status_code == 409 and again.json()["error"]["code"] == "wrong_state"
        line = s.lines[0]
        leaves = [a.award_hash for a in outcome.awards]
        proof = MerkleTree([b32(h) for h in leaves]).proof(
            leaves.index(line.outcome.message.award_hash)
        )
        with pytest.raises(SettlementAlreadySettled):
            contracts.settlement.settle(
                dev_account("market"),
                line.outcome.message.eip712_message(),
                line.payer,
                line.payee,
                line.brp,
                line.day_s,
                proof,
            )
        # nor can an order come after settlement
        late = await w.market.post("/orders", w.market.order(w.awards_of(POD2, T41)[0], "dso"))
        assert late.status_code == 409, late.text


async def test_baseline_changed_after_commit_is_not_paid(
    contracts: FlexContracts, tmp_path: Path
) -> None:
    async with settlement_world(contracts, tmp_path) as w:
        # a malformed baseline upload is refused with the field named, nothing stored
        bad = httpx.post(w.scd.url + "/baselines", json={"message": {"brp": "nope"}}, timeout=10)
        assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid"

        await w.day_ahead()
        a1 = w.awards_of(POD1, T40)
        for a in a1:
            await w.order(a)
        await w.nodes.window(POD1, T40, 80_000 - _power(a1))
        await wait_windows(w.scd, {(POD1, T40): "certified"})

        # someone edits the stored baseline of POD1 at T40 after its root was committed
        assert w.scd.service is not None
        with w.scd.service.engine.begin() as conn:
            row = conn.execute(select(scd_baselines)).one()
            env: dict[str, Any] = json.loads(row.envelope)
            for v in env["message"]["values"]:
                if v["pod"] == POD1 and v["mtu_start_s"] == T40:
                    v["e_wh"] += 5_000
            conn.execute(
                update(scd_baselines)
                .where(scd_baselines.c.hash == row.hash)
                .values(envelope=json.dumps(env))
            )
        w.approve()
        r = await w.settle()
        assert r.status_code == 200, r.text
        s = await _settlement(w)
        for line in s.lines:
            o: SettlementOutcome = line.outcome.message
            assert o.status == "unpaid_uncertified" and o.amount_cents == 0
            assert "changed after its root was committed" in (o.reason or "")
            assert o.baseline_root == "0x" + "00" * 32
        assert isinstance(s.lines[0].outcome, Signed)


async def test_a_session_naming_high_x_of_y_is_settled_on_it(
    contracts: FlexContracts, tmp_path: Path
) -> None:
    async with settlement_world(contracts, tmp_path, baseline_method="high_2_of_3") as w:
        assert contracts.market  # the session will name the method on chain
        # three days of history of POD1: 18,000, 22,000 and 21,000 Wh per MTU (days 1, 2, 3
        # before the delivery day): the high 2 of 3 are 22,000 and 21,000 → 21,500 Wh
        dso = LocalSigner(dev_account("dso"), contracts.roles.domain())
        values = [
            QuarterlyMeasure(
                pod=POD1,
                mtu_start_s=DAY - k * 86_400 + i * 900,
                e_wh=wh,
                sample_count=225,
                source="history",
            )
            for k, wh in ((1, 18_000), (2, 22_000), (3, 21_000))
            for i in range(96)
        ]
        env = dso.sign(MeasureHistory(uploader=dso.address, values=values, nonce=1))
        r = httpx.post(
            w.scd.url + "/measures/history",
            json=env.model_dump(mode="json", serialize_as_any=True),
            timeout=30,
        )
        assert r.status_code == 201, r.text
        outcome = await w.day_ahead()
        assert contracts.market.session_of(id32("DA-1")).baseline_method == id32("high_2_of_3")
        a1 = w.awards_of(POD1, T40)
        for a in a1:
            await w.order(a)
        # measured 21,500 − awarded: delivers exactly the award against high-2-of-3 (the BRP's
        # 20,000 would say it delivered 1,500 Wh less)
        e = awarded_wh(_power(a1))
        await w.nodes.window(POD1, T40, (21_500 - e) * 4)
        await wait_windows(w.scd, {(POD1, T40): "certified"})
        w.approve()
        assert (await w.settle()).status_code == 200
        s = await _settlement(w)
        assert s.baseline_method == "high_2_of_3"
        for line in s.lines:
            o = line.outcome.message
            assert o.baseline_wh == 21_500 and o.status == "paid", o
            # the record names the BRP's committed root: the contract pays no award without one
            assert o.baseline_root != "0x" + "00" * 32
        assert sum(x.outcome.message.delivered_wh for x in s.lines) == e
        assert outcome.awards
        # the auditor's own high-2-of-3 agrees
        assert w.market.http is not None
        market = LoopHttp(w.market.http, asyncio.get_running_loop())
        with SyncSignedHttpClient(w.scd.url) as scd:
            report = await asyncio.to_thread(audit_settlement, market, scd, contracts, "DA-1")
        assert report.ok, [f.__dict__ for f in report.failures()]


async def test_an_scd_that_does_not_answer_stores_nothing(
    contracts: FlexContracts, tmp_path: Path
) -> None:
    dead = HttpScdReader(f"http://127.0.0.1:{free_port()}", timeout_s=1)
    dead.http.retries = 0
    m = SettlingMarket(contracts, tmp_path, scd_reader=dead)
    async with m.running():
        await m.run_day_ahead("DA-1", reject_first=False)
        award = Signed[MarketOutcome].model_validate(await m.get("/sessions/DA-1/outcome"))
        a = award.message.awards[0]
        assert (await m.post("/orders", m.order(a, a.stage))).status_code == 201
        await m.advance_to(END)
        r = await m.post("/sessions/DA-1/commands", m.command("DA-1", SessionAction.SETTLE))
        assert r.status_code == 502 and r.json()["error"]["code"] == "scd_error", r.text
        assert (await m.get("/sessions/DA-1/settlement"))["state"] == "not_settled"
