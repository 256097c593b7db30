"""The ingestion hot path agrees with the protocol: digests, leaves, decoding."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flexledger.messages import MeasurementBatch, Sample, id32
from flexledger.transport.mqtt import encode_payload
from node.eip712 import Domain, typed_digest
from node.keys import dev_account
from node.signing import LocalSigner
from scd.verify import Malformed, batch_digest, decode_measurement, recover_signer, sample_leaf_fast

DOMAIN = Domain(chain_id=31337, verifying_contract="0x" + "42" * 20)
SIGNER = LocalSigner(dev_account("ln:IT001E00000001"), DOMAIN)
POD = "IT001E00000001"

i64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
u63 = st.integers(min_value=0, max_value=2**63 - 1)


@settings(max_examples=40, deadline=None)
@given(
    first=st.integers(min_value=0, max_value=2**62),
    t0=st.integers(min_value=0, max_value=2**62),
    values=st.lists(st.tuples(i64, i64, u63), min_size=1, max_size=5),
)
def test_fast_digest_and_leaves_match_the_protocol(
    first: int, t0: int, values: list[tuple[int, int, int]]
) -> None:
    samples = [
        Sample(t_s=t0 + 4 * i, p_w=p, q_var=q, v_mv=v, seq=first + i)
        for i, (p, q, v) in enumerate(values)
    ]
    batch = MeasurementBatch(pod=POD, samples=samples)
    rows = [(s.seq, s.t_s, s.p_w, s.q_var, s.v_mv) for s in samples]
    assert [sample_leaf_fast(id32(POD), r) for r in rows] == batch.leaves()
    assert batch_digest(DOMAIN, id32(POD), rows) == typed_digest(
        DOMAIN, "MeasurementBatch", batch.eip712_message()
    )
    decoded = decode_measurement(encode_payload(SIGNER.sign(batch)))
    assert decoded.samples == rows
    assert recover_signer(DOMAIN, decoded) == bytes.fromhex(SIGNER.address[2:])


def test_unusual_spelling_goes_through_the_protocol_model() -> None:
    batch = MeasurementBatch(pod=POD, samples=[Sample(t_s=8, p_w=-5, q_var=1, v_mv=2, seq=3)])
    obj = json.loads(encode_payload(SIGNER.sign(batch)))
    obj["signer"] = obj["signer"].lower()
    obj["message"]["samples"][0]["p_w"] = -5.0  # a float with no fraction: pydantic accepts it
    decoded = decode_measurement(json.dumps(obj).encode())
    assert decoded.samples == [(3, 8, -5, 1, 2)]
    assert recover_signer(DOMAIN, decoded) == bytes.fromhex(SIGNER.address[2:])


@pytest.mark.parametrize(
    "payload, reason",
    [
        (b"\xff\xfe", "malformed"),
        (b"[]", "malformed"),
        (b'{"message": {"pod": "IT001E00000001", "samples": [{"t_s": 1}]}}', "malformed"),
    ],
)
def test_refusals_have_reasons(payload: bytes, reason: str) -> None:
    with pytest.raises(Malformed) as caught:
        decode_measurement(payload)
    assert caught.value.reason == reason
