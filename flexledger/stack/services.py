"""The embedded default's services (floor 4): the chain, the broker, the SCD, the market, the
DSO Technical Platform, the aggregators, the concentrator and one Light Node per POD, all in
one asyncio loop (HTTP on loopback served by uvicorn, MQTT through a real broker), with their
SQLite files under ``FLEX_HOME``.

``EmbeddedStack`` is what ``flexledger demo`` and the end-to-end tests bring up;
``flexledger.stack`` re-exports it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI

from flexledger.settings import ChainSettings, LightNodeSettings
from flexledger.time import DAY_S, ScenarioClock
from flexledger.transport import MqttClient, SignedHttpClient, Topics, unique_client_id
from flexledger.transport.brokers import EmbeddedBroker, MosquittoProcess, free_port
from node.keys import dev_account, load_account
from node.signing import LocalSigner

__all__ = ["EmbeddedStack", "ServiceUrls"]

log = logging.getLogger(__name__)


@dataclass
class ServiceUrls:
    """Where each service listens (loopback, free ports)."""

    scd: str = ""
    market: str = ""
    dso: str = ""
    aggregators: dict[str, str] = field(default_factory=dict)
    mqtt: str = ""
    rpc: str = ""
    audit: str = ""
    dashboard: str = ""


@dataclass
class _Served:
    name: str
    server: uvicorn.Server
    task: asyncio.Task[None]


class EmbeddedStack:
    """Every actor of one scenario's market day, wired as the embedded default.

    Use as ``async with EmbeddedStack(scenario_path, home) as stack: ...``. The chain is a fresh
    anvil devnet with its state file under ``home/chain`` (unless ``FLEX_RPC_URL`` is set), the
    broker an embedded amqtt (unless ``FLEX_MQTT_URL`` is set), each service's database a
    SQLite file under ``home``.

    Args:
        scenario_path: the scenario TOML.
        home: the state folder (``./.flexledger``); wiped first when ``fresh``.
        start_s: where the shared scenario clock starts (default D-1 08:00).
    """

    def __init__(
        self, scenario_path: Path, home: Path, *, start_s: int | None = None, fresh: bool = True
    ) -> None:
        from sim import World

        self.scenario_path = Path(scenario_path)
        self.home = Path(home)
        self.fresh = fresh
        if fresh:
            for sub in ("chain", "scd", "market", "dso", "aggregators", "lightnodes", "report"):
                shutil.rmtree(self.home / sub, ignore_errors=True)
            (self.home / "addresses.json").unlink(missing_ok=True)
        self.home.mkdir(parents=True, exist_ok=True)
        self.world = World(self.scenario_path)
        self.scenario = self.world.scenario
        self.day_s = self.scenario.day_s
        self.clock = ScenarioClock(
            start_s if start_s is not None else self.day_s - DAY_S + 8 * 3600, step_s=900
        )
        self.world.clock = self.clock
        self.urls = ServiceUrls()
        self.topics = Topics()
        self._stack = contextlib.AsyncExitStack()
        self._served: list[_Served] = []
        self.chain: Any = None
        self.contracts: Any = None
        self.book: Any = None
        self.scd_process: Any = None
        self.scd_db_url = ""
        self.dso: Any = None
        self.aggregators: dict[str, Any] = {}
        self.nodes: list[Any] = []
        self.concentrator: Any = None
        self.http: dict[str, SignedHttpClient] = {}

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> EmbeddedStack:
        try:
            await self._start()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    async def _start(self) -> None:
        await self.start_chain()
        await self.start_broker()
        await self.start_scd()
        await self.start_market()
        await self.start_dso()
        await self.start_aggregators()

    async def start_chain(self) -> None:
        """The devnet (or ``FLEX_RPC_URL``) and the contracts, with the scenario's roles."""
        from flexledger.stack import dev_plan, open_chain
        from node.addressbook import AddressBook
        from node.deploy import deploy

        self.chain = self._stack.enter_context(
            open_chain(self.home, fresh=self.fresh, chain=ChainSettings())
        )
        plan = dev_plan(self.world.pod_codes, self.world.sensor_ids())
        owners = sorted({p.owner for p in self.scenario.pods if p.owner})
        for spec in owners:
            addr = load_account(spec).address
            plan.fund_wei[addr] = 10**20
        for pod in self.world.pod_codes:
            plan.fund_wei[dev_account(f"ln:{pod}").address] = 10**21
        await asyncio.to_thread(
            deploy, self.chain.w3, dev_account("deployer"), plan, book_path=self.chain.book_path
        )
        self.book = AddressBook.load(self.chain.book_path)
        self.contracts = self.chain.contracts()
        self.domain = self.contracts.roles.domain()
        self.urls.rpc = self.chain.rpc_url

    async def start_broker(self) -> None:
        """``FLEX_MQTT_URL`` when set; else a private broker of the stack's own: Mosquitto in a
        child process when the machine has it (the broker's work then leaves this process's
        event loop, which serves every actor), amqtt in this loop otherwise.
        ``FLEX_EMBEDDED_BROKER=amqtt|mosquitto`` chooses."""
        url = os.environ.get("FLEX_MQTT_URL")
        if not url:
            choice = os.environ.get("FLEX_EMBEDDED_BROKER", "auto")
            broker: Any = None
            if choice in ("auto", "mosquitto"):
                try:
                    broker = MosquittoProcess()
                except FileNotFoundError:
                    if choice == "mosquitto":
                        raise
            if broker is None:
                broker = EmbeddedBroker()
            await self._stack.enter_async_context(broker)
            url = broker.url
            log.info("MQTT broker %s on %s", type(broker).__name__, url)
        self.urls.mqtt = url

    async def _serve(self, name: str, app: FastAPI) -> str:
        port = free_port()
        config = uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"
        )
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve(), name=f"serve-{name}")
        for _ in range(600):
            if server.started:
                break
            if task.done():
                task.result()
            await asyncio.sleep(0.05)
        else:
            raise RuntimeError(f"{name} did not start")
        self._served.append(_Served(name, server, task))

        async def stop() -> None:
            server.should_exit = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 20)

        self._stack.push_async_callback(stop)
        log.info("%s on http://127.0.0.1:%d", name, port)
        return f"http://127.0.0.1:{port}"

    # -- what the day's driver needs (flexledger.stack.day.DayStack) --------------------------

    def now_s(self) -> int:
        return self.clock.now_s()

    async def advance_to(self, t_s: int, step_s: int = 900) -> None:
        """Drive the shared clock to ``t_s``, one step at a time, letting the actors run."""
        while self.clock.now_s() < t_s:
            await self.clock.advance(min(step_s, t_s - self.clock.now_s()))
            await asyncio.sleep(0)

    async def setpoints_applied(self) -> int:
        return sum(len(b.setpoints) for b in self.world.bms.values())

    def day_ahead_assessment(self) -> Any:
        record = self.dso.days.get(self.day_s) if self.dso is not None else None
        return record.assessment if record is not None else None

    def client(self, url: str, key: str | None = None, timeout_s: float = 60.0) -> SignedHttpClient:
        signer = LocalSigner(load_account(key), self.domain) if key else None
        c = SignedHttpClient(url, signer, timeout_s=timeout_s)
        self._stack.push_async_callback(c.aclose)
        return c

    async def start_scd(self) -> None:
        """The SCD as a process of its own (``flexledger serve scd``, SQLite under
        ``home/scd``, log in ``home/logs/scd.log``): it verifies, stores and certifies every
        4 s sample of the day, work that would otherwise queue behind every other actor on
        this process's event loop; in its own process it has the machine's other core."""
        from .distributed import ServiceProcess, _flexledger_command, actor_env

        home = self.home / "scd"
        home.mkdir(parents=True, exist_ok=True)
        port = free_port()
        env = actor_env(home, self.urls, self.chain.book_path, self.topics.root)
        env.update(
            {
                "FLEX_MQTT_CLIENT_ID": unique_client_id("scd", "stack"),
                "FLEX_CHAIN_POLL_S": "0.2",
                "FLEX_FLUSH_INTERVAL_S": "0.05",
                "FLEX_VERIFY_WORKERS": os.environ.get("FLEX_VERIFY_WORKERS", "0"),
                "FLEX_LOG_LEVEL": os.environ.get("FLEX_LOG_LEVEL", "WARNING"),
            }
        )
        proc = ServiceProcess(
            "scd",
            [*_flexledger_command(), "serve", "scd", "--port", str(port)],
            env,
            self.home / "logs" / "scd.log",
            health_url=f"http://127.0.0.1:{port}/health",
        )
        proc.start()
        self._stack.push_async_callback(proc.stop)
        await proc.wait_ready()
        self.scd_process = proc
        self.scd_db_url = f"sqlite:///{home / 'scd.sqlite'}"
        self.urls.scd = f"http://127.0.0.1:{port}"

    async def start_market(self) -> None:
        from market.app import create_app
        from market.settings import MarketSettings
        from sim import areas_table

        (self.home / "market").mkdir(parents=True, exist_ok=True)
        settings = MarketSettings(
            home=self.home / "market",
            market_operator_key="dev:market",
            mqtt_url=self.urls.mqtt,
            mqtt_root=self.topics.root,
            scd_url=None,
            scheduler_poll_s=0.05,
            role_cache_s=60.0,
        )
        from market.service.scd import HttpScdReader

        port = free_port()
        reader = HttpScdReader(self.urls.scd)
        self._stack.callback(reader.close)
        app = create_app(
            settings,
            contracts=self.contracts,
            clock=self.clock,
            areas=areas_table(self.scenario),
            scd=reader,
        )
        del port
        self.urls.market = await self._serve("market", app)
        self.market_app = app

    async def start_dso(self) -> None:
        from dso import DsoGrid, DsoPlatform, DsoSettings
        from dso import create_app as create_dso_app

        settings = DsoSettings(scd_url=self.urls.scd, market_url=self.urls.market)
        signer = LocalSigner(dev_account("dso"), self.domain)
        grid = await asyncio.to_thread(
            DsoGrid.from_scenario, self.scenario, base_dir=self.scenario_path.parent
        )
        self.dso = DsoPlatform(
            grid,
            signer,
            self.domain,
            market_operator=dev_account("market").address,
            issuers=[dev_account("tso").address],
            scenario=self.scenario,
            settings=settings,
            now_s=self.clock.now_s,
            scd=self.client(self.urls.scd, "dev:dso"),
            market=self.client(self.urls.market, "dev:dso"),
        )
        app = create_dso_app(self.dso, mqtt_url=self.urls.mqtt, topics=self.topics)
        self.urls.dso = await self._serve("dso", app)

    async def start_aggregators(self) -> None:
        from aggregator import AggregatorSettings, Portfolio, build_service
        from aggregator import create_app as create_agg_app

        for agg in self.scenario.aggregators:
            slug = agg.name.replace(":", "-")
            home = self.home / "aggregators" / slug
            home.mkdir(parents=True, exist_ok=True)
            settings = AggregatorSettings(
                home=home,
                aggregator_key=agg.key,
                aggregator_name=agg.name,
                market_url=self.urls.market,
                scd_url=self.urls.scd,
                # the day's driver reaches the aggregators only through the market's session
                # events: they offer, plan and pay by themselves
                aggregator_follow=True,
                mqtt_url=self.urls.mqtt,
                topic_root=self.topics.root,
            )
            portfolio = Portfolio.from_scenario(self.scenario, agg.name)
            service = build_service(
                settings, contracts=self.contracts, clock=self.clock, portfolio=portfolio
            )
            self._stack.callback(service.engine.dispose)
            self._stack.push_async_callback(service.market.aclose)
            self._stack.push_async_callback(service.scd.aclose)
            self.aggregators[agg.name] = service
            self.urls.aggregators[agg.name] = await self._serve(
                agg.name, create_agg_app(settings, service=service)
            )

    async def start_dashboard(self, *, auth: Any = None) -> str:
        """The auditor's verdict service (``audit.app``, verdicts in ``home/audit``) and the
        operator dashboard (``flexledger.dashboard``: public APIs and the chain only) on
        loopback; the dashboard's URL. ``auth``: a ``DashboardAuth`` (None: no login)."""
        from audit.app import AuditStore
        from audit.app import create_app as create_audit_app
        from flexledger.dashboard import DashboardConfig
        from flexledger.dashboard import create_app as create_dashboard_app

        self.audit_store = AuditStore(self.home / "audit" / "audits.json")
        if self.fresh:
            self.audit_store.path.unlink(missing_ok=True)
        self.urls.audit = await self._serve("audit", create_audit_app(self.audit_store))
        config = DashboardConfig.from_urls(
            self.urls, anchor_address=self.book.address("MeasurementAnchor")
        )
        app = create_dashboard_app(config, auth=auth)
        self.urls.dashboard = await self._serve("dashboard", app)
        # its event streams end first, else the server would wait for them on shutdown
        self._stack.push_async_callback(app.state.live.stop)
        return self.urls.dashboard

    async def start_light_nodes(self, *, anchor: str = "concentrator") -> None:
        """One Light Node per POD on the world's meter and BMS, anchoring through the
        concentrator (one transaction per batch of windows), sampling from the delivery day."""
        from flexledger.settings import ConcentratorSettings
        from lightnode import Concentrator, LightNode

        base = self.home / "lightnodes"
        base.mkdir(parents=True, exist_ok=True)
        if anchor == "concentrator":
            mqtt = MqttClient(self.urls.mqtt, unique_client_id("conc", "stack"), timeout_s=30)
            self.concentrator = Concentrator(
                "c1",
                account=dev_account("concentrator:1"),
                contracts=self.contracts,
                mqtt=mqtt,
                db=base / "concentrator.sqlite",
                topics=self.topics,
                domain=self.domain,
                settings=ConcentratorSettings(
                    concentrator_id="c1", batch_interval_s=1.0, batch_max_windows=500
                ),
            )
            await self.concentrator.start()
            self._stack.push_async_callback(mqtt.close)
            self._stack.push_async_callback(self.concentrator.stop)
        settings = LightNodeSettings(
            anchor=anchor,  # type: ignore[arg-type]
            # fifty simulated gateways share this machine's disk: an fsync per commit each
            # would cost the day more than all their signing (the agent's default is FULL)
            buffer_sync="NORMAL",
            health_interval_s=3600.0,
            manifest_retry_s=30.0,
            scd_poll_s=20.0,
            scd_url=self.urls.scd,
        )
        for pod in self.world.pod_codes:
            mqtt = MqttClient(self.urls.mqtt, unique_client_id("ln", pod[-4:]), timeout_s=30)
            node = LightNode(
                pod,
                account=dev_account(f"ln:{pod}"),
                meter=self.world.meters[pod],
                clock=self.clock,
                mqtt=mqtt,
                contracts=self.contracts,
                buffer=base / f"{pod}.sqlite",
                domain=self.domain,
                bms=self.world.bms[pod],
                topics=self.topics,
                settings=settings,
                start_s=self.day_s,
            )
            await node.start()
            self.nodes.append(node)
            self._stack.push_async_callback(mqtt.close)
            self._stack.push_async_callback(node.stop)


@contextlib.asynccontextmanager
async def embedded_stack(scenario_path: Path, home: Path) -> AsyncIterator[EmbeddedStack]:
    """``async with embedded_stack(path, home) as stack``: see :class:`EmbeddedStack`."""
    async with EmbeddedStack(scenario_path, home) as stack:
        yield stack
