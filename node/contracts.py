"""One thin typed client per flexledger contract.

A client holds the contract's address and a `Web3`. Its methods take and return plain typed
values (bytes, ints, checksum address strings, the dataclasses below); a transaction is signed
locally with the `LocalAccount` given to the method and returns its receipt once mined. A
Solidity custom error becomes the Python exception of the same name from `node.contract_errors`
(base class `ContractError`), for calls and for transactions alike:

    try:
        anchor.anchor(device, pod, window_start, root, 225)
    except MeasurementAnchorWindowTaken as exc:
        log.info("already anchored: %s", exc.kwargs)

Signed structs (Validation, Order, SettlementRecord) are passed as their EIP-712 message
dicts, camelCase as in docs/PROTOCOL.md — what `SignedMessage.eip712_message()` returns and what
`node.eip712.hash_struct` hashes.
"""

from __future__ import annotations

import json
import logging
import time
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from functools import cache
from importlib import resources
from typing import Any, ClassVar

from eth_abi import decode as abi_decode
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractLogicError
from web3.types import BlockIdentifier, TxReceipt

from flexledger.messages.eip712 import EIP712_TYPES
from node.addressbook import AddressBook
from node.contract_errors import (
    ERRORS_BY_SELECTOR,
    ContractError,
    UnknownContractError,
)
from node.eip712 import Domain

__all__ = [
    "ROLE_NAMES",
    "ZERO32",
    "BaselineCommitment",
    "BaselineRegistryClient",
    "ContractClient",
    "ContractError",
    "FlexContracts",
    "FlexMarketClient",
    "FlexRolesClient",
    "MeasurementAnchorClient",
    "Sample",
    "Session",
    "SessionKind",
    "SessionState",
    "SettlementClient",
    "SettlementInfo",
    "SettlementTokenClient",
    "TransactionReverted",
    "ValidationRecord",
    "Window",
    "decode_revert",
    "load_artifact",
    "role_id",
    "send_transaction",
]

log = logging.getLogger(__name__)

ZERO32 = bytes(32)
ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
ROLE_NAMES = (
    "MARKET_OPERATOR_ROLE",
    "DSO_ROLE",
    "TSO_ROLE",
    "AGGREGATOR_ROLE",
    "BRP_ROLE",
    "FIELD_SENSOR_ROLE",
    "CONCENTRATOR_ROLE",
    "FR_OWNER_ROLE",
)
DEFAULT_ADMIN_ROLE = ZERO32


def role_id(role: str | bytes) -> bytes:
    """The on-chain id of a role: `"DSO"`, `"DSO_ROLE"` or the 32 bytes themselves.

    `"DEFAULT_ADMIN_ROLE"` / `"ADMIN"` is the zero id of OpenZeppelin's AccessControl.
    """
    if isinstance(role, bytes):
        if len(role) != 32:
            raise ValueError("a role id is 32 bytes")
        return role
    name = role.upper()
    if name in ("ADMIN", "DEFAULT_ADMIN", "DEFAULT_ADMIN_ROLE"):
        return DEFAULT_ADMIN_ROLE
    if not name.endswith("_ROLE"):
        name += "_ROLE"
    if name not in ROLE_NAMES:
        raise ValueError(f"unknown role {role!r}; one of {', '.join(ROLE_NAMES)}")
    return keccak(text=name)


@cache
def load_artifact(name: str) -> dict[str, Any]:
    """The committed compile output of a contract (`node/artifacts/<name>.json`)."""
    text = resources.files("node").joinpath("artifacts", f"{name}.json").read_text("utf-8")
    artifact: dict[str, Any] = json.loads(text)
    return artifact


# --------------------------------------------------------------------------- errors


class TransactionReverted(UnknownContractError):
    """A mined transaction reverted and replaying it gave no known custom error."""


def _as_bytes(data: Any) -> bytes | None:
    if data is None:
        return None
    if isinstance(data, bytes | bytearray):
        return bytes(data)
    if isinstance(data, str):
        text = data[2:] if data.startswith("0x") else data
        try:
            return bytes.fromhex(text)
        except ValueError:
            return None
    if isinstance(data, Mapping):  # some nodes nest it: {"data": "0x…"}
        return _as_bytes(data.get("data"))
    return None


def decode_revert(data: Any, message: str = "") -> ContractError:
    """The Python exception for a revert's data (selector and ABI-encoded arguments)."""
    raw = _as_bytes(data) or b""
    cls = ERRORS_BY_SELECTOR.get(raw[:4])
    if cls is None:
        return UnknownContractError(message or "reverted", raw.hex(), data=raw)
    values = abi_decode(list(cls.types), raw[4:]) if cls.types else ()
    return cls(*(_plain(v) for v in values), data=raw)


def _plain(value: Any) -> Any:
    if isinstance(value, str) and value.startswith("0x") and len(value) == 42:
        return to_checksum_address(value)
    return value


def _translate(exc: ContractLogicError) -> ContractError:
    return decode_revert(exc.data, str(exc))


# --------------------------------------------------------------------------- transactions


@dataclass
class _ChainCache:
    chain_id: int
    fees: dict[str, int]
    fees_at: float


_CACHE: weakref.WeakKeyDictionary[Web3, _ChainCache] = weakref.WeakKeyDictionary()
_FEES_TTL_S = 2.0


def _chain(w3: Web3) -> _ChainCache:
    """Chain id and fees per Web3, the fees refreshed every few seconds (fewer round trips)."""
    cached = _CACHE.get(w3)
    now = time.monotonic()
    if cached is None:
        cached = _CACHE[w3] = _ChainCache(w3.eth.chain_id, {}, 0.0)
    if now - cached.fees_at > _FEES_TTL_S:
        block = w3.eth.get_block("latest")
        base = int(block.get("baseFeePerGas", 0) or 0)
        try:
            tip = int(w3.eth.max_priority_fee)
        except Exception:  # an endpoint without eth_maxPriorityFeePerGas
            tip = 10**9
        cached.fees = {"maxFeePerGas": 2 * base + tip, "maxPriorityFeePerGas": tip}
        cached.fees_at = now
    return cached


def send_transaction(
    w3: Web3,
    account: LocalAccount,
    to: str | None,
    data: bytes,
    *,
    gas: int | None = None,
    value: int = 0,
    timeout: float = 120.0,
) -> TxReceipt:
    """Sign locally, send, wait for the receipt; a revert raises its `ContractError`.

    Without `gas` the transaction is simulated first (eth_estimateGas), which raises a revert
    before anything is sent. With a fixed `gas` it is sent as is; if it reverts when mined it is
    replayed with eth_call to find its error.
    """
    tx: dict[str, Any] = {
        "from": account.address,
        "data": data,
        "value": value,
        "chainId": _chain(w3).chain_id,
    }
    if to is not None:
        tx["to"] = to_checksum_address(to)
    if gas is None:
        try:
            estimate = w3.eth.estimate_gas(tx)  # type: ignore[arg-type]
        except ContractLogicError as exc:
            raise _translate(exc) from None
        gas = int(estimate * 1.2) + 10_000
    tx["gas"] = gas
    tx["nonce"] = w3.eth.get_transaction_count(account.address, "pending")
    tx.update(_chain(w3).fees)
    signed = account.sign_transaction(tx)
    tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=timeout, poll_latency=0.005)
    if receipt["status"] != 1:
        raise _replay_revert(w3, tx, receipt)
    return receipt


def _replay_revert(w3: Web3, tx: dict[str, Any], receipt: TxReceipt) -> ContractError:
    call = {k: tx[k] for k in ("from", "to", "data", "value", "gas") if k in tx}
    try:
        w3.eth.call(call, receipt["blockNumber"] - 1)  # type: ignore[arg-type]
    except ContractLogicError as exc:
        return _translate(exc)
    except Exception as exc:  # out of gas and the like
        return TransactionReverted(f"{receipt['transactionHash'].hex()}: {exc}")
    return TransactionReverted(f"{receipt['transactionHash'].hex()} reverted (gas {tx['gas']})")


# --------------------------------------------------------------------------- base client


def _struct(type_name: str, message: Mapping[str, Any]) -> tuple[Any, ...]:
    """A camelCase EIP-712 message as the ABI tuple of its Solidity struct (field order)."""
    fields = EIP712_TYPES[type_name]
    missing = [f for f, _ in fields if f not in message]
    if missing:
        raise ValueError(f"{type_name} message lacks {missing}")
    return tuple(_arg(message[f]) for f, _ in fields)


def _arg(value: Any) -> Any:
    if isinstance(value, str) and value.startswith("0x") and len(value) == 42:
        return to_checksum_address(value)
    return value


def _address_or_none(value: str) -> str | None:
    return None if int(value, 16) == 0 else to_checksum_address(value)


def _bytes_or_none(value: bytes) -> bytes | None:
    return None if value == ZERO32 else bytes(value)


class ContractClient:
    """Base of the typed clients: address, Web3, calls and transactions with error mapping."""

    artifact_name: ClassVar[str]

    def __init__(self, w3: Web3, address: str) -> None:
        self.w3 = w3
        self.address = to_checksum_address(address)
        self.contract: Contract = w3.eth.contract(
            address=self.address, abi=load_artifact(self.artifact_name)["abi"]
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.address})"

    def _call(self, fn: str, *args: Any, block: BlockIdentifier = "latest") -> Any:
        try:
            return self.contract.functions[fn](*args).call(block_identifier=block)
        except ContractLogicError as exc:
            raise _translate(exc) from None

    def _transact(
        self, account: LocalAccount, fn: str, *args: Any, gas: int | None = None
    ) -> TxReceipt:
        data = bytes.fromhex(self.contract.encode_abi(fn, args=list(args))[2:])
        return send_transaction(self.w3, account, self.address, data, gas=gas)

    def calldata(self, fn: str, *args: Any) -> bytes:
        """The ABI-encoded call of `fn` (for batching or inspection)."""
        return bytes.fromhex(self.contract.encode_abi(fn, args=list(args))[2:])

    def has_code(self) -> bool:
        return len(self.w3.eth.get_code(self.address)) > 0


# --------------------------------------------------------------------------- FlexRoles


class FlexRolesClient(ContractClient):
    """Roles of every party, and the EIP-712 domain of every signed message."""

    artifact_name = "FlexRoles"

    def domain(self) -> Domain:
        """The flexledger EIP-712 domain on this chain (verifyingContract = FlexRoles).

        Read once per client: a chain's id does not change, and verifiers ask for the domain
        per message."""
        cached: Domain | None = getattr(self, "_domain", None)
        if cached is None:
            cached = Domain(chain_id=self.w3.eth.chain_id, verifying_contract=self.address)
            self._domain = cached
        return cached

    def has_role(self, role: str | bytes, account: str) -> bool:
        return bool(self._call("hasRole", role_id(role), to_checksum_address(account)))

    def is_admin(self, account: str) -> bool:
        return bool(self._call("isAdmin", to_checksum_address(account)))

    def grant_role(
        self, admin: LocalAccount, role: str | bytes, account: str, *, gas: int | None = None
    ) -> TxReceipt:
        return self._transact(
            admin, "grantRole", role_id(role), to_checksum_address(account), gas=gas
        )

    def revoke_role(
        self, admin: LocalAccount, role: str | bytes, account: str, *, gas: int | None = None
    ) -> TxReceipt:
        return self._transact(
            admin, "revokeRole", role_id(role), to_checksum_address(account), gas=gas
        )

    def grant_fr_owner(
        self, aggregator: LocalAccount, owner: str, *, gas: int | None = None
    ) -> TxReceipt:
        return self._transact(aggregator, "grantFrOwner", to_checksum_address(owner), gas=gas)

    def revoke_fr_owner(
        self, aggregator: LocalAccount, owner: str, *, gas: int | None = None
    ) -> TxReceipt:
        return self._transact(aggregator, "revokeFrOwner", to_checksum_address(owner), gas=gas)

    def aggregator_of(self, owner: str) -> str | None:
        return _address_or_none(self._call("aggregatorOf", to_checksum_address(owner)))

    def register_sensor(
        self, admin: LocalAccount, sensor_id: bytes, sensor: str, *, gas: int | None = None
    ) -> TxReceipt:
        return self._transact(
            admin, "registerSensor", sensor_id, to_checksum_address(sensor), gas=gas
        )

    def revoke_sensor(
        self, admin: LocalAccount, sensor_id: bytes, *, gas: int | None = None
    ) -> TxReceipt:
        return self._transact(admin, "revokeSensor", sensor_id, gas=gas)

    def sensor_of(self, sensor_id: bytes) -> str | None:
        return _address_or_none(self._call("sensorOf", sensor_id))

    def sensor_id_of(self, sensor: str) -> bytes | None:
        return _bytes_or_none(self._call("sensorIdOf", to_checksum_address(sensor)))

    def recover_signer(self, struct_hash: bytes, signature: bytes) -> str | None:
        """The signer of a flexledger EIP-712 message as the contracts see it (None if bad)."""
        return _address_or_none(self._call("recoverSigner", struct_hash, signature))

    def hash_typed_data(self, struct_hash: bytes) -> bytes:
        return bytes(self._call("hashTypedData", struct_hash))

    def domain_separator(self) -> bytes:
        return bytes(self._call("domainSeparator"))


# --------------------------------------------------------------------------- MeasurementAnchor


@dataclass(frozen=True)
class Sample:
    """One 4 s sample as the contract sees it (leaf kind 1)."""

    pod: bytes
    t: int
    p_w: int
    q_var: int
    v_mv: int
    seq: int

    def as_tuple(self) -> tuple[bytes, int, int, int, int, int]:
        return (self.pod, self.t, self.p_w, self.q_var, self.v_mv, self.seq)


@dataclass(frozen=True)
class Window:
    """A device's window as a leaf of a concentrator batch (leaf kind 3)."""

    pod: bytes
    window_start: int
    root: bytes
    sample_count: int
    setpoints_hash: bytes = ZERO32

    def as_tuple(self) -> tuple[bytes, int, bytes, int, bytes]:
        return (self.pod, self.window_start, self.root, self.sample_count, self.setpoints_hash)


class MeasurementAnchorClient(ContractClient):
    """Light Node devices bound to PODs, window and batch anchors, and their proofs."""

    artifact_name = "MeasurementAnchor"
    #: Fixed gas that covers any `anchor` (about 51k used) and `anchorBatch` (about 53k): the
    #: default for both, which skips eth_estimateGas (the slowest round trip, halving a Light
    #: Node's transaction rate). A revert is still raised as its custom error, found by replaying
    #: the mined transaction; pass `gas=None` to simulate before sending instead.
    ANCHOR_GAS = 80_000
    BATCH_GAS = 100_000

    def register_device(
        self, admin: LocalAccount, pod: bytes, device: str, *, gas: int | None = None
    ) -> TxReceipt:
        """Bind (or rotate) the Light Node key of a POD; admin of FlexRoles only."""
        return self._transact(admin, "registerDevice", pod, to_checksum_address(device), gas=gas)

    def revoke_device(
        self, admin: LocalAccount, pod: bytes, *, gas: int | None = None
    ) -> TxReceipt:
        return self._transact(admin, "revokeDevice", pod, gas=gas)

    def device_of(self, pod: bytes) -> str | None:
        return _address_or_none(self._call("deviceOf", pod))

    def pod_of(self, device: str) -> bytes | None:
        return _bytes_or_none(self._call("podOf", to_checksum_address(device)))

    def anchor(
        self,
        device: LocalAccount,
        pod: bytes,
        window_start: int,
        root: bytes,
        sample_count: int,
        setpoints_hash: bytes = ZERO32,
        *,
        gas: int | None = ANCHOR_GAS,
    ) -> TxReceipt:
        """Anchor one window's root from the POD's device key."""
        return self._transact(
            device, "anchor", pod, window_start, root, sample_count, setpoints_hash, gas=gas
        )

    def anchor_batch(
        self,
        concentrator: LocalAccount,
        batch_id: int,
        root: bytes,
        window_count: int,
        sample_count: int,
        *,
        gas: int | None = BATCH_GAS,
    ) -> TxReceipt:
        """Anchor one root over many devices' window leaves, as a concentrator."""
        return self._transact(
            concentrator, "anchorBatch", batch_id, root, window_count, sample_count, gas=gas
        )

    def window_root(self, pod: bytes, window_start: int) -> bytes | None:
        return _bytes_or_none(self._call("windowRoot", pod, window_start))

    def batch_root(self, concentrator: str, batch_id: int) -> bytes | None:
        return _bytes_or_none(
            self._call("batchRoot", to_checksum_address(concentrator), batch_id)
        )

    def window_seconds(self) -> int:
        return int(self._call("windowSeconds"))

    def verify(
        self, pod: bytes, window_start: int, leaf: bytes, proof: Sequence[bytes]
    ) -> bool:
        return bool(self._call("verify", pod, window_start, leaf, list(proof)))

    def verify_sample(self, sample: Sample, proof: Sequence[bytes]) -> bool:
        return bool(self._call("verifySample", sample.as_tuple(), list(proof)))

    def verify_batched(
        self,
        concentrator: str,
        batch_id: int,
        window: Window,
        window_proof: Sequence[bytes],
        leaf: bytes,
        proof: Sequence[bytes],
    ) -> bool:
        return bool(
            self._call(
                "verifyBatched",
                to_checksum_address(concentrator),
                batch_id,
                window.as_tuple(),
                list(window_proof),
                leaf,
                list(proof),
            )
        )

    def sample_leaf(self, sample: Sample) -> bytes:
        return bytes(self._call("sampleLeaf", sample.as_tuple()))

    def setpoint_leaf(self, pod: bytes, setpoint_hash: bytes, received_at: int) -> bytes:
        return bytes(self._call("setpointLeaf", pod, setpoint_hash, received_at))

    def window_leaf(self, window: Window) -> bytes:
        return bytes(self._call("windowLeaf", window.as_tuple()))


# --------------------------------------------------------------------------- BaselineRegistry


@dataclass(frozen=True)
class BaselineCommitment:
    root: bytes
    pod_count: int
    committed_block: int


class BaselineRegistryClient(ContractClient):
    """BRP baseline roots, one per BRP and delivery day, committed once."""

    artifact_name = "BaselineRegistry"

    def commit_baseline(
        self, brp: LocalAccount, day: int, root: bytes, pod_count: int, *, gas: int | None = None
    ) -> TxReceipt:
        """Commit the root of the BRP's baseline for `day` (UTC midnight, epoch seconds)."""
        return self._transact(brp, "commitBaseline", day, root, pod_count, gas=gas)

    def baseline_of(self, brp: str, day: int) -> BaselineCommitment | None:
        root, pod_count, block = self._call("baselineOf", to_checksum_address(brp), day)
        if bytes(root) == ZERO32:
            return None
        return BaselineCommitment(bytes(root), int(pod_count), int(block))

    def verify_baseline(
        self, brp: str, day: int, leaf: bytes, proof: Sequence[bytes]
    ) -> bool:
        return bool(
            self._call("verifyBaseline", to_checksum_address(brp), day, leaf, list(proof))
        )

    def baseline_leaf(self, pod: bytes, mtu_start: int, e_wh: int) -> bytes:
        return bytes(self._call("baselineLeaf", pod, mtu_start, e_wh))


# --------------------------------------------------------------------------- FlexMarket


class SessionState(IntEnum):
    NONE = 0
    OPEN = 1
    GATE_CLOSED = 2
    OUTCOME_COMMITTED = 3
    SETTLED = 4


class SessionKind(IntEnum):
    DAY_AHEAD = 0
    REAL_TIME = 1


@dataclass(frozen=True)
class Session:
    session: bytes
    kind: SessionKind
    state: SessionState
    delivery_start: int
    mtu_count: int
    validation_rounds: int
    award_count: int
    gate_closed_block: int
    total_cost_cents: int
    offer_count: int
    request_count: int
    baseline_method: bytes
    pricing_rule: bytes
    order_book_root: bytes
    awards_root: bytes


@dataclass(frozen=True)
class ValidationRecord:
    validation_hash: bytes
    awards_root: bytes
    decisions_root: bytes
    dso: str
    approved_count: int
    rejected_count: int


class FlexMarketClient(ContractClient):
    """Sessions, order-book and awards roots, DSO validations and activation orders."""

    artifact_name = "FlexMarket"

    def open_session(
        self,
        operator: LocalAccount,
        session: bytes,
        kind: int,
        delivery_start: int,
        mtu_count: int,
        baseline_method: bytes,
        pricing_rule: bytes,
        *,
        gas: int | None = None,
    ) -> TxReceipt:
        return self._transact(
            operator,
            "openSession",
            session,
            int(kind),
            delivery_start,
            mtu_count,
            baseline_method,
            pricing_rule,
            gas=gas,
        )

    def close_gate(
        self,
        operator: LocalAccount,
        session: bytes,
        order_book_root: bytes,
        offer_count: int,
        request_count: int,
        *,
        gas: int | None = None,
    ) -> TxReceipt:
        return self._transact(
            operator, "closeGate", session, order_book_root, offer_count, request_count, gas=gas
        )

    def record_validation(
        self,
        operator: LocalAccount,
        validation: Mapping[str, Any],
        dso_signature: bytes,
        *,
        gas: int | None = None,
    ) -> TxReceipt:
        """Record a DSO-signed Validation (its EIP-712 message dict) as the next round."""
        return self._transact(
            operator,
            "recordValidation",
            _struct("Validation", validation),
            dso_signature,
            gas=gas,
        )

    def commit_outcome(
        self,
        operator: LocalAccount,
        session: bytes,
        awards_root: bytes,
        total_cost_cents: int,
        award_count: int,
        *,
        gas: int | None = None,
    ) -> TxReceipt:
        return self._transact(
            operator,
            "commitOutcome",
            session,
            awards_root,
            total_cost_cents,
            award_count,
            gas=gas,
        )

    def record_order(
        self,
        operator: LocalAccount,
        order: Mapping[str, Any],
        issuer_signature: bytes,
        *,
        gas: int | None = None,
    ) -> TxReceipt:
        """Record a DSO- or TSO-signed Order (its EIP-712 message dict)."""
        return self._transact(
            operator, "recordOrder", _struct("Order", order), issuer_signature, gas=gas
        )

    def mark_settled(
        self, operator: LocalAccount, session: bytes, *, gas: int | None = None
    ) -> TxReceipt:
        return self._transact(operator, "markSettled", session, gas=gas)

    def session_of(self, session: bytes) -> Session:
        """The session; state NONE when it does not exist."""
        s = self._call("sessionOf", session)
        return Session(
            session=session,
            kind=SessionKind(s[0]),
            state=SessionState(s[1]),
            delivery_start=s[2],
            mtu_count=s[3],
            validation_rounds=s[4],
            award_count=s[5],
            gate_closed_block=s[6],
            total_cost_cents=s[7],
            offer_count=s[8],
            request_count=s[9],
            baseline_method=bytes(s[10]),
            pricing_rule=bytes(s[11]),
            order_book_root=bytes(s[12]),
            awards_root=bytes(s[13]),
        )

    def validation_of(self, session: bytes, round_: int) -> ValidationRecord | None:
        v = self._call("validationOf", session, round_)
        if bytes(v[0]) == ZERO32:
            return None
        return ValidationRecord(
            bytes(v[0]), bytes(v[1]), bytes(v[2]), to_checksum_address(v[3]), v[4], v[5]
        )

    def order_issuer(self, order_hash: bytes) -> str | None:
        return _address_or_none(self._call("orderIssuer", order_hash))

    def verify_order_book(self, session: bytes, leaf: bytes, proof: Sequence[bytes]) -> bool:
        return bool(self._call("verifyOrderBook", session, leaf, list(proof)))

    def verify_award(self, session: bytes, leaf: bytes, proof: Sequence[bytes]) -> bool:
        return bool(self._call("verifyAward", session, leaf, list(proof)))

    def hash_validation(self, validation: Mapping[str, Any]) -> bytes:
        return bytes(self._call("hashValidation", _struct("Validation", validation)))

    def hash_order(self, order: Mapping[str, Any]) -> bytes:
        return bytes(self._call("hashOrder", _struct("Order", order)))

    def offer_leaf(self, offer_hash: bytes) -> bytes:
        return bytes(self._call("offerLeaf", offer_hash))

    def request_leaf(self, request_hash: bytes) -> bytes:
        return bytes(self._call("requestLeaf", request_hash))

    def award_leaf(
        self,
        session: bytes,
        offer_hash: bytes,
        request_hash: bytes,
        mtu_start: int,
        power_w: int,
        price_cents_per_mwh: int,
    ) -> bytes:
        return bytes(
            self._call(
                "awardLeaf",
                session,
                offer_hash,
                request_hash,
                mtu_start,
                power_w,
                price_cents_per_mwh,
            )
        )

    def decision_leaf(self, award_leaf: bytes, approved: bool, reason: bytes) -> bytes:
        return bytes(self._call("decisionLeaf", award_leaf, approved, reason))


# --------------------------------------------------------------------------- token


class SettlementTokenClient(ContractClient):
    """The ERC-20 settlement token: one unit is one euro cent."""

    artifact_name = "SettlementToken"

    def mint(
        self, admin: LocalAccount, to: str, amount_cents: int, *, gas: int | None = None
    ) -> TxReceipt:
        return self._transact(admin, "mint", to_checksum_address(to), amount_cents, gas=gas)

    def approve(
        self, owner: LocalAccount, spender: str, amount_cents: int, *, gas: int | None = None
    ) -> TxReceipt:
        return self._transact(
            owner, "approve", to_checksum_address(spender), amount_cents, gas=gas
        )

    def transfer(
        self, sender: LocalAccount, to: str, amount_cents: int, *, gas: int | None = None
    ) -> TxReceipt:
        return self._transact(sender, "transfer", to_checksum_address(to), amount_cents, gas=gas)

    def balance_of(self, account: str) -> int:
        return int(self._call("balanceOf", to_checksum_address(account)))

    def allowance(self, owner: str, spender: str) -> int:
        return int(
            self._call("allowance", to_checksum_address(owner), to_checksum_address(spender))
        )

    def total_supply(self) -> int:
        return int(self._call("totalSupply"))

    def decimals(self) -> int:
        return int(self._call("decimals"))


# --------------------------------------------------------------------------- Settlement


@dataclass(frozen=True)
class SettlementInfo:
    award_hash: bytes
    session: bytes
    baseline_wh: int
    measured_wh: int
    delivered_wh: int
    amount_cents: int
    claim_cents: int
    payer: str
    payee: str
    settled_block: int
    measurement_root: bytes
    baseline_root: bytes
    record_hash: bytes


class SettlementClient(ContractClient):
    """Per-award settlement records and the token payments they move."""

    artifact_name = "Settlement"

    def settle(
        self,
        operator: LocalAccount,
        record: Mapping[str, Any],
        payer: str,
        payee: str,
        brp: str,
        day: int,
        award_proof: Sequence[bytes],
        *,
        gas: int | None = None,
    ) -> TxReceipt:
        """Settle one award (a SettlementRecord message dict) and move its amount.

        `payer` must have approved this contract for at least `amountCents`.
        """
        return self._transact(
            operator,
            "settle",
            _struct("SettlementRecord", record),
            to_checksum_address(payer),
            to_checksum_address(payee),
            to_checksum_address(brp),
            day,
            list(award_proof),
            gas=gas,
        )

    def pay_owners(
        self,
        aggregator: LocalAccount,
        ref: bytes,
        owners: Sequence[str],
        amounts_cents: Sequence[int],
        *,
        gas: int | None = None,
    ) -> TxReceipt:
        """Pay FR owners granted by `aggregator`, through its allowance; once per `ref`."""
        return self._transact(
            aggregator,
            "payOwners",
            ref,
            [to_checksum_address(o) for o in owners],
            list(amounts_cents),
            gas=gas,
        )

    def settlement_of(self, award_hash: bytes) -> SettlementInfo | None:
        s = self._call("settlementOf", award_hash)
        if s[8] == 0:
            return None
        return SettlementInfo(
            award_hash=award_hash,
            session=bytes(s[0]),
            baseline_wh=s[1],
            measured_wh=s[2],
            delivered_wh=s[3],
            amount_cents=s[4],
            claim_cents=s[5],
            payer=to_checksum_address(s[6]),
            payee=to_checksum_address(s[7]),
            settled_block=s[8],
            measurement_root=bytes(s[9]),
            baseline_root=bytes(s[10]),
            record_hash=bytes(s[11]),
        )

    def ref_paid(self, aggregator: str, ref: bytes) -> bool:
        return bool(self._call("refPaid", to_checksum_address(aggregator), ref))

    def hash_record(self, record: Mapping[str, Any]) -> bytes:
        return bytes(self._call("hashRecord", _struct("SettlementRecord", record)))


# --------------------------------------------------------------------------- bundle


@dataclass(frozen=True)
class FlexContracts:
    """All clients of one deployment."""

    roles: FlexRolesClient
    anchor: MeasurementAnchorClient
    baselines: BaselineRegistryClient
    market: FlexMarketClient
    token: SettlementTokenClient
    settlement: SettlementClient

    @classmethod
    def from_address_book(cls, w3: Web3, book: AddressBook) -> FlexContracts:
        chain_id = w3.eth.chain_id
        if chain_id != book.chain_id:
            raise ValueError(f"address book is for chain {book.chain_id}, connected to {chain_id}")
        return cls(
            roles=FlexRolesClient(w3, book.address("FlexRoles")),
            anchor=MeasurementAnchorClient(w3, book.address("MeasurementAnchor")),
            baselines=BaselineRegistryClient(w3, book.address("BaselineRegistry")),
            market=FlexMarketClient(w3, book.address("FlexMarket")),
            token=SettlementTokenClient(w3, book.address("SettlementToken")),
            settlement=SettlementClient(w3, book.address("Settlement")),
        )
