"""Merkle trees that build exactly what OpenZeppelin's ``MerkleProof`` verifies.

Leaves are double-hashed (``keccak256(keccak256(data))``) so that a leaf can never be mistaken
for an inner node; parents hash their children as a sorted pair, so a proof needs no left/right
flags. Leaves keep the order they are given in (samples by sequence number); on a level with an
odd count the last node moves up unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

from flexledger.messages.leaves import keccak256 as keccak
from flexledger.messages.leaves import leaf_hash

__all__ = ["MerkleTree", "hash_pair", "leaf_hash", "process_proof", "verify_proof"]


def hash_pair(a: bytes, b: bytes) -> bytes:
    """OpenZeppelin's commutative keccak256 of two nodes."""
    return keccak(a + b) if a <= b else keccak(b + a)


def process_proof(leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The root that ``proof`` leads to from ``leaf``."""
    node = leaf
    for sibling in proof:
        node = hash_pair(node, sibling)
    return node


def verify_proof(root: bytes, leaf: bytes, proof: Sequence[bytes]) -> bool:
    """True when ``proof`` proves ``leaf`` against ``root`` (as ``MerkleProof.verify``)."""
    return process_proof(leaf, proof) == root


class MerkleTree:
    """A tree over 32-byte leaf hashes, in the order given.

    ``root`` is the single leaf for a one-leaf tree; an empty tree has no root and is refused,
    because an empty window is never anchored.
    """

    def __init__(self, leaves: Sequence[bytes]) -> None:
        if not leaves:
            raise ValueError("a Merkle tree needs at least one leaf")
        for leaf in leaves:
            if len(leaf) != 32:
                raise ValueError("a Merkle leaf is a 32-byte hash")
        levels: list[list[bytes]] = [list(leaves)]
        while len(levels[-1]) > 1:
            below = levels[-1]
            above = [hash_pair(below[i], below[i + 1]) for i in range(0, len(below) - 1, 2)]
            if len(below) % 2:
                above.append(below[-1])
            levels.append(above)
        self._levels = levels

    @property
    def root(self) -> bytes:
        return self._levels[-1][0]

    @property
    def leaves(self) -> list[bytes]:
        return list(self._levels[0])

    def __len__(self) -> int:
        return len(self._levels[0])

    def proof(self, index: int) -> list[bytes]:
        """Sibling hashes from leaf ``index`` up to the root."""
        if not 0 <= index < len(self._levels[0]):
            raise IndexError(f"leaf index {index} outside 0..{len(self._levels[0]) - 1}")
        proof: list[bytes] = []
        for level in self._levels[:-1]:
            sibling = index ^ 1
            if sibling < len(level):
                proof.append(level[sibling])
            index //= 2
        return proof
