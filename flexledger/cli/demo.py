"""``flexledger demo``: the whole market day of a shipped scenario on the embedded default.

Brings up ``flexledger.stack.services.EmbeddedStack`` (anvil devnet and contracts, MQTT broker,
SCD, market, DSO TP and aggregators on loopback, a concentrator and one Light Node per POD,
the simulated world), runs ``flexledger.stack.day.run_day`` with progress bars, writes
``$FLEX_HOME/report/index.html`` and ``summary.json``, prints a summary table and exits 1 when
any audit fails.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

__all__ = ["demo_command"]

console = Console()


async def _run(
    scenario: Path, home: Path, serve: bool = False
) -> tuple[Any, list[dict[str, Any]], float, float]:
    from flexledger.stack.audits import record_day_audits
    from flexledger.stack.services import EmbeddedStack

    t0 = time.perf_counter()
    with stage_progress() as progress:
        setup = progress.add_task("set-up", total=1)
        async with EmbeddedStack(scenario, home) as stack:
            if serve:
                from flexledger.dashboard import DashboardAuth

                url = await stack.start_dashboard(auth=DashboardAuth.from_env())
                console.print(f"[bold]dashboard:[/bold] {url}")
            progress.update(setup, completed=1)
            setup_s = time.perf_counter() - t0
            result, offers, day_s = await day_with_progress(stack, progress)
            if serve:
                # the services and the dashboard stay up: report now, then wait for Ctrl-C
                record_day_audits(stack.audit_store, result)
                progress.stop()
                summary = _finish(result, offers, day_s, setup_s, home)
                console.print(
                    f"[bold]dashboard:[/bold] {stack.urls.dashboard} — up until Ctrl-C"
                    + ("" if summary["audits"]["all_ok"] else " (an audit failed)")
                )
                await asyncio.Event().wait()  # Ctrl-C cancels this and closes the stack
    return result, offers, day_s, setup_s


def stage_progress() -> Progress:
    """The demo's progress display: a bar per stage with its count and elapsed time."""
    return Progress(
        TextColumn("{task.description:<14}"),
        BarColumn(),
        TextColumn("{task.completed:>6.0f}/{task.total:<6.0f}"),
        TimeElapsedColumn(),
        console=console,
    )


async def day_with_progress(
    stack: Any, progress: Progress
) -> tuple[Any, list[dict[str, Any]], float]:
    """Run the day on ``stack`` with a bar per stage; the result, the day-ahead offers and the
    day's seconds."""
    from flexledger.stack.day import run_day

    tasks: dict[str, Any] = {}

    def report(stage: str, done: float, total: float) -> None:
        if stage not in tasks:
            tasks[stage] = progress.add_task(stage, total=max(total, 1))
        progress.update(tasks[stage], completed=done, total=max(total, 1))

    t1 = time.perf_counter()
    result = await run_day(stack, report)
    day_s = time.perf_counter() - t1
    return result, await _offers(stack), day_s


async def _offers(stack: Any) -> list[dict[str, Any]]:
    """The day-ahead offers as the market publishes them, for the merit order."""
    import httpx

    async with httpx.AsyncClient(base_url=stack.urls.market, timeout=60) as http:
        r = await http.get("/offers", params={"session": "DA"})
        if r.status_code != 200:
            return []
        out = []
        for o in r.json():
            m = o.get("message", o.get("offer", o))
            if isinstance(m, dict) and "message" in m:
                m = m["message"]
            try:
                out.append(
                    {
                        "direction": str(m["direction"]),
                        "max_kw": int(m["max_w"]) / 1000,
                        "price_eur_per_mwh": int(m["price_cents_per_mwh"]) / 100,
                    }
                )
            except (KeyError, TypeError, ValueError):
                continue
        return out


def _quiet_actors() -> None:
    """The actors log every window and request at INFO: thousands of lines over a day. The
    demo shows progress bars instead, and their warnings (``FLEX_LOG_LEVEL=DEBUG`` keeps all)."""
    import logging
    import os

    if os.environ.get("FLEX_LOG_LEVEL", "INFO").upper() == "DEBUG":
        return
    for name in (
        "lightnode", "scd", "market", "aggregator", "dso", "sim", "audit", "node", "amqtt",
        "alembic", "flexledger", "pandapower", "uvicorn", "httpx",
    ):  # fmt: skip
        logging.getLogger(name).setLevel(logging.WARNING)


def shipped_scenario(path: Path) -> Path:
    """``path`` as given when it exists, else the same relative path in the checkout this
    package runs from (``scenarios/…`` works from any folder); a clear error otherwise."""
    if path.is_file():
        return path
    if not path.is_absolute():
        shipped = Path(__file__).resolve().parents[2] / path
        if shipped.is_file():
            return shipped
    raise typer.BadParameter(
        f"no scenario file {path} (nor in the checkout's scenarios/: "
        "try scenarios/default.toml or scenarios/small.toml)",
        param_hint="--scenario",
    )


def demo_command(
    scenario: Annotated[
        Path, typer.Option(help="Scenario TOML (scenarios/small.toml: ten PODs).")
    ] = Path("scenarios/default.toml"),
    serve: Annotated[
        bool,
        typer.Option(
            "--serve",
            help="Serve the operator dashboard from the start of the day (its URL is printed) "
            "and keep it and the services up after the day until Ctrl-C.",
        ),
    ] = False,
) -> None:
    """Run a whole market day of a scenario on the embedded default; write the report."""
    from flexledger.settings import HomeSettings

    home = HomeSettings().home
    scenario = shipped_scenario(scenario)
    _quiet_actors()
    console.rule(f"[bold]flexledger demo[/bold] — one market day of {scenario}")
    try:
        result, offers, day_s, setup_s = asyncio.run(_run(scenario, home, serve))
    except KeyboardInterrupt:
        console.print("stopped")
        return
    summary = _finish(result, offers, day_s, setup_s, home)
    if not summary["audits"]["all_ok"]:
        raise typer.Exit(1)


def _finish(
    result: Any,
    offers: list[dict[str, Any]],
    day_s: float,
    setup_s: float,
    home: Path,
    where: str = "",
) -> dict[str, Any]:
    """Write the report and print the summary tables; the summary. ``where``: how the actors
    ran, for the title (``flexledger day run``)."""
    from flexledger.report import write_report

    summary = write_report(result, home / "report", offers=offers, total_s=day_s, setup_s=setup_s)
    pods = f"{summary['pods']} PODs" + (f", {where}" if where else "")
    table = Table(title=f"market day of {summary['scenario']} ({pods})")
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
    timings = Table(title="stage timings (s)")
    timings.add_column("stage")
    timings.add_column("s", justify="right")
    for k, v in summary["timings_s"].items():
        timings.add_row(k, f"{v:.1f}")
    timings.add_row("set-up (not counted)", f"{setup_s:.1f}")
    console.print(timings)
    a = summary["audits"]
    console.print(
        f"windows {summary['windows']}; audits: measurements "
        f"{'ok' if a['measurements'] else 'FAIL'}, market {'ok' if a['market'] else 'FAIL'}, "
        f"settlement {'ok' if a['settlement'] else 'FAIL'}"
    )
    console.print(f"report: {home / 'report' / 'index.html'} and summary.json")
    return summary
