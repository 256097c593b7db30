"""A sample's proof, fetched from the SCD and checked by the auditor: locally with
``node.merkle`` and on chain with ``MeasurementAnchor.verify`` / ``verifySample`` (direct
anchor) or ``verifyBatched`` (concentrator batch)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from audit.measurements import ScdReader
from flexledger.messages import Sample, b32, h32, id32
from node.contracts import FlexContracts, Window
from node.contracts import Sample as ChainSample
from node.merkle import verify_proof

__all__ = ["ProofCheck", "check_proof"]


@dataclass
class ProofCheck:
    """What was checked, and whether it held."""

    pod: str
    t_s: int
    proof: dict[str, Any]
    checks: dict[str, bool] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(self.checks.values())


def check_proof(scd: ScdReader, contracts: FlexContracts, pod: str, t_s: int) -> ProofCheck:
    """Fetch ``GET /proof`` and check it: the leaf is the sample's, the proof leads to the
    window root, and the contract agrees."""
    p = scd.get("/proof", {"pod": pod, "t_s": t_s})
    s = p["sample"]
    sample = Sample(t_s=s["t_s"], p_w=s["p_w"], q_var=s["q_var"], v_mv=s["v_mv"], seq=s["seq"])
    pod32 = id32(pod)
    leaf = sample.leaf(pod32)
    proof = [b32(h) for h in p["proof"]]
    result = ProofCheck(pod, t_s, p)
    result.checks["leaf is the sample's"] = h32(leaf) == p["leaf"]
    result.checks["proof leads to the window root"] = verify_proof(
        b32(p["window_root"]), leaf, proof
    )
    batch = p.get("batch")
    if batch is None:
        on_chain = contracts.anchor.window_root(pod32, p["window_start_s"])
        result.checks["window root is the one on chain"] = on_chain == b32(p["window_root"])
        result.checks["MeasurementAnchor.verify"] = contracts.anchor.verify(
            pod32, p["window_start_s"], leaf, proof
        )
        chain_sample = ChainSample(
            pod32, sample.t_s, sample.p_w, sample.q_var, sample.v_mv, sample.seq
        )
        result.checks["MeasurementAnchor.verifySample"] = contracts.anchor.verify_sample(
            chain_sample, proof
        )
    else:
        w = batch["window"]
        window = Window(
            id32(w["pod"]),
            w["window_start_s"],
            b32(w["root"]),
            w["sample_count"],
            b32(w["setpoints_hash"]),
        )
        result.checks["MeasurementAnchor.verifyBatched"] = contracts.anchor.verify_batched(
            batch["concentrator"],
            batch["batch_id"],
            window,
            [b32(h) for h in batch["window_proof"]],
            leaf,
            proof,
        )
    return result
