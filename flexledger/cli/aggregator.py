"""``flexledger serve aggregator``, ``flexledger baseline report``, ``flexledger audit
settlement`` and the payer's ``flexledger settlement approve``."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from flexledger.cli.serving import ClockMqttOpt

__all__ = [
    "audit_settlement_command",
    "baseline_app",
    "serve_aggregator_command",
    "settlement_app",
]

console = Console()

MarketUrl = Annotated[
    str, typer.Option(envvar="FLEX_MARKET_URL", help="Base URL of the market API.")
]
ScdUrl = Annotated[str, typer.Option(envvar="FLEX_SCD_URL", help="Base URL of the SCD API.")]

baseline_app = typer.Typer(help="Baseline methods and how good they are.", no_args_is_help=True)
settlement_app = typer.Typer(help="Settlement helpers of the payers.", no_args_is_help=True)


def serve_aggregator_command(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8004,
    portfolio: Annotated[
        Path | None,
        typer.Option(
            envvar="FLEX_AGGREGATOR_PORTFOLIO",
            help="Scenario TOML (this aggregator's PODs) or portfolio JSON.",
        ),
    ] = None,
    key: Annotated[
        str | None, typer.Option(envvar="FLEX_AGGREGATOR_KEY", help="The aggregator's key.")
    ] = None,
    follow: Annotated[
        bool,
        typer.Option(
            help="Offer, plan and pay on its own as the market moves (woken by the market's "
            "MQTT session events when FLEX_MQTT_URL is set)."
        ),
    ] = False,
    clock_mqtt: ClockMqttOpt = False,
) -> None:
    """Run the Aggregator Platform API (FLEX_DB_URL, FLEX_RPC_URL, FLEX_MARKET_URL,
    FLEX_SCD_URL, FLEX_MQTT_URL, FLEX_TOPIC_ROOT, FLEX_AGGREGATOR_*)."""
    from aggregator import AggregatorSettings, create_app
    from flexledger.cli.serving import serve_app
    from flexledger.settings import ChainSettings, HomeSettings
    from flexledger.stack import open_chain

    update: dict[str, Any] = {}
    if portfolio is not None:
        update["aggregator_portfolio"] = portfolio
    if key is not None:
        update["aggregator_key"] = key
    if follow:
        update["aggregator_follow"] = True
    settings = AggregatorSettings().model_copy(update=update)
    with open_chain(HomeSettings().home, chain=ChainSettings()) as chain:
        contracts = chain.contracts()
        console.print(f"aggregator on http://{host}:{port} (chain {chain.rpc_url})")
        serve_app(
            lambda clock: create_app(settings, contracts=contracts, clock=clock),
            name="aggregator",
            host=host,
            port=port,
            clock_mqtt=clock_mqtt,
            mqtt_url=settings.mqtt_url,
            topic_root=settings.topic_root,
        )


def _findings_table(title: str, findings: list[Any]) -> Table:
    table = Table(title=title)
    table.add_column("check")
    table.add_column("result")
    table.add_column("detail", overflow="fold")
    for f in findings:
        table.add_row(f.check, "[green]ok[/]" if f.ok else "[red]FAIL[/]", f.detail)
    return table


def audit_settlement_command(
    session: Annotated[str, typer.Option(help="The session id to audit.")],
    market_url: MarketUrl = "http://127.0.0.1:8002",
    scd_url: ScdUrl = "http://127.0.0.1:8001",
    from_block: Annotated[int, typer.Option(help="First block to read events from.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the findings as JSON.")] = False,
    all_checks: Annotated[bool, typer.Option("--all", help="Show passed checks too.")] = False,
) -> None:
    """Re-derive a session's settlement from the SCD, the market and the chain; exit 1 on any
    difference."""
    from audit.settlement import audit_settlement
    from flexledger.settings import ChainSettings, HomeSettings
    from flexledger.stack import open_chain
    from flexledger.stack.state import served_from_state
    from flexledger.transport.http import SyncSignedHttpClient

    home = HomeSettings().home
    with (
        open_chain(home, chain=ChainSettings()) as chain,
        served_from_state(chain, home, scd=scd_url, market=market_url) as urls,
        SyncSignedHttpClient(urls.market or market_url, timeout_s=60) as market,
        SyncSignedHttpClient(urls.scd or scd_url, timeout_s=60) as scd,
    ):
        report = audit_settlement(market, scd, chain.contracts(), session, from_block=from_block)
    if as_json:
        print(
            json.dumps(
                {
                    "session": session,
                    "ok": report.ok,
                    "findings": [f.__dict__ for f in report.findings],
                    "recomputed": report.recomputed,
                }
            )
        )
    else:
        shown = report.findings if all_checks else report.failures()
        console.print(_findings_table(f"audit of the settlement of {session}", shown))
        console.print(
            f"{len(report.findings)} checks, {len(report.failures())} failed"
            + (" — [green]settlement holds[/]" if report.ok else "")
        )
    if not report.ok:
        raise typer.Exit(1)


@baseline_app.command("report")
def baseline_report_command(
    first_day: Annotated[date, typer.Option(help="First day evaluated (UTC), YYYY-MM-DD.")],
    days: Annotated[int, typer.Option(min=1, max=366, help="Days evaluated.")] = 14,
    pod: Annotated[
        list[str] | None, typer.Option(help="PODs evaluated (repeat; default: every POD).")
    ] = None,
    method: Annotated[
        list[str] | None,
        typer.Option(help="Methods (repeat): brp, high_X_of_Y, meter_before_after."),
    ] = None,
    scd_url: ScdUrl = "http://127.0.0.1:8001",
    market_url: Annotated[
        str | None,
        typer.Option(envvar="FLEX_MARKET_URL", help="Market API (days with activation)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Each baseline method's bias and CV(RMSE) on days without activation, from the SCD."""
    from audit.baselines import DEFAULT_METHODS, baseline_report
    from flexledger.time import day_start_s
    from flexledger.transport.http import SyncSignedHttpClient

    with SyncSignedHttpClient(scd_url, timeout_s=60) as scd:
        market = SyncSignedHttpClient(market_url, timeout_s=60) if market_url else None
        try:
            pods = pod or [p["pod"] for p in scd.get("/pods", {"limit": 10_000})]
            report = baseline_report(
                scd,
                pods=pods,
                first_day_s=day_start_s(first_day),
                days=days,
                market=market,
                methods=method or DEFAULT_METHODS,
            )
        finally:
            if market is not None:
                market.close()
    if as_json:
        print(json.dumps(report.as_dict()))
        return
    table = Table(title=f"baselines on {len(report.pods)} PODs, {days} days from {first_day}")
    for col in ("method", "MTUs", "bias %", "CV(RMSE) %", "mean error Wh"):
        table.add_column(col, justify="right" if col != "method" else "left")
    for score in report.scores.values():
        d = score.as_dict()
        table.add_row(
            d["method"],
            str(d["mtus"]),
            "—" if d["bias_pct"] is None else f"{d['bias_pct']:+.2f}",
            "—" if d["cv_rmse_pct"] is None else f"{d['cv_rmse_pct']:.2f}",
            "—" if d["mean_error_wh"] is None else f"{d['mean_error_wh']:+.1f}",
        )
    console.print(table)
    if report.skipped:
        console.print(f"POD-days left out (activation or missing measures): {report.skipped}")


@settlement_app.command("approve")
def settlement_approve_command(
    amount_cents: Annotated[int, typer.Argument(min=0, help="Allowance to set, euro cents.")],
    key: Annotated[
        str, typer.Option(envvar="FLEX_PAYER_KEY", help="The payer's key (DSO or TSO).")
    ] = "dev:dso",
) -> None:
    """Let the Settlement contract move up to AMOUNT_CENTS of the payer's settlement tokens
    (what the DSO or TSO does before the market settles its awards, I-16)."""
    from flexledger.settings import ChainSettings, HomeSettings
    from flexledger.stack import open_chain
    from node.keys import load_account

    payer = load_account(key)
    with open_chain(HomeSettings().home, chain=ChainSettings()) as chain:
        c = chain.contracts()
        c.token.approve(payer, c.settlement.address, amount_cents)
        console.print(
            f"{payer.address} lets Settlement {c.settlement.address} move "
            f"{c.token.allowance(payer.address, c.settlement.address)} cents "
            f"(balance {c.token.balance_of(payer.address)})"
        )
