"""What the market API answers: public views of sessions, offers, requests, the order book,
validations, awards and orders (``…Public``), next to the protocol messages themselves."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from flexledger.messages import (
    Address,
    Award,
    DsoPayment,
    Hash32,
    Offer,
    Order,
    PodCode,
    Request,
    SettlementOutcome,
    Signed,
    Validation,
)

__all__ = [
    "AreaPublic",
    "AwardProof",
    "BookEntryPublic",
    "CapacityPublic",
    "Health",
    "MtuPower",
    "OfferPublic",
    "OrderBookPublic",
    "OrderPublic",
    "RequestPublic",
    "SessionPublic",
    "SessionState",
    "SettlementLine",
    "SettlementPublic",
    "ValidationPublic",
]

#: ``open`` → ``gate_closed`` → ``validating`` (round n published, awaiting the DSO) →
#: ``final`` (outcome committed); ``failed`` when the round limit is reached.
SessionState = Literal["open", "gate_closed", "validating", "final", "failed"]


class SessionPublic(BaseModel):
    """A session as everyone may read it, with the transactions that committed it."""

    session_id: str
    kind: Literal["day_ahead", "real_time"]
    state: SessionState
    delivery_start_s: int
    mtu_count: int
    gate_closure_s: int
    pricing: str
    round: int = Field(description="latest published round (0: not cleared yet)")
    round_limit: int
    order_book_root: Hash32 | None = None
    offer_count: int = 0
    request_count: int = 0
    awards_root: Hash32 | None = None
    total_cost_cents: int | None = None
    award_count: int | None = None
    txs: dict[str, str | None] = Field(default_factory=dict)
    based_on: list[str] = Field(
        default_factory=list, description="real-time: the sessions whose offers it clears"
    )
    clearing: dict[str, Any] | None = Field(
        default=None, description="engine name, version, solver, pricing, options, stage figures"
    )
    error: str | None = None


class MtuPower(BaseModel):
    mtu_start_s: int
    power_w: int


class OfferPublic(BaseModel):
    """A signed offer, its hash, and the W per MTU still free after the committed awards."""

    hash: Hash32
    offer: Signed[Offer]
    remaining: list[MtuPower]


class RequestPublic(BaseModel):
    hash: Hash32
    request: Signed[Request]
    stage: Literal["dso", "tso"]


class BookEntryPublic(BaseModel):
    kind: Literal["offer", "request"]
    hash: Hash32
    leaf: Hash32


class CapacityPublic(BaseModel):
    """Real-time: what an offer had left in an MTU when the session's gate closed."""

    offer_hash: Hash32
    mtu_start_s: int
    remaining_w: int


class OrderBookPublic(BaseModel):
    """Every signed offer and request of the session; once the gate closed, the committed book:
    its leaves in root order, the root and its transaction."""

    session_id: str
    kind: str
    state: str
    offers: list[Signed[Offer]]
    requests: list[Signed[Request]]
    entries: list[BookEntryPublic] = Field(default_factory=list)
    root: Hash32 | None = None
    tx_hash: Hash32 | None = None
    based_on: list[str] = Field(default_factory=list)
    capacity: list[CapacityPublic] = Field(default_factory=list)


class ValidationPublic(BaseModel):
    hash: Hash32
    round: int
    validation: Signed[Validation]
    tx_hash: Hash32 | None = None


class AwardProof(BaseModel):
    """An award of the final outcome, its leaf and its proof against the committed root."""

    award: Award
    award_hash: Hash32
    root: Hash32
    proof: list[Hash32]
    round: int
    tx_hash: Hash32 | None = None


class OrderPublic(BaseModel):
    hash: Hash32
    order: Signed[Order]
    awards: list[Award]
    tx_hash: Hash32 | None = None


class AreaPublic(BaseModel):
    pod: PodCode
    area: str


class Health(BaseModel):
    status: str
    service: str
    chain_id: int
    block: int
    counters: dict[str, int] = Field(default_factory=dict)


class SettlementLine(BaseModel):
    """One activated award's settlement: the market operator's signed outcome (I-15), who pays
    whom, the baseline it used, and the ``settle`` transaction that moved the amount (I-16)."""

    outcome: Signed[SettlementOutcome]
    record_hash: Hash32 = Field(description="struct hash of the SettlementRecord (on chain)")
    payer: Address
    payee: Address
    brp: Address = Field(description="BRP whose committed baseline root the record names")
    day_s: int = Field(description="delivery day of that baseline")
    payment: DsoPayment | None = Field(
        default=None, description="I-16: the amount moved payer → aggregator, once on chain"
    )
    tx_hash: Hash32 | None = None


class SettlementPublic(BaseModel):
    """A session's settlement: ``not_settled`` (nothing yet), ``settling`` (outcomes signed and
    stored, transactions under way — ``error`` says what stopped them), ``settled`` (every
    record on chain and the session marked settled)."""

    session_id: str
    state: Literal["not_settled", "settling", "settled"]
    baseline_method: str | None = None
    tolerance_ppm: int | None = None
    penalty_ppm: int | None = None
    lines: list[SettlementLine] = Field(default_factory=list)
    not_activated: list[Hash32] = Field(
        default_factory=list,
        description="awards of the final outcome no recorded order activated: not paid (the "
        "use case pays for energy moved), not settled on chain",
    )
    amount_cents: int = 0
    claim_cents: int = 0
    mark_settled_tx: Hash32 | None = None
    error: str | None = None
