"""A restart mid-session loses nothing: a new app on the same database carries on, and a
chain step done just before a crash is not done twice."""

from __future__ import annotations

from pathlib import Path

import pytest

from flexledger.messages import b32, id32
from flexledger.time import ScenarioClock
from market.service.book import book_entries, root_of
from node.contracts import FlexContracts, SessionState
from tests.market.helpers import GATE, START, Market

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_restart_mid_session(
    contracts: FlexContracts, db_both: tuple[str | None, str], tmp_path: Path
) -> None:
    clock = ScenarioClock(START, step_s=900)
    first = Market(contracts, tmp_path, db_url=db_both[0], schema=db_both[1], clock=clock)
    async with first.running():
        await first.open("DA-1")
        await first.populate("DA-1")
        before = await first.get("/sessions/DA-1/orderbook")
        receipts = {e["hash"] for e in await first.get("/offers", session="DA-1")}
        # the process dies right after its closeGate transaction was mined
        offers = [o["hash"] for o in await first.get("/offers", session="DA-1")]
        requests = [r["hash"] for r in await first.get("/requests", session="DA-1")]
        root = root_of([e.leaf for e in book_entries(offers, requests)])
        await first.advance_to(GATE - 900)
    first.ctx.chain.close_gate("DA-1", b32(root), len(offers), len(requests))

    second = Market(
        contracts, tmp_path, db_url=db_both[0], schema=db_both[1], clock=clock, nonces=first.nonces
    )
    async with second.running():
        after = await second.get("/sessions/DA-1/orderbook")
        assert after["offers"] == before["offers"] and after["requests"] == before["requests"]
        assert {o["hash"] for o in await second.get("/offers", session="DA-1")} == receipts
        await second.advance_to(GATE)
        s = await second.wait_state("DA-1", "validating")
        assert s["order_book_root"] == root  # the mined root, not a second transaction
        r1 = (await second.round("DA-1", 1)).message
        r = await second.post("/sessions/DA-1/validations", second.validation(r1))
        assert r.status_code == 201, r.text
    # and once more, after the outcome
    third = Market(
        contracts, tmp_path, db_url=db_both[0], schema=db_both[1], clock=clock, nonces=first.nonces
    )
    async with third.running():
        final = await third.wait_state("DA-1", "final")
        chain = contracts.market.session_of(id32("DA-1"))
        assert chain.state == SessionState.OUTCOME_COMMITTED
        assert "0x" + chain.awards_root.hex() == final["awards_root"]
        assert len((await third.get("/sessions/DA-1/outcome"))["message"]["awards"]) > 0
