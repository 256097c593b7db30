"""The aggregator's portfolio: its customers (POD, FR owner, Light Node key, grid node) and
their resources as the aggregator models them, with the day's weather forecast.

A portfolio comes from a scenario file (the customers of one aggregator there, their
``ResourceSpec``s, the scenario's weather as the forecast) or from a JSON file of the same
shape (``Portfolio.model_validate_json``). The FR owners' daily availability (I-12) restricts
it day by day.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from flexledger.messages import Address, PodCode
from flexledger.scenario import ResourceSpec, Scenario, WeatherSpec, load_scenario

__all__ = ["Customer", "Portfolio", "load_portfolio"]


class Customer(BaseModel):
    """One POD of the aggregator: who owns its resources, its Light Node key, its node."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    pod: PodCode
    fr_owner: Address
    device: Address
    bus: str | None = None
    resources: list[ResourceSpec] = Field(default_factory=list)

    def resource(self, resource_id: str) -> ResourceSpec | None:
        return next((r for r in self.resources if r.id == resource_id), None)


class Portfolio(BaseModel):
    """Every customer of one aggregator, the weather forecast and its fee."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    aggregator: str = Field(description="the aggregator's name (a scenario's aggregator name)")
    customers: list[Customer] = Field(default_factory=list)
    weather: WeatherSpec | None = Field(
        default=None, description="forecast of the delivery day's outdoor temperature"
    )
    fee_percent: float | None = Field(default=None, ge=0, le=100)

    @model_validator(mode="after")
    def _unique(self) -> Portfolio:
        pods = [c.pod for c in self.customers]
        if len(set(pods)) != len(pods):
            raise ValueError("a POD appears twice in the portfolio")
        return self

    def customer(self, pod: str) -> Customer | None:
        return next((c for c in self.customers if c.pod == pod), None)

    @property
    def owners(self) -> list[str]:
        return sorted({c.fr_owner for c in self.customers})

    @classmethod
    def from_scenario(cls, scenario: Scenario, aggregator: str) -> Portfolio:
        """The customers ``aggregator`` has in ``scenario`` (keys resolved to addresses)."""
        from node.keys import load_account

        spec = next((a for a in scenario.aggregators if a.name == aggregator), None)
        if spec is None:
            names = ", ".join(a.name for a in scenario.aggregators)
            raise ValueError(
                f"scenario {scenario.name!r} has no aggregator {aggregator!r} ({names})"
            )

        def address(key: str) -> str:
            return str(
                load_account(key if ":" in key or key.startswith("0x") else f"dev:{key}").address
            )

        return cls(
            aggregator=aggregator,
            customers=[
                Customer(
                    pod=p.code,
                    fr_owner=address(p.owner),
                    device=address(p.device_key or f"dev:ln:{p.code}"),
                    bus=str(p.bus),
                    resources=list(p.resources),
                )
                for p in scenario.pods
                if p.aggregator == aggregator
            ],
            weather=scenario.weather,
            fee_percent=spec.fee_percent,
        )


def load_portfolio(path: Path, aggregator: str) -> Portfolio:
    """A portfolio from a scenario TOML (the customers of ``aggregator``) or a JSON file."""
    path = Path(path)
    if path.suffix == ".toml":
        return Portfolio.from_scenario(load_scenario(path), aggregator)
    return Portfolio.model_validate_json(path.read_text("utf-8"))
