"""The devnet manages itself, keeps its chain across restarts, and deploy re-uses it."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.addressbook import AddressBook
from node.contracts import FlexContracts
from node.deploy import DeployPlan, deploy, reuse_book
from node.devnet import CHAIN_ID, Devnet, DevnetError, connect
from node.ids import id32
from node.keys import dev_account


def test_restart_keeps_the_chain_and_deploy_reuses_it(tmp_path: Path) -> None:
    state, book_path = tmp_path / "chain.json", tmp_path / "addresses.json"
    deployer, device = dev_account("deployer"), dev_account("ln:IT001E00000009")
    plan = DeployPlan(devices={"IT001E00000009": device.address})
    with Devnet(state_path=state) as devnet:
        w3 = devnet.web3()
        assert w3.eth.chain_id == CHAIN_ID
        book = deploy(w3, deployer, plan, book_path=book_path)
        FlexContracts.from_address_book(w3, book).anchor.anchor(
            device, id32("IT001E00000009"), 900, b"\x01" * 32, 1)
        pid = devnet.pid
    assert pid is not None and state.is_file()
    assert not devnet.running
    with Devnet(state_path=state) as devnet:
        w3 = devnet.web3()
        height = w3.eth.block_number
        again = deploy(w3, deployer, plan, book_path=book_path)
        assert again == book == AddressBook.load(book_path)
        assert w3.eth.block_number == height  # nothing deployed, nothing granted
        c = FlexContracts.from_address_book(w3, again)
        assert c.anchor.window_root(id32("IT001E00000009"), 900) == b"\x01" * 32
    # a fresh chain (no state): the book is stale, deploy starts over
    with Devnet() as devnet:
        w3 = devnet.web3()
        assert reuse_book(w3, book_path) is None
        fresh = deploy(w3, deployer, plan, book_path=book_path)
        assert FlexContracts.from_address_book(w3, fresh).anchor.device_of(
            id32("IT001E00000009")) == device.address


def test_connect_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    with Devnet() as devnet:
        monkeypatch.setenv("FLEX_RPC_URL", devnet.rpc_url)
        assert connect().eth.chain_id == CHAIN_ID
    monkeypatch.delenv("FLEX_RPC_URL")
    with pytest.raises(DevnetError):
        connect()
