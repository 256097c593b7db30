"""The distributed mode (floor 4): every actor of a scenario's market day as its own process,
started from the CLI commands a user would type (``flexledger serve scd|market|dso|aggregator``,
``flexledger sim serve``, ``flexledger concentrator run``, ``flexledger lightnode run``) and
configured only by ``FLEX_*`` variables.

``DistributedStack`` is what ``flexledger demo --distributed`` and ``tests/e2e/test_distributed.py``
bring up; ``flexledger.stack.day.run_day`` drives it through the same public APIs as the
embedded stack:

- **chain**: ``FLEX_RPC_URL`` (any EVM JSON-RPC chain whose dev keys can be funded, e.g. an anvil)
  or, when unset, an anvil devnet of this process's own; the contracts are deployed fresh and the
  address book written to ``<home>/addresses.json`` for every process to read.
- **database**: with a PostgreSQL ``FLEX_DB_URL``, a database of the run's own is created in that
  cluster (``<database>_<run id>``; kept afterwards for the audit commands unless
  ``drop_database``), and each service has its own schema in it: ``scd``, ``market``,
  ``aggregator_1``, ``aggregator_2``, … Without it each service keeps a SQLite file under its own
  folder of ``home``. The Light Nodes and the concentrator keep their SQLite buffers (edge
  devices).
- **broker**: ``FLEX_MQTT_URL``, or a private Mosquitto child process; every topic lives under
  a root of the run's own (``fx<run id>``) and every MQTT client id starts with it, so that
  runs sharing one broker do not meet.
- **the world**: ``flexledger sim serve`` serves the meters, the BMS and the scenario clock over
  MQTT; the clock moves only when this process (the participant ``day``) asks it to, and the
  market, the DSO TP, the aggregators and the Light Nodes follow it (``--clock-mqtt``).

Each process logs to ``<home>/logs/<name>.log``; ``start`` waits for each service's ``/health``
(the Light Nodes' and the concentrator's "started" log line), and closing the stack sends
SIGTERM to each process group it started (SIGKILL after 20 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

from flexledger.settings import ChainSettings
from flexledger.time import DAY_S, from_s
from flexledger.transport import (
    MqttClient,
    MqttClockClient,
    SignedHttpClient,
    Topics,
    unique_client_id,
)
from flexledger.transport.adapters import BmsAck
from flexledger.transport.brokers import MosquittoProcess, free_port
from node.keys import dev_account, load_account
from node.signing import LocalSigner

from .services import ServiceUrls

__all__ = [
    "DistributedStack",
    "ServiceProcess",
    "actor_env",
    "create_database",
    "drop_database",
]

log = logging.getLogger(__name__)

#: The clock participant that paces ``flexledger sim serve`` (the day's driver).
DRIVER = "day"


def _flexledger_command() -> list[str]:
    """The ``flexledger`` script of this interpreter's environment (``.venv/bin/flexledger``),
    else ``python -m flexledger``."""
    script = Path(sys.executable).with_name("flexledger")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "flexledger"]


# -- PostgreSQL: a database per run ------------------------------------------------------------


def _pg_url(url: str, database: str | None = None) -> Any:
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if not parsed.drivername.startswith("postgres"):
        raise ValueError(f"{parsed.drivername}: the distributed mode's databases are PostgreSQL")
    parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.set(database=database) if database is not None else parsed


def create_database(server_url: str, name: str) -> str:
    """Create database ``name`` in the cluster of ``server_url``; its URL."""
    from sqlalchemy import create_engine, text

    engine = create_engine(_pg_url(server_url), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()
    rendered: str = _pg_url(server_url, name).render_as_string(hide_password=False)
    return rendered


def drop_database(server_url: str, name: str) -> None:
    """Drop database ``name`` of the cluster of ``server_url`` (its connections closed)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(_pg_url(server_url), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        engine.dispose()


# -- processes ---------------------------------------------------------------------------------


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM it when the process that started it dies (Linux
    ``PR_SET_PDEATHSIG``), so that a driver killed outright leaves no actor behind; elsewhere
    nothing (the driver's own shutdown still stops every process)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def actor_env(home: Path, urls: ServiceUrls, book: Path, topic_root: str) -> dict[str, str]:
    """An actor process's environment, as a user would export it: this one's without its
    ``FLEX_*`` variables, then the actor's home, the chain, the address book, the broker and
    the topic root (under each service's name for it)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEX_")}
    env.update(
        {
            "FLEX_HOME": str(home),
            "FLEX_RPC_URL": urls.rpc,
            "FLEX_ADDRESS_BOOK": str(book),
            "FLEX_MQTT_URL": urls.mqtt,
            "FLEX_TOPIC_ROOT": topic_root,
            "FLEX_MQTT_ROOT": topic_root,
            "FLEX_DSO_TOPIC_ROOT": topic_root,
            "FLEX_MQTT_CLIENT_PREFIX": topic_root,
            "FLEX_LOG_LEVEL": os.environ.get("FLEX_LOG_LEVEL", "INFO"),
            "COLUMNS": "240",  # one log record, one line
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


@dataclass
class ServiceProcess:
    """One actor's process: its command, its log file, its health URL (None: a log line)."""

    name: str
    args: list[str]
    env: dict[str, str]
    log_path: Path
    health_url: str | None = None
    ready_line: str | None = None
    popen: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = field(default=None, repr=False)

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self._log.write(f"$ {' '.join(self.args)}\n".encode())
        self._log.flush()
        # a session of its own: SIGTERM reaches the process and its workers, and a Ctrl-C in
        # the terminal reaches only the driver, which then stops each process in order
        self.popen = subprocess.Popen(
            self.args,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        log.info("%s started (pid %d), log %s", self.name, self.popen.pid, self.log_path)

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    async def wait_ready(self, timeout_s: float = 180) -> None:
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient(timeout=5) as http:
            while True:
                if not self.alive():
                    raise RuntimeError(
                        f"{self.name} exited ({self.popen.returncode if self.popen else '?'}); "
                        f"{self.log_path}:\n{self.tail()}"
                    )
                if self.health_url is not None:
                    with contextlib.suppress(httpx.HTTPError):
                        r = await http.get(self.health_url)
                        if r.status_code == 200:
                            return
                elif self.ready_line is not None:
                    with contextlib.suppress(OSError):
                        if self.ready_line in self.log_path.read_text(errors="replace"):
                            return
                else:
                    return
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{self.name} not ready in {timeout_s} s:\n{self.tail()}")
                await asyncio.sleep(0.2)

    def signal(self, sig: int) -> None:
        if self.alive():
            assert self.popen is not None
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)

    async def stop(self, timeout_s: float = 20) -> None:
        if self.popen is None:
            return
        self.signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while self.alive() and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        if self.alive():
            log.warning("%s did not stop in %.0f s: killed", self.name, timeout_s)
            self.signal(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(5)
        if self._log is not None:
            self._log.close()
            self._log = None


class _ConcentratorProcess:
    """The concentrator as the day's driver sees it: ``republish`` asks the process (SIGUSR1)
    to publish every anchored batch's manifest again."""

    def __init__(self, process: ServiceProcess) -> None:
        self.process = process

    async def republish(self) -> int:
        self.process.signal(signal.SIGUSR1)
        log.info("asked the concentrator process to republish its batch manifests")
        return 0  # the process logs how many it republished


# -- the stack ---------------------------------------------------------------------------------


class DistributedStack:
    """Every actor of one scenario's market day, each in its own process (module docstring).

    Use as ``async with DistributedStack(scenario_path, home) as stack: await run_day(stack)``.

    Args:
        scenario_path: the scenario TOML.
        home: the state folder (each process has its own folder in it, and its log in
            ``home/logs``); wiped first when ``fresh``.
        rpc_url: the chain (default ``FLEX_RPC_URL``; unset: an anvil devnet of the stack's own).
        db_url: a PostgreSQL URL (default ``FLEX_DB_URL``; unset: SQLite files under ``home``).
        mqtt_url: the broker (default ``FLEX_MQTT_URL``; unset: a private Mosquitto).
        run_id: names the run's topic root, client ids and database (default: random).
        drop_database: drop the run's database when the stack closes.
        start_s: where the scenario clock starts (default D-1 08:00).
        attach: a services file (``services.json``, which a started stack writes into
            ``home``): drive actors already running, started by hand, instead of starting any
            process; the chain (``FLEX_RPC_URL`` and its address book) and the broker
            (``FLEX_MQTT_URL``) are the ones they use.
    """

    def __init__(
        self,
        scenario_path: Path,
        home: Path,
        *,
        rpc_url: str | None = None,
        db_url: str | None = None,
        mqtt_url: str | None = None,
        run_id: str | None = None,
        drop_database: bool = False,
        start_s: int | None = None,
        fresh: bool = True,
        attach: Path | None = None,
    ) -> None:
        from sim import World

        self.scenario_path = Path(scenario_path).resolve()
        self.home = Path(home).resolve()
        self.attach = json.loads(Path(attach).read_text()) if attach is not None else None
        self.fresh = fresh and self.attach is None
        if self.fresh:
            for sub in ("chain", "scd", "market", "dso", "aggregators", "lightnodes", "logs"):
                shutil.rmtree(self.home / sub, ignore_errors=True)
            (self.home / "addresses.json").unlink(missing_ok=True)
        self.home.mkdir(parents=True, exist_ok=True)
        self.run_id = (run_id or secrets.token_hex(4)).lower()
        self.rpc_url_given = rpc_url if rpc_url is not None else os.environ.get("FLEX_RPC_URL")
        self.db_url_given = db_url if db_url is not None else os.environ.get("FLEX_DB_URL")
        self.mqtt_url_given = mqtt_url if mqtt_url is not None else os.environ.get("FLEX_MQTT_URL")
        self.drop_database = drop_database
        # the world in this process only for what the driver plays itself: the I-01 history,
        # the BRP's baselines, the POD codes; the live world is 'flexledger sim serve'
        self.world = World(self.scenario_path)
        self.scenario = self.world.scenario
        self.day_s = self.scenario.day_s
        self.start_s = start_s if start_s is not None else self.day_s - DAY_S + 8 * 3600
        root = self.attach["topic_root"] if self.attach is not None else f"fx{self.run_id}"
        self.topics = Topics(root)
        self.urls = ServiceUrls()
        self.processes: dict[str, ServiceProcess] = {}
        self.database: str | None = None
        self.db_url: str | None = None
        self.chain: Any = None
        self.contracts: Any = None
        self.book: Any = None
        self.domain: Any = None
        self.concentrator: _ConcentratorProcess | None = None
        self._stack = contextlib.AsyncExitStack()
        self._clock: MqttClockClient | None = None
        self._acks = 0

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> DistributedStack:
        try:
            await self._start()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    async def _start(self) -> None:
        if self.attach is not None:
            await self._attach()
        else:
            await self._start_chain()
            await self._start_broker()
            self._start_database()
            await self._start_services()
            (self.home / "services.json").write_text(json.dumps(self.services(), indent=1))
        await self._follow_world()

    def services(self) -> dict[str, Any]:
        """Where the actors listen, as ``attach`` reads it."""
        return {
            "topic_root": self.topics.root,
            "scd": self.urls.scd,
            "market": self.urls.market,
            "dso": self.urls.dso,
            "aggregators": self.urls.aggregators,
        }

    async def _attach(self) -> None:
        from flexledger.stack import open_chain
        from node.addressbook import AddressBook

        assert self.attach is not None
        if not self.rpc_url_given or not self.mqtt_url_given:
            raise ValueError("attaching to running actors needs FLEX_RPC_URL and FLEX_MQTT_URL")
        self.chain = self._stack.enter_context(
            open_chain(self.home, chain=ChainSettings(rpc_url=self.rpc_url_given))
        )
        self.book = AddressBook.load(self.chain.book_path)
        self.contracts = self.chain.contracts()
        self.domain = self.contracts.roles.domain()
        self.urls.rpc, self.urls.mqtt = self.chain.rpc_url, self.mqtt_url_given
        self.urls.scd, self.urls.market = self.attach["scd"], self.attach["market"]
        self.urls.dso = self.attach["dso"]
        self.urls.aggregators = dict(self.attach["aggregators"])
        async with httpx.AsyncClient(timeout=10) as http:
            for url in (
                self.urls.scd,
                self.urls.market,
                self.urls.dso,
                *self.urls.aggregators.values(),
            ):
                (await http.get(f"{url}/health")).raise_for_status()

    async def _start_chain(self) -> None:
        """The chain and the contracts with the scenario's roles (as the embedded stack)."""
        from flexledger.stack import open_chain, scenario_plan
        from node.addressbook import AddressBook
        from node.deploy import deploy

        chain_settings = ChainSettings(rpc_url=self.rpc_url_given or None)
        self.chain = self._stack.enter_context(
            open_chain(self.home, fresh=self.fresh, chain=chain_settings)
        )
        plan = scenario_plan(self.world)
        await asyncio.to_thread(
            deploy, self.chain.w3, dev_account("deployer"), plan, book_path=self.chain.book_path
        )
        self.book = AddressBook.load(self.chain.book_path)
        self.contracts = self.chain.contracts()
        self.domain = self.contracts.roles.domain()
        self.urls.rpc = self.chain.rpc_url

    async def _start_broker(self) -> None:
        url = self.mqtt_url_given
        if not url:
            broker = MosquittoProcess()
            await self._stack.enter_async_context(broker)
            url = broker.url
        self.urls.mqtt = url

    def _start_database(self) -> None:
        if not self.db_url_given:
            return
        base = _pg_url(self.db_url_given).database or "flex"
        self.database = f"{base}_fx{self.run_id}"
        self.db_url = create_database(self.db_url_given, self.database)
        log.info("database %s created for the run", self.database)
        if self.drop_database:
            given, name = self.db_url_given, self.database
            self._stack.callback(drop_database, given, name)

    def _env(self, name: str, **extra: str) -> dict[str, str]:
        """The process's environment: only what it needs, as a user would export it."""
        env = actor_env(self.home / name, self.urls, self.chain.book_path, self.topics.root)
        if self.db_url:
            env["FLEX_DB_URL"] = self.db_url
        env.update(extra)
        return env

    def _process(
        self,
        name: str,
        args: list[str],
        env: dict[str, str],
        *,
        port: int | None = None,
        ready_line: str | None = None,
    ) -> ServiceProcess:
        proc = ServiceProcess(
            name,
            [*_flexledger_command(), *args],
            env,
            self.home / "logs" / f"{name}.log",
            health_url=f"http://127.0.0.1:{port}/health" if port else None,
            ready_line=ready_line,
        )
        proc.start()
        self.processes[name] = proc
        self._stack.push_async_callback(proc.stop)
        return proc

    async def _start_services(self) -> None:
        from sim import areas_table

        ports = {n: free_port() for n in ("scd", "market", "dso")}
        url = {n: f"http://127.0.0.1:{p}" for n, p in ports.items()}
        self.urls.scd, self.urls.market, self.urls.dso = url["scd"], url["market"], url["dso"]
        areas = self.home / "market" / "areas.json"
        areas.parent.mkdir(parents=True, exist_ok=True)
        areas.write_text(json.dumps(areas_table(self.scenario)))
        started = [
            self._process(
                "sim",
                [
                    "sim",
                    "serve",
                    str(self.scenario_path),
                    "--root",
                    self.topics.root,
                    "--start",
                    from_s(self.start_s).isoformat(),
                    "--until",
                    from_s(self.day_s + DAY_S + 3600).isoformat(),
                    "--step-s",
                    "900",
                    "--pace-by",
                    DRIVER,
                    "--linger",
                ],
                self._env("sim"),
            ),
            self._process(
                "scd",
                ["serve", "scd", "--port", str(ports["scd"])],
                self._env(
                    "scd",
                    FLEX_DB_SCHEMA="scd",
                    FLEX_MQTT_CLIENT_ID=unique_client_id("scd", self.topics.root),
                    FLEX_CHAIN_POLL_S="0.2",
                    FLEX_FLUSH_INTERVAL_S="0.05",
                    FLEX_VERIFY_WORKERS=os.environ.get("FLEX_VERIFY_WORKERS", "1"),
                ),
                port=ports["scd"],
            ),
            self._process(
                "market",
                [
                    "serve",
                    "market",
                    "--port",
                    str(ports["market"]),
                    "--areas",
                    str(areas),
                    "--clock-mqtt",
                ],
                self._env(
                    "market",
                    FLEX_DB_SCHEMA="market",
                    FLEX_MARKET_OPERATOR_KEY="dev:market",
                    FLEX_SCD_URL=self.urls.scd,
                    FLEX_SCHEDULER_POLL_S="0.05",
                    FLEX_ROLE_CACHE_S="60",
                ),
                port=ports["market"],
            ),
            self._process(
                "dso",
                [
                    "serve",
                    "dso",
                    "--port",
                    str(ports["dso"]),
                    "--scenario",
                    str(self.scenario_path),
                    "--clock-mqtt",
                ],
                self._env(
                    "dso", FLEX_DSO_SCD_URL=self.urls.scd, FLEX_DSO_MARKET_URL=self.urls.market
                ),
                port=ports["dso"],
            ),
        ]
        for agg in self.scenario.aggregators:
            slug = agg.name.replace(":", "-")
            port = free_port()
            self.urls.aggregators[agg.name] = f"http://127.0.0.1:{port}"
            started.append(
                self._process(
                    slug,
                    ["serve", "aggregator", "--port", str(port), "--follow", "--clock-mqtt"],
                    self._env(
                        f"aggregators/{slug}",
                        FLEX_AGGREGATOR_KEY=agg.key,
                        FLEX_AGGREGATOR_NAME=agg.name,
                        FLEX_AGGREGATOR_PORTFOLIO=str(self.scenario_path),
                        FLEX_AGGREGATOR_DB_SCHEMA=slug.replace("-", "_"),
                        FLEX_MARKET_URL=self.urls.market,
                        FLEX_SCD_URL=self.urls.scd,
                    ),
                    port=port,
                )
            )
        await asyncio.gather(*(p.wait_ready() for p in started))

    async def _follow_world(self) -> None:
        """Join the world's clock as its pacer, and count the set-points its BMS applied."""
        mqtt = MqttClient(self.urls.mqtt, unique_client_id("day", self.topics.root), timeout_s=30)
        await self._stack.enter_async_context(mqtt)

        async def on_ack(_topic: str, ack: BmsAck) -> None:
            if ack.fault is None:
                self._acks += 1

        await mqtt.subscribe(f"{self.topics.root}/sim/bms/+/ack", BmsAck, on_ack)
        self._clock = MqttClockClient(DRIVER, mqtt, topics=self.topics, timeout_s=180)
        await self._clock.start(register=True)
        self._stack.push_async_callback(self._clock.stop)

    async def start_light_nodes(self) -> None:
        """The concentrator and one Light Node per POD, each its own process, on the world's
        meters and BMS over MQTT and its clock, sampling from the delivery day (attached:
        they were started by hand)."""
        if self.attach is not None:
            return
        base = self.home / "lightnodes"
        conc = self._process(
            "concentrator",
            [
                "concentrator",
                "run",
                "--id",
                "c1",
                "--key",
                "dev:concentrator:1",
                "--db",
                str(base / "concentrator.sqlite"),
                "--batch-interval",
                "1",
                "--max-windows",
                "500",
            ],
            self._env("lightnodes"),
            ready_line="concentrator c1 (",
        )
        self.concentrator = _ConcentratorProcess(conc)
        nodes = [
            self._process(
                f"ln-{pod}",
                [
                    "lightnode",
                    "run",
                    "--pod",
                    pod,
                    "--meter-mqtt",
                    "--clock-mqtt",
                    "--bms-mqtt",
                    "--anchor",
                    "concentrator",
                    "--scd-url",
                    self.urls.scd,
                    "--buffer",
                    str(base / f"{pod}.sqlite"),
                    "--start-s",
                    str(self.day_s),
                ],
                self._env(
                    "lightnodes",
                    FLEX_HEALTH_INTERVAL_S="3600",
                    FLEX_MANIFEST_RETRY_S="30",
                    FLEX_SCD_POLL_S="20",
                ),
                ready_line=f"Light Node {pod} (device",
            )
            for pod in self.world.pod_codes
        ]
        await asyncio.gather(*(p.wait_ready() for p in [conc, *nodes]))

    # -- what the day's driver needs (flexledger.stack.day.DayStack) --------------------------

    def _follower(self) -> MqttClockClient:
        if self._clock is None:
            raise RuntimeError("the stack is not started")
        return self._clock

    def now_s(self) -> int:
        return self._follower().now_s()

    async def advance_to(self, t_s: int) -> None:
        """The world's clock moves to ``t_s`` exactly, then waits for this participant again."""
        await self._follower().sleep_until(t_s)

    async def setpoints_applied(self) -> int:
        return self._acks

    def day_ahead_assessment(self) -> Any:
        return None  # the DSO's assessment object lives in its process (GET /assessments)

    def client(self, url: str, key: str | None = None, timeout_s: float = 60.0) -> SignedHttpClient:
        signer = LocalSigner(load_account(key), self.domain) if key else None
        c = SignedHttpClient(url, signer, timeout_s=timeout_s)
        self._stack.push_async_callback(c.aclose)
        return c
