"""Measurements: meter readings, 4 s samples (I-04), windows, quarterly measures (I-01),
field sensors (I-18) and topology events."""

from __future__ import annotations

from typing import Any, Literal

from eth_utils import keccak
from pydantic import Field, model_validator

from flexledger.messages.common import (
    I64,
    U32,
    U64,
    Address,
    Hash32,
    Message,
    PodCode,
    Signed,
    SignedMessage,
    b32,
    id32,
)
from flexledger.messages.leaves import sample_leaf

__all__ = [
    "BatchManifest",
    "CertificationStatus",
    "MeasureHistory",
    "MeasurementBatch",
    "MeterReading",
    "QuarterlyMeasure",
    "ResendRequest",
    "Sample",
    "SensorReading",
    "TopologyEvent",
    "WindowCertification",
    "WindowManifest",
]

CertificationStatus = Literal["certified", "mismatch", "pending", "not_anchored"]


class MeterReading(Message):
    """What a meter gives a Light Node at one 4 s instant (load convention: + consumes)."""

    pod: PodCode
    t_s: U64
    p_w: I64
    q_var: I64
    v_mv: U64


class Sample(Message):
    """One certified 4 s sample of a POD; its canonical encoding is its Merkle leaf preimage."""

    t_s: U64
    p_w: I64
    q_var: I64
    v_mv: U64
    seq: U64

    def leaf(self, pod32: bytes) -> bytes:
        return sample_leaf(pod32, self.t_s, self.p_w, self.q_var, self.v_mv, self.seq)


class MeasurementBatch(SignedMessage):
    """I-04 Near real time measures: consecutive samples of one POD, signed once by its device.

    One sample per message in real time; many when catching up a backlog or on an accelerated
    clock. Published on ``flex/pod/{pod}/measure`` at QoS 1.
    """

    eip712_type = "MeasurementBatch"

    pod: PodCode
    samples: list[Sample] = Field(min_length=1, max_length=10_000)

    @model_validator(mode="after")
    def _consecutive(self) -> MeasurementBatch:
        first = self.samples[0].seq
        prev_t = -1
        for i, s in enumerate(self.samples):
            if s.seq != first + i:
                raise ValueError(f"sample {i}: seq {s.seq} breaks the run from {first}")
            if s.t_s <= prev_t:
                raise ValueError(f"sample {i}: t_s {s.t_s} is not after {prev_t}")
            prev_t = s.t_s
        return self

    def leaves(self) -> list[bytes]:
        pod32 = id32(self.pod)
        return [s.leaf(pod32) for s in self.samples]

    def samples_hash(self) -> bytes:
        return keccak(b"".join(self.leaves()))

    def eip712_message(self) -> dict[str, Any]:
        return {
            "pod": id32(self.pod),
            "firstSeq": self.samples[0].seq,
            "count": len(self.samples),
            "samplesHash": self.samples_hash(),
        }


class WindowManifest(SignedMessage):
    """A Light Node's closed window: its Merkle root (anchored on chain) and what it covers.

    Signed by the device as a ``WindowRoot``; in concentrator mode this signed root is what the
    concentrator batches.
    """

    eip712_type = "WindowRoot"

    pod: PodCode
    window_start_s: U64
    root: Hash32
    sample_count: U32
    first_seq: U64
    last_seq: U64
    setpoints_hash: Hash32
    anchor: Literal["direct", "concentrator"] = "direct"
    tx_hash: Hash32 | None = None
    setpoint_leaves: list[Hash32] | None = Field(
        default=None,
        max_length=10_000,
        description="the window's set-point leaves in order of receipt; they must hash to "
        "setpoints_hash, so the signature covers them. The SCD needs them to rebuild the root "
        "of a window that has set-points (none: omit, or [] with a zero setpoints_hash)",
    )

    unsigned_fields = frozenset({"first_seq", "last_seq", "anchor", "tx_hash", "setpoint_leaves"})

    @model_validator(mode="after")
    def _setpoint_leaves(self) -> WindowManifest:
        if self.setpoint_leaves is not None:
            leaves = [b32(h) for h in self.setpoint_leaves]
            expected = keccak(b"".join(leaves)) if leaves else bytes(32)
            if expected != b32(self.setpoints_hash):
                raise ValueError("setpoint_leaves do not hash to setpoints_hash")
        return self

    def eip712_message(self) -> dict[str, Any]:
        return {
            "pod": id32(self.pod),
            "windowStart": self.window_start_s,
            "root": b32(self.root),
            "sampleCount": self.sample_count,
            "setpointsHash": b32(self.setpoints_hash),
        }


class BatchManifest(Message):
    """A concentrator's batch: device-signed window roots, anchored as one root on chain.

    Unsigned itself: the batch root is on chain from the concentrator's key and every window in
    it carries its device's signature; the SCD and the auditor check both, and that each window
    appears in one batch only. Published on ``flex/concentrator/{id}/batch``.
    """

    concentrator: Address
    concentrator_id: str = Field(min_length=1, max_length=64)
    batch_id: U64
    root: Hash32
    windows: list[Signed[WindowManifest]] = Field(min_length=1, max_length=100_000)
    tx_hash: Hash32 | None = None


class WindowCertification(Message):
    """The SCD's verdict on one window of a POD (``flex/pod/{pod}/certification``).

    ``certified``: the samples it stores hash to the root anchored on chain. ``mismatch``: they do
    not, and the lists say exactly which sequence numbers are missing, extra or altered.
    ``pending``: anchored but samples still missing (a resend was asked). ``not_anchored``: no
    root on chain yet. A Light Node frees a window from its buffer only once it is certified.
    """

    pod: PodCode
    window_start_s: U64
    status: CertificationStatus
    root: Hash32 | None = None
    sample_count: U32 = 0
    missing_seqs: list[U64] = Field(default_factory=list)
    extra_seqs: list[U64] = Field(default_factory=list)
    altered_seqs: list[U64] = Field(default_factory=list)
    anchor_tx: Hash32 | None = None
    batch_id: U64 | None = None


class ResendRequest(Message):
    """The SCD asks a Light Node to publish a window's samples again (unsigned: it only
    causes a resend of data that is signed anyway)."""

    pod: PodCode
    window_start_s: U64
    seqs: list[U64] = Field(
        default_factory=list, description="missing sequence numbers; empty: all"
    )


class QuarterlyMeasure(Message):
    """I-01 Quarterly measures: a POD's energy in one MTU (15 min), from the SCD.

    ``e_wh`` is net consumption (load convention); ``certified`` when every sample behind it is
    in a certified window. History imported in bulk has ``source = "history"``.
    """

    pod: PodCode
    mtu_start_s: U64
    e_wh: I64
    sample_count: U32 = 0
    certified: bool = False
    source: Literal["lightnode", "history"] = "lightnode"


class SensorReading(SignedMessage):
    """I-18 Technical measurement from a field sensor (V&C sensor, LV circuit breaker IED)."""

    eip712_type = "SensorReading"

    sensor_id: str = Field(min_length=1, max_length=64)
    t_s: U64
    v_mv: U64
    p_w: I64 = 0
    q_var: I64 = 0
    i_ma: U64 = 0
    seq: U64

    def eip712_message(self) -> dict[str, Any]:
        return {
            "sensor": id32(self.sensor_id),
            "t": self.t_s,
            "vMv": self.v_mv,
            "pW": self.p_w,
            "qVar": self.q_var,
            "iMa": self.i_ma,
            "seq": self.seq,
        }


class TopologyEvent(SignedMessage):
    """A switch or line changed state (an outage, a reconfiguration), on ``flex/grid/topology``."""

    eip712_type = "TopologyEvent"

    element: str = Field(min_length=1, max_length=64, description="e.g. 'line:42', 'switch:7'")
    closed: bool
    t_s: U64
    seq: U64

    def eip712_message(self) -> dict[str, Any]:
        return {
            "element": id32(self.element),
            "closed": self.closed,
            "t": self.t_s,
            "seq": self.seq,
        }


class MeasureHistory(SignedMessage):
    """A bulk import of historical quarterly measures (I-01) into the SCD, for forecasts.

    Signed by the uploader (the DSO as meter operator); the signature covers the keccak of the
    values' ABI encodings (POD id, MTU, Wh, sample count, certified, id of the source), which
    the SCD recomputes.
    """

    eip712_type = "MeasureHistory"

    uploader: Address
    values: list[QuarterlyMeasure] = Field(min_length=1, max_length=2_000_000)
    nonce: U64

    def values_hash(self) -> bytes:
        """keccak256 over ``abi.encode(pod id, mtu start, Wh, samples, certified, source id)``
        of every value, in order. Packed word by word (static types: one 32-byte big-endian
        word each, two's complement for ``e_wh``): a history carries hundreds of thousands of
        values and eth_abi's encoder costs about twenty times as much (``tests/protocol``
        checks the bytes against it)."""
        word = 1 << 256
        one, zero = (1).to_bytes(32, "big"), bytes(32)
        parts: list[bytes] = []
        for v in self.values:
            parts += (
                id32(v.pod),
                v.mtu_start_s.to_bytes(32, "big"),
                (v.e_wh % word).to_bytes(32, "big"),
                v.sample_count.to_bytes(32, "big"),
                one if v.certified else zero,
                id32(v.source),
            )
        return keccak(b"".join(parts))

    def eip712_message(self) -> dict[str, Any]:
        return {
            "uploader": self.uploader,
            "valuesHash": self.values_hash(),
            "count": len(self.values),
            "nonce": self.nonce,
        }
