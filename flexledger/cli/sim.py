"""``flexledger scenario check|residual`` and ``flexledger sim serve``: the world's tools."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from sim import ResidualProof, World

__all__ = ["scenario_app", "sim_app"]

console = Console()
scenario_app = typer.Typer(help="Scenario files: check them, prove their residual violations.",
                           no_args_is_help=True)  # fmt: skip
sim_app = typer.Typer(help="The simulated world of a scenario.", no_args_is_help=True)

ScenarioArg = Annotated[Path, typer.Argument(help="Scenario TOML file.")]


def _world(path: Path, start_s: int | None = None) -> World:
    """The world of ``path``, or a clean exit naming the problem."""
    from flexledger.powerflow import GridFileError
    from flexledger.scenario import ScenarioError
    from sim import ScenarioCheckError, World

    try:
        world = World(path, start_s=start_s)
        _ = world.sensors
        return world
    except (ScenarioError, ScenarioCheckError, GridFileError, ValueError) as exc:
        console.print(f"[red]{path}: {exc}[/red]" if str(path) not in str(exc) else f"[red]{exc}")
        raise typer.Exit(2) from None


@scenario_app.command("check")
def check_command(path: ScenarioArg) -> None:
    """Load a scenario and its grid, check that every reference fits, and summarise it."""
    from flexledger.powerflow import is_radial, unsupplied_buses
    from flexledger.time import MTU_S, from_s
    from sim import remedy_points

    world = _world(path)
    s = world.scenario
    problems = []
    points = remedy_points(world.grid.flow, s.remedies)
    supplied = unsupplied_buses(world.grid.net)
    for m, config in enumerate(world.configs):
        if m and config == world.configs[m - 1]:
            continue
        if (
            not is_radial(world.grid.net, config)
            or unsupplied_buses(world.grid.net, config) - supplied
        ):
            problems.append(f"events: from MTU {m} the grid is meshed or leaves buses unsupplied")
    table = Table(title=f"scenario {s.name!r}", show_header=False)
    table.add_row("delivery day", f"{s.delivery_day} (profile day {s.grid.profile_day})")
    table.add_row("grid", f"{s.grid.source}: {len(world.grid.net.bus)} buses")
    for line in world.grid.changes:
        table.add_row("  change", line)
    kinds: dict[str, int] = {}
    for p in s.pods:
        for r in p.resources:
            kinds[r.kind] = kinds.get(r.kind, 0) + 1
    by_agg: dict[str, int] = {}
    for p in s.pods:
        by_agg[p.aggregator] = by_agg.get(p.aggregator, 0) + 1
    table.add_row("PODs", f"{len(s.pods)}: " + ", ".join(f"{a} {n}" for a, n in by_agg.items()))
    table.add_row("resources", ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())))
    table.add_row("remedy space", f"{len(points)} points")
    table.add_row("TSO needs", str(len(s.tso.needs)))
    table.add_row("sensors", ", ".join(world.sensor_ids()))
    for ev in s.events:
        t = from_s(s.day_s + ev.at_mtu * MTU_S).strftime("%H:%M")
        table.add_row("event", f"{t} {ev.kind} {ev.element} closed={ev.closed}: {ev.reason}")
    table.add_row("expected", f"{len(s.expected)} residual violation entries")
    console.print(table)
    if problems:
        for problem in problems:
            console.print(f"[red]{path}: {problem}[/red]")
        raise typer.Exit(1)
    console.print(f"[green]{path}: ok[/green]")


def _proof(world: World) -> ResidualProof:
    import logging

    from rich.progress import Progress

    from sim import prove_residual

    with Progress(console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task("searching the remedy space", total=None)

        class _Tick(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                progress.advance(task)

        log = logging.getLogger("sim.residual")
        handler = _Tick(logging.INFO)
        old_level = log.level
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        try:
            return prove_residual(
                world.scenario, world.grid.flow, world.true_day().injections(), progress=True
            )
        finally:
            log.removeHandler(handler)
            log.setLevel(old_level)


@scenario_app.command("residual")
def residual_command(
    path: ScenarioArg,
    as_json: Annotated[bool, typer.Option("--json", help="Print the proof as JSON.")] = False,
    toml: Annotated[
        bool, typer.Option("--toml", help="Print what remains as [[expected]] TOML entries.")
    ] = False,
) -> None:
    """Prove what the DSO's own remedies cannot solve: search every point of the scenario's
    remedy space (taps × tie switching) with the batched power flow on its true day, print per
    MTU what the best acceptable point leaves and how far every point stays beyond the limits,
    and compare with the file's ``expected`` entries (exit 1 when they differ)."""
    from flexledger.time import MTU_S, from_s

    world = _world(path)
    s = world.scenario
    proof = _proof(world)
    problems = proof.check(s.expected)
    if as_json:
        print(json.dumps(_proof_json(proof, problems), indent=1))
    elif toml:
        from sim.authoring import expected_entries, to_toml

        why = {e.element: e.why for e in s.expected} | {e.kind: e.why for e in s.expected}
        entries = expected_entries(proof, _Fallback(why))
        print(to_toml({"expected": entries}))
    else:
        table = Table(title=f"{s.name}: MTUs with violations in the grid as operated")
        for col in ("MTU", "time", "as operated", "best acceptable point", "remains",
                    "min over points of worst (margins)", "clean points"):  # fmt: skip
            table.add_column(col)
        for m in proof.mtus:
            if not m.base:
                continue
            t = from_s(s.day_s + m.mtu * MTU_S).strftime("%H:%M")
            table.add_row(
                str(m.mtu),
                t,
                _summary(m.base),
                proof.points[m.chosen].describe() if m.chosen else "no remedy",
                _summary(m.remaining) if m.remaining else "-",
                f"{m.worst_min_margins:.2f}"
                + (" ✓" if m.remaining and m.worst_min_margins >= 1 else ""),
                str(m.clean_points),
            )
        console.print(table)
        console.print(
            f"{proof.evaluated} points of the remedy space, {proof.runs} batched power flows, "
            f"{proof.seconds:.1f} s. Margin ({proof.margin_vm_pu} p.u. / "
            f"{proof.margin_loading_percent} %) held by every point in MTUs "
            f"{proof.margin_mtus()}."
        )
        for kind, element, first, last in proof.remaining_entries():
            console.print(f"  remains: {kind} {element} MTU {first}..{last}")
    if problems:
        for p in problems:
            console.print(f"[red]{path}: {p}[/red]", highlight=False)
        raise typer.Exit(1)
    if not as_json and not toml:
        console.print(f"[green]{path}: the expected entries are exactly what remains[/green]")


class _Fallback(dict[str, str]):
    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key, default) or "TODO: explain why this remains"


def _summary(lines: list[Any]) -> str:
    by_kind: dict[str, list[float]] = {}
    for v in lines:
        by_kind.setdefault(v.kind, []).append(v.excess)
    unit = {
        "voltage_high": "p.u.",
        "voltage_low": "p.u.",
        "line_overload": "%",
        "trafo_overload": "%",
    }
    return "; ".join(f"{k} ×{len(x)} (max {max(x):.3g} {unit[k]})" for k, x in by_kind.items())


def _proof_json(proof: ResidualProof, problems: list[str]) -> dict[str, Any]:
    return {
        "points": proof.evaluated,
        "runs": proof.runs,
        "seconds": round(proof.seconds, 3),
        "residual_mtus": proof.residual_mtus,
        "margin_mtus": proof.margin_mtus(),
        "remaining": [
            {"kind": k, "element": e, "mtu_from": a, "mtu_to": b}
            for k, e, a, b in proof.remaining_entries()
        ],
        "mtus": [
            {
                "mtu": m.mtu,
                "base": [vars(v) for v in m.base],
                "remaining": [vars(v) for v in m.remaining],
                "chosen": proof.points[m.chosen].describe(),
                "worst_min_margins": m.worst_min_margins,
                "clean_points": m.clean_points,
            }
            for m in proof.mtus
            if m.base
        ],
        "problems": problems,
    }


@sim_app.command("serve")
def serve_command(
    path: ScenarioArg,
    mqtt_url: Annotated[
        str, typer.Option(envvar="FLEX_MQTT_URL", help="Broker URL.")
    ] = "mqtt://127.0.0.1:1883",
    root: Annotated[str, typer.Option(envvar="FLEX_TOPIC_ROOT", help="MQTT topic root.")] = "flex",
    chain_id: Annotated[
        int | None, typer.Option(help="EIP-712 domain chain id (to sign sensor readings).")
    ] = None,
    roles: Annotated[
        str | None, typer.Option(help="FlexRoles address of the domain (to sign readings).")
    ] = None,
    start: Annotated[
        str | None, typer.Option(help="Clock start, ISO time UTC (default: the day's midnight).")
    ] = None,
    drive: Annotated[
        bool, typer.Option(help="Drive the clock to --until (participants pace it).")
    ] = True,
    until: Annotated[
        str | None, typer.Option(help="Where the drive ends, ISO time UTC (default: day's end).")
    ] = None,
    step_s: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Longest clock step, seconds (default 4); the clock still stops at "
            "every instant a participant waits for.",
        ),
    ] = None,
    pace_by: Annotated[
        list[str] | None,
        typer.Option(
            help="A clock participant registered before serving, so time waits for it to join "
            "and report (a day driver in another process); repeatable.",
        ),
    ] = None,
    linger: Annotated[
        bool, typer.Option(help="Keep serving meters and BMS after the drive ends.")
    ] = False,
) -> None:
    """Serve a scenario's world over MQTT: meters, BMS, the scenario clock, field sensors and
    topology events, so Light Nodes and actors can run in their own processes."""
    import asyncio
    from datetime import datetime

    from flexledger.time import DAY_S, to_s
    from flexledger.transport import MqttClient, Topics, unique_client_id
    from node.eip712 import Domain

    world = _world(path, to_s(datetime.fromisoformat(start)) if start is not None else None)
    domain = Domain(chain_id, roles) if chain_id is not None and roles is not None else None
    end_s = to_s(datetime.fromisoformat(until)) if until is not None else world.day_s + DAY_S
    for name in pace_by or []:
        world.clock.register(name)

    async def serve() -> None:
        async with (
            MqttClient(mqtt_url, unique_client_id("sim")) as client,
            world.serve_mqtt(client, topics=Topics(root), domain=domain) as server,
        ):
            console.print(
                f"serving {len(world.pods)} PODs of {world.scenario.name!r} on {mqtt_url} "
                f"under {root}/ (clock at {world.clock.now().isoformat()})"
            )
            if drive:
                while world.clock.now_s() < end_s:
                    await world.clock.advance_paced(end_s, step_s)
                console.print(f"drive done; {server.published} sensor messages published")
            if linger or not drive:
                await asyncio.Event().wait()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        sys.exit(130)
