"""One anvil per test session, the contracts deployed once, a snapshot reverted after each test."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from eth_account.signers.local import LocalAccount
from web3 import Web3

from node.addressbook import AddressBook
from node.contracts import FlexContracts
from node.deploy import DeployPlan, deploy
from node.devnet import Devnet
from node.ids import id32
from node.keys import dev_account

POD_CODE = "IT001E00000001"
POD2_CODE = "IT001E00000002"
WINDOW_S = 900
TOKEN_CENTS = 1_000_000


@dataclass(frozen=True)
class Parties:
    deployer: LocalAccount
    market: LocalAccount
    dso: LocalAccount
    tso: LocalAccount
    aggregator: LocalAccount
    aggregator2: LocalAccount
    brp: LocalAccount
    concentrator: LocalAccount
    sensor: LocalAccount
    device: LocalAccount
    device2: LocalAccount
    owner: LocalAccount
    owner2: LocalAccount
    outsider: LocalAccount


@dataclass(frozen=True)
class Chain:
    w3: Web3
    book: AddressBook
    c: FlexContracts
    p: Parties
    pod: bytes
    pod2: bytes


def _parties() -> Parties:
    names = {
        "deployer": "deployer",
        "market": "market",
        "dso": "dso",
        "tso": "tso",
        "aggregator": "aggregator",
        "aggregator2": "aggregator2",
        "brp": "brp",
        "concentrator": "concentrator",
        "sensor": "sensor:S1",
        "device": f"ln:{POD_CODE}",
        "device2": f"ln:{POD2_CODE}",
        "owner": "owner:1",
        "owner2": "owner:2",
        "outsider": "outsider",
    }
    return Parties(**{field: dev_account(name) for field, name in names.items()})


@pytest.fixture(scope="session")
def devnet() -> Iterator[Devnet]:
    with Devnet() as d:
        yield d


@pytest.fixture(scope="session")
def chain_session(devnet: Devnet) -> Chain:
    w3 = devnet.web3()
    p = _parties()
    plan = DeployPlan(
        roles={
            "MARKET_OPERATOR": [p.market.address],
            "DSO": [p.dso.address],
            "TSO": [p.tso.address],
            "AGGREGATOR": [p.aggregator.address, p.aggregator2.address],
            "BRP": [p.brp.address],
            "CONCENTRATOR": [p.concentrator.address],
        },
        devices={POD_CODE: p.device.address, POD2_CODE: p.device2.address},
        sensors={"S1": p.sensor.address},
        mint={p.dso.address: TOKEN_CENTS, p.tso.address: TOKEN_CENTS},
        window_seconds=WINDOW_S,
    )
    book = deploy(w3, p.deployer, plan)
    # gas money for the accounts without a role too
    for acct in (p.owner, p.owner2, p.outsider):
        w3.provider.make_request("anvil_setBalance", [acct.address, hex(10**21)])  # type: ignore[arg-type]
    return Chain(
        w3=w3,
        book=book,
        c=FlexContracts.from_address_book(w3, book),
        p=p,
        pod=id32(POD_CODE),
        pod2=id32(POD2_CODE),
    )


@pytest.fixture()
def chain(chain_session: Chain) -> Iterator[Chain]:
    w3 = chain_session.w3
    snapshot = w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
    try:
        yield chain_session
    finally:
        w3.provider.make_request("evm_revert", [snapshot])  # type: ignore[arg-type]
