"""Market tests: one anvil per test session with the dev roles, a snapshot reverted after each
test, a fresh market database per test (SQLite, or a PostgreSQL schema of this test session),
and the app served in the test's own event loop (so the scenario clock and the gate scheduler
share it)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from flexledger.stack import dev_plan
from node.contracts import FlexContracts
from node.deploy import deploy
from node.devnet import Devnet
from node.keys import dev_account
from tests.market.helpers import PG_URL, Market, pg_available

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.path)).parents and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(60))


@pytest.fixture(scope="session")
def market_devnet() -> Iterator[Devnet]:
    with Devnet() as d:
        yield d


@pytest.fixture(scope="session")
def market_contracts(market_devnet: Devnet) -> FlexContracts:
    w3 = market_devnet.web3()
    book = deploy(w3, dev_account("deployer"), dev_plan())
    return FlexContracts.from_address_book(w3, book)


@pytest.fixture()
def contracts(market_contracts: FlexContracts) -> Iterator[FlexContracts]:
    w3 = market_contracts.market.w3
    snapshot = w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
    try:
        yield market_contracts
    finally:
        w3.provider.make_request("evm_revert", [snapshot])  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def pg_schema() -> Iterator[str]:
    """A PostgreSQL schema of this test session, dropped at its end."""
    if not pg_available():
        pytest.skip("no PostgreSQL on 127.0.0.1:5432")
    schema = f"market_t{uuid.uuid4().hex[:10]}"
    yield schema
    engine = create_engine(PG_URL)
    with engine.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


@pytest.fixture(params=["sqlite"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str | None, str]:
    """(db_url, schema): SQLite under the test's folder (tests that matter add postgresql)."""
    return _db(request, tmp_path)


def _db(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str | None, str]:
    if request.param == "postgresql":
        base: str = request.getfixturevalue("pg_schema")
        schema = f"{base}_{uuid.uuid4().hex[:6]}"
        return PG_URL, schema
    return None, "market"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_both(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str | None, str]]:
    url, schema = _db(request, tmp_path)
    yield url, schema
    if url is not None:
        engine = create_engine(url)
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()


@pytest.fixture()
async def market(
    contracts: FlexContracts, db: tuple[str | None, str], tmp_path: Path
) -> AsyncIterator[Market]:
    m = Market(contracts, tmp_path, db_url=db[0], schema=db[1])
    async with m.running():
        yield m
