"""``flexledger serve scd``: the Shared Customer Database (HTTP API, MQTT ingestion,
certification)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

__all__ = ["serve_scd_command"]

console = Console()


def serve_scd_command(
    host: Annotated[str, typer.Option(envvar="FLEX_SCD_HOST", help="Interface to listen on.")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(envvar="FLEX_SCD_PORT", help="TCP port.")] = 8001,
    ingest_workers: Annotated[
        int | None,
        typer.Option(
            envvar="FLEX_SCD_INGEST_WORKERS",
            min=1,
            help="Processes that take measurements from MQTT, verify and store them (default "
            "1: the SCD's own process). N > 1: N workers behind the MQTT shared subscription "
            "$share/scd/<root>/pod/+/measure; needs PostgreSQL (FLEX_DB_URL) and a broker with "
            "shared subscriptions (Mosquitto), else the SCD says so and uses its own process.",
        ),
    ] = None,
) -> None:
    """Run the SCD (FLEX_DB_URL, FLEX_MQTT_URL, FLEX_RPC_URL, FLEX_ADDRESS_BOOK, FLEX_HOME)."""
    import uvicorn

    from flexledger.settings import ChainSettings, HomeSettings
    from flexledger.stack import open_chain
    from node.addressbook import AddressBook
    from scd import ScdService, ScdSettings, create_app

    settings = ScdSettings()
    if ingest_workers is not None:
        settings.ingest_workers = ingest_workers
    if not settings.mqtt_url:
        console.print("[yellow]FLEX_MQTT_URL is not set: no MQTT ingestion, HTTP API only[/]")
    with open_chain(HomeSettings().home, chain=ChainSettings()) as chain:
        contracts = chain.contracts()
        book = AddressBook.load(chain.book_path)
        service = ScdService.from_settings(
            settings, contracts=contracts, from_block=book.deploy_block
        )
        app = create_app(service=service)
        console.print(f"SCD on http://{host}:{port} (chain {chain.rpc_url}, docs at /docs)")
        uvicorn.run(app, host=host, port=port, log_level="warning")
