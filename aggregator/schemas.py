"""What the aggregator API answers beside the protocol messages themselves."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from flexledger.messages import Hash32, Offer, Receipt, Signed

__all__ = ["FlexibilityPublic", "OfferPublic", "ResourceFlexPublic"]


class OfferPublic(BaseModel):
    """An offer the aggregator signed, the resource behind it and the market's receipt."""

    hash: Hash32
    pod: str
    resource_id: str
    fr_owner: str
    offer: Signed[Offer]
    receipt: Receipt | None = None


class ResourceFlexPublic(BaseModel):
    """One resource's modelled flexibility for the day: W per MTU (index 0…95)."""

    resource_id: str
    kind: str
    price_cents_per_mwh: int
    up_w: list[int]
    down_w: list[int]
    note: str = ""
    budget_wh: dict[str, int] = Field(default_factory=dict)


class FlexibilityPublic(BaseModel):
    """A POD's estimate for the day: its expected baseline (Wh per MTU, from I-01 history)
    and what each declared resource can move."""

    pod: str
    day_s: int
    baseline_wh: list[int | None]
    resources: list[ResourceFlexPublic]
    detail: dict[str, Any] = Field(default_factory=dict)
