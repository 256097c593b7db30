"""Deploy the flexledger contracts, grant roles from a plan, write the address book.

    book = deploy(w3, deployer, plan, book_path=Path(".flexledger/addresses.json"))
    contracts = FlexContracts.from_address_book(w3, book)

Deploying again against the same chain with the same address book re-uses what is there: the
book is kept when its chain id matches, every address has code and every artifact's sha256 is
the one it was deployed from; otherwise everything is deployed afresh. The plan is then applied
idempotently (a role already held, a device already bound, a balance already reached is left).

Dev accounts are funded with `anvil_setBalance` on anvil, else by a transfer from the deployer.

CLI: `python -m node.deploy --book .flexledger/addresses.json --plan plan.json
--key dev:deployer` (the RPC endpoint from `--rpc` or `FLEX_RPC_URL`).
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address
from web3 import Web3

from node.addressbook import CONTRACT_NAMES, AddressBook
from node.contracts import FlexContracts, load_artifact, role_id, send_transaction
from node.ids import id32

__all__ = [
    "DeployPlan",
    "apply_plan",
    "deploy",
    "deploy_contract",
    "fund",
    "is_anvil",
    "reuse_book",
]

log = logging.getLogger(__name__)

DEFAULT_FUND_WEI = 1000 * 10**18


@dataclass
class DeployPlan:
    """Who gets which role once the contracts are there.

    roles: role name (`"DSO"` or `"DSO_ROLE"`) -> addresses.
    devices: POD (code string, or its 32-byte id) -> Light Node device address.
    sensors: sensor id (string, or 32 bytes) -> field sensor address.
    mint: address -> token balance in euro cents to top up to.
    fund_wei: address -> native balance to top up to (gas money).
    window_seconds: MeasurementAnchor's window length.
    """

    roles: dict[str, list[str]] = field(default_factory=dict)
    devices: dict[str | bytes, str] = field(default_factory=dict)
    sensors: dict[str | bytes, str] = field(default_factory=dict)
    mint: dict[str, int] = field(default_factory=dict)
    fund_wei: dict[str, int] = field(default_factory=dict)
    window_seconds: int = 900

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DeployPlan:
        return cls(
            roles={k: list(v) for k, v in data.get("roles", {}).items()},
            devices=dict(data.get("devices", {})),
            sensors=dict(data.get("sensors", {})),
            mint={k: int(v) for k, v in data.get("mint", {}).items()},
            fund_wei={k: int(v) for k, v in data.get("fund_wei", {}).items()},
            window_seconds=int(data.get("window_seconds", 900)),
        )

    def all_accounts(self) -> list[str]:
        seen: dict[str, None] = {}
        for addresses in self.roles.values():
            seen.update((to_checksum_address(a), None) for a in addresses)
        for a in [*self.devices.values(), *self.sensors.values(), *self.mint]:
            seen[to_checksum_address(a)] = None
        return list(seen)


def _key32(value: str | bytes) -> bytes:
    if isinstance(value, bytes):
        if len(value) != 32:
            raise ValueError("an on-chain id is 32 bytes")
        return value
    return id32(value)


def is_anvil(w3: Web3) -> bool:
    try:
        return str(w3.client_version).lower().startswith("anvil")
    except Exception:
        return False


def fund(w3: Web3, deployer: LocalAccount, balances: Mapping[str, int]) -> None:
    """Top native balances up: `anvil_setBalance` on anvil, else transfers from the deployer."""
    anvil = is_anvil(w3)
    for address, target in balances.items():
        address = to_checksum_address(address)
        have = w3.eth.get_balance(address)
        if have >= target:
            continue
        if anvil:
            w3.provider.make_request("anvil_setBalance", [address, hex(target)])  # type: ignore[arg-type]
        else:
            send_transaction(w3, deployer, address, b"", value=target - have, gas=21_000)


def deploy_contract(
    w3: Web3, deployer: LocalAccount, name: str, types: list[str], args: list[Any]
) -> str:
    """Deploy one contract from its artifact with ABI-encoded constructor arguments."""
    artifact = load_artifact(name)
    data = bytes.fromhex(artifact["bytecode"][2:]) + abi_encode(types, args)
    receipt = send_transaction(w3, deployer, None, data)
    address = receipt["contractAddress"]
    if address is None:
        raise RuntimeError(f"{name}: no contract address in receipt")
    log.info("deployed %s at %s (gas %d)", name, address, receipt["gasUsed"])
    return to_checksum_address(address)


def _artifact_shas() -> dict[str, str]:
    return {name: load_artifact(name)["sourcesSha256"] for name in CONTRACT_NAMES}


def reuse_book(w3: Web3, book_path: Path | str) -> AddressBook | None:
    """The address book at `book_path` if its deployment is alive and current, else None."""
    path = Path(book_path)
    if not path.is_file():
        return None
    try:
        book = AddressBook.load(path)
    except (ValueError, KeyError) as exc:
        log.warning("ignoring unreadable address book %s: %s", path, exc)
        return None
    if book.chain_id != w3.eth.chain_id:
        log.info("address book %s is for chain %d: deploying afresh", path, book.chain_id)
        return None
    if book.artifacts_sha256 != _artifact_shas():
        log.info("address book %s is for other contract sources: deploying afresh", path)
        return None
    for name in CONTRACT_NAMES:
        address = book.addresses.get(name)
        if address is None or not w3.eth.get_code(to_checksum_address(address)):
            log.info("no %s code at its address (chain reset?): deploying afresh", name)
            return None
    return book


def deploy(
    w3: Web3,
    deployer: LocalAccount,
    plan: DeployPlan | None = None,
    *,
    book_path: Path | str | None = None,
) -> AddressBook:
    """Deploy (or re-use) all contracts, apply `plan`, save the book to `book_path` if given."""
    plan = plan or DeployPlan()
    if is_anvil(w3):
        fund(w3, deployer, {deployer.address: DEFAULT_FUND_WEI})
    book = reuse_book(w3, book_path) if book_path is not None else None
    if book is None:
        book = _deploy_all(w3, deployer, plan.window_seconds)
        if book_path is not None:
            book.save(book_path)
    else:
        log.info("re-using the deployment in %s", book_path)
    apply_plan(w3, deployer, book, plan)
    return book


def _deploy_all(w3: Web3, deployer: LocalAccount, window_seconds: int) -> AddressBook:
    start = w3.eth.block_number + 1
    a: dict[str, str] = {}
    a["FlexRoles"] = deploy_contract(w3, deployer, "FlexRoles", ["address"], [deployer.address])
    roles = a["FlexRoles"]
    a["MeasurementAnchor"] = deploy_contract(
        w3, deployer, "MeasurementAnchor", ["address", "uint64"], [roles, window_seconds]
    )
    a["BaselineRegistry"] = deploy_contract(w3, deployer, "BaselineRegistry", ["address"], [roles])
    a["FlexMarket"] = deploy_contract(w3, deployer, "FlexMarket", ["address"], [roles])
    a["SettlementToken"] = deploy_contract(
        w3, deployer, "SettlementToken", ["address"], [deployer.address]
    )
    a["Settlement"] = deploy_contract(
        w3,
        deployer,
        "Settlement",
        ["address", "address", "address", "address"],
        [roles, a["FlexMarket"], a["BaselineRegistry"], a["SettlementToken"]],
    )
    return AddressBook(
        chain_id=w3.eth.chain_id,
        addresses=a,
        deploy_block=start,
        artifacts_sha256=_artifact_shas(),
        deployer=deployer.address,
        window_seconds=window_seconds,
    )


def apply_plan(w3: Web3, deployer: LocalAccount, book: AddressBook, plan: DeployPlan) -> None:
    """Grant roles, bind devices and sensors, mint and fund, skipping what is already so."""
    c = FlexContracts.from_address_book(w3, book)
    for role, addresses in plan.roles.items():
        rid = role_id(role)
        for address in addresses:
            if not c.roles.has_role(rid, address):
                c.roles.grant_role(deployer, rid, address)
    for pod, device in plan.devices.items():
        pod32 = _key32(pod)
        if c.anchor.device_of(pod32) != to_checksum_address(device):
            c.anchor.register_device(deployer, pod32, device)
    for sensor_id, sensor in plan.sensors.items():
        sid = _key32(sensor_id)
        if c.roles.sensor_of(sid) != to_checksum_address(sensor):
            c.roles.register_sensor(deployer, sid, sensor)
    for address, target in plan.mint.items():
        have = c.token.balance_of(address)
        if have < target:
            c.token.mint(deployer, address, target - have)
    balances = dict.fromkeys(plan.all_accounts(), DEFAULT_FUND_WEI) if is_anvil(w3) else {}
    balances.update({to_checksum_address(k): v for k, v in plan.fund_wei.items()})
    fund(w3, deployer, balances)


def main(argv: list[str] | None = None) -> int:
    from node.devnet import connect
    from node.keys import load_account

    parser = argparse.ArgumentParser(description="deploy the flexledger contracts")
    parser.add_argument("--rpc", help="JSON-RPC endpoint (default: FLEX_RPC_URL)")
    parser.add_argument("--book", type=Path, required=True, help="address book JSON to write")
    parser.add_argument("--plan", type=Path, help="deploy plan JSON (roles, devices, …)")
    parser.add_argument("--key", default="dev:deployer", help="dev:NAME, keystore or 0x key")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    w3 = connect(args.rpc)
    plan = DeployPlan.from_dict(json.loads(args.plan.read_text())) if args.plan else None
    book = deploy(w3, load_account(args.key), plan, book_path=args.book)
    print(book.to_json(), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
