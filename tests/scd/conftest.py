"""SCD test fixtures: one anvil with the contracts per session, SQLite and PostgreSQL
databases (a schema of each test's own on the machine's server, dropped after), the machine's
Mosquitto (a topic root of each test's own) and an embedded amqtt broker."""

from __future__ import annotations

import itertools
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount
from sqlalchemy import create_engine, text
from web3 import Web3

from flexledger.transport import EmbeddedBroker, MqttClient, Topics, unique_client_id
from node.addressbook import AddressBook
from node.contracts import FlexContracts
from node.deploy import DeployPlan, deploy
from node.devnet import Devnet
from node.keys import dev_account
from node.signing import LocalSigner
from scd.service import ScdService
from scd.settings import ScdSettings

HERE = Path(__file__).parent
PG_URL = "postgresql+psycopg://root@127.0.0.1:5432/test"
MOSQUITTO = "mqtt://127.0.0.1:1883"
PODS = [f"IT001E{n:08d}" for n in range(1, 5)]
DAY = 1_767_225_600  # 2026-01-01T00:00:00Z
_windows = itertools.count(1)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.path)).parents and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(60))


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@dataclass(frozen=True)
class Chain:
    w3: Web3
    book: AddressBook
    c: FlexContracts
    deployer: LocalAccount
    aggregator: LocalAccount
    dso: LocalAccount
    brp: LocalAccount
    concentrator: LocalAccount
    owner: LocalAccount
    outsider: LocalAccount
    devices: dict[str, LocalAccount]

    def signer(self, account: LocalAccount) -> LocalSigner:
        return LocalSigner(account, self.c.roles.domain())

    def device(self, pod: str) -> LocalSigner:
        return self.signer(self.devices[pod])


@pytest.fixture(scope="session")
def devnet() -> Iterator[Devnet]:
    with Devnet() as d:
        yield d


@pytest.fixture(scope="session")
def chain(devnet: Devnet) -> Chain:
    w3 = devnet.web3()
    acct = {
        n: dev_account(n)
        for n in ("deployer", "aggregator:1", "dso", "brp", "concentrator:1", "owner:1", "outsider")
    }
    devices = {pod: dev_account(f"ln:{pod}") for pod in PODS}
    plan = DeployPlan(
        roles={
            "AGGREGATOR": [acct["aggregator:1"].address],
            "DSO": [acct["dso"].address],
            "BRP": [acct["brp"].address],
            "CONCENTRATOR": [acct["concentrator:1"].address],
        },
        devices={pod: d.address for pod, d in devices.items()},
        window_seconds=900,
    )
    book = deploy(w3, acct["deployer"], plan)
    for a in (acct["owner:1"], acct["outsider"]):
        w3.provider.make_request("anvil_setBalance", [a.address, hex(10**21)])  # type: ignore[arg-type]
    c = FlexContracts.from_address_book(w3, book)
    c.roles.grant_fr_owner(acct["aggregator:1"], acct["owner:1"].address)
    return Chain(
        w3=w3,
        book=book,
        c=c,
        deployer=acct["deployer"],
        aggregator=acct["aggregator:1"],
        dso=acct["dso"],
        brp=acct["brp"],
        concentrator=acct["concentrator:1"],
        owner=acct["owner:1"],
        outsider=acct["outsider"],
        devices=devices,
    )


@pytest.fixture
def window() -> int:
    """The first of ten window starts of this test's own (anchors are once per window and the
    chain is shared by the whole session)."""
    return DAY + 86_400 * 30 + 900 * 10 * next(_windows)


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str | None, str]]:
    """(FLEX_DB_URL, schema): a SQLite file, or a PostgreSQL schema dropped after the test."""
    if request.param == "sqlite":
        yield None, "scd"
        return
    if not _listening("127.0.0.1", 5432):
        pytest.skip("no PostgreSQL on 127.0.0.1:5432")
    schema = f"scd_t{uuid.uuid4().hex[:10]}"
    yield PG_URL, schema
    engine = create_engine(PG_URL)
    with engine.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


@pytest.fixture
def topics() -> Topics:
    return Topics(f"t{uuid.uuid4().hex[:10]}/flex")


@pytest.fixture(scope="session")
async def amqtt_broker() -> AsyncIterator[EmbeddedBroker]:
    async with EmbeddedBroker() as broker:
        yield broker


@pytest.fixture
def broker_url() -> str:
    if not _listening("127.0.0.1", 1883):
        pytest.skip("no Mosquitto on 127.0.0.1:1883")
    return MOSQUITTO


@pytest.fixture(params=["mosquitto", "amqtt"])
def any_broker(request: pytest.FixtureRequest) -> str:
    """The machine's Mosquitto, and the embedded amqtt."""
    if request.param == "mosquitto":
        return str(request.getfixturevalue("broker_url"))
    broker: EmbeddedBroker = request.getfixturevalue("amqtt_broker")
    return broker.url


def settings_for(
    db: tuple[str | None, str], home: Path, topics: Topics, mqtt_url: str | None
) -> ScdSettings:
    return ScdSettings(
        home=home,
        db_url=db[0],
        db_schema=db[1],
        mqtt_url=mqtt_url,
        mqtt_client_id=unique_client_id("scd", "test"),
        topic_root=topics.root,
        chain_poll_s=0.1,
        flush_interval_s=0.02,
        resend_interval_s=0.5,
        resend_max=5,
    )


def make_service(chain: Chain, settings: ScdSettings) -> ScdService:
    """A service that follows the chain from now on (not the other tests' anchors)."""
    return ScdService.from_settings(
        settings, contracts=chain.c, from_block=chain.w3.eth.block_number + 1
    )


@pytest.fixture
async def client(broker_url: str) -> AsyncIterator[MqttClient]:
    """A test-side MQTT client (Light Nodes' publisher, certification listener)."""
    c = MqttClient(broker_url, unique_client_id("lnsim", "test"), timeout_s=5.0)
    await c.start(wait_s=5.0)
    yield c
    await c.close()
