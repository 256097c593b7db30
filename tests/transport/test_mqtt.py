"""Publish and subscribe through real brokers (the machine's Mosquitto and the embedded amqtt)."""

from __future__ import annotations

import asyncio
import json

import pytest

from flexledger.messages import MeasurementBatch, ResendRequest, Signed
from flexledger.transport import (
    MqttClient,
    MqttUnavailableError,
    Topics,
    connect,
    free_port,
    unique_client_id,
)
from node.signing import LocalSigner, verify_envelope
from tests.transport.helpers import (
    DOMAIN,
    POD,
    POD2,
    SHARED_MOSQUITTO,
    MakeClient,
    batch,
    eventually,
    listening,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_signed_batch_round_trips_and_verifies(
    make_client: MakeClient, topics: Topics, device: LocalSigner
) -> None:
    scd = await make_client("scd")
    ln = await make_client("ln")
    got: list[tuple[str, Signed[MeasurementBatch]]] = []

    async def on_batch(topic: str, envelope: Signed[MeasurementBatch]) -> None:
        got.append((topic, envelope))

    sub = await scd.subscribe(
        topics.all_pod_measures(), Signed[MeasurementBatch], on_batch, domain=DOMAIN
    )
    sent = device.sign(batch(first_seq=10, n=5))
    await ln.publish(topics.pod_measure(POD), sent)
    await eventually(lambda: len(got) == 1)
    topic, envelope = got[0]
    assert topic == topics.pod_measure(POD)
    assert topics.parse(topic).pod == POD
    assert envelope == sent
    assert verify_envelope(envelope, DOMAIN) == device.address
    assert sub.stats.delivered == 1 and sub.stats.malformed == 0


async def test_malformed_payloads_are_counted_not_fatal(
    make_client: MakeClient, topics: Topics, device: LocalSigner
) -> None:
    scd = await make_client("scd")
    ln = await make_client("ln")
    got: list[Signed[MeasurementBatch]] = []
    reported: list[tuple[str, bytes, Exception]] = []

    async def on_batch(_topic: str, envelope: Signed[MeasurementBatch]) -> None:
        got.append(envelope)

    sub = await scd.subscribe(
        topics.all_pod_measures(),
        Signed[MeasurementBatch],
        on_batch,
        domain=DOMAIN,
        on_invalid=lambda t, p, e: reported.append((t, p, e)),
    )
    good = device.sign(batch())
    wrong_signer = good.model_copy(update={"signer": "0x" + "22" * 20})
    tampered = json.loads(good.model_dump_json())
    tampered["message"]["samples"][0]["p_w"] += 1  # a changed sample: the signature no longer holds
    await ln.publish(topics.pod_measure(POD), b"\x00\xffnot json")
    await ln.publish(topics.pod_measure(POD), {"message": {"pod": POD}})
    await ln.publish(topics.pod_measure(POD), wrong_signer)
    await ln.publish(topics.pod_measure(POD), tampered)
    await ln.publish(topics.pod_measure(POD2), good)  # after all that, a good one still arrives
    await eventually(lambda: len(got) == 1)
    await sub.drain()
    assert got == [good]
    assert sub.stats.malformed == 2
    assert sub.stats.bad_signature == 2
    assert [t for t, _, _ in reported] == [topics.pod_measure(POD)] * 4
    assert reported[0][1] == b"\x00\xffnot json"


async def test_a_failing_handler_does_not_stop_the_subscription(
    make_client: MakeClient, topics: Topics
) -> None:
    client = await make_client("one")
    seen: list[int] = []

    async def flaky(_topic: str, request: ResendRequest) -> None:
        if request.window_start_s == 0:
            raise RuntimeError("boom")
        seen.append(request.window_start_s)

    sub = await client.subscribe(topics.all_pod_resends(), ResendRequest, flaky)
    for start in (0, 900, 0, 1800):
        await client.publish(topics.pod_resend(POD), ResendRequest(pod=POD, window_start_s=start))
    await eventually(lambda: seen == [900, 1800])
    assert sub.stats.handler_errors == 2


async def test_one_connection_many_subscribers_and_request_inside_a_handler(
    make_client: MakeClient, topics: Topics
) -> None:
    """A handler may wait for another message on the same connection (request/response)."""
    client = await make_client("shared")
    answers: asyncio.Queue[ResendRequest] = asyncio.Queue()
    results: list[int] = []

    async def on_answer(_topic: str, request: ResendRequest) -> None:
        await answers.put(request)

    async def on_question(_topic: str, request: ResendRequest) -> None:
        await client.publish(topics.pod_resend(POD2), request)
        answer = await asyncio.wait_for(answers.get(), 5)  # arrives through the same client
        results.append(answer.window_start_s)

    await client.subscribe(topics.pod_resend(POD2), ResendRequest, on_answer)
    await client.subscribe(topics.pod_resend(POD), ResendRequest, on_question)
    await client.publish(topics.pod_resend(POD), ResendRequest(pod=POD, window_start_s=900))
    await eventually(lambda: results == [900])


async def test_retained_state_reaches_late_subscribers_and_can_be_cleared(
    make_client: MakeClient, topics: Topics
) -> None:
    client = await make_client("pub")
    topic = topics.pod_resend(POD)
    await client.publish(topic, ResendRequest(pod=POD, window_start_s=900), retain=True)
    late = await make_client("late")
    got: list[ResendRequest] = []

    async def on_msg(_topic: str, request: ResendRequest) -> None:
        got.append(request)

    sub = await late.subscribe(topic, ResendRequest, on_msg)
    await eventually(lambda: len(got) == 1)
    await client.publish(topic, b"", retain=True)  # clear it: not malformed, just empty
    await eventually(lambda: sub.stats.empty == 1)
    assert sub.stats.malformed == 0
    await sub.close()
    again: list[ResendRequest] = []

    async def on_again(_topic: str, request: ResendRequest) -> None:
        again.append(request)

    await late.subscribe(topic, ResendRequest, on_again)
    fresh = ResendRequest(pod=POD, window_start_s=1800)
    await client.publish(topic, fresh)
    await eventually(lambda: len(again) >= 1)
    assert again == [fresh]  # the retained one did not come back first


async def test_connect_context_manager(broker_url: str, topics: Topics) -> None:
    async with connect(broker_url, unique_client_id("ctx", "test")) as client:
        assert client.connected
        got: list[ResendRequest] = []

        async def on_msg(_topic: str, request: ResendRequest) -> None:
            got.append(request)

        await client.subscribe(topics.pod_resend(POD), ResendRequest, on_msg)
        await client.publish(topics.pod_resend(POD), ResendRequest(pod=POD, window_start_s=0))
        await eventually(lambda: len(got) == 1)
    assert not client.connected


async def test_no_broker_fails_fast_with_a_clear_error() -> None:
    url = f"mqtt://127.0.0.1:{free_port()}"
    client = MqttClient(url, unique_client_id("nobody", "test"))
    with pytest.raises(MqttUnavailableError, match=r"no MQTT connection to mqtt://127\.0\.0\.1"):
        async with connect(url, unique_client_id("nobody", "test"), wait_s=0.3):
            pass
    await client.start()
    with pytest.raises(MqttUnavailableError):
        await client.publish("test/x", b"1", timeout_s=0.2)
    await client.close()


async def test_mqtt5_round_trip(topics: Topics, device: LocalSigner) -> None:
    """MQTT 5 against Mosquitto (amqtt speaks 3.1.1 only)."""
    if not listening("127.0.0.1", 1883):
        pytest.skip("no Mosquitto on 127.0.0.1:1883")
    got: list[Signed[MeasurementBatch]] = []

    async def on_batch(_topic: str, envelope: Signed[MeasurementBatch]) -> None:
        got.append(envelope)

    async with (
        connect(SHARED_MOSQUITTO, unique_client_id("v5-sub", "test"), mqtt5=True) as sub,
        connect(SHARED_MOSQUITTO, unique_client_id("v5-pub", "test"), mqtt5=True) as pub,
    ):
        await sub.subscribe(
            topics.pod_measure(POD), Signed[MeasurementBatch], on_batch, domain=DOMAIN
        )
        sent = device.sign(batch())
        await pub.publish(topics.pod_measure(POD), sent)
        await eventually(lambda: got == [sent])
