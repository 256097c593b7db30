"""The TSO simulator against the real market (in process, on a devnet): its area-located
requests are accepted and cleared with the aggregators' offers, and its orders are recorded on
chain."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from flexledger.messages import Offer
from flexledger.scenario import Scenario
from flexledger.stack import dev_plan
from flexledger.time import DAY_S, MTU_S, ScenarioClock
from flexledger.transport import SignedHttpClient
from flexledger.units import Direction
from node.contracts import FlexContracts
from node.deploy import deploy
from node.devnet import Devnet
from node.keys import dev_account
from node.signing import LocalSigner
from sim import TsoSimulator, areas_table

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def contracts(small_scenario: Scenario) -> Iterator[FlexContracts]:
    with Devnet() as devnet:
        w3 = devnet.web3()
        book = deploy(w3, dev_account("deployer"), dev_plan([p.code for p in small_scenario.pods]))
        yield FlexContracts.from_address_book(w3, book)


async def test_tso_requests_clear_and_its_orders_are_recorded(
    small_scenario: Scenario,
    contracts: FlexContracts,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.market import helpers

    monkeypatch.setattr(helpers, "AREAS", areas_table(small_scenario))
    day = small_scenario.day_s
    market = helpers.Market(contracts, tmp_path, clock=ScenarioClock(day - DAY_S + 3600, 900))
    async with market.running():
        assert market.app is not None
        await market.open("DA-1", delivery_start_s=day)
        up, down = (n for n in small_scenario.tso.needs if n.session == "day_ahead")
        offers = [
            market.offer("aggregator:1", "IT001E00000001", 90, 60, "DA-1",
                         day + up.mtu_from * MTU_S, up.mtu_count),
            market.offer("aggregator:2", "IT001E00000006", 8, 80, "DA-1",
                         day + up.mtu_from * MTU_S, up.mtu_count),
            market.sign("aggregator:1", Offer(
                session_id="DA-1", aggregator=dev_account("aggregator:1").address,
                pod="IT001E00000001", direction=Direction.DOWN,
                mtu_start_s=day + down.mtu_from * MTU_S, mtu_count=down.mtu_count,
                max_w=100_000, price_cents_per_mwh=4_000, valid_until_s=day,
                nonce=market.nonce("aggregator:1"))),
        ]  # fmt: skip
        for env in offers:
            r = await market.post("/offers", env)
            assert r.status_code == 201, r.text
        tso_signer = LocalSigner(dev_account("tso"), contracts.roles.domain())
        transport = httpx.ASGITransport(app=market.app)
        async with SignedHttpClient("http://market", tso_signer, transport=transport) as client:
            tso = TsoSimulator(small_scenario, client)
            receipts = await tso.post_requests("DA-1", "day_ahead")
            assert len(receipts) == 2 and all(r["kind"] == "request" for r in receipts)
            await market.advance_to(day - 12 * 3600)
            await market.wait_state("DA-1", "validating")
            round1 = (await market.round("DA-1", 1)).message
            assert {a.stage for a in round1.awards} == {"tso"}
            r = await market.post("/sessions/DA-1/validations", market.validation(round1))
            assert r.status_code == 201, r.text
            await market.wait_state("DA-1", "final")
            awards = await tso.my_awards("DA-1")
            assert len(awards) == len(round1.awards)
            assert {a.direction for a in awards} == {Direction.UP, Direction.DOWN}
            ordered = await tso.order_awards("DA-1")
            assert await tso.order_awards("DA-1") == []
        assert ordered and all(r["kind"] == "order" and r["tx_hash"] for r in ordered)
        listed = await market.get("/orders", session="DA-1")
        assert len(listed) == len(ordered)
