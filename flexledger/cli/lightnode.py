"""``flexledger lightnode run|csv`` and ``flexledger concentrator run``: the agents of a meter
gateway and of a concentrator as processes of their own.

The chain comes from ``FLEX_RPC_URL`` (``--rpc-url``) and the deployment from the address book
(``--address-book``, default ``FLEX_HOME/addresses.json``); the broker from ``FLEX_MQTT_URL``
(``--mqtt-url``, default the local Mosquitto). Both agents start even if the chain or the broker
is down: what they measure or receive waits in their SQLite files.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

if TYPE_CHECKING:
    from node.addressbook import AddressBook
    from node.contracts import FlexContracts

__all__ = ["concentrator_app", "lightnode_app"]

log = logging.getLogger(__name__)
console = Console(stderr=True)

lightnode_app = typer.Typer(
    help="Run a Light Node (a meter gateway's agent), or make meter recordings.",
    no_args_is_help=True,
)
concentrator_app = typer.Typer(
    help="Run a concentrator that anchors many Light Nodes' window roots in one transaction.",
    no_args_is_help=True,
)

DEFAULT_MQTT = "mqtt://127.0.0.1:1883"

MqttUrlOpt = Annotated[
    str | None,
    typer.Option("--mqtt-url", envvar="FLEX_MQTT_URL", help="MQTT broker (default local 1883)."),
]
TopicRootOpt = Annotated[
    str, typer.Option(envvar="FLEX_TOPIC_ROOT", help="MQTT topic root (a deployment's own).")
]
RpcOpt = Annotated[
    str | None,
    typer.Option("--rpc-url", envvar="FLEX_RPC_URL", help="JSON-RPC URL of the chain."),
]
BookOpt = Annotated[
    Path | None,
    typer.Option(
        "--address-book",
        envvar="FLEX_ADDRESS_BOOK",
        help="Address book from 'flexledger deploy' (default FLEX_HOME/addresses.json).",
    ),
]


def _fail(message: str) -> typer.Exit:
    console.print(f"[red]error:[/red] {message}")
    return typer.Exit(2)


def _chain(rpc_url: str | None, book_path: Path | None) -> tuple[FlexContracts, AddressBook]:
    """The deployment's clients, made without asking the chain anything: an agent must start
    while the chain is down and catch up when it is back."""
    from flexledger.settings import HomeSettings
    from node.addressbook import AddressBook
    from node.contracts import (
        BaselineRegistryClient,
        FlexContracts,
        FlexMarketClient,
        FlexRolesClient,
        MeasurementAnchorClient,
        SettlementClient,
        SettlementTokenClient,
    )
    from node.devnet import http_web3

    if not rpc_url:
        raise _fail("no chain: set FLEX_RPC_URL or --rpc-url (try 'flexledger devnet')")
    path = book_path or HomeSettings().home / "addresses.json"
    if not path.is_file():
        raise _fail(f"no address book at {path}: run 'flexledger deploy' or pass --address-book")
    book = AddressBook.load(path)
    w3 = http_web3(rpc_url, 30)
    a = book.address
    contracts = FlexContracts(
        roles=FlexRolesClient(w3, a("FlexRoles")),
        anchor=MeasurementAnchorClient(w3, a("MeasurementAnchor")),
        baselines=BaselineRegistryClient(w3, a("BaselineRegistry")),
        market=FlexMarketClient(w3, a("FlexMarket")),
        token=SettlementTokenClient(w3, a("SettlementToken")),
        settlement=SettlementClient(w3, a("Settlement")),
    )
    return contracts, book


def _verbose_agents() -> None:
    # The health line is INFO; show the agents' INFO even when the CLI's level is WARNING.
    for name in ("lightnode",):
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() > logging.INFO:
            logger.setLevel(logging.INFO)


def _run(main: Awaitable[None]) -> None:
    """Run ``main`` until it ends or SIGTERM/SIGINT arrives (then cancel it: agents stop
    cleanly; their buffers make even a kill safe)."""

    async def runner() -> None:
        task = asyncio.ensure_future(main)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(runner())


@lightnode_app.command("run")
def lightnode_run(
    pod: Annotated[str, typer.Option(help="POD code this gateway meters.")],
    key: Annotated[
        str | None,
        typer.Option(help="Device key: dev:NAME, keystore file or 0x key (default dev:ln:POD)."),
    ] = None,
    meter_csv: Annotated[
        Path | None, typer.Option(help="Replay this meter CSV (pod,t_s,p_w,q_var,v_mv).")
    ] = None,
    csv_pod: Annotated[
        str | None, typer.Option(help="The CSV's POD column to replay (default --pod).")
    ] = None,
    csv_shift: Annotated[
        str,
        typer.Option(
            help="Seconds added to the CSV's timestamps, or 'now' to replay its first window as "
            "the current one."
        ),
    ] = "0",
    meter_mqtt: Annotated[
        bool, typer.Option("--meter-mqtt", help="Read the meter of the world over MQTT.")
    ] = False,
    clock_mqtt: Annotated[
        bool, typer.Option("--clock-mqtt", help="Follow the scenario clock over MQTT.")
    ] = False,
    bms_mqtt: Annotated[
        bool, typer.Option("--bms-mqtt", help="Hand set-points to the world's BMS over MQTT.")
    ] = False,
    anchor: Annotated[
        str | None,
        typer.Option(help="direct (own anchor) or concentrator (default FLEX_ANCHOR or direct)."),
    ] = None,
    scd_url: Annotated[
        str | None, typer.Option(envvar="FLEX_SCD_URL", help="SCD URL to poll certifications.")
    ] = None,
    buffer: Annotated[
        Path | None,
        typer.Option(help="SQLite buffer (default FLEX_BUFFER_PATH or FLEX_HOME/lightnode/POD)."),
    ] = None,
    start_s: Annotated[
        int | None, typer.Option(help="First instant to sample when the buffer is new.")
    ] = None,
    max_batch: Annotated[
        int | None, typer.Option(min=1, max=10_000, help="Most samples in one message.")
    ] = None,
    health_interval: Annotated[
        float | None, typer.Option(help="Seconds between health lines (default 60).")
    ] = None,
    mqtt_url: MqttUrlOpt = None,
    topic_root: TopicRootOpt = "flex",
    rpc_url: RpcOpt = None,
    address_book: BookOpt = None,
) -> None:
    """Run a Light Node: read the meter every 4 s, sign, publish, buffer, anchor, obey."""
    from flexledger.settings import HomeSettings, LightNodeSettings
    from flexledger.transport.topics import Topics
    from node.keys import load_account

    if (meter_csv is None) == (not meter_mqtt):
        raise _fail("give exactly one meter: --meter-csv FILE or --meter-mqtt")
    overrides: dict[str, Any] = {}
    if anchor is not None:
        if anchor not in ("direct", "concentrator"):
            raise _fail("--anchor is 'direct' or 'concentrator'")
        overrides["anchor"] = anchor
    if scd_url is not None:
        overrides["scd_url"] = scd_url
    if max_batch is not None:
        overrides["max_batch_samples"] = max_batch
    if health_interval is not None:
        overrides["health_interval_s"] = health_interval
    settings = LightNodeSettings(**overrides)
    try:
        account = load_account(key or f"dev:ln:{pod}")
        topics = Topics(topic_root)
        topics.pod_measure(pod)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    contracts, book = _chain(rpc_url, address_book)
    if book.window_seconds != settings.window_s:
        raise _fail(
            f"the deployment's windows are {book.window_seconds} s, this node's "
            f"{settings.window_s} s (FLEX_WINDOW_S): its anchors would be refused"
        )
    path = buffer or settings.buffer_path or HomeSettings().home / "lightnode" / f"{pod}.sqlite"
    _verbose_agents()
    _run(
        _lightnode_main(
            pod,
            account=account,
            contracts=contracts,
            book=book,
            settings=settings,
            topics=topics,
            mqtt_url=mqtt_url or DEFAULT_MQTT,
            buffer=path,
            meter_csv=meter_csv,
            csv_pod=csv_pod,
            csv_shift=csv_shift,
            clock_mqtt=clock_mqtt,
            bms_mqtt=bms_mqtt,
            start_s=start_s,
        )
    )


async def _lightnode_main(
    pod: str,
    *,
    account: Any,
    contracts: FlexContracts,
    book: AddressBook,
    settings: Any,
    topics: Any,
    mqtt_url: str,
    buffer: Path,
    meter_csv: Path | None,
    csv_pod: str | None,
    csv_shift: str,
    clock_mqtt: bool,
    bms_mqtt: bool,
    start_s: int | None,
) -> None:
    from flexledger.protocols import Bms, Clock, MeterSource
    from flexledger.settings import MqttSettings
    from flexledger.time import WallClock, window_start_s
    from flexledger.transport import (
        MqttBmsClient,
        MqttClient,
        MqttClockClient,
        MqttMeterClient,
    )
    from lightnode import CsvMeter, LightNode, LogBms, read_meter_csv
    from node.eip712 import Domain

    # A stable client id with a durable session: the broker keeps the node's subscriptions and
    # queues set-points, resend requests and certifications while it is away.
    prefix = MqttSettings().mqtt_client_prefix
    mqtt = MqttClient(mqtt_url, f"{prefix}-ln-{pod}", clean_session=False)
    clock: Clock = WallClock()
    clock_client: MqttClockClient | None = None
    if clock_mqtt:
        clock_client = MqttClockClient(f"ln-{pod}", mqtt, topics=topics)
        clock = clock_client
    meter: MeterSource
    if meter_csv is not None:
        shift = 0
        if csv_shift == "now":
            recorded = read_meter_csv(meter_csv).get(csv_pod or pod)
            if not recorded:
                raise _fail(f"{meter_csv} has no readings of {csv_pod or pod}")
            first = min(r.t_s for r in recorded)
            shift = window_start_s(WallClock().now_s(), settings.window_s) - window_start_s(
                first, settings.window_s
            )
        else:
            try:
                shift = int(csv_shift)
            except ValueError:
                raise _fail("--csv-shift is a number of seconds or 'now'") from None
        meter = CsvMeter(meter_csv, pod, source_pod=csv_pod, shift_s=shift)
    else:
        meter = MqttMeterClient(pod, mqtt, topics=topics)
    bms: Bms = MqttBmsClient(pod, mqtt, topics=topics) if bms_mqtt else LogBms(pod)
    node = LightNode(
        pod,
        account=account,
        meter=meter,
        clock=clock,
        mqtt=mqtt,
        contracts=contracts,
        buffer=buffer,
        domain=Domain(chain_id=book.chain_id, verifying_contract=book.address("FlexRoles")),
        bms=bms,
        topics=topics,
        settings=settings,
        start_s=start_s,
    )
    try:
        await node.subscribe()  # before the durable session delivers what it queued
        await mqtt.start()
        if clock_client is not None:
            await mqtt.wait_connected(30)
            await clock_client.start(register=False)
        await node.run()
    finally:
        with contextlib.suppress(Exception):
            await node.stop()
        if clock_client is not None:
            with contextlib.suppress(Exception):
                await clock_client.stop()
        await mqtt.close()


@lightnode_app.command("csv")
def lightnode_csv(
    out: Annotated[Path, typer.Option(help="CSV file to write.")],
    pods: Annotated[int, typer.Option(min=1, max=100, help="How many household PODs.")] = 2,
    hours: Annotated[float, typer.Option(min=0.01, max=24 * 366, help="Length, hours.")] = 1.0,
    start_s: Annotated[
        int | None, typer.Option(help="First timestamp (default 2026-01-01 17:00 UTC).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the 4 s noise.")] = 7,
    grid: Annotated[str, typer.Option(help="SimBench grid code.")] = "1-MVLV-semiurb-5.220-2-sw",
) -> None:
    """Write a meter CSV from SimBench load profiles (needs the 'grid' extra)."""
    from lightnode.replay import DEFAULT_CSV_START_S, make_csv_from_simbench

    try:
        path = make_csv_from_simbench(
            out,
            grid=grid,
            pods=pods,
            start_s=start_s if start_s is not None else DEFAULT_CSV_START_S,
            hours=hours,
            seed=seed,
        )
    except ImportError as exc:
        raise _fail(f"{exc}: install flexledger[grid] to make recordings") from None
    except ValueError as exc:
        raise _fail(str(exc)) from None
    Console().print(f"wrote {path}")


@concentrator_app.command("run")
def concentrator_run(
    concentrator_id: Annotated[
        str, typer.Option("--id", envvar="FLEX_CONCENTRATOR_ID", help="Concentrator name.")
    ] = "c1",
    key: Annotated[
        str, typer.Option(help="Concentrator key: dev:NAME, keystore file or 0x key.")
    ] = "dev:concentrator:1",
    db: Annotated[
        Path | None,
        typer.Option(help="SQLite state (default FLEX_CONCENTRATOR_DB or FLEX_HOME/concentrator)."),
    ] = None,
    batch_interval: Annotated[
        float | None, typer.Option(help="Seconds a window waits for its batch (default 30).")
    ] = None,
    max_windows: Annotated[
        int | None, typer.Option(min=1, max=100_000, help="Most windows in one batch.")
    ] = None,
    mqtt_url: MqttUrlOpt = None,
    topic_root: TopicRootOpt = "flex",
    rpc_url: RpcOpt = None,
    address_book: BookOpt = None,
) -> None:
    """Run a concentrator: check Light Nodes' signed window roots, anchor them in batches
    (SIGUSR1: publish every anchored batch's manifest again)."""
    from flexledger.settings import ConcentratorSettings, HomeSettings
    from flexledger.transport.topics import Topics
    from node.keys import load_account

    overrides: dict[str, Any] = {"concentrator_id": concentrator_id}
    if batch_interval is not None:
        overrides["batch_interval_s"] = batch_interval
    if max_windows is not None:
        overrides["batch_max_windows"] = max_windows
    settings = ConcentratorSettings(**overrides)
    try:
        account = load_account(key)
        topics = Topics(topic_root)
        topics.concentrator_batch(concentrator_id)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    contracts, book = _chain(rpc_url, address_book)
    path = (
        db
        or settings.concentrator_db
        or HomeSettings().home / "concentrator" / f"{concentrator_id}.sqlite"
    )
    _verbose_agents()
    _run(_concentrator_main(settings, account, contracts, book, topics, mqtt_url, path))


async def _concentrator_main(
    settings: Any,
    account: Any,
    contracts: FlexContracts,
    book: AddressBook,
    topics: Any,
    mqtt_url: str | None,
    path: Path,
) -> None:
    from flexledger.settings import MqttSettings
    from flexledger.transport import MqttClient
    from lightnode import Concentrator
    from node.eip712 import Domain

    prefix = MqttSettings().mqtt_client_prefix
    mqtt = MqttClient(
        mqtt_url or DEFAULT_MQTT,
        f"{prefix}-concentrator-{settings.concentrator_id}",
        clean_session=False,
    )
    conc = Concentrator(
        settings.concentrator_id,
        account=account,
        contracts=contracts,
        mqtt=mqtt,
        db=path,
        topics=topics,
        domain=Domain(chain_id=book.chain_id, verifying_contract=book.address("FlexRoles")),
        settings=settings,
    )
    tasks: set[asyncio.Task[None]] = set()

    async def republish() -> None:
        n = await conc.republish()
        logging.getLogger("lightnode").info("SIGUSR1: %d batch manifests published again", n)

    def on_usr1() -> None:
        task = asyncio.create_task(republish())
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    # SIGUSR1: publish every anchored batch's manifest again (a day driver whose SCD missed
    # one asks for it; docs/NOTES-stack.md)
    with contextlib.suppress(NotImplementedError, AttributeError, ValueError):
        asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, on_usr1)
    try:
        await conc.run()
    finally:
        await mqtt.close()
