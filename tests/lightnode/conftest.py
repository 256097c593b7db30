"""Fixtures of the Light Node tests: one anvil per session with the contracts deployed once (a
snapshot reverted after each test), the machine's Mosquitto with a topic root per test, and
Light Nodes on a scenario clock replaying the committed SimBench meter CSV.

Every test here is bounded (30 s unless it says otherwise).
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from web3 import Web3

from flexledger.settings import LightNodeSettings
from flexledger.time import ScenarioClock
from flexledger.transport import MqttClient, Topics, unique_client_id
from lightnode import CsvMeter, LightNode
from node.addressbook import AddressBook
from node.contracts import FlexContracts
from node.deploy import DeployPlan, deploy
from node.devnet import Devnet
from node.eip712 import Domain
from node.keys import dev_account

HERE = Path(__file__).parent
METER_CSV = HERE.parent / "data" / "meters" / "semiurb-5.220-2-sw_2pods_1h.csv"
CSV_PODS = ("IT001E00000001", "IT001E00000002")
T0 = 1_767_286_800  # the CSV's first instant, 2026-01-01 17:00 UTC, a window start
WINDOW_S = 900
PODS = tuple(f"IT001E{n:08d}" for n in range(1, 8))  # devices bound on chain
UNBOUND_POD = "IT001E00000099"  # no device on chain
SHARED_MOSQUITTO = "mqtt://127.0.0.1:1883"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE not in Path(str(item.path)).parents:
            continue
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(30))


def listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@dataclass(frozen=True)
class Chain:
    """A deployment on a devnet, with the keys of the parties the tests play."""

    w3: Web3
    book: AddressBook
    c: FlexContracts
    domain: Domain
    deployer: LocalAccount
    dso: LocalAccount
    concentrator: LocalAccount
    outsider: LocalAccount

    def device(self, pod: str) -> LocalAccount:
        return dev_account(f"ln:{pod}")


def deploy_chain(w3: Web3) -> Chain:
    """Contracts, the DSO and concentrator roles, and a device bound to each of ``PODS``."""
    deployer = dev_account("deployer")
    dso, concentrator, outsider = (
        dev_account("dso"),
        dev_account("concentrator:1"),
        dev_account("outsider"),
    )
    plan = DeployPlan(
        roles={"DSO": [dso.address], "CONCENTRATOR": [concentrator.address]},
        devices={pod: dev_account(f"ln:{pod}").address for pod in PODS},
        fund_wei={outsider.address: 10**21, dev_account(f"ln:{UNBOUND_POD}").address: 10**21},
        window_seconds=WINDOW_S,
    )
    book = deploy(w3, deployer, plan)
    c = FlexContracts.from_address_book(w3, book)
    return Chain(w3, book, c, c.roles.domain(), deployer, dso, concentrator, outsider)


@pytest.fixture(scope="session")
def devnet() -> Iterator[Devnet]:
    with Devnet() as d:
        yield d


@pytest.fixture(scope="session")
def chain_session(devnet: Devnet) -> Chain:
    return deploy_chain(devnet.web3())


@pytest.fixture
def chain(chain_session: Chain) -> Iterator[Chain]:
    """The session's deployment, every chain change of the test reverted afterwards."""
    w3 = chain_session.w3
    snapshot = w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
    try:
        yield chain_session
    finally:
        w3.provider.make_request("evm_revert", [snapshot])  # type: ignore[arg-type]


@pytest.fixture
def topics() -> Topics:
    """A topic root of this test's own on the shared broker."""
    return Topics(f"test-{uuid.uuid4().hex[:12]}/flex")


@pytest.fixture
def broker_url() -> str:
    if not listening("127.0.0.1", 1883):
        pytest.skip("no Mosquitto on 127.0.0.1:1883")
    return SHARED_MOSQUITTO


MakeClient = Callable[..., MqttClient]


@pytest.fixture
async def make_client(broker_url: str) -> AsyncIterator[MakeClient]:
    """MQTT clients (not started) on the shared broker, closed after the test."""
    clients: list[MqttClient] = []

    def make(name: str, url: str | None = None, **options: Any) -> MqttClient:
        options.setdefault("timeout_s", 5.0)
        options.setdefault("backoff_max_s", 0.2)
        client = MqttClient(url or broker_url, unique_client_id(name, "test"), **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


def fast_settings(**overrides: Any) -> LightNodeSettings:
    """Settings for tests: quick retries, no periodic chatter."""
    values: dict[str, Any] = {
        "window_s": WINDOW_S,
        "health_interval_s": 3600.0,
        "manifest_retry_s": 3600.0,
        "anchor_backoff_max_s": 0.3,
        "scd_poll_s": 3600.0,
    }
    values.update(overrides)
    return LightNodeSettings(**values)


def make_node(
    chain: Chain,
    pod: str,
    *,
    clock: ScenarioClock,
    mqtt: MqttClient,
    topics: Topics,
    buffer: Path,
    source_pod: str | None = None,
    contracts: FlexContracts | None = None,
    **kwargs: Any,
) -> LightNode:
    """A Light Node for ``pod`` replaying the committed CSV (``source_pod``'s column)."""
    settings = kwargs.pop("settings", None) or fast_settings()
    if source_pod is None:
        source_pod = pod if pod in CSV_PODS else CSV_PODS[PODS.index(pod) % len(CSV_PODS)]
    return LightNode(
        pod,
        account=chain.device(pod),
        meter=CsvMeter(METER_CSV, pod, source_pod=source_pod),
        clock=clock,
        mqtt=mqtt,
        contracts=contracts or chain.c,
        buffer=buffer,
        domain=chain.domain,
        topics=topics,
        settings=settings,
        start_s=T0,
        **kwargs,
    )
