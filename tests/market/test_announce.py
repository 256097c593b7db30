"""Outcomes and orders are announced on the machine's Mosquitto (a topic root of this test)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest

from flexledger.messages import MarketOutcome, OrderAnnouncement, Signed
from flexledger.transport import MqttClient, Topics, unique_client_id
from flexledger.transport.mqtt import decode_payload
from market.service.announce import MqttAnnouncer
from node.contracts import FlexContracts
from tests.market.helpers import Market
from tests.transport.helpers import SHARED_MOSQUITTO, listening

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_outcomes_and_orders_on_mqtt(contracts: FlexContracts, tmp_path: Path) -> None:
    if not listening("127.0.0.1", 1883):
        pytest.skip("no Mosquitto on 127.0.0.1:1883")
    topics = Topics(f"test-{uuid.uuid4().hex[:10]}/flex")
    received: list[tuple[str, bytes]] = []

    async def keep(topic: str, payload: Any) -> None:
        received.append((topic, payload))

    listener = MqttClient(SHARED_MOSQUITTO, unique_client_id("listener", "test"))
    await listener.start(wait_s=5)
    await listener.subscribe_raw(topics.all_market_sessions(), keep)
    announcer = MqttAnnouncer(SHARED_MOSQUITTO, topics)
    await announcer.start()
    try:
        m = Market(contracts, tmp_path, announcer=announcer)
        async with m.running():
            await m.run_day_ahead("DA-1", reject_first=False)
            outcome = Signed[MarketOutcome].model_validate(await m.get("/sessions/DA-1/outcome"))
            award = outcome.message.awards[0]
            r = await m.post("/orders", m.order(award, issuer=award.stage))
            assert r.status_code == 201, r.text
            await announcer.flush()
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 5
            while not any(t.endswith("/orders") for t, _ in received):
                assert loop.time() < deadline, f"no order announced: {[t for t, _ in received]}"
                await asyncio.sleep(0.02)
    finally:
        # leave no retained outcome behind on the shared broker
        await announcer.client.publish(topics.market_session("DA-1"), b"", retain=True)
        await announcer.close()
        await listener.close()
    session_msgs = [p for t, p in received if t == topics.market_session("DA-1")]
    outcomes = [
        decode_payload(Signed[MarketOutcome], p) for p in session_msgs if b'"signature"' in p
    ]
    assert [o.message.final for o in outcomes] == [False, True]
    assert outcomes[-1].message.awards_root == outcome.message.awards_root
    notices = [p for p in session_msgs if b'"state"' in p]
    assert any(b'"final"' in n for n in notices)
    (order,) = [decode_payload(OrderAnnouncement, p) for t, p in received if t.endswith("/orders")]
    assert order.order_hash == r.json()["hash"] and order.awards[0].award_hash == award.award_hash
