"""``flexledger serve market`` and ``flexledger audit market``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from flexledger.cli.serving import ClockMqttOpt

__all__ = ["audit_market_command", "serve_market_command"]

console = Console()


def serve_market_command(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8002,
    areas: Annotated[
        Path | None, typer.Option(help="JSON {POD: area} file (also FLEX_AREAS_FILE).")
    ] = None,
    clock_mqtt: ClockMqttOpt = False,
) -> None:
    """Run the Market Platform API (FLEX_DB_URL, FLEX_RPC_URL, FLEX_MQTT_URL, FLEX_MQTT_ROOT,
    FLEX_MARKET_*)."""
    from flexledger.cli.serving import serve_app
    from flexledger.settings import ChainSettings, HomeSettings
    from flexledger.stack import open_chain
    from market.app import create_app
    from market.settings import MarketSettings

    settings = MarketSettings()
    if areas is not None:
        settings = settings.model_copy(update={"areas_file": areas})
    with open_chain(HomeSettings().home, chain=ChainSettings()) as chain:
        contracts = chain.contracts()
        console.print(f"market on http://{host}:{port} (chain {chain.rpc_url})")
        serve_app(
            lambda clock: create_app(settings, contracts=contracts, clock=clock),
            name="market",
            host=host,
            port=port,
            clock_mqtt=clock_mqtt,
            mqtt_url=settings.mqtt_url,
            topic_root=settings.mqtt_root,
        )


def audit_market_command(
    session: Annotated[str, typer.Option(help="The session id to audit.")],
    market_url: Annotated[
        str, typer.Option(envvar="FLEX_MARKET_URL", help="Base URL of the market API.")
    ] = "http://127.0.0.1:8002",
    as_json: Annotated[bool, typer.Option("--json", help="Print the findings as JSON.")] = False,
) -> None:
    """Check a session's clearing through the market API against the chain; exit 1 on failure."""
    import httpx

    from audit.market import audit_market_session
    from flexledger.settings import ChainSettings, HomeSettings
    from flexledger.stack import open_chain
    from flexledger.stack.state import served_from_state

    home = HomeSettings().home
    with (
        open_chain(home, chain=ChainSettings()) as chain,
        served_from_state(chain, home, market=market_url) as urls,
        httpx.Client(base_url=urls.market or market_url, timeout=30) as http,
    ):
        report = audit_market_session(http, chain.contracts(), session)
    if as_json:
        print(
            json.dumps(
                {
                    "session": session,
                    "ok": report.ok,
                    "findings": [f.__dict__ for f in report.findings],
                }
            )
        )
    else:
        table = Table(title=f"audit of market session {session}")
        table.add_column("check")
        table.add_column("result")
        table.add_column("detail", overflow="fold")
        for f in report.findings:
            table.add_row(f.check, "[green]ok[/]" if f.ok else "[red]FAIL[/]", f.detail)
        console.print(table)
    if not report.ok:
        raise typer.Exit(1)
