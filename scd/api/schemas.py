"""Response schemas of the SCD API (the request bodies are the protocol's ``Signed[...]``)."""

from typing import Any

from pydantic import BaseModel, Field

from flexledger.messages import BatchManifest, Signed, WindowManifest

__all__ = [
    "AvailabilityPublic",
    "BaselinePublic",
    "BatchProofPublic",
    "CustomerPublic",
    "Health",
    "IngestStatsPublic",
    "PodPublic",
    "ProofPublic",
    "SampleBatchPublic",
    "SamplePublic",
    "SamplesPage",
    "WindowPublic",
]


class Health(BaseModel):
    status: str
    service: str
    chain_id: int
    block: int


class ResourcePublic(BaseModel):
    resource_id: str
    kind: int
    p_max_w: int
    e_max_wh: int
    available_from_s: int
    available_to_s: int


class CustomerPublic(BaseModel):
    """One entry of an aggregator's customer list (I-02)."""

    day_s: int
    pod: str
    aggregator: str
    fr_owner: str
    device: str
    bus: str | None
    resources: list[ResourcePublic]
    list_hash: str = Field(description="struct hash of the signed CustomerList it came in")


class PodPublic(BaseModel):
    """A POD as of its newest customer list, with the device key bound to it on chain."""

    pod: str
    day_s: int
    bus: str | None
    aggregator: str
    fr_owner: str
    device: str = Field(description="the Light Node key the aggregator declared")
    device_on_chain: str | None = Field(description="MeasurementAnchor.deviceOf(pod) now")
    resources: list[ResourcePublic]


class AvailabilityPublic(BaseModel):
    """A signed availability (I-12) as submitted."""

    hash: str
    envelope: dict[str, Any]


class BaselinePublic(BaseModel):
    """A BRP's signed baseline (I-03), its root and the block that committed it."""

    brp: str
    day_s: int
    root: str
    pod_count: int
    committed_block: int
    hash: str
    baseline: dict[str, Any]


class SamplePublic(BaseModel):
    t_s: int
    p_w: int
    q_var: int
    v_mv: int
    seq: int
    batch_id: int = Field(description="the signed message it came in (see ``batches``)")


class SampleBatchPublic(BaseModel):
    """A device-signed ``MeasurementBatch``: its samples are those of its POD with
    ``first_seq ≤ seq < first_seq + count``."""

    id: int
    first_seq: int
    count: int
    signer: str
    signature: str


class SamplesPage(BaseModel):
    pod: str
    samples: list[SamplePublic]
    batches: list[SampleBatchPublic]
    next_after: int | None = Field(description="pass as ?after= for the next page; null: last")


class BatchPublic(BaseModel):
    """A concentrator's batch as the SCD received it (``manifest`` only for one batch)."""

    concentrator: str
    batch_id: int
    root: str | None
    window_count: int | None
    sample_count: int | None
    anchor_tx: str | None
    anchor_block: int | None
    status: str
    error: str | None
    manifest: BatchManifest | None = None


class WindowPublic(BaseModel):
    """A window's anchor and the SCD's verdict on it."""

    pod: str
    window_start_s: int
    status: str = Field(description="certified, mismatch, pending or not_anchored")
    root: str | None
    sample_count: int | None
    setpoints_hash: str | None
    missing_seqs: list[int]
    extra_seqs: list[int]
    altered_seqs: list[int]
    anchor: str | None = Field(description="direct or concentrator")
    anchor_tx: str | None
    anchor_block: int | None
    concentrator: str | None
    batch_id: int | None
    manifest: Signed[WindowManifest] | None


class WindowRef(BaseModel):
    pod: str
    window_start_s: int
    root: str
    sample_count: int
    setpoints_hash: str


class BatchProofPublic(BaseModel):
    """Concentrator mode: the window's leaf and proof in the anchored batch
    (``MeasurementAnchor.verifyBatched``)."""

    concentrator: str
    batch_id: int
    batch_root: str
    window: WindowRef
    window_leaf: str
    window_proof: list[str]


class ProofSample(BaseModel):
    t_s: int
    p_w: int
    q_var: int
    v_mv: int
    seq: int


class ProofPublic(BaseModel):
    """A sample, its leaf and its Merkle proof against its window's root."""

    pod: str
    window_start_s: int
    sample: ProofSample
    leaf: str
    proof: list[str]
    computed_root: str = Field(description="the root the SCD's stored window hashes to")
    window_root: str = Field(description="the anchored root (the device-signed one in a batch)")
    sample_count: int | None
    setpoints_hash: str | None
    status: str
    anchor: str | None
    anchor_tx: str | None
    batch: BatchProofPublic | None


class IngestStatsPublic(BaseModel):
    """Measurement messages accepted, duplicate (idempotent redeliveries) and refused by
    reason, since the database was created."""

    accepted: int
    duplicate: int
    rejected: dict[str, int]
    rejected_total: int
    samples_stored: int
    samples_duplicate: int
    other: dict[str, int]
