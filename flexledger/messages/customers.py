"""Customers and their flexibility: availability (I-12), customer list (I-02), BRP baseline
(I-03) and DER planning (I-13)."""

from __future__ import annotations

from enum import IntEnum
from typing import Any

from pydantic import Field, model_validator

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
from flexledger.messages.leaves import baseline_leaf
from flexledger.time import DAY_S, MTU_S
from flexledger.units import Direction

__all__ = [
    "BaselineValue",
    "BrpBaseline",
    "CustomerEntry",
    "CustomerList",
    "DerPlanning",
    "DerStatus",
    "PlanItem",
    "ResourceInfo",
    "ResourceKind",
]


class ResourceKind(IntEnum):
    PV = 0
    BATTERY = 1
    EV = 2
    HEAT_PUMP = 3
    HVAC = 4
    OTHER_LOAD = 5


def _day(day_s: int) -> None:
    if day_s % DAY_S:
        raise ValueError(f"day_s {day_s} is not midnight UTC")


class ResourceInfo(Message):
    """A flexible resource behind a POD and when it is available."""

    resource_id: str = Field(min_length=1, max_length=64)
    kind: ResourceKind
    p_max_w: U64
    e_max_wh: U64 = 0
    available_from_s: U64
    available_to_s: U64

    @model_validator(mode="after")
    def _window(self) -> ResourceInfo:
        if self.available_to_s <= self.available_from_s:
            raise ValueError("available_to_s must be after available_from_s")
        return self

    def eip712(self) -> dict[str, Any]:
        return {
            "resourceId": id32(self.resource_id),
            "kind": int(self.kind),
            "pMaxW": self.p_max_w,
            "eMaxWh": self.e_max_wh,
            "availableFrom": self.available_from_s,
            "availableTo": self.available_to_s,
        }


class DerStatus(SignedMessage):
    """I-12 DER status: an FR owner declares its resources' availability for a day.

    Signed by the FR owner, whose role its aggregator granted on chain.
    """

    eip712_type = "DerStatus"

    fr_owner: Address
    aggregator: Address
    pod: PodCode
    day_s: U64
    resources: list[ResourceInfo] = Field(min_length=1, max_length=64)
    nonce: U64

    @model_validator(mode="after")
    def _check(self) -> DerStatus:
        _day(self.day_s)
        return self

    def eip712_message(self) -> dict[str, Any]:
        return {
            "frOwner": self.fr_owner,
            "aggregator": self.aggregator,
            "pod": id32(self.pod),
            "day": self.day_s,
            "resources": [r.eip712() for r in self.resources],
            "nonce": self.nonce,
        }


class CustomerEntry(Message):
    """One flexible customer: its POD, owner, Light Node key and resources."""

    pod: PodCode
    fr_owner: Address
    device: Address
    resources: list[ResourceInfo] = Field(default_factory=list, max_length=64)
    bus: str | None = Field(default=None, description="grid node, when the aggregator knows it")


class CustomerList(SignedMessage):
    """I-02 Customer list: the flexible customers an aggregator brings for a day."""

    eip712_type = "CustomerList"

    aggregator: Address
    day_s: U64
    customers: list[CustomerEntry] = Field(min_length=1, max_length=100_000)
    nonce: U64

    @model_validator(mode="after")
    def _check(self) -> CustomerList:
        _day(self.day_s)
        pods = [c.pod for c in self.customers]
        if len(set(pods)) != len(pods):
            raise ValueError("a POD appears twice in the customer list")
        return self

    def eip712_message(self) -> dict[str, Any]:
        return {
            "aggregator": self.aggregator,
            "day": self.day_s,
            "customers": [
                {
                    "pod": id32(c.pod),
                    "frOwner": c.fr_owner,
                    "device": c.device,
                    "bus": id32(c.bus) if c.bus else bytes(32),
                    "resources": [r.eip712() for r in c.resources],
                }
                for c in self.customers
            ],
            "nonce": self.nonce,
        }


class BaselineValue(Message):
    """A POD's scheduled energy in one MTU, integer Wh, load convention."""

    pod: PodCode
    mtu_start_s: U64
    e_wh: I64

    def leaf(self) -> bytes:
        return baseline_leaf(id32(self.pod), self.mtu_start_s, self.e_wh)


class BrpBaseline(SignedMessage):
    """I-03 BRP baseline: per POD the day's schedule per MTU, in integer Wh.

    The signature covers the Merkle ``root`` of the values (kind-7 leaves ordered by POD code,
    then MTU); the same root is committed on chain before gate closure. A receiver recomputes
    the root from ``values`` and refuses the upload when they differ.
    """

    eip712_type = "Baseline"

    brp: Address
    day_s: U64
    values: list[BaselineValue] = Field(min_length=1, max_length=1_000_000)
    root: Hash32
    nonce: U64

    @model_validator(mode="after")
    def _check(self) -> BrpBaseline:
        _day(self.day_s)
        seen: set[tuple[str, int]] = set()
        for v in self.values:
            if not self.day_s <= v.mtu_start_s < self.day_s + DAY_S or v.mtu_start_s % MTU_S:
                raise ValueError(f"{v.pod}: mtu_start_s {v.mtu_start_s} is not an MTU of the day")
            key = (v.pod, v.mtu_start_s)
            if key in seen:
                raise ValueError(f"{v.pod} has two values for MTU {v.mtu_start_s}")
            seen.add(key)
        return self

    def commitment(self) -> tuple[str, list[bytes]]:
        return self.root, self.ordered_leaves()

    @property
    def pods(self) -> list[str]:
        return sorted({v.pod for v in self.values})

    def ordered_leaves(self) -> list[bytes]:
        """Leaves in the committed order: by POD code, then MTU."""
        return [v.leaf() for v in sorted(self.values, key=lambda v: (v.pod, v.mtu_start_s))]

    def eip712_message(self) -> dict[str, Any]:
        return {
            "brp": self.brp,
            "day": self.day_s,
            "root": b32(self.root),
            "podCount": len(self.pods),
            "nonce": self.nonce,
        }


class PlanItem(Message):
    offer_hash: Hash32
    direction: Direction
    mtu_start_s: U64
    mtu_count: int = Field(ge=1, le=96)
    power_w: U64


class DerPlanning(SignedMessage):
    """I-13 DER planning: the time frames and power an FR owner must provide."""

    eip712_type = "DerPlanning"

    aggregator: Address
    fr_owner: Address
    pod: PodCode
    items: list[PlanItem] = Field(max_length=10_000)
    nonce: U64

    def eip712_message(self) -> dict[str, Any]:
        return {
            "aggregator": self.aggregator,
            "frOwner": self.fr_owner,
            "pod": id32(self.pod),
            "items": [
                {
                    "offerHash": b32(i.offer_hash),
                    "direction": int(i.direction),
                    "mtuStart": i.mtu_start_s,
                    "mtuCount": i.mtu_count,
                    "powerW": i.power_w,
                }
                for i in self.items
            ],
            "nonce": self.nonce,
        }
