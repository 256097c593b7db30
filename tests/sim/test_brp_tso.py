"""The BRP's baseline (I-03) and the TSO simulator's requests (I-06) and orders (I-09): what they
build and sign, the BRP's root committed on a devnet, and their HTTP exchanges."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest

from flexledger.messages import (
    Award,
    BrpBaseline,
    ClearingProvenance,
    MarketOutcome,
    Order,
    Request,
    Signed,
    h32,
)
from flexledger.scenario import Scenario
from flexledger.time import DAY_S, MTU_S
from flexledger.transport import SignedHttpClient
from flexledger.units import Direction
from node.eip712 import Domain
from node.keys import dev_account
from node.merkle import MerkleTree
from node.signing import LocalSigner, message_hash, verify_envelope
from sim import Brp, TsoSimulator, World, areas_table, group_orders, history_messages

DOMAIN = Domain(chain_id=31337, verifying_contract="0x" + "33" * 20)
SESSION_LOOP = pytest.mark.asyncio(loop_scope="session")


def test_the_brp_baseline_is_its_forecast_signed_with_its_root(small_world: World) -> None:
    brp = Brp(small_world, dev_account("brp").address)
    message = brp.baseline()
    assert len(message.values) == len(small_world.pods) * 96
    assert message.pods == sorted(small_world.pod_codes)
    leaves = [v.leaf() for v in message.values]
    assert message.root == h32(MerkleTree(leaves).root)
    envelope = LocalSigner(dev_account("brp"), DOMAIN).sign(message)
    assert verify_envelope(envelope, DOMAIN) == dev_account("brp").address
    # a forecast, not the truth: close over the day, not equal
    truth = np.array([small_world.mtu_energy_wh(p) for p in sorted(small_world.pod_codes)])
    forecast = np.array([brp.schedule[p] for p in sorted(small_world.pod_codes)])
    assert not np.array_equal(truth, forecast)
    error = np.abs(forecast - truth).sum() / np.abs(truth).sum()
    assert 0.01 < error < 0.5
    assert Brp(small_world, brp.address).baseline() == message  # reproducible


def test_the_history_uploads_as_signed_measure_history(small_world: World) -> None:
    dso = LocalSigner(dev_account("dso"), DOMAIN)
    messages = history_messages(small_world, dso.address, chunk=10_000)
    assert sum(len(m.values) for m in messages) == len(small_world.pods) * 28 * 96
    assert [m.nonce for m in messages] == list(range(1, len(messages) + 1))
    assert verify_envelope(dso.sign(messages[0]), DOMAIN) == dso.address


def test_the_brp_commits_its_root_on_chain(small_world: World) -> None:
    from node.contracts import FlexContracts
    from node.deploy import DeployPlan, deploy
    from node.devnet import Devnet

    brp_key = dev_account("brp")
    with Devnet() as devnet:
        w3 = devnet.web3()
        book = deploy(w3, dev_account("deployer"), DeployPlan(roles={"BRP": [brp_key.address]}))
        contracts = FlexContracts.from_address_book(w3, book)
        brp = Brp(small_world, brp_key.address)
        brp.commit(contracts.baselines, brp_key)
        committed = contracts.baselines.baseline_of(brp_key.address, small_world.day_s)
        message = brp.baseline()
        assert committed is not None and "0x" + committed.root.hex() == message.root
        assert committed.pod_count == len(small_world.pods)
        leaves = message.ordered_leaves()
        tree = MerkleTree(leaves)
        assert contracts.baselines.verify_baseline(
            brp_key.address, small_world.day_s, leaves[7], tree.proof(7)
        )


class FakeMarket:
    """Records what the TSO posts; answers receipts and a final outcome awarding half of each
    request to one offer."""

    def __init__(self) -> None:
        self.posted: list[tuple[str, dict[str, Any]]] = []
        self.requests: list[Signed[Request]] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            body = json.loads(request.content)
            self.posted.append((request.url.path, body))
            model = Request if request.url.path == "/requests" else Order
            envelope = Signed[model].model_validate(body)  # type: ignore[valid-type]
            verify_envelope(envelope, DOMAIN)
            if model is Request:
                self.requests.append(envelope)
            digest = "0x" + message_hash(envelope.message).hex()
            return httpx.Response(201, json={"kind": request.url.path[1:-1], "hash": digest})
        if request.url.path.endswith("/outcome"):
            return httpx.Response(200, json=self.outcome().model_dump(mode="json"))
        return httpx.Response(404, json={"error": {"code": "not_found", "message": "?"}})

    def outcome(self) -> Signed[MarketOutcome]:
        awards = []
        for env in self.requests:
            r = env.message
            for k in range(r.mtu_count):
                awards.append(
                    Award(
                        session_id=r.session_id,
                        offer_hash="0x" + "0f" * 32,
                        request_hash="0x" + message_hash(r).hex(),
                        mtu_start_s=r.mtu_start_s + k * MTU_S,
                        power_w=r.volume_w // 2 if k < 2 else r.volume_w // 3,
                        price_cents_per_mwh=10_000,
                        pod="IT001E00000001",
                        direction=r.direction,
                        stage="tso",
                        share_of_request=0.5,
                    )
                )
        outcome = MarketOutcome(
            session_id="da-1",
            round=1,
            final=True,
            awards=awards,
            awards_root=h32(MerkleTree([a.leaf() for a in awards]).root),
            total_cost_cents=0,
            provenance=ClearingProvenance(name="fake", version="0", solver="none"),
        )
        return LocalSigner(dev_account("market"), DOMAIN).sign(outcome)


@pytest.fixture
def fake_market() -> Iterator[FakeMarket]:
    yield FakeMarket()


def _pods_page(scenario: Scenario) -> list[dict[str, Any]]:
    return [
        {
            "pod": p.code,
            "day_s": scenario.day_s,
            "resources": [{"p_max_w": int(r.p_max_kw * 1000)} for r in p.resources],
        }
        for p in scenario.pods
    ]


@SESSION_LOOP
async def test_the_tso_requests_its_needs_by_area_capped_at_the_flexibility(
    small_scenario: Scenario, fake_market: FakeMarket
) -> None:
    tso_key = LocalSigner(dev_account("tso"), DOMAIN)
    scd_transport = httpx.MockTransport(
        lambda r: httpx.Response(200, json=_pods_page(small_scenario))
    )
    async with (
        SignedHttpClient("http://market", tso_key,
                         transport=httpx.MockTransport(fake_market.handler)) as market,
        SignedHttpClient("http://scd", transport=scd_transport) as scd,
    ):  # fmt: skip
        tso = TsoSimulator(small_scenario, market, scd)
        pods = await tso.learn_pods()
        assert {p["area"] for p in pods} == {"HV-1"}
        capacity = TsoSimulator.capacity_w(pods)["HV-1"]
        receipts = await tso.post_requests("da-1", "day_ahead")
    needs = [n for n in small_scenario.tso.needs if n.session == "day_ahead"]
    assert len(receipts) == len(needs) == len(fake_market.requests)
    for need, env in zip(needs, fake_market.requests, strict=True):
        r = env.message
        assert env.signer == tso_key.address and r.requester == tso_key.address
        assert r.area == need.area and r.eligible == []
        assert r.direction == Direction.parse(need.direction)
        assert r.mtu_start_s == small_scenario.day_s + need.mtu_from * MTU_S
        assert r.volume_w == min(int(need.volume_kw * 1000), capacity)
        assert r.max_price_cents_per_mwh == round(need.max_price_eur_per_mwh * 100)
    # the real-time session only gets what falls in its window
    rt = tso.requests("rt-1", "real_time", start_s=small_scenario.day_s + 64 * MTU_S, mtu_count=16)
    assert [(r.mtu_start_s, r.mtu_count) for r in rt] == [(small_scenario.day_s + 72 * MTU_S, 4)]
    assert areas_table(small_scenario) == {p.code: "HV-1" for p in small_scenario.pods}


@SESSION_LOOP
async def test_the_tso_orders_its_awards_once(
    small_scenario: Scenario, fake_market: FakeMarket
) -> None:
    tso_key = LocalSigner(dev_account("tso"), DOMAIN)
    async with SignedHttpClient(
        "http://market", tso_key, transport=httpx.MockTransport(fake_market.handler)
    ) as market:
        tso = TsoSimulator(small_scenario, market)
        await tso.post_requests("da-1", "day_ahead")
        receipts = await tso.order_awards("da-1")
        again = await tso.order_awards("da-1")
    assert again == []  # nothing ordered twice
    orders = [Signed[Order].model_validate(b).message for p, b in fake_market.posted
              if p == "/orders"]  # fmt: skip
    assert len(receipts) == len(orders) == 2 * len(fake_market.requests)
    for o in orders:
        assert o.session_id == "da-1" and o.expiry_s == o.mtu_start_s
    # each request: two MTUs at half its volume, then the rest at a third
    first = fake_market.requests[0].message
    mine = [o for o in orders if o.request_hash == "0x" + message_hash(first).hex()]
    assert [(o.mtu_start_s, o.mtu_count, o.power_w) for o in mine] == [
        (first.mtu_start_s, 2, first.volume_w // 2),
        (first.mtu_start_s + 2 * MTU_S, first.mtu_count - 2, first.volume_w // 3),
    ]
    assert len({o.nonce for o in orders}) == len(orders)


def test_group_orders_splits_on_gaps_and_power() -> None:
    def award(mtu: int, power: int, offer: str = "0x" + "01" * 32) -> Any:
        class A:
            offer_hash = offer
            request_hash = "0x" + "02" * 32
            mtu_start_s = DAY_S + mtu * MTU_S
            power_w = power

        return A()

    runs = group_orders([award(3, 10), award(1, 10), award(2, 10), award(5, 10), award(6, 7)])
    assert [(r.mtu_start_s - DAY_S) // MTU_S for r in runs] == [1, 5, 6]
    assert [(r.mtu_count, r.power_w) for r in runs] == [(3, 10), (1, 10), (1, 7)]


def test_brp_baseline_message_round_trips(small_world: World) -> None:
    message = Brp(small_world, dev_account("brp").address).baseline()
    assert BrpBaseline.model_validate_json(message.model_dump_json()) == message
