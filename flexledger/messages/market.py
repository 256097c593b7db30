"""Market messages: offers (I-05), requests (I-06), validation (I-07), outcomes (I-08),
orders and set-points (I-09), and receipts."""

from __future__ import annotations

import json
from enum import IntEnum
from typing import Any, Literal

from eth_utils import keccak
from pydantic import Field, model_validator

from flexledger.messages.common import (
    U32,
    U64,
    Address,
    Hash32,
    Message,
    PodCode,
    Signed,
    SignedMessage,
    b32,
    id32,
)
from flexledger.messages.leaves import award_leaf, decision_leaf
from flexledger.time import MTU_S
from flexledger.units import PPM, Direction

__all__ = [
    "Award",
    "ClearingProvenance",
    "Decision",
    "Eligibility",
    "MarketOutcome",
    "Offer",
    "Order",
    "OrderAnnouncement",
    "PricingRule",
    "Receipt",
    "Request",
    "SessionAction",
    "SessionCommand",
    "SessionKind",
    "SessionNotice",
    "SetPoint",
    "StageProvenance",
    "Validation",
]

SessionKind = Literal["day_ahead", "real_time"]
#: How a session prices its awards; on chain as ``id32`` of the name (FlexMarket pricingRule).
PricingRule = Literal["pay_as_bid", "pay_as_cleared"]
_ZERO = bytes(32)
_KINDS: dict[str, int] = {"day_ahead": 0, "real_time": 1}


class SessionAction(IntEnum):
    """What the market operator tells its platform to do with a session."""

    OPEN = 0
    CLOSE_GATE = 1
    CLEAR = 2
    FINALIZE = 3
    SETTLE = 4


def _aligned(t_s: int, what: str) -> None:
    if t_s % MTU_S:
        raise ValueError(f"{what} {t_s} is not aligned to a {MTU_S} s MTU")


class Offer(SignedMessage):
    """I-05 Data for offer: flexibility at one POD, per MTU, with a price.

    Each MTU of ``[mtu_start_s, mtu_start_s + mtu_count × 900)`` may be awarded between
    ``min_w`` and ``max_w``, or not at all: divisible when ``min_w = 0``, semi-continuous with a
    minimum, all-or-nothing when ``min_w = max_w``. Signed by the aggregator.
    """

    eip712_type = "Offer"

    session_id: str = Field(min_length=1, max_length=64)
    aggregator: Address
    pod: PodCode
    direction: Direction
    mtu_start_s: U64
    mtu_count: int = Field(ge=1, le=96)
    max_w: int = Field(gt=0, le=2**63 - 1)
    min_w: U64 = 0
    price_cents_per_mwh: U64
    valid_until_s: U64
    nonce: U64

    @model_validator(mode="after")
    def _bounds(self) -> Offer:
        _aligned(self.mtu_start_s, "mtu_start_s")
        if self.min_w > self.max_w:
            raise ValueError(f"min_w {self.min_w} exceeds max_w {self.max_w}")
        return self

    @property
    def mtu_starts(self) -> list[int]:
        return [self.mtu_start_s + i * MTU_S for i in range(self.mtu_count)]

    def eip712_message(self) -> dict[str, Any]:
        return {
            "session": id32(self.session_id),
            "aggregator": self.aggregator,
            "pod": id32(self.pod),
            "direction": int(self.direction),
            "mtuStart": self.mtu_start_s,
            "mtuCount": self.mtu_count,
            "maxW": self.max_w,
            "minW": self.min_w,
            "priceCentsPerMwh": self.price_cents_per_mwh,
            "validUntil": self.valid_until_s,
            "nonce": self.nonce,
        }


class Eligibility(Message):
    """How much of one kW at ``pod`` counts toward a DSO request (parts per million of 1)."""

    pod: PodCode
    factor_ppm: int = Field(ge=0, le=PPM)


class Request(SignedMessage):
    """I-06 Data for requests: a need of flexibility, located, for some MTUs.

    A DSO request lists its eligible PODs with effectiveness factors and gives ``volume_w`` at
    the most effective one; a TSO request names a substation ``area`` instead.
    """

    eip712_type = "Request"

    session_id: str = Field(min_length=1, max_length=64)
    requester: Address
    direction: Direction
    mtu_start_s: U64
    mtu_count: int = Field(ge=1, le=96)
    volume_w: int = Field(gt=0, le=2**63 - 1)
    max_price_cents_per_mwh: U64
    area: str | None = Field(default=None, min_length=1, max_length=64)
    eligible: list[Eligibility] = Field(default_factory=list, max_length=10_000)
    valid_until_s: U64
    nonce: U64

    @model_validator(mode="after")
    def _location(self) -> Request:
        _aligned(self.mtu_start_s, "mtu_start_s")
        if not self.eligible and self.area is None:
            raise ValueError("a request is located: give eligible PODs or an area")
        pods = [e.pod for e in self.eligible]
        if len(set(pods)) != len(pods):
            raise ValueError("a POD appears twice in eligible")
        return self

    @property
    def mtu_starts(self) -> list[int]:
        return [self.mtu_start_s + i * MTU_S for i in range(self.mtu_count)]

    def eip712_message(self) -> dict[str, Any]:
        return {
            "session": id32(self.session_id),
            "requester": self.requester,
            "direction": int(self.direction),
            "mtuStart": self.mtu_start_s,
            "mtuCount": self.mtu_count,
            "volumeW": self.volume_w,
            "maxPriceCentsPerMwh": self.max_price_cents_per_mwh,
            "area": id32(self.area) if self.area else _ZERO,
            "eligible": [{"pod": id32(e.pod), "factorPpm": e.factor_ppm} for e in self.eligible],
            "validUntil": self.valid_until_s,
            "nonce": self.nonce,
        }


class Award(Message):
    """One offer serving one request in one MTU, in whole W (an I-08 line)."""

    session_id: str
    offer_hash: Hash32
    request_hash: Hash32
    mtu_start_s: U64
    power_w: U64
    price_cents_per_mwh: U64
    pod: PodCode
    direction: Direction
    stage: Literal["dso", "tso"]
    share_of_request: float = Field(ge=0, description="effective kW of this award / request volume")

    # The leaf covers session, offer, request, MTU, W and price; POD and direction follow from
    # the committed offer, stage and share from the committed request. The auditor checks them.
    unsigned_fields = frozenset({"pod", "direction", "stage", "share_of_request"})

    def leaf(self) -> bytes:
        return award_leaf(
            id32(self.session_id),
            b32(self.offer_hash),
            b32(self.request_hash),
            self.mtu_start_s,
            self.power_w,
            self.price_cents_per_mwh,
        )

    @property
    def award_hash(self) -> str:
        return "0x" + self.leaf().hex()


class Decision(Message):
    """The DSO's verdict on one preliminary award, with its reason when rejected."""

    award_hash: Hash32
    approved: bool
    reason: str | None = Field(default=None, max_length=200)

    @model_validator(mode="after")
    def _reason(self) -> Decision:
        if not self.approved and not self.reason:
            raise ValueError("a rejected award needs its reason")
        if self.approved and self.reason:
            raise ValueError("an approved award has no reason")
        return self

    def leaf(self) -> bytes:
        reason = id32(self.reason) if self.reason else _ZERO
        return decision_leaf(b32(self.award_hash), self.approved, reason)


class Validation(SignedMessage):
    """I-07 Technical validation: the DSO's decisions on a round of preliminary awards.

    ``decisions_root`` is the Merkle root of the decision leaves (kind 8), in the given order.
    """

    eip712_type = "Validation"

    session_id: str
    round: int = Field(ge=1, le=2**32 - 1)
    awards_root: Hash32
    decisions: list[Decision]
    decisions_root: Hash32
    nonce: U64

    def commitment(self) -> tuple[str, list[bytes]]:
        return self.decisions_root, [d.leaf() for d in self.decisions]

    @property
    def approved_count(self) -> int:
        return sum(d.approved for d in self.decisions)

    @property
    def rejected_count(self) -> int:
        return sum(not d.approved for d in self.decisions)

    def eip712_message(self) -> dict[str, Any]:
        return {
            "session": id32(self.session_id),
            "round": self.round,
            "awardsRoot": b32(self.awards_root),
            "decisionsRoot": b32(self.decisions_root),
            "approvedCount": self.approved_count,
            "rejectedCount": self.rejected_count,
            "nonce": self.nonce,
        }


class StageProvenance(Message):
    """One clearing stage as the auditor needs it to re-solve and compare (ARCHITECTURE.md,
    "Verifiable clearing"): what was minimised, how sure the solver is, and the penalties."""

    stage: Literal["dso", "tso"]
    cost_cents: int
    objective_eur: float = Field(description="awarded MWh × price + unmet penalties, in €")
    mip_gap: float = Field(ge=0, description="relative gap the solver proved")
    mip_gap_eur: float = Field(ge=0, description="absolute gap, €")
    penalty_margin_eur_per_mwh: float = Field(ge=0)
    penalty_volume_eur_per_mwh: float = Field(ge=0)
    unmet_w: int = Field(ge=0)
    status: str = ""


class ClearingProvenance(Message):
    """What computed a clearing: the pluggable class's name and version, solver and gap, its
    options (reliability margin, minimum factor, pricing rule) and each stage's figures."""

    name: str
    version: str
    solver: str
    mip_gap: float = 0.0
    pricing: Literal["pay_as_bid", "pay_as_cleared"] = "pay_as_bid"
    stage_costs_cents: dict[str, int] = Field(default_factory=dict)
    unmet_w: dict[str, int] = Field(default_factory=dict, description="request hash -> unmet W")
    stages: list[StageProvenance] = Field(default_factory=list)
    options: dict[str, float | int | str | bool] = Field(default_factory=dict)

    def digest(self) -> bytes:
        """keccak256 of the canonical JSON (sorted keys, no spaces): signed with the outcome,
        so that the gap and penalties an auditor relies on cannot change after the fact."""
        canonical = json.dumps(
            self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), allow_nan=False
        )
        return keccak(canonical.encode())


class MarketOutcome(SignedMessage):
    """I-08 Market outcomes: awards in economic order, preliminary (a round) or final."""

    eip712_type = "MarketOutcome"

    session_id: str
    round: U32
    final: bool
    awards: list[Award]
    awards_root: Hash32
    total_cost_cents: U64
    provenance: ClearingProvenance

    def commitment(self) -> tuple[str, list[bytes]]:
        return self.awards_root, [a.leaf() for a in self.awards]

    def eip712_message(self) -> dict[str, Any]:
        return {
            "session": id32(self.session_id),
            "round": self.round,
            "final": self.final,
            "awardsRoot": b32(self.awards_root),
            "totalCostCents": self.total_cost_cents,
            "awardCount": len(self.awards),
            "provenanceHash": self.provenance.digest(),
        }


class Order(SignedMessage):
    """I-09 Order: the DSO or TSO moves an award for some of its MTUs (recorded on chain)."""

    eip712_type = "Order"

    session_id: str
    offer_hash: Hash32
    request_hash: Hash32
    mtu_start_s: U64
    mtu_count: int = Field(ge=1, le=96)
    power_w: int = Field(gt=0, le=2**63 - 1)
    nonce: U64
    expiry_s: U64

    @model_validator(mode="after")
    def _aligned(self) -> Order:
        _aligned(self.mtu_start_s, "mtu_start_s")
        return self

    def eip712_message(self) -> dict[str, Any]:
        return {
            "session": id32(self.session_id),
            "offerHash": b32(self.offer_hash),
            "requestHash": b32(self.request_hash),
            "mtuStart": self.mtu_start_s,
            "mtuCount": self.mtu_count,
            "powerW": self.power_w,
            "nonce": self.nonce,
            "expiry": self.expiry_s,
        }


class SetPoint(SignedMessage):
    """I-09 Set-point to a Light Node: change the POD's active power by ``power_w`` in
    ``direction`` relative to its committed baseline, for these MTUs. Signed by the DSO."""

    eip712_type = "SetPoint"

    order_hash: Hash32
    pod: PodCode
    direction: Direction
    mtu_start_s: U64
    mtu_count: int = Field(ge=1, le=96)
    power_w: U64
    seq: U64
    expiry_s: U64

    @model_validator(mode="after")
    def _aligned(self) -> SetPoint:
        _aligned(self.mtu_start_s, "mtu_start_s")
        return self

    def eip712_message(self) -> dict[str, Any]:
        return {
            "orderHash": b32(self.order_hash),
            "pod": id32(self.pod),
            "direction": int(self.direction),
            "mtuStart": self.mtu_start_s,
            "mtuCount": self.mtu_count,
            "powerW": self.power_w,
            "seq": self.seq,
            "expiry": self.expiry_s,
        }


class Receipt(Message):
    """What a service returns for an accepted submission; once the gate closes, with its
    inclusion proof against the root committed on chain.

    ``duplicate`` is true when the same signed message was submitted before (the original
    receipt, answered with 200). SCD writes have no session; ``count`` says how many entries
    (customers, values) a bulk write stored.
    """

    kind: Literal[
        "offer",
        "request",
        "validation",
        "order",
        "customers",
        "availability",
        "baseline",
        "history",
    ]
    hash: Hash32
    session_id: str | None = None
    leaf: Hash32 | None = None
    root: Hash32 | None = None
    proof: list[Hash32] | None = None
    #: The same signed bytes were submitted before: this is the original receipt (idempotent).
    duplicate: bool = False
    #: The transaction that recorded it on chain (a validation round, an order), if any.
    tx_hash: Hash32 | None = None
    #: How many entries (customers, values) a bulk write stored.
    count: int | None = None


class SessionCommand(SignedMessage):
    """The market operator's command to its platform: open a session, close its gate, clear,
    finalize, settle. Signed by the market operator key (the same key that commits on chain);
    the platform also runs them itself on its clock (gate closure time)."""

    eip712_type = "SessionCommand"

    session_id: str = Field(min_length=1, max_length=64)
    action: SessionAction
    kind: SessionKind = "day_ahead"
    delivery_start_s: U64 = 0
    mtu_count: int = Field(default=96, ge=1, le=96)
    pricing: PricingRule = "pay_as_bid"
    nonce: U64
    expiry_s: U64

    def eip712_message(self) -> dict[str, Any]:
        return {
            "session": id32(self.session_id),
            "action": int(self.action),
            "kind": _KINDS[self.kind],
            "deliveryStart": self.delivery_start_s,
            "mtuCount": self.mtu_count,
            "pricingRule": id32(self.pricing),
            "nonce": self.nonce,
            "expiry": self.expiry_s,
        }


class SessionNotice(Message):
    """A market session changed state (MQTT ``flex/market/{session}``, next to the signed
    outcomes): what a subscriber needs to know that it should fetch something, not the thing
    itself — everything it names is readable, and checkable, through the market API."""

    session_id: str
    state: str
    round: U32 = 0
    t_s: U64
    order_book_root: Hash32 | None = None
    awards_root: Hash32 | None = None
    tx_hash: Hash32 | None = None
    reason: str | None = None


class OrderAnnouncement(Message):
    """An activation order the market recorded on chain (MQTT ``flex/market/orders``), for the
    DSO TP (set-points), the SCD and the aggregator: the issuer's signed order with the awards
    it moves (one per MTU of the order), the offer's POD, direction and aggregator."""

    order: Signed[Order]
    order_hash: Hash32
    awards: list[Award]
    pod: PodCode
    direction: Direction
    aggregator: Address
    tx_hash: Hash32 | None = None
