"""Identifiers on chain: every string identifier becomes ``keccak256(utf8(text))``."""

from __future__ import annotations

from eth_utils import keccak

__all__ = ["ZERO32", "id32", "keccak"]

ZERO32 = bytes(32)


def id32(text: str) -> bytes:
    """The 32-byte on-chain identifier of a POD code, session id, sensor id or other name."""
    if not text:
        raise ValueError("an identifier must not be empty")
    return keccak(text.encode("utf-8"))
