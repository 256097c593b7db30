"""``flexledger devnet``, ``flexledger deploy`` and the participants' read commands,
``flexledger chain status|session|awards|settlement|balance|anchor``."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

__all__ = ["chain_app", "deploy_command", "devnet_command"]

console = Console()
chain_app = typer.Typer(
    help="Read what the chain holds: sessions, awards, settlements, balances, anchors.",
    no_args_is_help=True,
)


def _fail(message: str) -> typer.Exit:
    Console(stderr=True).print(f"[red]error:[/red] {message}")
    return typer.Exit(2)


def _b32(text: str, what: str) -> bytes:
    try:
        raw = bytes.fromhex(text.removeprefix("0x"))
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise _fail(f"{what} must be 0x and 64 hex digits, got {text!r}")
    return raw


def _when(t_s: int) -> str:
    return datetime.fromtimestamp(t_s, tz=UTC).strftime("%Y-%m-%d %H:%M UTC") if t_s else "-"


def devnet_command(
    deploy: Annotated[
        bool, typer.Option(help="Deploy the contracts and dev roles at start.")
    ] = True,
    fresh: Annotated[bool, typer.Option(help="Start from an empty chain.")] = False,
) -> None:
    """Run the embedded anvil devnet until Ctrl-C; its state is kept in FLEX_HOME/chain/."""
    from flexledger.settings import ChainSettings, HomeSettings
    from flexledger.stack import dev_plan, open_chain
    from node.deploy import deploy as deploy_contracts
    from node.keys import dev_account

    if ChainSettings().rpc_url:
        raise _fail("FLEX_RPC_URL is set: that chain is already running elsewhere")
    with open_chain(HomeSettings().home, fresh=fresh) as chain:
        if deploy:
            deploy_contracts(
                chain.w3, dev_account("deployer"), dev_plan(), book_path=chain.book_path
            )
            console.print(f"contracts deployed; address book {chain.book_path}")
        console.print(f"devnet: [bold]{chain.rpc_url}[/bold] (chain id {chain.w3.eth.chain_id})")
        console.print(f"use it from another shell: export FLEX_RPC_URL={chain.rpc_url}")
        try:
            while chain.devnet is not None and chain.devnet.running:
                time.sleep(0.5)
        except KeyboardInterrupt:
            console.print("stopping; chain state kept")


def deploy_command(
    key: Annotated[str, typer.Option(help="Deployer key: dev:NAME, keystore file or 0x key.")] = (
        "dev:deployer"
    ),
    plan: Annotated[
        typer.FileText | None,
        typer.Option(help="Deploy plan JSON: roles, devices, sensors, mint, fund_wei."),
    ] = None,
    dev_roles: Annotated[
        bool, typer.Option(help="Grant the embedded default's dev keys their roles.")
    ] = True,
    scenario: Annotated[
        Path | None,
        typer.Option(
            help="With the dev roles: also bind the scenario's PODs to their Light Node keys "
            "(dev:ln:POD), register its sensors and fund its FR owners and Light Nodes (what "
            "the distributed mode needs).",
        ),
    ] = None,
) -> None:
    """Deploy the contracts (or re-use the deployment already on the chain) and grant roles.

    Against FLEX_RPC_URL if set, else the embedded devnet. Writes the address book that every
    component reads (FLEX_ADDRESS_BOOK, default FLEX_HOME/addresses.json).
    """
    from flexledger.settings import HomeSettings
    from flexledger.stack import dev_plan, open_chain
    from node.deploy import DeployPlan, deploy
    from node.keys import load_account

    try:
        deployer = load_account(key)
        the_plan = DeployPlan.from_dict(json.load(plan)) if plan else None
    except (ValueError, KeyError, json.JSONDecodeError) as exc:
        raise _fail(str(exc)) from exc
    if the_plan is None and dev_roles:
        if scenario is not None:
            from flexledger.stack import scenario_plan
            from sim import World

            the_plan = scenario_plan(World(scenario))
        else:
            the_plan = dev_plan()
    with open_chain(HomeSettings().home) as chain:
        book = deploy(chain.w3, deployer, the_plan, book_path=chain.book_path)
    table = Table("contract", "address", title=f"chain {book.chain_id}, block {book.deploy_block}")
    for name, address in sorted(book.addresses.items()):
        table.add_row(name, address)
    console.print(table)
    console.print(f"address book: {chain.book_path}")


@chain_app.command("status")
def status_command() -> None:
    """The chain, the deployment and its contracts."""
    from flexledger.settings import HomeSettings
    from flexledger.stack import open_chain

    with open_chain(HomeSettings().home) as chain:
        c = chain.contracts()
        table = Table("what", "value")
        table.add_row("RPC", chain.rpc_url)
        table.add_row("chain id", str(chain.w3.eth.chain_id))
        table.add_row("head block", str(chain.w3.eth.block_number))
        for name, client in (
            ("FlexRoles", c.roles),
            ("MeasurementAnchor", c.anchor),
            ("BaselineRegistry", c.baselines),
            ("FlexMarket", c.market),
            ("SettlementToken", c.token),
            ("Settlement", c.settlement),
        ):
            table.add_row(name, client.address)
        table.add_row("window length", f"{c.anchor.window_seconds()} s")
        table.add_row("token supply", f"{c.token.total_supply() / 100:,.2f} EUR")
        console.print(table)


@chain_app.command("session")
def session_command(
    session_id: Annotated[str, typer.Argument(help="Session id, e.g. DA-2026-11-29")],
) -> None:
    """A market session's state, roots and validation rounds."""
    from flexledger.settings import HomeSettings
    from flexledger.stack import open_chain
    from node.contracts import SessionState
    from node.ids import id32

    with open_chain(HomeSettings().home) as chain:
        market = chain.contracts().market
        s = market.session_of(id32(session_id))
        if s.state is SessionState.NONE:
            raise _fail(f"no session {session_id!r} on this chain")
        table = Table("field", "value", title=f"session {session_id}")
        table.add_row("kind", s.kind.name.lower())
        table.add_row("state", s.state.name.lower())
        table.add_row("delivery", f"{_when(s.delivery_start)} + {s.mtu_count} MTUs")
        table.add_row("order book root", "0x" + s.order_book_root.hex())
        table.add_row("offers / requests", f"{s.offer_count} / {s.request_count}")
        table.add_row("awards root", "0x" + s.awards_root.hex())
        table.add_row("awards", str(s.award_count))
        table.add_row("total cost", f"{s.total_cost_cents / 100:,.2f} EUR")
        table.add_row("gate closed at block", str(s.gate_closed_block or "-"))
        for r in range(1, s.validation_rounds + 1):
            v = market.validation_of(id32(session_id), r)
            if v is not None:
                table.add_row(
                    f"validation round {r}",
                    f"{v.approved_count} approved, {v.rejected_count} rejected by {v.dso}",
                )
        console.print(table)


@chain_app.command("awards")
def awards_command(
    session_id: Annotated[str, typer.Argument(help="Session id")],
    leaf: Annotated[str | None, typer.Option(help="An award hash (its leaf) to check.")] = None,
    proof: Annotated[
        str | None, typer.Option(help="Its inclusion proof: comma-separated 0x hashes.")
    ] = None,
) -> None:
    """The committed awards root of a session; with --leaf and --proof, check an award."""
    from flexledger.settings import HomeSettings
    from flexledger.stack import open_chain
    from node.ids import id32

    with open_chain(HomeSettings().home) as chain:
        market = chain.contracts().market
        s = market.session_of(id32(session_id))
        console.print(f"awards root 0x{s.awards_root.hex()} ({s.award_count} awards)")
        if leaf is not None:
            path = [_b32(p, "a proof hash") for p in (proof or "").split(",") if p]
            ok = market.verify_award(id32(session_id), _b32(leaf, "--leaf"), path)
            console.print(
                f"award {leaf}: " + ("[green]included[/green]" if ok else "[red]NOT included[/red]")
            )
            if not ok:
                raise typer.Exit(1)


@chain_app.command("settlement")
def settlement_command(
    award_hash: Annotated[str, typer.Argument(help="Award hash (0x…)")],
) -> None:
    """The settlement record of an award."""
    from flexledger.settings import HomeSettings
    from flexledger.stack import open_chain

    with open_chain(HomeSettings().home) as chain:
        info = chain.contracts().settlement.settlement_of(_b32(award_hash, "award hash"))
        if info is None:
            raise _fail(f"award {award_hash} is not settled on this chain")
        table = Table("field", "value", title=f"settlement of {award_hash[:18]}…")
        for name in ("baseline_wh", "measured_wh", "delivered_wh", "amount_cents", "claim_cents"):
            table.add_row(name, str(getattr(info, name)))
        table.add_row("payer → payee", f"{info.payer} → {info.payee}")
        table.add_row("measurement root", "0x" + info.measurement_root.hex())
        table.add_row("baseline root", "0x" + info.baseline_root.hex())
        table.add_row("settled at block", str(info.settled_block))
        console.print(table)


@chain_app.command("balance")
def balance_command(
    account: Annotated[str, typer.Argument(help="An address, or dev:NAME")],
) -> None:
    """Settlement-token balance of an account, and what it allowed the settlement contract."""
    from flexledger.settings import HomeSettings
    from flexledger.stack import open_chain
    from node.keys import dev_account

    address = dev_account(account[4:]).address if account.startswith("dev:") else account
    with open_chain(HomeSettings().home) as chain:
        c = chain.contracts()
        try:
            balance = c.token.balance_of(address)
            allowance = c.token.allowance(address, c.settlement.address)
        except ValueError as exc:
            raise _fail(f"{account!r} is not an address: {exc}") from exc
        console.print(
            f"{address}: {balance / 100:,.2f} EUR ({balance} cents); "
            f"allowance to Settlement {allowance / 100:,.2f} EUR"
        )


@chain_app.command("anchor")
def anchor_command(
    pod: Annotated[str, typer.Argument(help="POD code, e.g. IT001E00000001")],
    window_start: Annotated[int, typer.Argument(help="Window start, seconds since the epoch")],
    scd_url: Annotated[
        str,
        typer.Option(
            envvar="FLEX_SCD_URL",
            help="SCD API, asked which concentrator batch holds a window that is not anchored "
            "on its own (after the demo: served from its SQLite file).",
        ),
    ] = "http://127.0.0.1:8001",
) -> None:
    """The anchored root of a POD's measurement window, and the POD's Light Node key: anchored
    by its device, or in a concentrator's batch (the batch rebuilt from its manifest and
    checked against the batch root on chain)."""
    from flexledger.settings import HomeSettings
    from flexledger.stack import open_chain
    from node.ids import id32

    home = HomeSettings().home
    with open_chain(home) as chain:
        anchor = chain.contracts().anchor
        root = anchor.window_root(id32(pod), window_start)
        device = anchor.device_of(id32(pod))
        console.print(f"POD {pod}: Light Node key {device or '(none)'}")
        if root is not None:
            console.print(
                f"window {_when(window_start)}: root 0x{root.hex()} (anchored by its device)"
            )
            return
        found = _batched_window(chain, home, scd_url, pod, window_start)
        if found is None:
            console.print(f"window {_when(window_start)}: [yellow]not anchored[/yellow]")
            raise typer.Exit(1)
        console.print(f"window {_when(window_start)}: {found}")


def _batched_window(
    chain: Any, home: Path, scd_url: str, pod: str, window_start: int
) -> str | None:
    """Where a concentrator anchored a window, checked against the chain; None when no batch
    on chain holds it."""
    from eth_utils import to_checksum_address

    from audit.measurements import BatchBook
    from flexledger.messages.leaves import window_leaf_of
    from flexledger.stack.state import served_from_state
    from flexledger.transport import SyncSignedHttpClient
    from flexledger.transport.http import ServiceError, ServiceUnreachableError

    with (
        served_from_state(chain, home, scd=scd_url) as urls,
        SyncSignedHttpClient(urls.scd or scd_url, timeout_s=30) as scd,
    ):
        try:
            rows = scd.get(
                "/windows", {"pod": pod, "from_s": window_start, "to_s": window_start + 1}
            )
        except (ServiceError, ServiceUnreachableError) as exc:
            console.print(f"[yellow]the SCD at {scd_url} cannot say which batch holds it: {exc}[/]")
            return None
        w = next(
            (
                r
                for r in rows
                if r.get("anchor") == "concentrator" and r.get("batch_id") is not None
            ),
            None,
        )
        if w is None or w.get("manifest") is None:
            return None
        key = (to_checksum_address(w["concentrator"]), int(w["batch_id"]))
        leaves = BatchBook(chain.contracts(), scd, {}).leaves(key)
        m = w["manifest"]["message"]
        leaf = window_leaf_of(m)
        if isinstance(leaves, str):
            return f"[red]{leaves}[/red]"
        if leaf not in leaves:
            return (
                f"[red]the SCD names batch {key[1]} of {key[0]}, whose root on chain does not "
                "hold it[/red]"
            )
        return (
            f"root {m['root']} ({m['sample_count']} samples), in batch {key[1]} of concentrator "
            f"{key[0]} (tx {w.get('anchor_tx')}): the batch root on chain holds it"
        )
