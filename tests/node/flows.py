"""Market steps shared by the market and settlement tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount

from node.eip712 import hash_struct, sign_typed
from node.ids import id32
from node.leaves import award_leaf, offer_leaf, request_leaf
from node.merkle import MerkleTree

from .conftest import Chain

DAY = 1_767_225_600  # 2026-01-01T00:00:00Z
ZERO32 = bytes(32)


@dataclass
class Cleared:
    session: bytes
    book: MerkleTree
    awards: MerkleTree
    award_hashes: list[bytes]
    offer_hashes: list[bytes]
    request_hashes: list[bytes]


def validation(session: bytes, round_: int, awards_root: bytes, rejected: int = 0,
               approved: int = 3, nonce: int = 1) -> dict[str, Any]:
    return {
        "session": session,
        "round": round_,
        "awardsRoot": awards_root,
        "decisionsRoot": b"\xdd" * 32,
        "approvedCount": approved,
        "rejectedCount": rejected,
        "nonce": nonce,
    }


def order(session: bytes, offer_hash: bytes, request_hash: bytes, nonce: int = 1) -> dict[str, Any]:
    return {
        "session": session,
        "offerHash": offer_hash,
        "requestHash": request_hash,
        "mtuStart": DAY + 900 * 40,
        "mtuCount": 4,
        "powerW": 50_000,
        "nonce": nonce,
        "expiry": DAY + 86_400,
    }


def sign(chain: Chain, signer: LocalAccount, type_name: str, message: dict[str, Any]) -> bytes:
    return sign_typed(signer, chain.c.roles.domain(), type_name, message)


def open_session(chain: Chain, name: str = "DA-2026-01-01", kind: int = 0) -> bytes:
    session = id32(name)
    chain.c.market.open_session(
        chain.p.market, session, kind, DAY, 96, id32("brp-baseline"), id32("pay-as-bid")
    )
    return session


def clear(chain: Chain, name: str = "DA-2026-01-01", n_awards: int = 3) -> Cleared:
    """Open, close the gate, validate (one round) and commit an outcome of `n_awards` awards."""
    c, p = chain.c, chain.p
    session = open_session(chain, name)
    offer_hashes = [id32(f"offer-{i}") for i in range(n_awards)]
    request_hashes = [id32("request-0"), id32("request-1")]
    book = MerkleTree([offer_leaf(h) for h in offer_hashes]
                      + [request_leaf(h) for h in request_hashes])
    c.market.close_gate(p.market, session, book.root, len(offer_hashes), len(request_hashes))
    award_hashes = [
        award_leaf(session, offer_hashes[i], request_hashes[i % 2], DAY + 900 * (40 + i),
                   40_000 + i, 25_000)
        for i in range(n_awards)
    ]
    awards = MerkleTree(award_hashes)
    v = validation(session, 1, awards.root, approved=n_awards)
    c.market.record_validation(p.market, v, sign(chain, p.dso, "Validation", v))
    c.market.commit_outcome(p.market, session, awards.root, 123_456, n_awards)
    return Cleared(session, book, awards, award_hashes, offer_hashes, request_hashes)


def order_hash(message: dict[str, Any]) -> bytes:
    return hash_struct("Order", message)
