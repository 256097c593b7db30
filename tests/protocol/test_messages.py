"""Every signed message signs and verifies, and fails verification when any field changes."""

from __future__ import annotations

from typing import Any

import pytest
from eth_account.messages import encode_typed_data
from eth_utils import keccak
from pydantic import ValidationError

from flexledger.messages import (
    EIP712_TYPES,
    EXCHANGES,
    SIGNED_TYPES,
    MeasurementBatch,
    Offer,
    Request,
    Sample,
    Signed,
    SignedMessage,
    encode_type,
)
from node.eip712 import Domain, SignatureError, typed_digest
from node.keys import dev_account
from node.signing import LocalSigner, message_hash, verify_envelope
from tests.protocol.examples import DAY, POD, examples

DOMAIN = Domain(chain_id=31337, verifying_contract="0x" + "ab" * 20)
SIGNER = LocalSigner(dev_account("tester"), DOMAIN)
EXAMPLES = examples()


def test_every_signed_type_has_an_example_and_an_i_number() -> None:
    assert {type(m).eip712_type for m in EXAMPLES} == set(SIGNED_TYPES)
    numbered = {cls for classes in EXCHANGES.values() for cls in classes}
    assert len(EXCHANGES) == 18
    for cls in numbered:
        assert cls.__doc__ and (cls.__doc__.split()[0].startswith("I-") or "I-" in cls.__doc__)


@pytest.mark.parametrize("message", EXAMPLES, ids=lambda m: type(m).__name__)
def test_sign_verify_and_json_round_trip(message: SignedMessage) -> None:
    envelope = SIGNER.sign(message)
    assert verify_envelope(envelope, DOMAIN) == SIGNER.address
    wire = envelope.model_dump_json()
    back = Signed[type(message)].model_validate_json(wire)  # type: ignore[misc]
    assert back == envelope
    assert verify_envelope(back, DOMAIN) == SIGNER.address


@pytest.mark.parametrize("message", EXAMPLES, ids=lambda m: type(m).__name__)
def test_digest_matches_eth_account(message: SignedMessage) -> None:
    """Our fast EIP-712 path agrees with eth-account's reference implementation."""
    primary = message.eip712_type
    deps = [t for t in EIP712_TYPES if t in encode_type(primary) and t != primary]
    types: dict[str, Any] = {
        "EIP712Domain": [
            {"name": "name", "type": "string"},
            {"name": "version", "type": "string"},
            {"name": "chainId", "type": "uint256"},
            {"name": "verifyingContract", "type": "address"},
        ]
    }
    for name in [primary, *deps]:
        types[name] = [{"name": f, "type": t} for f, t in EIP712_TYPES[name]]
    signable = encode_typed_data(
        full_message={
            "types": types,
            "primaryType": primary,
            "domain": DOMAIN.as_dict(),
            "message": message.eip712_message(),
        }
    )
    reference = keccak(b"\x19" + signable.version + signable.header + signable.body)
    assert typed_digest(DOMAIN, primary, message.eip712_message()) == reference


def _changed(value: Any) -> Any:
    """A different value of the same shape."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, str):
        if value.startswith("0x") and len(value) == 66:
            return "0x" + ("%064x" % ((int(value, 16) + 1) % 2**256))
        if value.startswith("0x") and len(value) == 42:
            return dev_account("someone-else").address
        if value[-1].isdigit():
            return value[:-1] + str((int(value[-1]) + 1) % 10)
        return value + "x"
    raise TypeError(type(value))


def _mutations(message: SignedMessage) -> list[tuple[str, dict[str, Any]]]:
    """(label, raw dict) for every changeable leaf field of the message."""
    raw = message.model_dump(mode="json")
    out: list[tuple[str, dict[str, Any]]] = []

    def walk(node: Any, path: list[Any]) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, [*path, k])
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, [*path, i])
        elif node is not None and not isinstance(node, float):
            if path[0] in type(message).unsigned_fields:
                return
            nested = type(message).model_fields[path[0]].annotation
            inner = getattr(nested, "__args__", (None,))[0]
            if len(path) >= 3 and path[-1] in getattr(inner, "unsigned_fields", ()):
                return
            copy = message.model_dump(mode="json")
            target = copy
            for p in path[:-1]:
                target = target[p]
            target[path[-1]] = _changed(node)
            out.append((".".join(map(str, path)), copy))

    walk(raw, [])
    return out


@pytest.mark.parametrize("message", EXAMPLES, ids=lambda m: type(m).__name__)
def test_any_changed_field_fails_verification(message: SignedMessage) -> None:
    envelope = SIGNER.sign(message)
    cls = type(message)
    checked = 0
    for label, raw in _mutations(message):
        try:
            changed = cls.model_validate(raw)
        except ValidationError:
            continue  # the model itself refuses the change: also a rejection
        forged = Signed[cls](message=changed, signer=envelope.signer, signature=envelope.signature)  # type: ignore[valid-type]
        with pytest.raises(SignatureError):
            verify_envelope(forged, DOMAIN)
        checked += 1
        assert label
    assert checked >= 3


def test_wrong_signer_claim_and_malleable_signature_rejected() -> None:
    message = EXAMPLES[0]
    envelope = SIGNER.sign(message)
    lie = envelope.model_copy(update={"signer": dev_account("dso").address})
    with pytest.raises(SignatureError, match="not by the claimed"):
        verify_envelope(lie, DOMAIN)
    sig = bytes.fromhex(envelope.signature[2:])
    n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    high_s = (n - int.from_bytes(sig[32:64], "big")).to_bytes(32, "big")
    flipped = sig[:32] + high_s + bytes([55 - sig[64]])  # 27 <-> 28
    malleated = envelope.model_copy(update={"signature": "0x" + flipped.hex()})
    with pytest.raises(SignatureError, match="lower half"):
        verify_envelope(malleated, DOMAIN)
    other_domain = Domain(chain_id=1, verifying_contract=DOMAIN.verifying_contract)
    with pytest.raises(SignatureError):
        verify_envelope(envelope, other_domain)


def test_struct_hash_identifies_offer() -> None:
    offer = next(m for m in EXAMPLES if isinstance(m, Offer))
    assert message_hash(offer) == message_hash(Offer.model_validate(offer.model_dump()))
    assert message_hash(offer) != message_hash(offer.model_copy(update={"nonce": offer.nonce + 1}))


@pytest.mark.parametrize(
    ("cls", "raw", "needle"),
    [
        (Offer, {"min_w": 30_000}, "min_w"),
        (Offer, {"mtu_start_s": DAY + 7}, "aligned"),
        (Offer, {"pod": "not a pod"}, "pod"),
        (Offer, {"aggregator": "0x1234"}, "address"),
        (Offer, {"extra": 1}, "extra"),
        (Request, {"eligible": [], "area": None}, "located"),
    ],
)
def test_malformed_messages_name_the_problem(cls: type, raw: dict[str, Any], needle: str) -> None:
    base = next(m for m in EXAMPLES if isinstance(m, cls)).model_dump()
    base.update(raw)
    with pytest.raises(ValidationError) as info:
        cls.model_validate(base)
    assert needle in str(info.value)


def test_measurement_batch_needs_consecutive_samples() -> None:
    s = [Sample(t_s=DAY + 4 * i, p_w=1, q_var=0, v_mv=230_000, seq=i) for i in range(3)]
    MeasurementBatch(pod=POD, samples=s)
    with pytest.raises(ValidationError, match="breaks the run"):
        MeasurementBatch(pod=POD, samples=[s[0], s[2]])
    with pytest.raises(ValidationError, match="not after"):
        MeasurementBatch(pod=POD, samples=[s[0], s[1].model_copy(update={"t_s": DAY})])
