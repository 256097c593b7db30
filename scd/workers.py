"""Ingest worker processes behind an MQTT shared subscription.

One Python process reads, acknowledges, verifies and stores a few thousand one-sample messages
a second at most: the MQTT client's per-message work and the signature recovery share one GIL.
``IngestWorkerPool`` spreads that over ``ingest_workers`` processes (``spawn``), each with its
own MQTT connection subscribed to ``$share/{group}/{root}/pod/+/measure``: the broker hands
each message to one member of the group (MQTT 5 shared subscriptions; Mosquitto ≥ 1.6 also
offers them to MQTT 3.1.1 clients, which is what the workers are). Each worker

- reads with ``MqttReader``, a lean MQTT 3.1.1 subscriber on a thread of its own (every
  complete packet of a socket read parsed at once, their PUBACKs in one ``send``; it
  acknowledges a QoS 1 message once it is in the worker's buffer, as the in-process ingestor
  does),
- verifies and stores with its own ``MeasurementIngestor`` (coincurve recovery, its own cache
  of device bindings, ``COPY`` into the same PostgreSQL database; ``sample_batches`` ids in its
  own residue class, counters in rows of its own, the primary key deciding between writers),
- reports each flush's counts and touched windows to the service process, which keeps the
  totals (``IngestStats``) and tells the certifier.

The service process forwards the chain's device events (``DeviceRegistered``,
``DeviceRevoked``) to every worker and waits until each has applied them: when
``Certifier.sync()`` returns, no worker accepts a revoked key any more.

Each worker keeps a durable MQTT session (``{client_id}-w{i}``): while the SCD is down the broker
queues each member's share. A member that is not coming back (fewer workers than last time)
would keep its share queued, so the pool clears the sessions of the next indices at start. A
worker that exits on its own is started again (same index, same session) within a second.

Brokers without shared subscriptions (amqtt 0.12 takes the subscription and delivers
nothing): the pool publishes a probe on a shared topic after the workers subscribed; when no
worker gets it, ``start()`` stops them and says so, and the service ingests in its own process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import secrets
import socket
import ssl
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from sqlalchemy import Engine
from web3 import HTTPProvider, Web3

from flexledger.storage import make_engine
from flexledger.transport import Topics
from flexledger.transport.mqtt import MqttUrl, parse_mqtt_url
from node.contracts import (
    BaselineRegistryClient,
    FlexContracts,
    FlexMarketClient,
    FlexRolesClient,
    MeasurementAnchorClient,
    SettlementClient,
    SettlementTokenClient,
)
from node.events import ChainEvent
from scd.chain import ChainView
from scd.ingest import MeasurementIngestor
from scd.stats import IngestStats

__all__ = [
    "DEVICE_EVENTS",
    "IngestWorkerPool",
    "MqttReader",
    "WorkerConfig",
    "paho_client",
    "shared_filter",
]

log = logging.getLogger(__name__)

#: Chain events the workers' binding caches need.
DEVICE_EVENTS = frozenset({"DeviceRegistered", "DeviceRevoked"})
_RETIRE_EXTRA = 8  # worker sessions past the last index that start() clears


def shared_filter(group: str, topic_filter: str) -> str:
    """``$share/{group}/{filter}``: the broker gives each message to one member of ``group``."""
    return f"$share/{group}/{topic_filter}"


@dataclass(frozen=True)
class WorkerConfig:
    """Everything a worker process needs (picklable: it crosses a ``spawn``)."""

    index: int
    count: int
    mqtt_url: str
    client_id: str
    group: str
    topic_root: str
    db_url: str
    db_schema: str
    rpc_url: str
    addresses: dict[str, str]
    flush_max: int
    flush_interval_s: float
    log_level: int

    @property
    def measure_filter(self) -> str:
        return shared_filter(self.group, f"{self.topic_root}/pod/+/measure")

    @property
    def probe_topic(self) -> str:
        return f"{self.topic_root}/scd/share-probe"


# -- the worker process ------------------------------------------------------------------------


def paho_client(url: str, client_id: str, *, clean_session: bool) -> tuple[Any, MqttUrl]:
    """A bare paho client (no asyncio between the socket and the buffer), TCP_NODELAY."""
    import paho.mqtt.client as paho

    u = parse_mqtt_url(url)
    client = paho.Client(
        paho.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=clean_session,
        protocol=paho.MQTTv311,
    )
    if u.username:
        client.username_pw_set(u.username, u.password)
    if u.tls:
        client.tls_set_context(ssl.create_default_context())

    def nodelay(_c: Any, _u: Any, sock: Any) -> None:
        with contextlib.suppress(OSError, AttributeError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    client.on_socket_open = nodelay
    client.reconnect_delay_set(1, 4)
    return client, u


class MqttReader:
    """A lean MQTT 3.1.1 subscriber for the ingest workers: one thread, one socket.

    paho handles one packet per ``select``: a few ``recv`` calls to read it, a Python object per
    message, one ``send`` per PUBACK. This reader takes what the socket has (up to 256 KiB a
    ``recv``), parses every complete packet in it, hands all its PUBLISHes to ``on_messages`` in
    one call and only then acknowledges them, every PUBACK of the read in one ``send``: a QoS 1
    message is acknowledged once it is in the worker's buffer, as before. It reconnects (1-4 s
    apart) and subscribes again after a lost connection; the session is durable
    (``clean_session`` False), so the broker keeps the share queued meanwhile.
    """

    def __init__(
        self,
        url: str,
        client_id: str,
        subscriptions: list[tuple[str, int]],
        on_messages: Callable[[list[tuple[str, bytes]]], None],
        on_subscribed: Callable[[list[int]], None],
        *,
        clean_session: bool = False,
        keepalive: int = 20,
    ) -> None:
        self.url = parse_mqtt_url(url)
        self.client_id = client_id
        self.subscriptions = subscriptions
        self.on_messages = on_messages
        self.on_subscribed = on_subscribed
        self.clean_session = clean_session
        self.keepalive = keepalive
        self._sock: socket.socket | None = None
        self._send_lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._pong = False

    # -- packets ------------------------------------------------------------------------------
    @staticmethod
    def _packet(first: int, body: bytes) -> bytes:
        n = len(body)
        length = bytearray()
        while True:
            byte, n = n % 128, n // 128
            length.append(byte | 0x80 if n else byte)
            if not n:
                return bytes([first]) + bytes(length) + body

    @staticmethod
    def _str(s: str) -> bytes:
        b = s.encode("utf-8")
        return len(b).to_bytes(2, "big") + b

    def _connect_packet(self) -> bytes:
        u = self.url
        flags = 0x02 if self.clean_session else 0
        payload = self._str(self.client_id)
        if u.username:
            flags |= 0x80
            payload += self._str(u.username)
            if u.password is not None:
                flags |= 0x40
                payload += self._str(u.password)
        head = b"\x00\x04MQTT\x04" + bytes([flags]) + self.keepalive.to_bytes(2, "big")
        return self._packet(0x10, head + payload)

    def _subscribe_packet(self) -> bytes:
        body = b"\x00\x01" + b"".join(self._str(t) + bytes([q]) for t, q in self.subscriptions)
        return self._packet(0x82, body)

    # -- the thread ---------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="mqtt-reader", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """DISCONNECT and close: once this returns, no message comes in any more."""
        self._stopping.set()
        sock = self._sock
        if sock is not None:
            with self._send_lock, contextlib.suppress(OSError):
                sock.sendall(b"\xe0\x00")
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _send(self, sock: socket.socket, data: bytes) -> None:
        with self._send_lock:
            sock.sendall(data)

    def _run(self) -> None:
        delay = 1.0
        while not self._stopping.is_set():
            try:
                self._session()
                delay = 1.0
            except (OSError, ConnectionError, ValueError) as exc:
                if self._stopping.is_set():
                    break
                log.warning(
                    "MQTT reader %s: %s; reconnecting in %.0f s", self.client_id, exc, delay
                )
            finally:
                sock, self._sock = self._sock, None
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.close()
            if self._stopping.wait(delay):
                break
            delay = min(delay * 2, 4.0)

    def _session(self) -> None:
        u = self.url
        sock = socket.create_connection((u.host, u.port), timeout=10)
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if u.tls:
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=u.host)
        self._sock = sock
        if self._stopping.is_set():
            return
        self._send(sock, self._connect_packet() + self._subscribe_packet())
        half = max(1.0, self.keepalive / 2)
        sock.settimeout(half)
        buf = bytearray()
        last_sent = time.monotonic()
        ping_since: float | None = None
        recv = sock.recv
        while True:
            try:
                data = recv(262144)
            except TimeoutError:
                data = None
            if data is not None:
                if not data:
                    if self._stopping.is_set():
                        return
                    raise ConnectionError("the broker closed the connection")
                buf += data
                acks = self._parse(buf)
                if acks:
                    self._send(sock, acks)
                    last_sent = time.monotonic()
            now = time.monotonic()
            if ping_since is not None and now - ping_since > self.keepalive:
                raise ConnectionError(f"no PINGRESP within {self.keepalive} s")
            if now - last_sent >= half:
                self._send(sock, b"\xc0\x00")
                last_sent = now
                if ping_since is None:
                    ping_since = now
            if self._pong:
                self._pong = False
                ping_since = None

    def _parse(self, buf: bytearray) -> bytes:
        """Handle every complete packet at the start of ``buf`` (removed from it); the PUBACKs
        to send, concatenated."""
        msgs: list[tuple[str, bytes]] = []
        acks: list[bytes] = []
        pos, end = 0, len(buf)
        while end - pos >= 2:
            first = buf[pos]
            # remaining length: 1-4 bytes, 7 bits each
            length, shift, i, complete = 0, 0, pos + 1, False
            while i < end:
                byte = buf[i]
                i += 1
                length |= (byte & 0x7F) << shift
                if not byte & 0x80:
                    complete = True
                    break
                shift += 7
                if shift > 21:
                    raise ValueError("malformed remaining length")
            if not complete or i + length > end:
                break
            kind = first >> 4
            if kind == 3:  # PUBLISH
                qos = (first >> 1) & 3
                tlen = (buf[i] << 8) | buf[i + 1]
                topic = buf[i + 2 : i + 2 + tlen].decode("utf-8")
                j = i + 2 + tlen
                if qos:
                    if qos != 1:
                        raise ValueError("a QoS 2 PUBLISH on a QoS 1 subscription")
                    acks.append(b"\x40\x02" + buf[j : j + 2])
                    j += 2
                msgs.append((topic, bytes(buf[j : i + length])))
            elif kind == 2:  # CONNACK
                if buf[i + 1] != 0:
                    raise ConnectionError(f"connection refused (CONNACK return code {buf[i + 1]})")
            elif kind == 9:  # SUBACK
                self.on_subscribed(list(buf[i + 2 : i + length]))
            elif kind == 13:  # PINGRESP
                self._pong = True
            pos = i + length
        del buf[:pos]
        if msgs:
            self.on_messages(msgs)
        return b"".join(acks)


class _Worker:
    """One ingest process: a reader thread (``MqttReader``), a control thread, the flush loop."""

    def __init__(self, cfg: WorkerConfig, control: Connection, results: Any) -> None:
        self.cfg = cfg
        self.control = control
        self.results = results
        self.engine = make_engine(cfg.db_url, schema=cfg.db_schema)
        w3 = Web3(HTTPProvider(cfg.rpc_url, request_kwargs={"timeout": 30}))
        a = cfg.addresses
        contracts = FlexContracts(
            roles=FlexRolesClient(w3, a["roles"]),
            anchor=MeasurementAnchorClient(w3, a["anchor"]),
            baselines=BaselineRegistryClient(w3, a["baselines"]),
            market=FlexMarketClient(w3, a["market"]),
            token=SettlementTokenClient(w3, a["token"]),
            settlement=SettlementClient(w3, a["settlement"]),
        )
        self.chain = ChainView(contracts)
        self.stats = IngestStats()
        self.ingestor = MeasurementIngestor(
            self.engine,
            self.chain,
            Topics(cfg.topic_root),
            self.stats,
            flush_max=cfg.flush_max,
            flush_interval_s=cfg.flush_interval_s,
            id_slot=(cfg.index, cfg.count),
            counter_shard=f"w{cfg.index}",
        )
        self._buf: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._reported: dict[str, int] = {}
        self._subscribed = False

    # the reader thread's callbacks
    def _on_subscribed(self, codes: list[int]) -> None:
        if any(c >= 0x80 for c in codes):
            self.results.put(("failed", self.cfg.index, f"subscription refused: {codes}"))
            return
        if not self._subscribed:
            self._subscribed = True
            self.results.put(("subscribed", self.cfg.index, None))

    def _on_messages(self, msgs: list[tuple[str, bytes]]) -> None:
        probe = self.cfg.probe_topic
        for m in msgs:
            if m[0] == probe:
                self.results.put(("probe", self.cfg.index, m[1]))
        with self._lock:
            was_empty = not self._buf
            self._buf.extend(m for m in msgs if m[0] != probe)
            wake = was_empty and bool(self._buf)
        if wake:
            # the flush loop takes what arrived (5 ms to let a burst fill the batch) as soon as
            # it is free: waiting for flush_max or flush_interval_s would bound the rate by the
            # latency, with the publishers' QoS 1 windows the only thing in flight
            self._wake.set()

    def _control_loop(self) -> None:
        while True:
            try:
                msg = self.control.recv()
            except (EOFError, OSError):
                msg = ("stop", None)
            kind, body = msg
            if kind == "events":
                for event in body:
                    self.chain.apply(event)
                self.control.send(("applied", None))
            elif kind == "stop":
                self._stopping.set()
                self._wake.set()
                return

    def _flush(self, items: list[tuple[str, bytes]]) -> None:
        try:
            result = self.ingestor.process(items)
            touched = result.touched
        except Exception:
            log.exception("ingest worker %d: a flush of %d failed", self.cfg.index, len(items))
            self.stats.add("rejected.internal_error", len(items))
            touched = set()
        total = self.stats.total
        delta = {k: v - self._reported.get(k, 0) for k, v in total.items()}
        delta = {k: v for k, v in delta.items() if v}
        self._reported = dict(total)
        # counts not yet in the database (a failed transaction gives them back) go with the
        # next flush; the service process adds what it is told to its totals only
        self.results.put(("stored", self.cfg.index, (touched, delta, len(items))))

    def run(self) -> None:
        cfg = self.cfg
        reader = MqttReader(
            cfg.mqtt_url,
            cfg.client_id,
            [(cfg.measure_filter, 1), (shared_filter(cfg.group, cfg.probe_topic), 1)],
            self._on_messages,
            self._on_subscribed,
            clean_session=False,
            keepalive=20,
        )
        reader.start()
        threading.Thread(target=self._control_loop, name="control", daemon=True).start()
        try:
            while True:
                self._wake.wait(cfg.flush_interval_s)
                self._wake.clear()
                if self._stopping.is_set():
                    # no more messages in: disconnect, then store what was acknowledged
                    reader.stop()
                    while True:
                        with self._lock:
                            items = self._buf[: cfg.flush_max]
                            del self._buf[: cfg.flush_max]
                        if not items:
                            break
                        self._flush(items)
                    return
                with self._lock:
                    n = len(self._buf)
                if not n:
                    continue
                if n < cfg.flush_max:
                    time.sleep(min(0.005, cfg.flush_interval_s))  # let a burst fill the batch
                with self._lock:
                    items = self._buf[: cfg.flush_max]
                    del self._buf[: cfg.flush_max]
                self._flush(items)
        finally:
            self.engine.dispose()


def run_worker(cfg: WorkerConfig, control: Connection, results: Any) -> None:
    """The worker process's entry point (``spawn``)."""
    logging.basicConfig(
        level=cfg.log_level, format=f"%(levelname)s scd-ingest-{cfg.index} %(name)s: %(message)s"
    )
    try:
        worker = _Worker(cfg, control, results)
    except Exception:
        results.put(("failed", cfg.index, traceback.format_exc()))
        return
    results.put(("ready", cfg.index, None))
    try:
        worker.run()
    except Exception:
        results.put(("failed", cfg.index, traceback.format_exc()))
    finally:
        results.put(("stopped", cfg.index, None))


# -- the service side ----------------------------------------------------------------------------


class IngestWorkerPool:
    """Starts, feeds with chain events, listens to and stops the ingest worker processes.

    Args:
        count: worker processes (each one MQTT connection and one database writer).
        engine: the SCD's (migrated) database; the workers open their own connections to it.
        chain: the service's chain view (its contract addresses and RPC URL go to the workers).
        stats: the service's counters; the workers' counts are added to its totals.
        on_stored: called on the event loop with the windows each flush touched.
        group: the shared subscription's group name.
    """

    def __init__(
        self,
        count: int,
        *,
        mqtt_url: str,
        client_id: str,
        topic_root: str,
        engine: Engine,
        db_schema: str,
        chain: ChainView,
        stats: IngestStats,
        on_stored: Callable[[set[tuple[str, int]]], None] | None = None,
        flush_max: int = 4000,
        flush_interval_s: float = 0.05,
        group: str = "scd",
    ) -> None:
        self.count = count
        self.mqtt_url = mqtt_url
        self.client_id = client_id
        self.topic_root = topic_root
        self.engine = engine
        self.db_schema = db_schema
        self.chain = chain
        self.stats = stats
        self.on_stored = on_stored
        self.flush_max = flush_max
        self.flush_interval_s = flush_interval_s
        self.group = group
        self.received = 0  # messages the workers took from the broker
        self.restarts = 0  # workers started again after they exited on their own
        self._watch: asyncio.Task[None] | None = None
        self._ctx = multiprocessing.get_context("spawn")
        self._results: Any = None
        self._procs: list[Any] = []
        self._controls: list[Connection] = []
        self._control_lock = threading.Lock()
        self._reader: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready: set[int] = set()
        self._subscribed: set[int] = set()
        self._probes: list[bytes] = []
        self._stopped: set[int] = set()
        self._failed: dict[int, str] = {}
        self._changed = threading.Condition()

    def _config(self, index: int) -> WorkerConfig:
        c = self.chain.c
        provider = c.anchor.w3.provider
        rpc_url = str(getattr(provider, "endpoint_uri", "") or "")
        if not rpc_url.startswith("http"):
            raise RuntimeError("ingest workers need an HTTP JSON-RPC endpoint to read the chain")
        return WorkerConfig(
            index=index,
            count=self.count,
            mqtt_url=self.mqtt_url,
            client_id=f"{self.client_id}-w{index}",
            group=self.group,
            topic_root=self.topic_root,
            db_url=self.engine.url.render_as_string(hide_password=False),
            db_schema=self.db_schema,
            rpc_url=rpc_url,
            addresses={
                "roles": c.roles.address,
                "anchor": c.anchor.address,
                "baselines": c.baselines.address,
                "market": c.market.address,
                "token": c.token.address,
                "settlement": c.settlement.address,
            },
            flush_max=self.flush_max,
            flush_interval_s=self.flush_interval_s,
            log_level=logging.getLogger().getEffectiveLevel(),
        )

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(
        self, probe: Callable[[str, bytes], Any] | None, timeout_s: float = 60.0
    ) -> bool:
        """Clear stale worker sessions, start the workers, wait until each has subscribed, and
        (with ``probe``, an async publish) check that the broker delivers the shared
        subscription. False (the workers stopped again) when it does not."""
        self._loop = asyncio.get_running_loop()
        await asyncio.to_thread(self._retire, range(self.count, self.count + _RETIRE_EXTRA))
        self._results = self._ctx.Queue()
        self._reader = threading.Thread(target=self._read, name="scd-ingest-results", daemon=True)
        self._reader.start()
        for i in range(self.count):
            proc, parent = self._spawn(i)
            self._procs.append(proc)
            self._controls.append(parent)
        # without the broker (probe None) the workers keep connecting in the background, as
        # the service's own client does: wait until they are up, not subscribed
        done = self._subscribed if probe is not None else self._ready
        ok = await asyncio.to_thread(
            self._wait, lambda: len(done) == self.count or bool(self._failed), timeout_s
        )
        if self._failed:
            index, why = next(iter(self._failed.items()))
            await self.stop()
            raise RuntimeError(f"ingest worker {index} failed to start:\n{why}")
        if not ok:
            await self.stop()
            raise RuntimeError(f"ingest workers did not start within {timeout_s} s")
        if probe is None:
            log.warning(
                "SCD ingest workers started without a broker: shared subscriptions not checked"
            )
            self._watch = asyncio.create_task(self._watchdog(), name="scd-ingest-watchdog")
            return True
        nonce = secrets.token_hex(8).encode()
        for _ in range(3):
            await probe(f"{self.topic_root}/scd/share-probe", nonce)
            if await asyncio.to_thread(self._wait, lambda: nonce in self._probes, 1.0):
                self._watch = asyncio.create_task(self._watchdog(), name="scd-ingest-watchdog")
                log.info(
                    "SCD ingesting in %d worker processes (shared subscription %s)",
                    self.count,
                    shared_filter(self.group, f"{self.topic_root}/pod/+/measure"),
                )
                return True
        log.warning(
            "the MQTT broker at %s does not deliver shared subscriptions (amqtt does not): "
            "ingest workers off, ingesting in the service's process",
            self.mqtt_url,
        )
        await self.stop()
        await asyncio.to_thread(self._retire, range(self.count))
        return False

    def _spawn(self, index: int) -> tuple[Any, Connection]:
        parent, child = self._ctx.Pipe()
        proc = self._ctx.Process(
            target=run_worker,
            args=(self._config(index), child, self._results),
            name=f"scd-ingest-{index}",
            daemon=True,
        )
        proc.start()
        child.close()
        return proc, parent

    async def _watchdog(self, every_s: float = 1.0) -> None:
        """A worker that exits on its own is started again with the same index: the same MQTT
        session, so it gets the share the broker queued for it meanwhile."""
        delay = [every_s] * len(self._procs)
        due = [0.0] * len(self._procs)
        while True:
            await asyncio.sleep(every_s)
            for i, proc in enumerate(list(self._procs)):
                if proc.is_alive():
                    if time.monotonic() > due[i] + 60.0:
                        delay[i] = every_s  # up for a minute: the next exit restarts at once
                    continue
                if time.monotonic() < due[i]:
                    continue
                log.error(
                    "ingest worker %d exited (code %s): starting it again (after another exit, "
                    "not before %.0f s)",
                    i,
                    proc.exitcode,
                    delay[i],
                )
                due[i] = time.monotonic() + delay[i]
                delay[i] = min(delay[i] * 2, 30.0)  # one that cannot start is no busy loop
                self.restarts += 1
                new, parent = self._spawn(i)
                with self._control_lock:
                    old = self._controls[i]
                    self._procs[i], self._controls[i] = new, parent
                old.close()

    async def stop(self, timeout_s: float = 30.0) -> None:
        """Each worker disconnects, stores what it acknowledged and exits."""
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
            self._watch = None
        with self._control_lock:
            for conn in self._controls:
                with contextlib.suppress(OSError, ValueError):
                    conn.send(("stop", None))
        alive = [p for p in self._procs]
        deadline = time.monotonic() + timeout_s
        for proc in alive:
            await asyncio.to_thread(proc.join, max(0.1, deadline - time.monotonic()))
            if proc.is_alive():
                log.warning("ingest worker %s did not stop: terminating it", proc.name)
                proc.terminate()
                await asyncio.to_thread(proc.join, 5)
        # the results the workers sent last are in the queue: let the reader take them
        if self._results is not None:
            self._results.put(("end", -1, None))
            if self._reader is not None:
                await asyncio.to_thread(self._reader.join, 10)
            self._results.close()
            self._results.join_thread()
        for conn in self._controls:
            conn.close()
        self._procs, self._controls = [], []
        self._results = self._reader = None

    @property
    def running(self) -> bool:
        return any(p.is_alive() for p in self._procs)

    # -- chain events -----------------------------------------------------------------------
    def forward_events(self, events: list[ChainEvent], timeout_s: float = 30.0) -> None:
        """Apply the device events in every worker; return once each has (blocking)."""
        relevant = [e for e in events if e.name in DEVICE_EVENTS]
        if not relevant:
            return
        with self._control_lock:
            live = [
                (conn, proc)
                for conn, proc in zip(self._controls, self._procs, strict=True)
                if proc.is_alive()
            ]
            for conn, _ in live:
                conn.send(("events", relevant))
            for conn, proc in live:
                if not conn.poll(timeout_s):
                    raise TimeoutError(f"ingest worker {proc.name} did not apply chain events")
                conn.recv()

    # -- results ------------------------------------------------------------------------------
    def _wait(self, predicate: Callable[[], bool], timeout_s: float) -> bool:
        with self._changed:
            return self._changed.wait_for(predicate, timeout_s)

    def _read(self) -> None:
        results = self._results
        while True:
            try:
                kind, index, body = results.get()
            except (EOFError, OSError):
                return
            if kind == "end":
                return
            if kind == "stored":
                touched, delta, n = body
                self.received += n
                self.stats.add_persisted(delta)
                if touched and self.on_stored is not None and self._loop is not None:
                    with contextlib.suppress(RuntimeError):  # the loop closed
                        self._loop.call_soon_threadsafe(self._stored, touched)
                continue
            with self._changed:
                if kind == "ready":
                    self._ready.add(index)
                elif kind == "subscribed":
                    self._subscribed.add(index)
                elif kind == "probe":
                    self._probes.append(body)
                elif kind == "failed":
                    self._failed[index] = str(body)
                    log.error("ingest worker %d failed: %s", index, body)
                elif kind == "stopped":
                    self._stopped.add(index)
                self._changed.notify_all()

    def _stored(self, touched: set[tuple[str, int]]) -> None:
        assert self.on_stored is not None
        try:
            self.on_stored(touched)
        except Exception:
            log.exception("on_stored callback failed")

    def _retire(self, indices: range) -> None:
        """End the durable sessions of workers that will not come back (a clean-session
        connection replaces a session): the broker would keep queueing their share."""
        for i in indices:
            client, url = paho_client(self.mqtt_url, f"{self.client_id}-w{i}", clean_session=True)
            try:
                client.connect(url.host, url.port, keepalive=5)
                client.loop(0.2)  # the CONNACK
                client.disconnect()
            except OSError as exc:
                log.debug("could not clear MQTT session %s-w%d: %s", self.client_id, i, exc)
                return
