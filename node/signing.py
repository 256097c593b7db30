"""Sign and verify protocol messages (``flexledger.messages``) in the flexledger domain."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from eth_account.signers.local import LocalAccount

from flexledger.messages.common import Signed, SignedMessage
from node.eip712 import Domain, SignatureError, hash_struct, recover_typed, sign_typed
from node.merkle import MerkleTree

__all__ = [
    "LocalSigner",
    "SignatureError",
    "commitment_root",
    "message_hash",
    "sign_message",
    "verify_envelope",
]

M = TypeVar("M", bound=SignedMessage)


def message_hash(message: SignedMessage) -> bytes:
    """The struct hash that identifies a message (an offer's, request's or order's id)."""
    return hash_struct(message.eip712_type, message.eip712_message())


class LocalSigner:
    """A key held in this process, signing in one domain (a ``flexledger.protocols.Signer``)."""

    def __init__(self, account: LocalAccount, domain: Domain) -> None:
        self._account = account
        self.domain = domain

    @property
    def address(self) -> str:
        return str(self._account.address)

    @property
    def account(self) -> LocalAccount:
        return self._account

    def sign_typed(self, primary_type: str, message: Mapping[str, Any]) -> bytes:
        return sign_typed(self._account, self.domain, primary_type, message)

    def sign(self, message: M) -> Signed[M]:
        return sign_message(self, message)


def sign_message(signer: Any, message: M) -> Signed[M]:
    """Wrap ``message`` in a ``Signed`` envelope signed by ``signer`` (a ``Signer``)."""
    signature = signer.sign_typed(message.eip712_type, message.eip712_message())
    return Signed[type(message)](  # type: ignore[misc,operator]
        message=message, signer=signer.address, signature="0x" + signature.hex()
    )


def commitment_root(leaves: list[bytes]) -> bytes:
    """The Merkle root a message commits to; ``bytes32(0)`` for no leaves."""
    return MerkleTree(leaves).root if leaves else bytes(32)


def verify_envelope(envelope: Signed[Any], domain: Domain) -> str:
    """The address that signed the envelope's message.

    Raises ``SignatureError`` when the signature is malformed, is not the claimed signer's, or
    the data the message carries does not hash to the root it signs.
    """
    message: SignedMessage = envelope.message
    committed = message.commitment()
    if committed is not None:
        root, leaves = committed
        if commitment_root(leaves).hex() != root.removeprefix("0x"):
            raise SignatureError(
                f"{message.eip712_type}: the data it carries does not hash to its signed root"
            )
    signature = bytes.fromhex(envelope.signature.removeprefix("0x"))
    try:
        recovered = recover_typed(domain, message.eip712_type, message.eip712_message(), signature)
    except ValueError as exc:
        raise SignatureError(f"{message.eip712_type}: {exc}") from exc
    if recovered != envelope.signer:
        raise SignatureError(
            f"{message.eip712_type}: signed by {recovered}, not by the claimed {envelope.signer}"
        )
    return recovered
