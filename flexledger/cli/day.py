"""``flexledger day run [--distributed]``: one market day of a scenario, its actors in this
process (the embedded default, as ``flexledger demo``) or each in a process of its own
(``flexledger.stack.distributed``), driven by ``flexledger.stack.day.run_day`` through their
public APIs; writes ``$FLEX_HOME/report`` and exits 1 when an audit fails."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

__all__ = ["day_app"]

console = Console()
day_app = typer.Typer(help="One market day of a scenario.", no_args_is_help=True)


async def _run(
    scenario: Path, home: Path, distributed: bool, keep_database: bool, attach: Path | None
) -> tuple[Any, list[dict[str, Any]], float, float, str]:
    from flexledger.cli.demo import _offers
    from flexledger.stack.day import run_day
    from flexledger.stack.distributed import DistributedStack
    from flexledger.stack.services import EmbeddedStack

    t0 = time.perf_counter()
    with Progress(
        TextColumn("{task.description:<14}"),
        BarColumn(),
        TextColumn("{task.completed:>6.0f}/{task.total:<6.0f}"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        setup = progress.add_task("set-up", total=1)
        stack: Any = (
            DistributedStack(scenario, home, drop_database=not keep_database, attach=attach)
            if distributed or attach is not None
            else EmbeddedStack(scenario, home)
        )
        async with stack:
            progress.update(setup, completed=1)
            setup_s = time.perf_counter() - t0
            where = (
                f"processes logging to {home / 'logs'}"
                + (f", database {stack.database}" if stack.database else "")
                if distributed and attach is None
                else (f"attached to {attach}" if attach is not None else "one process")
            )
            tasks: dict[str, Any] = {}

            def report(stage: str, done: float, total: float) -> None:
                if stage not in tasks:
                    tasks[stage] = progress.add_task(stage, total=max(total, 1))
                progress.update(tasks[stage], completed=done, total=max(total, 1))

            t1 = time.perf_counter()
            result = await run_day(stack, report)
            day_s = time.perf_counter() - t1
            offers = await _offers(stack)
    return result, offers, day_s, setup_s, where


@day_app.command("run")
def day_run_command(
    scenario: Annotated[
        Path, typer.Option(help="Scenario TOML (scenarios/small.toml: ten PODs).")
    ] = Path("scenarios/small.toml"),
    distributed: Annotated[
        bool,
        typer.Option(
            "--distributed",
            help="Every actor its own process, started from the CLI's commands (serve "
            "scd|market|dso|aggregator, sim serve, concentrator run, lightnode run), on "
            "FLEX_RPC_URL, FLEX_DB_URL (PostgreSQL: a database of the run's own in its cluster) "
            "and FLEX_MQTT_URL when set; logs in FLEX_HOME/logs.",
        ),
    ] = False,
    keep_database: Annotated[
        bool,
        typer.Option(help="--distributed on PostgreSQL: keep the run's database afterwards."),
    ] = True,
    attach: Annotated[
        Path | None,
        typer.Option(
            help="Drive actors already running (started by hand, README 'Distributed mode'): a "
            "JSON file {topic_root, scd, market, dso, aggregators: {name: url}}; the chain and "
            "broker are FLEX_RPC_URL and FLEX_MQTT_URL. A --distributed run writes one in "
            "FLEX_HOME/services.json.",
        ),
    ] = None,
) -> None:
    """Run a whole market day of a scenario, embedded or distributed; write the report."""
    from flexledger.cli.demo import _quiet_actors
    from flexledger.report import write_report
    from flexledger.settings import HomeSettings

    home = HomeSettings().home.resolve()
    _quiet_actors()
    mode = "distributed" if distributed or attach is not None else "embedded"
    console.rule(f"[bold]flexledger day run[/bold] — one market day of {scenario} ({mode})")
    try:
        result, offers, day_s, setup_s, where = asyncio.run(
            _run(scenario, home, distributed, keep_database, attach)
        )
    except KeyboardInterrupt:
        console.print("stopped")
        raise typer.Exit(130) from None
    summary = write_report(result, home / "report", offers=offers, total_s=day_s, setup_s=setup_s)
    table = Table(title=f"market day of {summary['scenario']} ({summary['pods']} PODs, {where})")
    for col in ("session", "awards", "orders", "settled", "delivered kWh", "paid EUR", "audits"):
        table.add_column(col)
    for s in summary["sessions"]:
        audits = [s["audit_market_ok"], s["audit_settlement_ok"]]
        table.add_row(
            s["session"],
            str(s["awards"]),
            str(s["orders"]),
            str(s["settled_awards"]),
            f"{s['delivered_wh'] / 1000:.1f}",
            f"{s['paid_cents'] / 100:.2f}",
            " ".join("-" if a is None else ("ok" if a else "FAIL") for a in audits),
        )
    console.print(table)
    timings = ", ".join(f"{k} {v:.0f}" for k, v in summary["timings_s"].items())
    console.print(f"stage timings (s): {timings}; set-up {setup_s:.0f}")
    a = summary["audits"]
    console.print(
        f"windows {summary['windows']}; audits: measurements "
        f"{'ok' if a['measurements'] else 'FAIL'}, market {'ok' if a['market'] else 'FAIL'}, "
        f"settlement {'ok' if a['settlement'] else 'FAIL'}"
    )
    console.print(f"report: {home / 'report' / 'index.html'} and summary.json")
    if not a["all_ok"]:
        raise typer.Exit(1)
