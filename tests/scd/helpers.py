"""Message builders and waits shared by the SCD and audit tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from flexledger.messages import MeasurementBatch, Sample, Signed, WindowManifest, h32, id32
from flexledger.transport.mqtt import encode_payload
from node.merkle import MerkleTree
from node.signing import LocalSigner

ZERO = "0x" + "00" * 32


def samples_for(start_s: int, seqs: range | list[int], base_w: int = 1500) -> list[Sample]:
    """One sample every 4 s from ``start_s``, power varying with the sequence number."""
    first = seqs[0]
    return [
        Sample(
            t_s=start_s + 4 * (s - first),
            p_w=base_w + 37 * (s % 11) - 200 * (s % 3),
            q_var=-100 + s % 7,
            v_mv=230_000 + s % 13,
            seq=s,
        )
        for s in seqs
    ]


def sign_each(signer: LocalSigner, pod: str, samples: list[Sample]) -> list[bytes]:
    """One signed message per sample (the real-time shape), as MQTT payloads."""
    return [encode_payload(signer.sign(MeasurementBatch(pod=pod, samples=[s]))) for s in samples]


def sign_batch(signer: LocalSigner, pod: str, samples: list[Sample]) -> bytes:
    return encode_payload(signer.sign(MeasurementBatch(pod=pod, samples=samples)))


def window_root(pod: str, samples: list[Sample], setpoint_leaves: list[bytes] = ()) -> bytes:  # type: ignore[assignment]
    return MerkleTree([s.leaf(id32(pod)) for s in samples] + list(setpoint_leaves)).root


def manifest(
    signer: LocalSigner,
    pod: str,
    start_s: int,
    samples: list[Sample],
    setpoint_leaves: list[bytes] | None = None,
    **kw: Any,
) -> Signed[WindowManifest]:
    from eth_utils import keccak

    sp = list(setpoint_leaves or [])
    return signer.sign(
        WindowManifest(
            pod=pod,
            window_start_s=start_s,
            root=h32(window_root(pod, samples, sp)),
            sample_count=len(samples),
            first_seq=samples[0].seq,
            last_seq=samples[-1].seq,
            setpoints_hash=h32(keccak(b"".join(sp))) if sp else ZERO,
            setpoint_leaves=[h32(x) for x in sp] if sp else None,
            **kw,
        )
    )


async def eventually(predicate: Callable[[], Any], timeout_s: float = 10.0) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        await asyncio.sleep(0.02)
