"""Aggregator Platform: customer flexibility and baselines, offers, FR owner planning and payouts.

- ``create_app(settings)`` / ``build_service``: the API (``flexledger serve aggregator``);
- ``AggregatorService``: availability (I-12), customers (I-02), estimates, offers (I-05), plans
  (I-13), payouts (I-17), following the market;
- ``Portfolio``: its customers and their resources; ``resources``: the flexibility models;
  ``pricing``: the cost model; ``offers``, ``planning``, ``payouts``: the pure steps.
"""

from aggregator.app import build_service, create_app
from aggregator.offers import OfferPlan, offer_runs, plan_offers
from aggregator.payouts import owner_payouts
from aggregator.planning import plan_items
from aggregator.portfolio import Customer, Portfolio, load_portfolio
from aggregator.pricing import CostModel, offer_price_cents_per_mwh
from aggregator.resources import FlexParams, ResourceFlex, resource_flexibility
from aggregator.service import AggregatorService
from aggregator.settings import AggregatorSettings

__all__ = [
    "AggregatorService",
    "AggregatorSettings",
    "CostModel",
    "Customer",
    "FlexParams",
    "OfferPlan",
    "Portfolio",
    "ResourceFlex",
    "build_service",
    "create_app",
    "load_portfolio",
    "offer_price_cents_per_mwh",
    "offer_runs",
    "owner_payouts",
    "plan_items",
    "plan_offers",
    "resource_flexibility",
]
