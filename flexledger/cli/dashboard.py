"""``flexledger serve dashboard`` (the operator dashboard over running services) and
``flexledger serve audit`` (the auditor's verdicts, ``GET /audits``), distributed mode."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

__all__ = ["serve_audit_command", "serve_dashboard_command"]

console = Console()


def _aggregators(values: list[str]) -> dict[str, str]:
    """``NAME=URL`` (or a bare URL, named ``aggregator:N``) per aggregator."""
    out: dict[str, str] = {}
    for i, v in enumerate(x for item in values for x in item.split(",") if x.strip()):
        name, sep, url = v.strip().partition("=")
        if not sep:
            name, url = f"aggregator:{i + 1}", v.strip()
        out[name] = url
    return out


def serve_dashboard_command(
    market_url: Annotated[
        str, typer.Option(envvar="FLEX_MARKET_URL", help="Market API base URL.")
    ] = "http://127.0.0.1:8002",
    scd_url: Annotated[
        str, typer.Option(envvar="FLEX_SCD_URL", help="SCD API base URL.")
    ] = "http://127.0.0.1:8001",
    dso_url: Annotated[
        str | None, typer.Option(envvar="FLEX_DSO_URL", help="DSO TP API base URL.")
    ] = "http://127.0.0.1:8003",
    aggregator_url: Annotated[
        list[str] | None,
        typer.Option(
            envvar="FLEX_AGGREGATOR_URLS",
            help="An aggregator's API as NAME=URL (repeat, or comma-separated).",
        ),
    ] = None,
    audit_url: Annotated[
        str | None, typer.Option(envvar="FLEX_AUDIT_URL", help="Auditor API (serve audit).")
    ] = "http://127.0.0.1:8005",
    rpc_url: Annotated[
        str, typer.Option(envvar="FLEX_RPC_URL", help="The chain's JSON-RPC URL.")
    ] = "http://127.0.0.1:8545",
    browser_rpc_url: Annotated[
        str | None,
        typer.Option(
            envvar="FLEX_DASHBOARD_BROWSER_RPC_URL",
            help="JSON-RPC URL the browser calls for proof checks (default: --rpc-url).",
        ),
    ] = None,
    mqtt_url: Annotated[
        str | None, typer.Option(envvar="FLEX_MQTT_URL", help="MQTT broker (unused: it polls).")
    ] = None,
    anchor_address: Annotated[
        str | None,
        typer.Option(help="MeasurementAnchor address (default: from the address book)."),
    ] = None,
    host: Annotated[
        str, typer.Option(envvar="FLEX_DASHBOARD_HOST", help="Interface to listen on.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="FLEX_DASHBOARD_PORT", help="TCP port.")] = 8080,
) -> None:
    """Run the operator dashboard over running services (read-only; FLEX_DASHBOARD_AUTH:
    bearer tokens with roles, see README "Dashboard")."""
    import uvicorn

    from flexledger.dashboard import DashboardAuth, DashboardConfig, create_app
    from flexledger.settings import ChainSettings, HomeSettings
    from flexledger.stack import address_book_path
    from node.addressbook import AddressBook

    if anchor_address is None:
        book = address_book_path(HomeSettings().home, ChainSettings())
        if not book.is_file():
            raise typer.BadParameter(f"no address book at {book}: give --anchor-address")
        anchor_address = AddressBook.load(book).address("MeasurementAnchor")
    config = DashboardConfig(
        market_url=market_url,
        scd_url=scd_url,
        rpc_url=rpc_url,
        dso_url=dso_url or None,
        aggregator_urls=_aggregators(aggregator_url or []),
        audit_url=audit_url or None,
        mqtt_url=mqtt_url,
        anchor_address=anchor_address,
        browser_rpc_url=browser_rpc_url,
    )
    auth = DashboardAuth.from_env()
    app = create_app(config, auth=auth)
    login = f"{len(auth.tokens)} tokens" if auth else "no login (FLEX_DASHBOARD_AUTH unset)"
    console.print(f"dashboard on http://{host}:{port} — {login}")
    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=3)


def serve_audit_command(
    store: Annotated[
        Path | None,
        typer.Option(help="Verdicts JSON (default: $FLEX_HOME/audit/audits.json)."),
    ] = None,
    host: Annotated[
        str, typer.Option(envvar="FLEX_AUDIT_HOST", help="Interface to listen on.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="FLEX_AUDIT_PORT", help="TCP port.")] = 8005,
) -> None:
    """Serve the auditor's latest verdicts (GET /audits), read-only."""
    import uvicorn

    from audit.app import AuditStore, create_app
    from flexledger.settings import HomeSettings

    path = store or HomeSettings().home / "audit" / "audits.json"
    console.print(f"auditor on http://{host}:{port} (verdicts in {path})")
    uvicorn.run(create_app(AuditStore(path)), host=host, port=port, log_level="warning")
