"""``flexledger dso assess`` and ``flexledger serve dso``: the DSO Technical Platform."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from flexledger.cli.serving import ClockMqttOpt

__all__ = ["dso_app", "serve_dso_command"]

console = Console()
dso_app = typer.Typer(help="The DSO Technical Platform's own tools.", no_args_is_help=True)

DEFAULT_SCENARIO = Path("scenarios/default.toml")


def _scenario_path(scenario: Path | None) -> Path | None:
    if scenario is not None:
        return scenario
    from dso.settings import DsoSettings

    configured = DsoSettings().scenario
    if configured is not None:
        return configured
    return DEFAULT_SCENARIO if DEFAULT_SCENARIO.is_file() else None


@dso_app.command("assess")
def assess_command(
    day: Annotated[str, typer.Option(help="Delivery day, YYYY-MM-DD (UTC).")],
    scenario: Annotated[
        Path | None,
        typer.Option(
            help="Scenario TOML (default: FLEX_DSO_SCENARIO, else scenarios/default.toml)."
        ),
    ] = None,
    source: Annotated[
        str,
        typer.Option(
            help="What the grid is assessed on: 'forecast' (every element from the grid's own "
            "SimBench profiles of the previous days), 'profiles' (the scenario's true profiles "
            "of the day) or 'scd' (POD forecasts from the SCD's quarterly history).",
        ),
    ] = "forecast",
    out: Annotated[
        Path | None, typer.Option(help="Heatmap PNG (default: <home>/dso/heatmap-<day>.png).")
    ] = None,
    scd_url: Annotated[
        str, typer.Option(envvar="FLEX_DSO_SCD_URL", help="SCD base URL (for --source scd).")
    ] = "http://127.0.0.1:8001",
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON too.")] = False,
) -> None:
    """Assess one day: violations (I-10), own remedies (I-11), needs for the market (I-06).

    Prints the violation table before and after the own remedies, the remedies chosen and the
    located needs, and writes a voltage heatmap (bus × MTU, before and after) as PNG.
    """
    import asyncio

    from rich.progress import Progress

    from dso import (
        DsoGrid,
        PodHistory,
        assess,
        background_forecast,
        day_ahead_forecast,
        evaluate,
        violation_rows,
        write_heatmap,
    )
    from dso.forecast import GridForecast
    from flexledger.powerflow import DEFAULT_GRID, PROFILE_YEAR, load_grid
    from flexledger.scenario import load_scenario
    from flexledger.settings import HomeSettings
    from flexledger.time import DAY_S, MTU_S, day_start_s

    try:
        when = date.fromisoformat(day)
    except ValueError:
        raise typer.BadParameter(f"--day {day!r} is not YYYY-MM-DD") from None
    if source not in ("forecast", "profiles", "scd"):
        raise typer.BadParameter("--source is forecast, profiles or scd")
    day_s = day_start_s(when)
    path = _scenario_path(scenario)
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("loading the grid", total=3)
        if path is not None:
            spec = load_scenario(path)
            grid = DsoGrid.from_scenario(spec, base_dir=path.parent)
            assert grid.profile_day is not None
            profile_day = grid.profile_day + (day_s - spec.day_s) // DAY_S
            where = f"scenario {path}"
        else:
            from dso.model import default_remedy_space

            net = load_grid(DEFAULT_GRID)
            profile_day = date(PROFILE_YEAR, when.month, when.day).timetuple().tm_yday - 1
            grid = DsoGrid.from_net(
                net, remedy_space=default_remedy_space(net), profile_day=profile_day
            )
            where = f"{DEFAULT_GRID} (no scenario: no PODs, the grid's own OLTCs as remedies)"
        progress.update(task, advance=1, description="forecasting")
        starts = [day_s + k * MTU_S for k in range(96)]
        score = None
        if source == "profiles":
            forecast: Any = grid.profile_injections(profile_day)
        elif source == "forecast":
            bg = background_forecast(grid, profile_day)
            import numpy as np

            forecast = GridForecast(
                np.asarray(starts, dtype=np.int64), grid.pod_p_kw(bg), bg, "day_ahead"
            )
        else:
            from flexledger.messages import QuarterlyMeasure
            from flexledger.transport import SignedHttpClient

            async def fetch() -> PodHistory:
                measures: list[QuarterlyMeasure] = []
                async with SignedHttpClient(scd_url) as scd:
                    for pod in sorted(grid.pods):
                        rows = await scd.get(
                            "/measures/quarterly",
                            {"pod": pod, "from_s": day_s - 21 * DAY_S, "to_s": day_s},
                        )
                        measures += [QuarterlyMeasure.model_validate(r) for r in rows]
                return PodHistory.from_measures(measures)

            history = asyncio.run(fetch())
            forecast = day_ahead_forecast(grid, history, day_s, profile_day=profile_day)
            score = evaluate(history, [day_s - k * DAY_S for k in range(7, 0, -1)])
        progress.update(task, advance=1, description="assessing (power flow, remedies, needs)")
        assessment = assess(grid, forecast, mtu_start_s=starts, day_s=day_s)
        progress.update(task, advance=1)

    console.print(f"[bold]{day}[/] on {where}, source: {source}")
    if score is not None:
        console.print(f"forecast on held-out days: {score}")
    for after in (False, True):
        rows = violation_rows(assessment, after_remedies=after)
        title = "after own remedies" if after else "violations (I-10)"
        table = Table(title=f"{title}: {len(rows)} element(s)")
        for col in ("kind", "element", "first", "last", "MTUs", "worst", "excess"):
            table.add_column(col)
        for r in rows[:40]:
            table.add_row(
                r.kind, r.element, r.first, r.last, str(r.mtus),
                f"{r.worst_value:.4f}", f"{r.worst_excess:.4f}",
            )  # fmt: skip
        if len(rows) > 40:
            table.add_row("…", f"{len(rows) - 40} more", "", "", "", "", "")
        console.print(table)
    for b in assessment.blocks:
        t = (b.mtu_start_s - day_s) // 60
        c = b.configuration
        console.print(
            f"own remedy from {t // 60:02d}:{t % 60:02d}, {b.mtu_count} MTU(s): taps {c.taps} "
            f"closed {c.closed_switches} opened {c.opened_switches}: solves {len(c.solved)}, "
            f"leaves {len(c.remaining)}"
        )
    for n in assessment.needs:
        t = (n.mtu_start_s - day_s) // 60
        console.print(
            f"need: {n.kind} on {n.zone}, {n.direction} {n.volume_kw:.1f} kW at {n.best_pod} from "
            f"{t // 60:02d}:{t % 60:02d} for {n.mtu_count} MTU(s), {len(n.factors)} eligible POD(s)"
        )
    if path is not None and spec.expected and day_s == spec.day_s:
        left = {(v.kind, v.element) for v in assessment.after}
        stated = sorted({(e.kind, e.element) for e in spec.expected})
        missed = [f"{k} {e}" for k, e in stated if (k, e) not in left]
        console.print(
            f"the scenario states {len(stated)} violation(s) its own remedies cannot remove; "
            f"this assessment leaves {len(stated) - len(missed)} of them for the market"
            + (f" and misses {', '.join(missed)}" if missed else "")
        )
    target = out or HomeSettings().home / "dso" / f"heatmap-{day}.png"
    write_heatmap(assessment, target)
    console.print(f"heatmap written to {target}")
    if as_json:
        print(json.dumps(assessment.summary()))


def serve_dso_command(
    host: Annotated[str, typer.Option(envvar="FLEX_DSO_HOST", help="Interface to listen on.")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(envvar="FLEX_DSO_PORT", help="TCP port.")] = 8003,
    scenario: Annotated[Path | None, typer.Option(help="Scenario TOML.")] = None,
    clock_mqtt: ClockMqttOpt = False,
) -> None:
    """Run the DSO Technical Platform (FLEX_DSO_*, FLEX_MQTT_URL, FLEX_RPC_URL, FLEX_HOME)."""
    from fastapi import FastAPI

    from dso import DsoGrid, DsoPlatform, DsoSettings, create_app
    from flexledger.cli.serving import serve_app
    from flexledger.protocols import Clock
    from flexledger.scenario import load_scenario
    from flexledger.settings import ChainSettings, HomeSettings, MqttSettings
    from flexledger.stack import open_chain
    from flexledger.transport import SignedHttpClient, Topics
    from node.ids import id32
    from node.keys import load_account
    from node.signing import LocalSigner

    settings = DsoSettings()
    path = _scenario_path(scenario)
    if path is None:
        raise typer.BadParameter("no scenario: give --scenario or FLEX_DSO_SCENARIO")
    spec = load_scenario(path)
    grid = DsoGrid.from_scenario(spec, base_dir=path.parent)
    mqtt_url = MqttSettings().mqtt_url

    def address(who: str) -> str:
        return who if who.startswith("0x") and len(who) == 42 else load_account(who).address

    with open_chain(HomeSettings().home, chain=ChainSettings()) as chain:
        contracts = chain.contracts()
        domain = contracts.roles.domain()
        signer = LocalSigner(load_account(settings.key), domain)

        def build(clock: Clock | None) -> FastAPI:
            platform = DsoPlatform(
                grid,
                signer,
                domain,
                market_operator=address(settings.market_operator),
                issuers=[address(i) for i in settings.issuers],
                scenario=spec,
                settings=settings,
                now_s=clock.now_s if clock is not None else None,
                scd=SignedHttpClient(settings.scd_url, signer),
                market=SignedHttpClient(settings.market_url, signer),
                sensor_keys=lambda sid: contracts.roles.sensor_of(id32(sid)),
            )
            return create_app(
                platform,
                mqtt_url=mqtt_url,
                topics=Topics(settings.topic_root) if mqtt_url else None,
            )

        console.print(
            f"DSO TP on http://{host}:{port} ({len(grid.pods)} PODs, chain {chain.rpc_url}, "
            f"MQTT {mqtt_url or 'off'})"
        )
        serve_app(
            build,
            name="dso",
            host=host,
            port=port,
            clock_mqtt=clock_mqtt,
            mqtt_url=mqtt_url,
            topic_root=settings.topic_root,
        )
