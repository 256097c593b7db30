"""The ``flexledger`` command (floor 4): wires the packages together; nothing imports it.

Heavy imports happen inside the commands so that ``flexledger --help`` stays fast.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler

from flexledger.cli.aggregator import (
    audit_settlement_command,
    baseline_app,
    serve_aggregator_command,
    settlement_app,
)
from flexledger.cli.audit import audit_measurements_command, audit_proof_command
from flexledger.cli.chain import chain_app, deploy_command, devnet_command
from flexledger.cli.dashboard import serve_audit_command, serve_dashboard_command
from flexledger.cli.day import day_app
from flexledger.cli.demo import demo_command
from flexledger.cli.dso import dso_app, serve_dso_command
from flexledger.cli.lightnode import concentrator_app, lightnode_app
from flexledger.cli.market import audit_market_command, serve_market_command
from flexledger.cli.scd import serve_scd_command
from flexledger.cli.sim import scenario_app, sim_app
from flexledger.settings import HomeSettings

__all__ = ["app", "audit_app", "main", "serve_app"]

app = typer.Typer(
    name="flexledger",
    help="A local flexibility market settled from measurements certified on an Ethereum ledger.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()


@app.callback()
def _root(
    home: Annotated[
        Path | None,
        typer.Option(envvar="FLEX_HOME", help="State folder of the embedded default."),
    ] = None,
    log_level: Annotated[
        str, typer.Option(envvar="FLEX_LOG_LEVEL", help="Logging level: DEBUG, INFO, WARNING.")
    ] = "WARNING",
) -> None:
    logging.basicConfig(
        level=log_level.upper(),
        format="%(message)s",
        handlers=[RichHandler(console=Console(stderr=True), show_path=False)],
    )
    if home is not None:
        import os

        os.environ["FLEX_HOME"] = str(home)
    _install_task_dump()


def _install_task_dump() -> None:
    """``kill -USR1 <pid>`` prints every asyncio task of a running command and where it
    waits (on stderr): what a stuck demo or service is waiting for, without stopping it."""
    import asyncio
    import signal
    import sys
    import threading

    def dump(_sig: int, _frame: object) -> None:
        loop = asyncio._get_running_loop()
        if loop is None:
            print("no asyncio loop is running", file=sys.stderr)
            return
        tasks = asyncio.all_tasks(loop)
        print(f"--- {len(tasks)} asyncio tasks ---", file=sys.stderr)
        for task in tasks:
            print(f"{task.get_name()}: {task.get_coro()!r}", file=sys.stderr)
            task.print_stack(limit=8, file=sys.stderr)

    # only the main thread may set a handler (a test may invoke the CLI from another)
    if hasattr(signal, "SIGUSR1") and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGUSR1, dump)


@app.command("version")
def version_command() -> None:
    """Print the flexledger version."""
    from importlib.metadata import version

    console.print(f"flexledger {version('flexledger')}")


@app.command("keys")
def keys_command(
    name: Annotated[str, typer.Argument(help="Dev key name, e.g. dso, market, ln:IT001E00000001")],
    keystore: Annotated[
        Path | None, typer.Option(help="Also write it as an encrypted keystore to this file.")
    ] = None,
) -> None:
    """Show the address of a deterministic dev key (devnets only: anyone can derive it)."""
    import os

    from node.keys import dev_account, save_keystore

    account = dev_account(name)
    console.print(f"{name}: {account.address}")
    if keystore is not None:
        save_keystore(account, keystore, os.environ.get("FLEX_KEY_PASSWORD", ""))
        console.print(f"keystore written to {keystore}")


app.command("devnet")(devnet_command)
app.command("deploy")(deploy_command)
app.add_typer(chain_app, name="chain")
app.command("demo")(demo_command)
app.add_typer(day_app, name="day")
app.add_typer(lightnode_app, name="lightnode")
app.add_typer(concentrator_app, name="concentrator")

#: ``flexledger serve <service>``: each actor's service registers its command here.
serve_app = typer.Typer(help="Run one actor's service (distributed mode).", no_args_is_help=True)
serve_app.command("market")(serve_market_command)
serve_app.command("aggregator")(serve_aggregator_command)
serve_app.command("scd")(serve_scd_command)
serve_app.command("dso")(serve_dso_command)
serve_app.command("dashboard")(serve_dashboard_command)
serve_app.command("audit")(serve_audit_command)
app.add_typer(serve_app, name="serve")
app.add_typer(dso_app, name="dso")
app.add_typer(scenario_app, name="scenario")
app.add_typer(sim_app, name="sim")

#: ``flexledger audit <what>``: each audit registers its command here.
audit_app = typer.Typer(
    help="Re-derive what the platform reports, from its public APIs and the chain.",
    no_args_is_help=True,
)
audit_app.command("market")(audit_market_command)
audit_app.command("settlement")(audit_settlement_command)
audit_app.command("measurements")(audit_measurements_command)
audit_app.command("proof")(audit_proof_command)
app.add_typer(audit_app, name="audit")
app.add_typer(baseline_app, name="baseline")
app.add_typer(settlement_app, name="settlement")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


def home_dir() -> Path:
    return HomeSettings().home
