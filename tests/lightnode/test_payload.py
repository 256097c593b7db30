"""The Light Node writes its measurement messages' JSON directly: byte for byte what the
protocol model would write, and a message that decodes and verifies."""

from __future__ import annotations

from eth_utils import to_checksum_address
from hypothesis import given, settings
from hypothesis import strategies as st

from flexledger.messages import MeasurementBatch, Sample, Signed
from flexledger.transport.mqtt import decode_payload, encode_payload
from lightnode.agent import batch_payload
from lightnode.buffer import SampleRow

POD = "IT001E00000001"
SIGNER = to_checksum_address("0x" + "ab" * 20)  # the agent's address is checksummed
SIG = "0x" + "cd" * 65


@settings(max_examples=60)
@given(
    st.integers(0, 2**40),
    st.lists(
        st.tuples(
            st.integers(-(2**63), 2**63 - 1),
            st.integers(-(2**63), 2**63 - 1),
            st.integers(0, 2**64 - 1),
        ),
        min_size=1,
        max_size=30,
    ),
)
def test_batch_payload_is_the_models_json(
    first_seq: int, values: list[tuple[int, int, int]]
) -> None:
    t0 = 1_796_256_000
    rows = [
        SampleRow(first_seq + i, t0 + 4 * i, p, q, v, t0, b"\0" * 32)
        for i, (p, q, v) in enumerate(values)
    ]
    model = Signed[MeasurementBatch](
        message=MeasurementBatch(
            pod=POD,
            samples=[
                Sample(t_s=r.t_s, p_w=r.p_w, q_var=r.q_var, v_mv=r.v_mv, seq=r.seq) for r in rows
            ],
        ),
        signer=SIGNER,
        signature=SIG,
    )
    fast = batch_payload(POD, rows, SIGNER, SIG)
    assert fast == encode_payload(model)
    assert decode_payload(Signed[MeasurementBatch], fast) == model
