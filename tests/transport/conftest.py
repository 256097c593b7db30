"""Fixtures for transport tests: real brokers (the machine's Mosquitto and an embedded amqtt),
a unique topic root per test, and MQTT clients that are closed afterwards.

Every test here is bounded (20 s unless it says otherwise) so a broker problem fails fast.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from flexledger.transport import EmbeddedBroker, MqttClient, Topics, unique_client_id
from node.keys import dev_account
from node.signing import LocalSigner
from tests.transport.helpers import DOMAIN, POD, SHARED_MOSQUITTO, MakeClient, listening
from tests.transport.service import create_app, serve

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Async test modules here also say ``pytestmark = pytest.mark.asyncio(loop_scope="session")``:
    # they share the session loop with the session-scoped embedded broker.
    for item in items:
        if HERE not in Path(str(item.path)).parents:
            continue
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(20))


@pytest.fixture(scope="session")
async def amqtt_broker() -> AsyncIterator[EmbeddedBroker]:
    async with EmbeddedBroker() as broker:
        yield broker


@pytest.fixture(params=["mosquitto", "amqtt"])
def broker_url(request: pytest.FixtureRequest) -> str:
    """Each MQTT test runs against the machine's Mosquitto and against the embedded amqtt."""
    if request.param == "mosquitto":
        if not listening("127.0.0.1", 1883):
            pytest.skip("no Mosquitto on 127.0.0.1:1883")
        return SHARED_MOSQUITTO
    broker: EmbeddedBroker = request.getfixturevalue("amqtt_broker")
    return broker.url


@pytest.fixture
def topics() -> Topics:
    """A topic root of this test's own: the shared broker never mixes tests' messages."""
    return Topics(f"test-{uuid.uuid4().hex[:12]}/flex")


@pytest.fixture
async def make_client(broker_url: str) -> AsyncIterator[MakeClient]:
    clients: list[MqttClient] = []

    async def make(name: str, url: str | None = None, **options: Any) -> MqttClient:
        options.setdefault("timeout_s", 5.0)
        client = MqttClient(url or broker_url, unique_client_id(name, "test"), **options)
        clients.append(client)
        await client.start(wait_s=5.0)
        return client

    yield make
    for client in clients:
        await client.close()


@pytest.fixture(scope="session")
def service_app() -> FastAPI:
    return create_app()


@pytest.fixture(scope="session")
def service_url(service_app: FastAPI) -> Iterator[str]:
    """The tiny FastAPI service of ``service.py``, on a free loopback port."""
    with serve(service_app) as url:
        yield url


@pytest.fixture(scope="session")
def device() -> LocalSigner:
    return LocalSigner(dev_account(f"ln:{POD}"), DOMAIN)


@pytest.fixture(scope="session")
def dso() -> LocalSigner:
    return LocalSigner(dev_account("dso"), DOMAIN)
