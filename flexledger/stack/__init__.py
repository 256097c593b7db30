"""Wiring (floor 4): the chain, broker and services of the embedded default or of a deployment.

Today: the chain. ``open_chain`` connects to ``FLEX_RPC_URL`` when it is set, else starts the
embedded anvil devnet on its state file under ``FLEX_HOME`` (so that a restart keeps the chain).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from web3 import Web3

from flexledger.settings import ChainSettings, HomeSettings
from node.addressbook import AddressBook
from node.contracts import FlexContracts
from node.deploy import DeployPlan
from node.devnet import Devnet, connect

__all__ = [
    "DEV_PARTIES",
    "ChainHandle",
    "address_book_path",
    "chain_state_path",
    "dev_plan",
    "open_chain",
    "scenario_plan",
]

log = logging.getLogger(__name__)


def chain_state_path(home: Path) -> Path:
    return home / "chain" / "state.json"


def address_book_path(home: Path, chain: ChainSettings | None = None) -> Path:
    chain = chain or ChainSettings()
    return chain.address_book or home / "addresses.json"


@dataclass
class ChainHandle:
    """A connected chain and, where it was started here, the devnet behind it."""

    w3: Web3
    rpc_url: str
    devnet: Devnet | None
    book_path: Path

    def contracts(self) -> FlexContracts:
        """Clients of the deployment in the address book (``flexledger deploy`` writes it)."""
        if not self.book_path.is_file():
            raise FileNotFoundError(
                f"no address book at {self.book_path}: run 'flexledger deploy' or 'flexledger demo'"
            )
        return FlexContracts.from_address_book(self.w3, AddressBook.load(self.book_path))


@contextlib.contextmanager
def open_chain(
    home: Path | None = None, *, fresh: bool = False, chain: ChainSettings | None = None
) -> Iterator[ChainHandle]:
    """The chain to work on: ``FLEX_RPC_URL``, or the embedded devnet under ``home``.

    ``fresh`` starts the embedded devnet from an empty chain (its old state file is removed).
    """
    home = home or HomeSettings().home
    chain = chain or ChainSettings()
    book = address_book_path(home, chain)
    if chain.rpc_url:
        yield ChainHandle(connect(chain.rpc_url), chain.rpc_url, None, book)
        return
    state = chain_state_path(home)
    if fresh:
        state.unlink(missing_ok=True)
    with Devnet(state_path=state) as devnet:
        log.info("embedded devnet on %s, state in %s", devnet.rpc_url, state)
        yield ChainHandle(devnet.web3(), devnet.rpc_url, devnet, book)


#: The deterministic dev keys of the embedded default's parties (``node.keys.dev_account``).
DEV_PARTIES: dict[str, list[str]] = {
    "MARKET_OPERATOR": ["market"],
    "DSO": ["dso"],
    "TSO": ["tso"],
    "AGGREGATOR": ["aggregator:1", "aggregator:2", "aggregator:3"],
    "BRP": ["brp"],
    "CONCENTRATOR": ["concentrator:1"],
}
#: Settlement-token balance (euro cents) the dev DSO and TSO start with.
DEV_PAYER_CENTS = 10_000_000


def dev_plan(pods: list[str] | None = None, sensors: list[str] | None = None) -> DeployPlan:
    """The embedded default's roles: the dev cast above, a Light Node key ``ln:POD`` per POD,
    a field-sensor key ``sensor:ID`` per sensor, and settlement tokens for the payers."""
    from node.keys import dev_account

    roles = {
        role: [str(dev_account(n).address) for n in names] for role, names in DEV_PARTIES.items()
    }
    sensors = sensors or []
    # FIELD_SENSOR_ROLE is granted by ``registerSensor`` (its admin is the bound-roles admin)
    return DeployPlan(
        roles=roles,
        devices={pod: dev_account(f"ln:{pod}").address for pod in pods or []},
        sensors={s: dev_account(f"sensor:{s}").address for s in sensors},
        mint={dev_account(n).address: DEV_PAYER_CENTS for n in ("dso", "tso")},
    )


def scenario_plan(world: Any) -> DeployPlan:
    """``dev_plan`` for a scenario's world: its PODs' Light Node keys and its sensors, with gas
    for the FR owners (their aggregator grants them their role) and the Light Nodes (direct
    anchoring)."""
    from node.keys import dev_account, load_account

    plan = dev_plan(world.pod_codes, world.sensor_ids())
    for spec in sorted({p.owner for p in world.scenario.pods if p.owner}):
        plan.fund_wei[load_account(spec).address] = 10**20
    for pod in world.pod_codes:
        plan.fund_wei[dev_account(f"ln:{pod}").address] = 10**21
    return plan
