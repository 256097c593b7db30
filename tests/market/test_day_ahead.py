"""The whole day-ahead session on a real chain, on SQLite and PostgreSQL: gate closure on the
clock commits the order-book root; receipts prove inclusion on chain; the DSO rejects an award
and the session re-clears without it; the approved round is committed; orders are recorded."""

from __future__ import annotations

from pathlib import Path

import pytest

from flexledger.messages import MarketOutcome, OrderAnnouncement, Signed, b32, id32
from market.service.announce import MemoryAnnouncer
from node.contracts import FlexContracts, SessionState
from tests.market.helpers import Market

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_day_ahead_flow(
    contracts: FlexContracts, db_both: tuple[str | None, str], tmp_path: Path
) -> None:
    m = Market(contracts, tmp_path, db_url=db_both[0], schema=db_both[1])
    async with m.running():
        final = await m.run_day_ahead("DA-1", reject_first=True)
        market = contracts.market
        sid = id32("DA-1")
        chain = market.session_of(sid)
        assert chain.state == SessionState.OUTCOME_COMMITTED
        assert "0x" + chain.order_book_root.hex() == final["order_book_root"]
        assert "0x" + chain.awards_root.hex() == final["awards_root"]
        assert chain.total_cost_cents == final["total_cost_cents"] > 0
        assert chain.validation_rounds == 2

        # every receipt's proof verifies on chain
        book = await m.get("/sessions/DA-1/orderbook")
        assert len(book["entries"]) == 5
        for entry in book["entries"]:
            receipt = await m.get(f"/receipts/{entry['hash']}")
            assert receipt["root"] == final["order_book_root"]
            assert market.verify_order_book(
                sid, b32(receipt["leaf"]), [b32(p) for p in receipt["proof"]]
            )

        # round 2 does not hold the award rejected in round 1
        r1 = (await m.round("DA-1", 1)).message
        r2 = (await m.round("DA-1", 2)).message
        rejected = r1.awards[0]
        keys2 = {(a.offer_hash, a.request_hash, a.mtu_start_s) for a in r2.awards}
        assert (rejected.offer_hash, rejected.request_hash, rejected.mtu_start_s) not in keys2
        validations = await m.get("/sessions/DA-1/validations")
        assert [v["validation"]["message"]["round"] for v in validations] == [1, 2]
        assert all(v["tx_hash"] for v in validations)

        # the final outcome: economic order, signed, every award provable on chain
        outcome = Signed[MarketOutcome].model_validate(await m.get("/sessions/DA-1/outcome"))
        assert outcome.message.final and outcome.message.awards_root == final["awards_root"]
        prices = [a.price_cents_per_mwh for a in outcome.message.awards]
        assert prices == sorted(prices)
        assert {a.stage for a in outcome.message.awards} == {"dso", "tso"}
        for a in outcome.message.awards:
            proof = await m.get(f"/sessions/DA-1/awards/{a.award_hash}")
            assert market.verify_award(
                sid, b32(proof["award_hash"]), [b32(p) for p in proof["proof"]]
            )

        # activation: the DSO orders an award of its own request
        dso_award = next(a for a in outcome.message.awards if a.stage == "dso")
        r = await m.post("/orders", m.order(dso_award, power_w=dso_award.power_w // 2))
        assert r.status_code == 201, r.text
        receipt = r.json()
        assert market.order_issuer(b32(receipt["hash"])) == m.sign("dso", r1).signer
        assert receipt["tx_hash"]
        announced = [p for t, p in m.announcer.sent if t.endswith("/market/orders")]  # type: ignore[union-attr]
        assert isinstance(m.announcer, MemoryAnnouncer)
        assert len(announced) == 1 and isinstance(announced[0], OrderAnnouncement)
        assert announced[0].order_hash == receipt["hash"]
        assert announced[0].awards[0].award_hash == dso_award.award_hash
