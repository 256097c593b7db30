"""Settlement outcomes (I-15) and payments (I-16 DSO → aggregator, I-17 aggregator → FR owner)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from flexledger.messages.common import (
    I64,
    U64,
    Address,
    Hash32,
    Message,
    PodCode,
    SignedMessage,
    b32,
    id32,
)

__all__ = ["AggregatorPayment", "DsoPayment", "SettlementOutcome", "SettlementStatus"]

SettlementStatus = Literal["paid", "partially_paid", "not_delivered", "unpaid_uncertified"]


class SettlementOutcome(SignedMessage):
    """I-15 Settlement outcomes: for one award, the energy moved and the payment.

    Energies are signed integer Wh per the rules of ``flexledger.units``; ``amount_cents`` never
    goes below zero and a penalty beyond it is ``claim_cents``. ``reason`` says why a window
    was not paid. Signed by the market operator; the record is also on chain.
    """

    eip712_type = "SettlementRecord"

    session_id: str
    award_hash: Hash32
    offer_hash: Hash32
    pod: PodCode
    mtu_start_s: U64
    awarded_wh: I64
    baseline_wh: I64
    measured_wh: I64
    delivered_wh: I64
    amount_cents: U64
    claim_cents: U64 = 0
    windows_s: list[U64] = Field(default_factory=list)
    measurement_root: Hash32
    baseline_root: Hash32
    status: SettlementStatus
    reason: str | None = None

    # Derived from the award (its hash covers offer, POD and MTU) and from the signed amounts;
    # the auditor recomputes all of them.
    unsigned_fields = frozenset(
        {"offer_hash", "pod", "mtu_start_s", "awarded_wh", "windows_s", "status", "reason"}
    )

    def eip712_message(self) -> dict[str, Any]:
        return {
            "session": id32(self.session_id),
            "awardHash": b32(self.award_hash),
            "baselineWh": self.baseline_wh,
            "measuredWh": self.measured_wh,
            "deliveredWh": self.delivered_wh,
            "amountCents": self.amount_cents,
            "claimCents": self.claim_cents,
            "measurementRoot": b32(self.measurement_root),
            "baselineRoot": b32(self.baseline_root),
        }


class DsoPayment(Message):
    """I-16 DSO payment: the DSO (or TSO) pays an aggregator for an award, on chain."""

    payer: Address
    payee: Address
    amount_cents: U64
    session_id: str
    award_hash: Hash32
    tx_hash: Hash32
    payer_role: Literal["dso", "tso"] = "dso"


class AggregatorPayment(Message):
    """I-17 Aggregator payment: an aggregator pays one of its FR owners, on chain."""

    aggregator: Address
    fr_owner: Address
    amount_cents: U64
    ref: Hash32
    tx_hash: Hash32
