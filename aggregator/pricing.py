"""What an offer asks: the resource owner's stated cost of moving, what the move costs on top
of it, and the aggregator's margin (pure).

``price = cost_eur_per_mwh × kind factor × (1 + margin)``, in whole cents per MWh:

- battery: the round-trip losses are bought back: ``1 / η²``;
- heat pump, air conditioning: the energy shifted comes back after the activation (rebound),
  with thermal losses: ``1 + rebound_loss`` (20 % by default);
- EV: charging is deferred, not lost: ``1``;
- PV curtailment: the lost production at the owner's stated value: ``1``;
- other loads: ``1``.
"""

from __future__ import annotations

from dataclasses import dataclass

from flexledger.scenario import ResourceSpec
from flexledger.units import cents_per_mwh

__all__ = ["CostModel", "offer_price_cents_per_mwh"]


@dataclass(frozen=True)
class CostModel:
    """The aggregator's pricing terms (``AggregatorSettings``)."""

    margin: float = 0.05
    battery_efficiency: float = 0.95
    rebound_loss: float = 0.2

    def factor(self, kind: str) -> float:
        if kind == "battery":
            return 1 / self.battery_efficiency**2
        if kind in ("heat_pump", "hvac"):
            return 1 + self.rebound_loss
        return 1.0


def offer_price_cents_per_mwh(resource: ResourceSpec, cost: CostModel = CostModel()) -> int:
    """The price an offer of ``resource`` asks, cents/MWh (never below one cent)."""
    eur = resource.cost_eur_per_mwh * cost.factor(resource.kind) * (1 + cost.margin)
    return max(1, cents_per_mwh(eur))
