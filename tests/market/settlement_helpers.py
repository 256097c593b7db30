"""A settlement world for the market's and the auditor's settlement tests: a real SCD (its own
database, served over HTTP by uvicorn in a thread, fed over the machine's Mosquitto), Light Node
windows anchored on the test chain, a BRP baseline committed before gate closure, and a
day-ahead session of the market with activation orders.

Every figure here is in whole W and Wh: a POD's baseline is ``BASELINE_WH`` in each MTU
(80 kW), so a Light Node measuring ``80,000 − x`` W delivers ``x / 4`` Wh up.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from eth_utils import keccak

from flexledger.messages import (
    Award,
    BaselineValue,
    BrpBaseline,
    MarketOutcome,
    MeasurementBatch,
    Sample,
    SessionAction,
    Signed,
    h32,
    id32,
)
from flexledger.time import MTU_S, day_start_s
from flexledger.transport import MqttClient, Topics, unique_client_id
from flexledger.transport.brokers import free_port
from flexledger.transport.mqtt import encode_payload
from market.app import create_app as create_market_app
from market.service.announce import MemoryAnnouncer
from market.service.scd import HttpScdReader
from market.settings import MarketSettings
from node.contracts import FlexContracts
from node.keys import dev_account
from node.merkle import MerkleTree
from node.signing import LocalSigner, commitment_root
from scd.api import create_app as create_scd_app
from scd.service import ScdService
from scd.settings import ScdSettings
from tests.market.helpers import AREAS, DAY, GATE, POD1, POD2, POD3, T40, Market

MOSQUITTO = "mqtt://127.0.0.1:1883"
BASELINE_WH = 20_000  # every POD, every MTU: 80 kW
PODS = (POD1, POD2, POD3)
T41 = T40 + MTU_S
END = DAY + 96 * MTU_S


def mosquitto_or_skip() -> None:
    try:
        with socket.create_connection(("127.0.0.1", 1883), timeout=0.5):
            return
    except OSError:
        pytest.skip("no Mosquitto on 127.0.0.1:1883")


@dataclass
class ScdServer:
    """The SCD app with its service, served by uvicorn on a free port in a thread."""

    contracts: FlexContracts
    home: Path
    topics: Topics = field(default_factory=lambda: Topics(f"t{uuid.uuid4().hex[:10]}/flex"))
    service: ScdService | None = None
    url: str = ""
    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = None

    def __enter__(self) -> ScdServer:
        settings = ScdSettings(
            home=self.home,
            mqtt_url=MOSQUITTO,
            mqtt_client_id=unique_client_id("scd", "settle"),
            topic_root=self.topics.root,
            chain_poll_s=0.1,
            flush_interval_s=0.02,
            resend_interval_s=30.0,
            resend_max=1,
        )
        w3 = self.contracts.market.w3
        self.service = ScdService.from_settings(
            settings, contracts=self.contracts, from_block=w3.eth.block_number + 1
        )
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(
            create_scd_app(service=self.service), host="127.0.0.1", port=port, log_level="warning"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="scd", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the SCD did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None and self._thread is not None
        self._server.should_exit = True
        self._thread.join(timeout=20)
        if self.service is not None:
            self.service.close()

    def reader(self) -> HttpScdReader:
        return HttpScdReader(self.url)

    def get(self, path: str, **params: Any) -> Any:
        r = httpx.get(self.url + path, params=params, timeout=10)
        assert r.status_code == 200, r.text
        return r.json()


def brp_baseline(
    contracts: FlexContracts, day_s: int, pods: tuple[str, ...] = PODS, wh: int = BASELINE_WH
) -> Signed[BrpBaseline]:
    """The BRP's baseline of the day: ``wh`` in every MTU of every POD, its root committed."""
    values = [
        BaselineValue(pod=p, mtu_start_s=day_s + i * MTU_S, e_wh=wh)
        for p in pods
        for i in range(96)
    ]
    unsigned = BrpBaseline(
        brp=dev_account("brp").address, day_s=day_s, values=values, root=h32(bytes(32)), nonce=1
    )
    root = commitment_root(unsigned.ordered_leaves())
    message = unsigned.model_copy(update={"root": h32(root)})
    contracts.baselines.commit_baseline(dev_account("brp"), day_s, root, len(pods))
    return LocalSigner(dev_account("brp"), contracts.roles.domain()).sign(message)


@dataclass
class LightNodes:
    """Publishes a POD's 4 s samples of one MTU to the SCD and anchors the window's root from
    the POD's device key, like a Light Node; each POD's sequence numbers run on."""

    contracts: FlexContracts
    topics: Topics
    mqtt: MqttClient
    seqs: dict[str, int] = field(default_factory=dict)

    def device(self, pod: str) -> Any:
        return dev_account(f"ln:{pod}")

    async def window(
        self,
        pod: str,
        start: int,
        p_w: int,
        *,
        drop: frozenset[int] = frozenset(),
        alter: frozenset[int] = frozenset(),
    ) -> list[Sample]:
        """225 samples of ``p_w`` from ``start``; ``drop``: indices never published; ``alter``:
        indices whose anchored version differs from the published one (tampering)."""
        first = self.seqs.get(pod, 1000)
        samples = [
            Sample(t_s=start + 4 * i, p_w=p_w, q_var=0, v_mv=230_000, seq=first + i)
            for i in range(225)
        ]
        self.seqs[pod] = first + 225
        signer = LocalSigner(self.device(pod), self.contracts.roles.domain())
        published = [s for i, s in enumerate(samples) if i not in drop]
        for chunk in range(0, len(published), 75):
            part = published[chunk : chunk + 75]
            runs: list[list[Sample]] = []
            for s in part:
                if runs and runs[-1][-1].seq + 1 == s.seq:
                    runs[-1].append(s)
                else:
                    runs.append([s])
            for run in runs:
                env = signer.sign(MeasurementBatch(pod=pod, samples=run))
                await self.mqtt.publish(self.topics.pod_measure(pod), encode_payload(env), qos=1)
        anchored = [
            s.model_copy(update={"p_w": s.p_w + 1}) if i in alter else s
            for i, s in enumerate(samples)
        ]
        root = MerkleTree([s.leaf(id32(pod)) for s in anchored]).root
        await asyncio.to_thread(
            self.contracts.anchor.anchor, self.device(pod), id32(pod), start, root, 225
        )
        return samples


async def wait_windows(
    scd: ScdServer, expect: dict[tuple[str, int], str], timeout_s: float = 45
) -> None:
    """Until the SCD judged each (POD, window) as expected."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        got = {}
        for pod, start in expect:
            rows = await asyncio.to_thread(
                scd.get, "/windows", pod=pod, from_s=start, to_s=start + 1
            )
            got[(pod, start)] = rows[0]["status"] if rows else None
        if got == expect:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"windows {got}, expected {expect}")
        await asyncio.sleep(0.1)


@dataclass
class SettlementWorld:
    """A market (settle delay 0) reading a real SCD, with the session's awards."""

    market: Market
    scd: ScdServer
    nodes: LightNodes
    outcome: MarketOutcome | None = None

    @property
    def contracts(self) -> FlexContracts:
        return self.market.contracts

    def awards_of(self, pod: str, t: int | None = None) -> list[Award]:
        assert self.outcome is not None
        return [
            a for a in self.outcome.awards if a.pod == pod and (t is None or a.mtu_start_s == t)
        ]

    async def day_ahead(self, session: str = "DA-1") -> MarketOutcome:
        """Open, three offers of 2 MTUs (T40, T41), a DSO request over the three PODs and a
        TSO request in area A; close the gate on the clock; approve round 1."""
        m = self.market
        await m.open(session)
        for env in (
            m.offer("aggregator:1", POD1, 30, 100, session, count=2),
            m.offer("aggregator:2", POD2, 20, 120, session, count=2),
            m.offer("aggregator:1", POD3, 50, 150, session, count=2),
            m.dso_request(40, session, count=2, eligible={POD1: 1.0, POD2: 1.0, POD3: 1.0}),
            m.tso_request(10, session, count=2),
        ):
            path = "/requests" if env.message.eip712_type == "Request" else "/offers"
            r = await m.post(path, env)
            assert r.status_code == 201, r.text
        await m.advance_to(GATE)
        await m.wait_state(session, "validating")
        r1 = (await m.round(session, 1)).message
        r = await m.post(f"/sessions/{session}/validations", m.validation(r1))
        assert r.status_code == 201, r.text
        await m.wait_state(session, "final")
        self.outcome = (
            Signed[MarketOutcome]
            .model_validate(await m.get(f"/sessions/{session}/outcome"))
            .message
        )
        return self.outcome

    async def order(self, award: Award, power_w: int | None = None) -> None:
        issuer = "dso" if award.stage == "dso" else "tso"
        r = await self.market.post("/orders", self.market.order(award, issuer, power_w))
        assert r.status_code == 201, r.text

    def approve(self, cents: int = 1_000_000) -> None:
        for payer in ("dso", "tso"):
            self.contracts.token.approve(
                dev_account(payer), self.contracts.settlement.address, cents
            )

    async def settle(self, session: str = "DA-1") -> Any:
        await self.market.advance_to(END)
        return await self.market.post(
            f"/sessions/{session}/commands", self.market.command(session, SessionAction.SETTLE)
        )


@dataclass
class SettlingMarket(Market):
    """``Market`` with settlement: its SCD reader, no settle delay."""

    scd_reader: HttpScdReader | None = None
    baseline_method: str = "brp"

    def settings(self) -> MarketSettings:
        return (
            super()
            .settings()
            .model_copy(update={"settle_delay_s": 0, "baseline_method": self.baseline_method})
        )

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Market]:
        self.announcer = self.announcer or MemoryAnnouncer()
        self.app = create_market_app(
            self.settings(),
            contracts=self.contracts,
            clock=self.clock,
            announcer=self.announcer,
            areas=AREAS,
            scheduler=self.scheduler,
            scd=self.scd_reader,
        )
        async with self.app.router.lifespan_context(self.app):
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://market") as http:
                self.http = http
                yield self
        self.ctx.engine.dispose()


def register_devices(contracts: FlexContracts) -> None:
    """Bind each POD's Light Node key on chain and give it gas money (anvil)."""
    w3 = contracts.market.w3
    for pod in PODS:
        device = dev_account(f"ln:{pod}").address
        w3.provider.make_request("anvil_setBalance", [device, hex(10**21)])  # type: ignore[arg-type]
        if contracts.anchor.device_of(id32(pod)) is None:
            contracts.anchor.register_device(dev_account("deployer"), id32(pod), device)


@contextlib.asynccontextmanager
async def settlement_world(
    contracts: FlexContracts, tmp_path: Path, baseline_method: str = "brp"
) -> AsyncIterator[SettlementWorld]:
    """The market and SCD running, the Light Nodes' devices registered, the BRP baseline of
    the delivery day committed and uploaded; sessions name ``baseline_method`` on chain."""
    mosquitto_or_skip()
    register_devices(contracts)
    baseline = brp_baseline(contracts, day_start_s(DAY))
    with ScdServer(contracts, tmp_path / "scd") as scd:
        r = httpx.post(
            scd.url + "/baselines",
            json=baseline.model_dump(mode="json", serialize_as_any=True),
            timeout=10,
        )
        assert r.status_code == 201, r.text
        reader = scd.reader()
        market = SettlingMarket(
            contracts, tmp_path / "market", scd_reader=reader, baseline_method=baseline_method
        )
        mqtt = MqttClient(MOSQUITTO, unique_client_id("lnsim", "settle"), timeout_s=5.0)
        await mqtt.start(wait_s=5.0)
        try:
            async with market.running():
                yield SettlementWorld(market, scd, LightNodes(contracts, scd.topics, mqtt))
        finally:
            reader.close()
            await mqtt.close()


def measurement_root_of(*roots: bytes) -> str:
    return h32(keccak(b"".join(roots)))


class LoopHttp:
    """A blocking ``get`` for the auditor (run in a thread) onto the market app that the test's
    own event loop serves."""

    def __init__(self, http: httpx.AsyncClient, loop: asyncio.AbstractEventLoop) -> None:
        self.http = http
        self.loop = loop

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        r = asyncio.run_coroutine_threadsafe(self.http.get(path, params=params), self.loop).result(
            30
        )
        assert r.status_code == 200, r.text
        return r.json()
