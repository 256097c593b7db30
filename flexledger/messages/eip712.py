"""The EIP-712 type of every signed message (docs/PROTOCOL.md, "Signed types").

Pure data: the field order is the encoding. ``node.eip712`` hashes, signs and recovers with
this table; the contracts declare the same type strings for what they check on chain.
"""

from __future__ import annotations

from typing import Final

__all__ = ["DOMAIN_NAME", "DOMAIN_VERSION", "EIP712_TYPES", "encode_type"]

DOMAIN_NAME: Final = "flexledger"
DOMAIN_VERSION: Final = "1"

Field = tuple[str, str]

EIP712_TYPES: Final[dict[str, list[Field]]] = {
    "Offer": [
        ("session", "bytes32"),
        ("aggregator", "address"),
        ("pod", "bytes32"),
        ("direction", "uint8"),
        ("mtuStart", "uint64"),
        ("mtuCount", "uint32"),
        ("maxW", "uint64"),
        ("minW", "uint64"),
        ("priceCentsPerMwh", "uint64"),
        ("validUntil", "uint64"),
        ("nonce", "uint64"),
    ],
    "Request": [
        ("session", "bytes32"),
        ("requester", "address"),
        ("direction", "uint8"),
        ("mtuStart", "uint64"),
        ("mtuCount", "uint32"),
        ("volumeW", "uint64"),
        ("maxPriceCentsPerMwh", "uint64"),
        ("area", "bytes32"),
        ("eligible", "Eligibility[]"),
        ("validUntil", "uint64"),
        ("nonce", "uint64"),
    ],
    "Eligibility": [("pod", "bytes32"), ("factorPpm", "uint32")],
    "Validation": [
        ("session", "bytes32"),
        ("round", "uint32"),
        ("awardsRoot", "bytes32"),
        ("decisionsRoot", "bytes32"),
        ("approvedCount", "uint32"),
        ("rejectedCount", "uint32"),
        ("nonce", "uint64"),
    ],
    "MarketOutcome": [
        ("session", "bytes32"),
        ("round", "uint32"),
        ("final", "bool"),
        ("awardsRoot", "bytes32"),
        ("totalCostCents", "uint64"),
        ("awardCount", "uint32"),
        ("provenanceHash", "bytes32"),
    ],
    "Order": [
        ("session", "bytes32"),
        ("offerHash", "bytes32"),
        ("requestHash", "bytes32"),
        ("mtuStart", "uint64"),
        ("mtuCount", "uint32"),
        ("powerW", "uint64"),
        ("nonce", "uint64"),
        ("expiry", "uint64"),
    ],
    "SetPoint": [
        ("orderHash", "bytes32"),
        ("pod", "bytes32"),
        ("direction", "uint8"),
        ("mtuStart", "uint64"),
        ("mtuCount", "uint32"),
        ("powerW", "uint64"),
        ("seq", "uint64"),
        ("expiry", "uint64"),
    ],
    "MeasurementBatch": [
        ("pod", "bytes32"),
        ("firstSeq", "uint64"),
        ("count", "uint32"),
        ("samplesHash", "bytes32"),
    ],
    "WindowRoot": [
        ("pod", "bytes32"),
        ("windowStart", "uint64"),
        ("root", "bytes32"),
        ("sampleCount", "uint32"),
        ("setpointsHash", "bytes32"),
    ],
    "Baseline": [
        ("brp", "address"),
        ("day", "uint64"),
        ("root", "bytes32"),
        ("podCount", "uint32"),
        ("nonce", "uint64"),
    ],
    "CustomerList": [
        ("aggregator", "address"),
        ("day", "uint64"),
        ("customers", "Customer[]"),
        ("nonce", "uint64"),
    ],
    "Customer": [
        ("pod", "bytes32"),
        ("frOwner", "address"),
        ("device", "address"),
        ("bus", "bytes32"),
        ("resources", "Resource[]"),
    ],
    "DerStatus": [
        ("frOwner", "address"),
        ("aggregator", "address"),
        ("pod", "bytes32"),
        ("day", "uint64"),
        ("resources", "Resource[]"),
        ("nonce", "uint64"),
    ],
    "Resource": [
        ("resourceId", "bytes32"),
        ("kind", "uint8"),
        ("pMaxW", "uint64"),
        ("eMaxWh", "uint64"),
        ("availableFrom", "uint64"),
        ("availableTo", "uint64"),
    ],
    "DerPlanning": [
        ("aggregator", "address"),
        ("frOwner", "address"),
        ("pod", "bytes32"),
        ("items", "PlanItem[]"),
        ("nonce", "uint64"),
    ],
    "PlanItem": [
        ("offerHash", "bytes32"),
        ("direction", "uint8"),
        ("mtuStart", "uint64"),
        ("mtuCount", "uint32"),
        ("powerW", "uint64"),
    ],
    "SettlementRecord": [
        ("session", "bytes32"),
        ("awardHash", "bytes32"),
        ("baselineWh", "int64"),
        ("measuredWh", "int64"),
        ("deliveredWh", "int64"),
        ("amountCents", "uint64"),
        ("claimCents", "uint64"),
        ("measurementRoot", "bytes32"),
        ("baselineRoot", "bytes32"),
    ],
    "SensorReading": [
        ("sensor", "bytes32"),
        ("t", "uint64"),
        ("vMv", "uint64"),
        ("pW", "int64"),
        ("qVar", "int64"),
        ("iMa", "uint64"),
        ("seq", "uint64"),
    ],
    "SessionCommand": [
        ("session", "bytes32"),
        ("action", "uint8"),
        ("kind", "uint8"),
        ("deliveryStart", "uint64"),
        ("mtuCount", "uint32"),
        ("pricingRule", "bytes32"),
        ("nonce", "uint64"),
        ("expiry", "uint64"),
    ],
    "MeasureHistory": [
        ("uploader", "address"),
        ("valuesHash", "bytes32"),
        ("count", "uint32"),
        ("nonce", "uint64"),
    ],
    "TopologyEvent": [
        ("element", "bytes32"),
        ("closed", "bool"),
        ("t", "uint64"),
        ("seq", "uint64"),
    ],
}


def _struct_deps(name: str, found: set[str]) -> None:
    for _, typ in EIP712_TYPES[name]:
        base = typ.removesuffix("[]")
        if base in EIP712_TYPES and base not in found:
            found.add(base)
            _struct_deps(base, found)


def encode_type(primary_type: str) -> str:
    """EIP-712 ``encodeType``: the primary type, then its struct dependencies sorted by name."""
    if primary_type not in EIP712_TYPES:
        raise KeyError(f"unknown EIP-712 type {primary_type!r}")
    deps: set[str] = set()
    _struct_deps(primary_type, deps)
    deps.discard(primary_type)
    parts = []
    for name in [primary_type, *sorted(deps)]:
        fields = ",".join(f"{typ} {field}" for field, typ in EIP712_TYPES[name])
        parts.append(f"{name}({fields})")
    return "".join(parts)
