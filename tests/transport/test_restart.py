"""Clients live through a broker restart (a private Mosquitto, stopped and started again on
the same port)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from flexledger.messages import ResendRequest
from flexledger.time import ScenarioClock
from flexledger.transport import (
    MosquittoProcess,
    MqttClient,
    MqttClockClient,
    MqttClockServer,
    Topics,
    unique_client_id,
)
from tests.transport.helpers import POD, eventually

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(30)]


@pytest.fixture
async def mosquitto() -> AsyncIterator[MosquittoProcess]:
    async with MosquittoProcess() as broker:
        yield broker


def _client(broker: MosquittoProcess, name: str, **options: Any) -> MqttClient:
    return MqttClient(
        broker.url, unique_client_id(name, "test"), timeout_s=5.0, backoff_max_s=0.2, **options
    )


async def test_subscriber_survives_a_broker_restart(
    mosquitto: MosquittoProcess, topics: Topics
) -> None:
    sub_client = _client(mosquitto, "scd")
    pub_client = _client(mosquitto, "ln")
    got: list[int] = []

    async def on_msg(_topic: str, request: ResendRequest) -> None:
        got.append(request.window_start_s)

    async with sub_client, pub_client:
        await sub_client.subscribe(topics.all_pod_resends(), ResendRequest, on_msg)
        await pub_client.publish(topics.pod_resend(POD), ResendRequest(pod=POD, window_start_s=0))
        await eventually(lambda: got == [0])

        await mosquitto.stop()
        await sub_client.wait_disconnected(5)
        await pub_client.wait_disconnected(5)
        # A publish during the outage waits for the broker instead of failing at once.
        during = asyncio.create_task(
            pub_client.publish(topics.pod_resend(POD), ResendRequest(pod=POD, window_start_s=900))
        )
        await asyncio.sleep(0.2)
        assert not during.done()
        await mosquitto.start()

        await during
        await sub_client.wait_connected(5)
        await pub_client.publish(
            topics.pod_resend(POD), ResendRequest(pod=POD, window_start_s=1800)
        )
        # The outage message may be lost for a clean-session subscriber if it published before
        # the subscriber came back; the later one must arrive.
        await eventually(lambda: 1800 in got)
        assert sub_client.connects >= 2 and pub_client.connects >= 2


async def test_durable_session_gets_what_was_published_while_it_was_away(
    topics: Topics,
) -> None:
    """clean_session=False + a persistent broker: QoS 1 messages queued across a restart."""
    async with MosquittoProcess(persistence=True) as broker:
        durable_id = unique_client_id("scd-durable", "test")
        got: list[int] = []

        async def on_msg(_topic: str, request: ResendRequest) -> None:
            got.append(request.window_start_s)

        sub_client = MqttClient(broker.url, durable_id, clean_session=False, backoff_max_s=0.2)
        async with sub_client:
            await sub_client.subscribe(topics.all_pod_resends(), ResendRequest, on_msg)
        # the subscriber is away; the broker restarts; a message is published
        await broker.restart()
        async with _client(broker, "ln") as pub:
            await pub.publish(topics.pod_resend(POD), ResendRequest(pod=POD, window_start_s=900))
        sub_client = MqttClient(broker.url, durable_id, clean_session=False, backoff_max_s=0.2)
        # Subscribe before starting: the queued message comes right after the connection.
        await sub_client.subscribe(topics.all_pod_resends(), ResendRequest, on_msg)
        async with sub_client:
            await eventually(lambda: got == [900])


async def test_remote_clock_keeps_ticking_through_a_broker_restart(
    mosquitto: MosquittoProcess, topics: Topics
) -> None:
    """Clock state and reports are QoS 0: after the restart the server re-publishes its state
    and the participant joins and reports again, so the scenario goes on."""
    t0 = 1_767_225_600
    clock = ScenarioClock(t0, step_s=4)
    async with (
        _client(mosquitto, "world") as world,
        _client(mosquitto, "actor") as conn,
        MqttClockServer(clock, world, topics=topics),
    ):
        actor = MqttClockClient("ln-a", conn, topics=topics, resend_s=0.1)
        await actor.start()

        async def participant(until_s: int) -> None:
            while actor.now_s() < until_s:
                await actor.sleep_until(actor.now_s() + 4)

        first = asyncio.create_task(participant(t0 + 12))
        await asyncio.wait_for(clock.run_until(t0 + 12), 5)
        await asyncio.wait_for(first, 5)

        await mosquitto.restart()
        await world.wait_connected(5)
        await conn.wait_connected(5)
        second = asyncio.create_task(participant(t0 + 24))
        await asyncio.wait_for(clock.run_until(t0 + 24), 10)
        await asyncio.wait_for(second, 5)
        assert actor.now_s() == t0 + 24
        await actor.stop()
