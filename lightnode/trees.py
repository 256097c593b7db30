"""The trees a Light Node and a concentrator build (docs/PROTOCOL.md, "Windows").

One place for the rules so that the agent, the concentrator and whoever checks them (the SCD's
tests, the auditor) build the same roots: a window's tree holds its sample leaves in sequence
order, then its set-point leaves in order of receipt; a concentrator's batch tree holds window
leaves (kind 3) ordered by POD code, then window start.
"""

from __future__ import annotations

from collections.abc import Sequence

from flexledger.messages.leaves import keccak256 as keccak
from flexledger.messages.leaves import window_leaf_of
from flexledger.messages.measurement import WindowManifest
from node.merkle import MerkleTree

__all__ = [
    "batch_order",
    "batch_tree",
    "manifest_window_leaf",
    "setpoints_hash",
    "window_tree",
]


def setpoints_hash(leaves: Sequence[bytes]) -> bytes:
    """``keccak256(leaf_1 ‖ … ‖ leaf_k)`` of a window's set-point leaves; zero when none."""
    return keccak(b"".join(leaves)) if leaves else bytes(32)


def window_tree(
    sample_leaves: Sequence[bytes], setpoint_leaves: Sequence[bytes] = ()
) -> MerkleTree | None:
    """The window's tree: samples in sequence order, then set-points in order of receipt.

    None for a window with neither: an empty tree has no root and is never anchored.
    """
    leaves = [*sample_leaves, *setpoint_leaves]
    return MerkleTree(leaves) if leaves else None


def manifest_window_leaf(manifest: WindowManifest) -> bytes:
    """The kind-3 leaf of a device's signed window root in a concentrator batch."""
    return window_leaf_of(manifest)


def batch_order(manifests: Sequence[WindowManifest]) -> list[int]:
    """Indices of ``manifests`` in batch order (POD code, then window start)."""
    return sorted(
        range(len(manifests)), key=lambda i: (manifests[i].pod, manifests[i].window_start_s)
    )


def batch_tree(manifests: Sequence[WindowManifest]) -> MerkleTree:
    """A concentrator batch's tree over window leaves, ``manifests`` already in batch order."""
    return MerkleTree([manifest_window_leaf(m) for m in manifests])
