"""Shared field types and base classes of the protocol.

Every message is a frozen pydantic model that forbids unknown fields, with units in field
names. A signed message knows its EIP-712 type and how it maps to the typed-data fields; it
travels in a ``Signed`` envelope with its signer and signature.
"""

from __future__ import annotations

import functools
import re
from typing import Annotated, Any, ClassVar, Generic, TypeVar

from eth_utils import is_hex_address, keccak, to_checksum_address
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

__all__ = [
    "I64",
    "U32",
    "U64",
    "Address",
    "Hash32",
    "Message",
    "PodCode",
    "Signature",
    "Signed",
    "SignedMessage",
    "b32",
    "h32",
    "id32",
]

_HASH_RE = re.compile(r"^0x[0-9a-f]{64}$")
_SIG_RE = re.compile(r"^0x[0-9a-f]{130}$")


@functools.lru_cache(maxsize=65_536)
def id32(text: str) -> bytes:
    """The 32-byte on-chain identifier of a POD code, session id or other name: keccak256(utf8)."""
    if not text:
        raise ValueError("an identifier must not be empty")
    return keccak(text.encode("utf-8"))


def _address(value: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a 20-byte hex address")
    return _checksum(value)


@functools.lru_cache(maxsize=65_536)
def _checksum(value: str) -> str:
    # every signed message names its parties: a few thousand distinct addresses, checked and
    # checksummed (a keccak each) a million times a simulated day without this cache
    if not is_hex_address(value):
        raise ValueError(f"{value!r} is not a 20-byte hex address")
    return to_checksum_address(value)


def _hash32(value: str) -> str:
    v = value.lower() if isinstance(value, str) else value
    if not isinstance(v, str) or not _HASH_RE.match(v):
        raise ValueError(f"{value!r} is not a 0x-prefixed 32-byte hex hash")
    return v


def _signature(value: str) -> str:
    v = value.lower() if isinstance(value, str) else value
    if not isinstance(v, str) or not _SIG_RE.match(v):
        raise ValueError("a signature is 0x followed by 65 bytes of hex (r, s, v)")
    return v


Address = Annotated[str, AfterValidator(_address)]
Hash32 = Annotated[str, AfterValidator(_hash32)]
Signature = Annotated[str, AfterValidator(_signature)]
# An Italian POD code (IT + distributor + E + number); other countries' codes fit the pattern too.
PodCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}[0-9A-Z]{4,30}$")]
U64 = Annotated[int, Field(ge=0, le=2**64 - 1)]
U32 = Annotated[int, Field(ge=0, le=2**32 - 1)]
I64 = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]


def b32(hex_hash: str) -> bytes:
    """A ``Hash32`` string as 32 bytes."""
    return bytes.fromhex(hex_hash.removeprefix("0x"))


def h32(raw: bytes) -> str:
    """32 bytes as a ``Hash32`` string."""
    if len(raw) != 32:
        raise ValueError("expected 32 bytes")
    return "0x" + raw.hex()


class Message(BaseModel):
    """A protocol message: immutable, strict about unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: Fields that a signature covering this message does not cover: transport metadata added
    #: after signing (a transaction hash), or annotations derived from covered fields.
    #: Everything else is signed, directly or through a committed root (``commitment``).
    unsigned_fields: ClassVar[frozenset[str]] = frozenset()


class SignedMessage(Message):
    """A message that is signed as EIP-712 typed data (docs/PROTOCOL.md)."""

    eip712_type: ClassVar[str]

    def eip712_message(self) -> dict[str, Any]:
        """The typed-data fields, camelCase, as integers, bytes and addresses."""
        raise NotImplementedError

    def commitment(self) -> tuple[str, list[bytes]] | None:
        """For a message that signs a Merkle root of data it carries: (root, leaves in order).

        The verifier rebuilds the root from the leaves and refuses the message when they differ
        (an empty list has root ``bytes32(0)``).
        """
        return None


M = TypeVar("M", bound=SignedMessage)


class Signed(BaseModel, Generic[M]):
    """A signed message on the wire: the message, who says they signed it, and the signature.

    ``signer`` is a claim; a receiver recovers the address from the signature and rejects the
    envelope when the two differ (``node.signing.verify``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    message: M
    signer: Address
    signature: Signature
