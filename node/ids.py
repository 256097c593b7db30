"""Identifiers on chain: every string identifier becomes ``keccak256(utf8(text))``."""

from __future__ import annotations

from eth_utils import keccak

from flexledger.messages.common import id32

__all__ = ["ZERO32", "id32", "keccak"]

ZERO32 = bytes(32)
