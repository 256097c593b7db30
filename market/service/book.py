"""The committed order book: its leaves in root order, its root, and inclusion proofs.

Leaf order (docs/PROTOCOL.md): offers (kind 4) sorted by offer hash, then requests (kind 5)
sorted by request hash; an empty book has root ``bytes32(0)``. The order is canonical so that an
auditor rebuilds the root from the list of hashes alone, whatever order the API lists them in.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from flexledger.messages import b32, h32
from flexledger.messages.leaves import offer_leaf, request_leaf
from node.merkle import MerkleTree

__all__ = ["BookEntry", "book_entries", "proof_of", "root_of"]


@dataclass(frozen=True)
class BookEntry:
    kind: Literal["offer", "request"]
    hash: str
    leaf: str


def book_entries(offer_hashes: Iterable[str], request_hashes: Iterable[str]) -> list[BookEntry]:
    """The book's leaves in root order."""
    out = [BookEntry("offer", h, h32(offer_leaf(b32(h)))) for h in sorted(set(offer_hashes))]
    out += [BookEntry("request", h, h32(request_leaf(b32(h)))) for h in sorted(set(request_hashes))]
    return out


def root_of(leaves: Sequence[str]) -> str:
    """Merkle root of ``leaves`` (hex), ``0x00…`` for none."""
    if not leaves:
        return h32(bytes(32))
    return h32(MerkleTree([b32(x) for x in leaves]).root)


def proof_of(leaves: Sequence[str], index: int) -> list[str]:
    return [h32(p) for p in MerkleTree([b32(x) for x in leaves]).proof(index)]
