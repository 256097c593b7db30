"""MQTT helpers that need no broker: URLs and payload encoding."""

from __future__ import annotations

import pytest

from flexledger.messages import MeasurementBatch, ResendRequest, Signed
from flexledger.transport import (
    DecodeError,
    MqttUrl,
    decode_payload,
    encode_payload,
    parse_mqtt_url,
)
from node.signing import LocalSigner, verify_envelope
from tests.transport.helpers import DOMAIN, POD, batch


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mqtt://127.0.0.1:1883", MqttUrl("127.0.0.1", 1883)),
        ("mqtt://broker", MqttUrl("broker", 1883)),
        ("tcp://broker:1999", MqttUrl("broker", 1999)),
        ("mqtts://broker", MqttUrl("broker", 8883, tls=True)),
        ("mqtt://user:p%40ss@broker:1884", MqttUrl("broker", 1884, "user", "p@ss")),
        ("mqtt://user@broker", MqttUrl("broker", 1883, "user")),
        (" mqtt://[::1]:1883 ", MqttUrl("::1", 1883)),
    ],
)
def test_parse_mqtt_url(url: str, expected: MqttUrl) -> None:
    assert parse_mqtt_url(url) == expected


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("", "empty"),
        ("http://broker:1883", "scheme"),
        ("broker:1883", "scheme"),
        ("mqtt://:1883", "no host"),
        ("mqtt://broker:99999", "out of range"),
        ("mqtt://broker:12ab", "MQTT URL"),
        ("mqtt://broker/topic", "no path"),
    ],
)
def test_bad_mqtt_urls_say_why(url: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_mqtt_url(url)


def test_url_never_shows_the_password() -> None:
    url = parse_mqtt_url("mqtt://user:secret@broker:1883")
    assert "secret" not in str(url) and "secret" not in repr(url)


def test_signed_envelope_round_trips_as_json(device: LocalSigner) -> None:
    envelope = device.sign(batch())
    decoded = decode_payload(Signed[MeasurementBatch], encode_payload(envelope))
    assert decoded == envelope
    assert verify_envelope(decoded, DOMAIN) == device.address


def test_unparametrised_envelope_keeps_its_message_fields(device: LocalSigner) -> None:
    envelope = device.sign(batch())
    loose = Signed(message=envelope.message, signer=envelope.signer, signature=envelope.signature)
    assert decode_payload(Signed[MeasurementBatch], encode_payload(loose)) == envelope


@pytest.mark.parametrize(
    "payload",
    [b"not json", b"{}", b'{"pod": "IT001E00000001"}', b'{"pod": "x", "window_start_s": -1}'],
)
def test_decode_errors_are_decode_errors(payload: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_payload(ResendRequest, payload)


def test_decode_plain_model() -> None:
    request = ResendRequest(pod=POD, window_start_s=900, seqs=[3, 4])
    assert decode_payload(ResendRequest, encode_payload(request)) == request
