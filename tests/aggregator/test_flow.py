"""The aggregator through a market day on a real chain, SCD and market: an FR owner declares
its battery (I-12), the aggregator registers its customers in the SCD (I-02), offers (I-05),
plans its FR owner from the final outcome (I-13), and — once the market settled the activated
award from the Light Node's certified window — pays its FR owner on chain less its fee (I-17),
once."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from aggregator.app import build_service
from flexledger.messages import Offer, Signed, id32
from flexledger.time import MTU_S
from flexledger.units import round_half_even_div
from node.contract_errors import SettlementRefUsed
from node.contracts import FlexContracts
from node.keys import dev_account
from node.signing import message_hash
from tests.aggregator.conftest import Agg, make_settings, portfolio
from tests.market.helpers import DAY, GATE, POD1
from tests.market.settlement_helpers import settlement_world, wait_windows

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(120)]
T68 = DAY + 68 * MTU_S


async def test_a_day_of_the_aggregator(contracts: FlexContracts, tmp_path: Path) -> None:
    async with settlement_world(contracts, tmp_path) as w:
        m = w.market
        assert m.app is not None
        service = build_service(
            make_settings(tmp_path / "agg", scd_url=w.scd.url),
            contracts=contracts,
            clock=m.clock,
            portfolio=portfolio(),
            market_transport=httpx.ASGITransport(app=m.app),
        )
        try:
            assert service.grant_owners() == 2
            agg = Agg(service, None, contracts, m.clock, {})  # type: ignore[arg-type]
            receipt, created = service.submit_availability(agg.status())
            assert created and receipt.kind == "availability"

            await m.open("DA-1")
            assert (await service.register_customers(DAY)) is not None
            customers = w.scd.get("/customers", day_s=DAY)
            assert [c["pod"] for c in customers] == [POD1]
            assert w.scd.get("/availability", day_s=DAY)  # forwarded to the SCD

            offers = await service.make_offers("DA-1")
            assert offers and all(o.message.pod == POD1 for o in offers)
            battery = [
                o
                for o in offers
                if o.message.mtu_start_s
                <= T68
                < o.message.mtu_start_s + o.message.mtu_count * MTU_S
            ]
            assert battery, [o.message for o in offers]
            receipts = await service.post_offers("DA-1")
            assert len(receipts) == len(offers)
            assert await service.make_offers("DA-1") == offers  # once
            assert [r.duplicate for r in await service.post_offers("DA-1")] == [False] * len(offers)

            r = await m.post(
                "/requests", m.dso_request(20, "DA-1", start=T68, count=2, eligible={POD1: 1.0})
            )
            assert r.status_code == 201, r.text
            await m.advance_to(GATE)
            await m.wait_state("DA-1", "validating")
            r1 = (await m.round("DA-1", 1)).message
            assert (await m.post("/sessions/DA-1/validations", m.validation(r1))).status_code == 201
            outcome = await m.wait_state("DA-1", "final")
            assert outcome["award_count"] >= 2

            plans = await service.plan("DA-1")
            owner = dev_account("owner:1").address
            assert [p.message.fr_owner for p in plans] == [owner]
            items = plans[0].message.items
            assert items and {i.offer_hash for i in items} <= {_hash(o) for o in offers}
            assert service.plans_of(owner, "DA-1") == plans

            awards = [a for a in r1.awards if a.mtu_start_s == T68]
            for a in awards:
                await w.order(a)
            power = sum(a.power_w for a in awards)
            await w.nodes.window(POD1, T68, 80_000 - power)
            await wait_windows(w.scd, {(POD1, T68): "certified"})
            w.approve()
            assert (await w.settle()).status_code == 200
            view = await m.get("/sessions/DA-1/settlement")
            earned = sum(ln["outcome"]["message"]["amount_cents"] for ln in view["lines"])
            assert earned > 0

            agg_before = contracts.token.balance_of(service.address)
            owner_before = contracts.token.balance_of(owner)
            paid = await service.pay_owners("DA-1")
            # the fee of the portfolio is 12 %: 88 % of what the award earned, half to even
            assert [(p.fr_owner, p.amount_cents) for p in paid] == [
                (owner, round_half_even_div(earned * 880_000, 1_000_000))
            ]
            assert contracts.token.balance_of(owner) - owner_before == paid[0].amount_cents
            assert agg_before - contracts.token.balance_of(service.address) == paid[0].amount_cents
            # once: the service answers what it paid, the contract refuses the reference again
            assert await service.pay_owners("DA-1") == paid
            with pytest.raises(SettlementRefUsed):
                contracts.settlement.pay_owners(service.account, id32("payout:DA-1"), [owner], [1])
            assert service.payouts(fr_owner=owner) == paid
            # following the market finds the session final and settled: plans again, pays
            # nothing twice, then has nothing left to do
            assert await service.follow_once() == ["DA-1: 1 plans", "DA-1: 1 owners paid"]
            assert await service.follow_once() == []
            # what a day's driver waits on: the steps following did for the session
            assert service.steps("DA-1") == {"planned": {"plans": 1}, "paid": {"owners": 1}}
            assert service.steps("DA-2") == {}
            assert contracts.token.balance_of(owner) - owner_before == paid[0].amount_cents
        finally:
            await service.market.aclose()
            await service.scd.aclose()
            service.engine.dispose()


def _hash(envelope: Signed[Offer]) -> str:
    return "0x" + message_hash(envelope.message).hex()
