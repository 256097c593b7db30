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

__all__ = ["day_app"]

console = Console()
day_app = typer.Typer(help="One market day of a scenario.", no_args_is_help=True)


async def _run(
    scenario: Path, home: Path, distributed: bool, keep_database: bool, attach: Path | None
) -> tuple[Any, list[dict[str, Any]], float, float, str]:
    from flexledger.cli.demo import day_with_progress, stage_progress
    from flexledger.stack.distributed import DistributedStack
    from flexledger.stack.services import EmbeddedStack

    t0 = time.perf_counter()
    with stage_progress() as progress:
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
                else (f"attached to {attach}" if attach is not None else "embedded")
            )
            result, offers, day_s = await day_with_progress(stack, progress)
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
    from flexledger.cli.demo import _finish, _quiet_actors
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
    summary = _finish(result, offers, day_s, setup_s, home, where)
    if not summary["audits"]["all_ok"]:
        raise typer.Exit(1)
