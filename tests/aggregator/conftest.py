"""Aggregator tests: the market tests' chain (one anvil, a snapshot per test), an aggregator
service on a fresh SQLite database with a two-POD portfolio, its app under ``TestClient``."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from aggregator.app import build_service, create_app
from aggregator.portfolio import Customer, Portfolio
from aggregator.service import AggregatorService
from aggregator.settings import AggregatorSettings
from flexledger.messages import DerStatus, ResourceInfo, ResourceKind, Signed
from flexledger.scenario import ResourceSpec, WeatherSpec
from flexledger.time import ScenarioClock
from node.contracts import FlexContracts
from node.keys import dev_account
from node.signing import LocalSigner
from tests.market.conftest import contracts, market_contracts, market_devnet
from tests.market.helpers import DAY, POD1, POD2, START

__all__ = ["Agg", "agg", "contracts", "market_contracts", "market_devnet", "portfolio"]


def portfolio() -> Portfolio:
    """aggregator:1's customers: POD1 (owner:1: PV and a battery), POD2 (owner:2: an EV)."""
    return Portfolio(
        aggregator="aggregator:1",
        customers=[
            Customer(
                pod=POD1,
                fr_owner=dev_account("owner:1").address,
                device=dev_account(f"ln:{POD1}").address,
                bus="452",
                resources=[
                    ResourceSpec(id="pv", kind="pv", p_max_kw=50, cost_eur_per_mwh=45),
                    ResourceSpec(
                        id="bat",
                        kind="battery",
                        p_max_kw=40,
                        e_max_kwh=80,
                        soc_init=0.5,
                        cost_eur_per_mwh=70,
                    ),
                ],
            ),
            Customer(
                pod=POD2,
                fr_owner=dev_account("owner:2").address,
                device=dev_account(f"ln:{POD2}").address,
                bus="383",
                resources=[
                    ResourceSpec(
                        id="ev",
                        kind="ev",
                        p_max_kw=11,
                        e_max_kwh=60,
                        soc_init=0.5,
                        available_from_mtu=68,
                        available_to_mtu=96,
                        cost_eur_per_mwh=120,
                    )
                ],
            ),
        ],
        weather=WeatherSpec(),
        fee_percent=12.0,
    )


@dataclass
class Agg:
    service: AggregatorService
    client: TestClient
    contracts: FlexContracts
    clock: ScenarioClock
    nonces: dict[str, int]

    def status(
        self,
        owner: str = "owner:1",
        pod: str = POD1,
        resources: list[ResourceInfo] | None = None,
        day_s: int = DAY,
        **kw: Any,
    ) -> Signed[DerStatus]:
        """A DerStatus of ``owner`` (dev key name) signed by it."""
        self.nonces[owner] = self.nonces.get(owner, 0) + 1
        kw.setdefault("nonce", self.nonces[owner])
        kw.setdefault("aggregator", self.service.address)
        if resources is None:
            resources = [
                ResourceInfo(
                    resource_id="bat",
                    kind=ResourceKind.BATTERY,
                    p_max_w=40_000,
                    e_max_wh=80_000,
                    available_from_s=day_s + 64 * 900,
                    available_to_s=day_s + 84 * 900,
                ),
                ResourceInfo(
                    resource_id="pv",
                    kind=ResourceKind.PV,
                    p_max_w=50_000,
                    available_from_s=day_s,
                    available_to_s=day_s + 86_400,
                ),
            ]
        message = DerStatus(
            fr_owner=dev_account(owner).address, pod=pod, day_s=day_s, resources=resources, **kw
        )
        return LocalSigner(dev_account(owner), self.contracts.roles.domain()).sign(message)

    def post(self, envelope: Signed[Any] | dict[str, Any]) -> Any:
        body = (
            envelope
            if isinstance(envelope, dict)
            else envelope.model_dump(mode="json", serialize_as_any=True)
        )
        return self.client.post("/availability", json=body)


def make_settings(tmp_path: Path, **kw: Any) -> AggregatorSettings:
    kw.setdefault("market_url", "http://market")
    kw.setdefault("scd_url", "http://scd")
    return AggregatorSettings(home=tmp_path, aggregator_key="dev:aggregator:1", **kw)


@pytest.fixture
def agg(contracts: FlexContracts, tmp_path: Path) -> Iterator[Agg]:
    clock = ScenarioClock(START, step_s=900)
    service = build_service(
        make_settings(tmp_path), contracts=contracts, clock=clock, portfolio=portfolio()
    )
    with TestClient(create_app(service.settings, service=service)) as client:
        yield Agg(service, client, contracts, clock, {})
    service.engine.dispose()
