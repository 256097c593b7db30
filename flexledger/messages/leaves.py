"""The canonical encodings of docs/PROTOCOL.md and their Merkle leaves, one function per kind.

Pure protocol (floor 1): the bytes every party must agree on. The trees are ``node.merkle``.

``*_data`` returns the canonical bytes (``abi.encode(kind, ...)``), ``*_leaf`` their leaf hash.
The contracts compute the same bytes; ``tests/node`` checks that they agree.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from eth_abi import encode
from eth_utils import keccak as _eth_keccak

from flexledger.messages.common import b32, id32


def _choose_keccak() -> Callable[[bytes], bytes]:
    try:  # safe-pysha3: a C keccak, about 4x faster than eth-hash's pycryptodome backend
        from sha3 import keccak_256
    except ImportError:  # pragma: no cover - depends on the install
        return _eth_keccak

    def keccak(data: bytes) -> bytes:
        return bytes(keccak_256(data).digest())

    return keccak


#: keccak256 of bytes; the fastest binding installed (every leaf and tree node goes through it:
#: a million samples a simulated day at the Light Nodes and again at the SCD).
keccak256: Callable[[bytes], bytes] = _choose_keccak()

__all__ = [
    "KIND_AWARD",
    "KIND_BASELINE",
    "KIND_DECISION",
    "KIND_OFFER",
    "KIND_REQUEST",
    "KIND_SAMPLE",
    "KIND_SETPOINT",
    "KIND_WINDOW",
    "award_data",
    "award_leaf",
    "baseline_leaf",
    "decision_leaf",
    "keccak256",
    "leaf_hash",
    "offer_leaf",
    "request_leaf",
    "sample_data",
    "sample_leaf",
    "setpoint_leaf",
    "window_leaf",
]

KIND_SAMPLE = 1
KIND_SETPOINT = 2
KIND_WINDOW = 3
KIND_OFFER = 4
KIND_REQUEST = 5
KIND_AWARD = 6
KIND_BASELINE = 7
KIND_DECISION = 8

_SAMPLE_TYPES = ["uint8", "bytes32", "uint64", "int64", "int64", "uint64", "uint64"]
_INT64 = (-(2**63), 2**63 - 1)
_UINT64 = (0, 2**64 - 1)


def leaf_hash(data: bytes) -> bytes:
    """The leaf of ``data``: ``keccak256(bytes.concat(keccak256(data)))`` (OpenZeppelin style)."""
    return keccak256(keccak256(data))


def _check(name: str, value: int, bounds: tuple[int, int]) -> None:
    if not bounds[0] <= value <= bounds[1]:
        raise ValueError(f"{name}={value} is outside {bounds[0]}..{bounds[1]}")


_KIND_SAMPLE_WORD = KIND_SAMPLE.to_bytes(32, "big")
_KIND_WINDOW_WORD = KIND_WINDOW.to_bytes(32, "big")
_WORD = 1 << 256


def sample_data(pod: bytes, t: int, p_w: int, q_var: int, v_mv: int, seq: int) -> bytes:
    """The canonical encoding of a 4 s sample (kind 1); the same bytes are its leaf preimage.

    ``abi.encode`` of static types is one 32-byte big-endian word per value (two's complement
    for the signed ones), so it is packed here directly: this is the hot path of every Light
    Node and of the SCD (a million samples a simulated day), and eth_abi's generic encoder costs
    about three times as much. ``tests/protocol`` checks the bytes against eth_abi.
    """
    _check("t", t, _UINT64)
    _check("p_w", p_w, _INT64)
    _check("q_var", q_var, _INT64)
    _check("v_mv", v_mv, _UINT64)
    _check("seq", seq, _UINT64)
    if len(pod) != 32:
        raise ValueError("pod must be 32 bytes")
    return b"".join(
        (
            _KIND_SAMPLE_WORD,
            bytes(pod),
            t.to_bytes(32, "big"),
            (p_w % _WORD).to_bytes(32, "big"),
            (q_var % _WORD).to_bytes(32, "big"),
            v_mv.to_bytes(32, "big"),
            seq.to_bytes(32, "big"),
        )
    )


def sample_leaf(pod: bytes, t: int, p_w: int, q_var: int, v_mv: int, seq: int) -> bytes:
    return leaf_hash(sample_data(pod, t, p_w, q_var, v_mv, seq))


def setpoint_leaf(pod: bytes, setpoint_hash: bytes, received_at: int) -> bytes:
    """A set-point a Light Node received, in its window's tree (kind 2)."""
    return leaf_hash(
        encode(
            ["uint8", "bytes32", "bytes32", "uint64"],
            [KIND_SETPOINT, pod, setpoint_hash, received_at],
        )
    )


def window_leaf(
    pod: bytes, window_start: int, root: bytes, sample_count: int, setpoints_hash: bytes
) -> bytes:
    """A device's window root inside a concentrator batch (kind 3).

    Packed word by word like :func:`sample_data` (every Light Node rebuilds each batch tree
    it hears of); ``tests/protocol`` checks the bytes against eth_abi."""
    _check("window_start", window_start, _UINT64)
    _check("sample_count", sample_count, (0, 2**32 - 1))
    for name, word in (("pod", pod), ("root", root), ("setpoints_hash", setpoints_hash)):
        if len(word) != 32:
            raise ValueError(f"{name} must be 32 bytes")
    return leaf_hash(
        b"".join(
            (
                _KIND_WINDOW_WORD,
                bytes(pod),
                window_start.to_bytes(32, "big"),
                bytes(root),
                sample_count.to_bytes(32, "big"),
                bytes(setpoints_hash),
            )
        )
    )


def window_leaf_of(m: Any) -> bytes:
    """The kind-3 leaf of a device-signed window root, from its manifest: a ``WindowManifest``
    or its plain JSON (``pod``, ``window_start_s``, ``root``, ``sample_count``,
    ``setpoints_hash``), as a concentrator's batch carries it."""
    fields = ("pod", "window_start_s", "root", "sample_count", "setpoints_hash")
    pod, start, root, count, sph = (
        [m[f] for f in fields] if isinstance(m, dict) else [getattr(m, f) for f in fields]
    )
    return window_leaf(id32(pod), int(start), b32(root), int(count), b32(sph))


def offer_leaf(offer_hash: bytes) -> bytes:
    """An offer in a committed order book (kind 4)."""
    return leaf_hash(encode(["uint8", "bytes32"], [KIND_OFFER, offer_hash]))


def request_leaf(request_hash: bytes) -> bytes:
    """A request in a committed order book (kind 5)."""
    return leaf_hash(encode(["uint8", "bytes32"], [KIND_REQUEST, request_hash]))


def award_data(
    session: bytes,
    offer_hash: bytes,
    request_hash: bytes,
    mtu_start: int,
    power_w: int,
    price_cents_per_mwh: int,
) -> bytes:
    return encode(
        ["uint8", "bytes32", "bytes32", "bytes32", "uint64", "uint64", "uint64"],
        [KIND_AWARD, session, offer_hash, request_hash, mtu_start, power_w, price_cents_per_mwh],
    )


def award_leaf(
    session: bytes,
    offer_hash: bytes,
    request_hash: bytes,
    mtu_start: int,
    power_w: int,
    price_cents_per_mwh: int,
) -> bytes:
    """One offer serving one request in one MTU (kind 6); an award's hash is this leaf."""
    return leaf_hash(
        award_data(session, offer_hash, request_hash, mtu_start, power_w, price_cents_per_mwh)
    )


def baseline_leaf(pod: bytes, mtu_start: int, e_wh: int) -> bytes:
    """A BRP baseline value for one POD and MTU, in integer Wh (kind 7)."""
    _check("e_wh", e_wh, _INT64)
    return leaf_hash(
        encode(["uint8", "bytes32", "uint64", "int64"], [KIND_BASELINE, pod, mtu_start, e_wh])
    )


def decision_leaf(award: bytes, approved: bool, reason: bytes) -> bytes:
    """One decision of a DSO validation round (kind 8); ``reason`` is zero when approved."""
    return leaf_hash(
        encode(["uint8", "bytes32", "bool", "bytes32"], [KIND_DECISION, award, approved, reason])
    )
