"""``scd.workers.MqttReader``: the ingest workers' lean MQTT 3.1.1 subscriber — packet parsing
(split and coalesced reads, PUBACKs of a read in one send) and a real broker round trip."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator

import paho.mqtt.client as paho
import pytest

from flexledger.transport import MosquittoProcess, unique_client_id
from flexledger.transport.mqtt import parse_mqtt_url
from scd.workers import MqttReader


def _reader() -> tuple[MqttReader, list[tuple[str, bytes]], list[list[int]]]:
    got: list[tuple[str, bytes]] = []
    subacks: list[list[int]] = []
    r = MqttReader("mqtt://127.0.0.1:1", "t", [("a/#", 1)], got.extend, subacks.append)
    return r, got, subacks


def _publish(topic: str, payload: bytes, pid: int | None) -> bytes:
    body = MqttReader._str(topic) + (pid.to_bytes(2, "big") if pid is not None else b"")
    return MqttReader._packet(0x32 if pid is not None else 0x30, body + payload)


def test_parses_coalesced_and_split_packets_and_acks_each_qos1_once() -> None:
    r, got, subacks = _reader()
    big = bytes(range(256)) * 600  # remaining length of 3 bytes
    stream = (
        b"\x20\x02\x00\x00"  # CONNACK accepted
        + b"\x90\x04\x00\x01\x01\x01"  # SUBACK, two filters granted QoS 1
        + _publish("a/p/1", b'{"x":1}', 7)
        + _publish("a/p/2", b"", None)
        + _publish("a/p/3", big, 258)
        + b"\xd0\x00"  # PINGRESP
    )
    for step in (len(stream), 1, 3, 1000):  # all at once, byte by byte, in chunks
        got.clear()
        subacks.clear()
        buf = bytearray()
        acks = b""
        for i in range(0, len(stream), step):
            buf += stream[i : i + step]
            acks += r._parse(buf)
        assert not buf
        assert got == [("a/p/1", b'{"x":1}'), ("a/p/2", b""), ("a/p/3", big)]
        assert acks == b"\x40\x02\x00\x07" + b"\x40\x02\x01\x02"
        assert subacks == [[1, 1]]


def test_connack_refusal_and_qos2_are_errors() -> None:
    r, _, _ = _reader()
    with pytest.raises(ConnectionError):
        r._parse(bytearray(b"\x20\x02\x00\x05"))
    with pytest.raises(ValueError):
        r._parse(bytearray(MqttReader._packet(0x34, MqttReader._str("a/b") + b"\x00\x01x")))


def test_connect_packet_carries_credentials_and_session_flag() -> None:
    r = MqttReader("mqtt://u:pw@127.0.0.1:1883", "cid", [], lambda _m: None, lambda _c: None)
    pkt = r._connect_packet()
    assert pkt[0] == 0x10
    assert pkt[2:9] == b"\x00\x04MQTT\x04"
    assert pkt[9] == 0x80 | 0x40  # username, password, durable session
    assert pkt.endswith(b"\x00\x03cid\x00\x01u\x00\x02pw")


@pytest.fixture(scope="module")
async def broker() -> AsyncIterator[MosquittoProcess]:
    async with MosquittoProcess() as b:
        yield b


@pytest.mark.asyncio(loop_scope="module")
async def test_round_trip_with_mosquitto_every_message_once(broker: MosquittoProcess) -> None:
    got: list[tuple[str, bytes]] = []
    lock = threading.Lock()
    subscribed = threading.Event()

    def on_messages(msgs: list[tuple[str, bytes]]) -> None:
        with lock:
            got.extend(msgs)

    cid = unique_client_id("reader-test")
    reader = MqttReader(broker.url, cid, [("rt/#", 1)], on_messages, lambda codes: subscribed.set())
    reader.start()
    try:
        assert subscribed.wait(10)
        url = parse_mqtt_url(broker.url)
        pub = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=cid + "-pub")
        pub.connect(url.host, url.port)
        pub.loop_start()
        infos = [pub.publish(f"rt/{i % 7}", str(i).encode(), qos=1) for i in range(2000)]
        for info in infos:
            info.wait_for_publish(10)  # every PUBACK came back from the broker
        deadline = time.monotonic() + 10
        while len(got) < 2000 and time.monotonic() < deadline:
            time.sleep(0.01)
        pub.loop_stop()
        pub.disconnect()
    finally:
        reader.stop()
    assert sorted(int(p) for _, p in got) == list(range(2000))
    assert all(t == f"rt/{int(p) % 7}" for t, p in got)
