"""The concentrator: many Light Nodes' signed window roots, anchored in one transaction.

Where a deployment runs its Light Nodes with ``anchor="concentrator"``, each node publishes its
closed window's device-signed root (``Signed[WindowManifest]``, ``anchor: "concentrator"``) on
``flex/pod/{pod}/manifest``. The concentrator

1. checks each one before it takes it: the device's signature recovers to the claimed signer,
   that signer is the device bound to the POD on chain (``MeasurementAnchor.deviceOf``), the topic
   names the same POD, and the window is not already taken with another root — anything else is
   refused, logged and counted (it would poison the batch for every other device);
2. gathers them and, every ``batch_interval_s`` (or at ``batch_max_windows``), builds a tree of
   their window leaves (kind 3, ordered by POD code then window start) and anchors its root with
   ``anchorBatch`` from the concentrator key, batch ids increasing;
3. publishes the ``BatchManifest`` (the root, the batch id, the transaction and every window in
   tree order) on ``flex/concentrator/{id}/batch``, from which the SCD and the auditor check the
   device signatures and rebuild the root, and ``verifyBatched`` proves any sample down to its
   device.

Everything it has accepted is in SQLite before the broker is acknowledged and before anything is
sent on chain, so a restart resumes: windows waiting are batched, a batch whose transaction may
have been sent is anchored again (idempotent: same root, same id), an anchored batch not yet
published is published.

Tables: ``pending(pod, window_start, root, sample_count, envelope, received_at)``,
``windows(pod, window_start, root, batch_id)`` (every window ever batched: each appears in one
batch only), ``batches(batch_id, root, window_count, sample_count, status, tx_hash, envelopes)``
with status ``prepared`` → ``anchored`` → ``published``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import time
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount

from flexledger.messages.common import Signed, b32, h32, id32
from flexledger.messages.measurement import BatchManifest, WindowManifest
from flexledger.settings import ConcentratorSettings
from flexledger.transport.mqtt import MqttClient, MqttUnavailableError, Subscription, encode_payload
from flexledger.transport.topics import DEFAULT_TOPICS, TopicError, Topics
from lightnode._aio import cancel_and_wait, wait_event
from lightnode.anchoring import (
    AnchorConflictError,
    Backoff,
    NotAuthorizedError,
    anchor_batch_once,
)
from lightnode.health import ConcentratorHealth
from lightnode.trees import batch_tree
from node.contracts import FlexContracts
from node.eip712 import Domain, SignatureError
from node.signing import verify_envelope

__all__ = ["Concentrator"]

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS pending (
    pod TEXT NOT NULL,
    window_start INTEGER NOT NULL,
    root BLOB NOT NULL,
    sample_count INTEGER NOT NULL,
    envelope TEXT NOT NULL,
    received_at REAL NOT NULL,
    PRIMARY KEY (pod, window_start)
);
CREATE TABLE IF NOT EXISTS windows (
    pod TEXT NOT NULL,
    window_start INTEGER NOT NULL,
    root BLOB NOT NULL,
    batch_id INTEGER NOT NULL,
    PRIMARY KEY (pod, window_start)
);
CREATE TABLE IF NOT EXISTS batches (
    batch_id INTEGER PRIMARY KEY,
    root BLOB NOT NULL,
    window_count INTEGER NOT NULL,
    sample_count INTEGER NOT NULL,
    status TEXT NOT NULL,
    tx_hash TEXT,
    envelopes TEXT NOT NULL
);
"""

_WindowEnvelope = Signed[WindowManifest]


class Concentrator:
    """One concentrator agent. ``async with Concentrator(...) as c:`` runs it.

    Args:
        concentrator_id: its topic-safe name (``flex/concentrator/{id}/batch``).
        account: the concentrator key (CONCENTRATOR_ROLE on chain).
        contracts: the deployment.
        mqtt: the process's MQTT client (started by the agent if it is not).
        db: SQLite file of its state (``":memory:"`` for a throw-away one).
        topics: the topic layout.
        domain: the EIP-712 domain (default: read from the chain at start).
        settings: ``ConcentratorSettings`` (batch interval and size).
        binding_ttl_s: how long a device binding read from the chain is trusted.
    """

    def __init__(
        self,
        concentrator_id: str,
        *,
        account: LocalAccount,
        contracts: FlexContracts,
        mqtt: MqttClient,
        db: Path | str,
        topics: Topics = DEFAULT_TOPICS,
        domain: Domain | None = None,
        settings: ConcentratorSettings | None = None,
        binding_ttl_s: float = 60.0,
    ) -> None:
        topics.concentrator_batch(concentrator_id)  # a bad id fails here, not at the first batch
        self.concentrator_id = concentrator_id
        self.account = account
        self.address = str(account.address)
        self.contracts = contracts
        self.mqtt = mqtt
        self.topics = topics
        self.domain = domain
        self.settings = settings or ConcentratorSettings(concentrator_id=concentrator_id)
        self.binding_ttl_s = binding_ttl_s
        if str(db) != ":memory:":
            Path(db).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(db), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._check_identity()
        self._health = ConcentratorHealth(concentrator_id)
        self._devices: dict[str, tuple[str | None, float]] = {}
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()  # one batch at a time (the loop and flush())
        self._tasks: list[asyncio.Task[None]] = []
        self._subs: list[Subscription[Any]] = []
        self._closed = False

    def _check_identity(self) -> None:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'concentrator'").fetchone()
        if row is not None and row[0] != self.address:
            raise RuntimeError(
                f"concentrator database belongs to {row[0]}, not {self.address}: refusing to mix"
            )
        self._db.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('concentrator', ?)", (self.address,)
        )

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        if self.domain is None:
            self.domain = await asyncio.to_thread(self.contracts.roles.domain)
        self._subs.append(
            await self.mqtt.subscribe(
                self.topics.all_pod_manifests(),
                _WindowEnvelope,
                self._on_manifest,
                on_invalid=self._on_invalid,
            )
        )
        if not self.mqtt.started:
            await self.mqtt.start()
        try:
            await self.mqtt.wait_connected(self.mqtt.timeout_s)
        except MqttUnavailableError:
            log.warning("concentrator %s starts without its broker", self.concentrator_id)
        self._tasks.append(asyncio.create_task(self._batch_loop(), name="concentrator batches"))
        self._tasks.append(asyncio.create_task(self._health_loop(), name="concentrator health"))
        log.info(
            "concentrator %s (%s) started; %d windows waiting",
            self.concentrator_id,
            self.address,
            self._pending_count(),
        )

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        self._tasks.clear()
        for sub in self._subs:
            with contextlib.suppress(Exception):
                await sub.close()
        self._subs.clear()
        if not self._closed:
            self._closed = True
            self._db.close()

    async def __aenter__(self) -> Concentrator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def run(self) -> None:
        await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop()

    @property
    def health(self) -> ConcentratorHealth:
        if not self._closed:
            self._health.windows_pending = self._pending_count()
        return self._health

    # -- receiving -------------------------------------------------------------------------
    def _refuse(self, reason: str, message: str) -> None:
        self._health.refused[reason] += 1
        log.warning(
            "concentrator %s refused a window (%s): %s", self.concentrator_id, reason, message
        )

    def _on_invalid(self, topic: str, _payload: bytes, exc: Exception) -> None:
        self._refuse("malformed", f"on {topic}: {exc}")

    async def _device_of(self, pod: str) -> str | None:
        cached = self._devices.get(pod)
        now = time.monotonic()
        if cached is not None and now - cached[1] < (self.binding_ttl_s if cached[0] else 5.0):
            return cached[0]
        device = await asyncio.to_thread(self.contracts.anchor.device_of, id32(pod))
        self._devices[pod] = (device, now)
        return device

    async def _on_manifest(self, topic: str, envelope: Signed[WindowManifest]) -> None:
        self._health.manifests_received += 1
        m = envelope.message
        if m.anchor != "concentrator":
            self._health.windows_ignored += 1  # anchored by its device directly: not ours
            return
        try:
            topic_pod = self.topics.parse(topic).pod
        except TopicError as exc:
            self._refuse("wrong_topic", str(exc))
            return
        if topic_pod != m.pod:
            self._refuse("wrong_topic", f"a window of {m.pod} on the topic of {topic_pod}")
            return
        assert self.domain is not None
        try:
            signer = verify_envelope(envelope, self.domain)
        except SignatureError as exc:
            self._refuse("bad_signature", f"window {m.window_start_s} of {m.pod}: {exc}")
            return
        try:
            device = await self._device_of(m.pod)
        except Exception as exc:
            # The node publishes its manifest again later; better late than unchecked.
            self._refuse("chain_unavailable", f"cannot read the device of {m.pod}: {exc}")
            return
        if device != signer:
            self._refuse(
                "unbound_device",
                f"window {m.window_start_s} of {m.pod} signed by {signer}; the POD's device is "
                f"{device or 'none'}",
            )
            return
        root = b32(m.root)
        existing = self._known_root(m.pod, m.window_start_s)
        if existing is not None:
            if existing == root:
                self._health.windows_duplicate += 1
            else:
                self._refuse(
                    "conflict",
                    f"window {m.window_start_s} of {m.pod} already taken with another root",
                )
            return
        self._db.execute(
            "INSERT INTO pending (pod, window_start, root, sample_count, envelope, received_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (
                m.pod,
                m.window_start_s,
                root,
                m.sample_count,
                encode_payload(envelope).decode(),
                time.time(),
            ),
        )
        self._health.windows_accepted += 1
        if self._pending_count() >= self.settings.batch_max_windows:
            self._wake.set()

    def _known_root(self, pod: str, window_start: int) -> bytes | None:
        for table in ("pending", "windows"):
            row = self._db.execute(
                f"SELECT root FROM {table} WHERE pod = ? AND window_start = ?", (pod, window_start)
            ).fetchone()
            if row is not None:
                return bytes(row[0])
        return None

    def _pending_count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM pending").fetchone()[0])

    # -- batching --------------------------------------------------------------------------
    async def flush(self) -> list[BatchManifest]:
        """Batch, anchor and publish every window waiting now, whatever its age; the batches
        published (the CLI's shutdown and tests use it)."""
        async with self._lock:
            published: list[BatchManifest] = []
            while self._pending_count():
                self._prepare_batch()
            published += await self._complete_batches()
            return published

    async def _batch_loop(self) -> None:
        backoff = Backoff(0.2, 30.0)
        while True:
            self._wake.clear()
            try:
                async with self._lock:
                    if self._due():
                        self._prepare_batch()
                    await self._complete_batches()
                backoff.reset()
            except (MqttUnavailableError, AnchorConflictError, NotAuthorizedError) as exc:
                # already logged where it happened; wait and try again
                self._health.error(str(exc), fatal=isinstance(exc, NotAuthorizedError))
                await asyncio.sleep(backoff.next())
                continue
            except Exception as exc:
                self._health.anchor_errors += 1
                self._health.error(f"batch: {exc!r}")
                delay = backoff.next()
                log.warning(
                    "concentrator %s: %s; again in %.1f s", self.concentrator_id, exc, delay
                )
                await asyncio.sleep(delay)
                continue
            await wait_event(self._wake, 0.25)

    def _due(self) -> bool:
        row = self._db.execute("SELECT COUNT(*), MIN(received_at) FROM pending").fetchone()
        count, oldest = int(row[0]), row[1]
        if count == 0:
            return False
        return (
            count >= self.settings.batch_max_windows
            or time.time() - float(oldest) >= self.settings.batch_interval_s
        )

    def _next_batch_id(self) -> int:
        row = self._db.execute("SELECT MAX(batch_id) FROM batches").fetchone()
        floor = self._db.execute("SELECT value FROM meta WHERE key = 'next_batch_id'").fetchone()
        return max(int(row[0]) + 1 if row[0] is not None else 1, int(floor[0]) if floor else 1)

    def _prepare_batch(self) -> None:
        """Move up to a batch of waiting windows into a new batch (one transaction)."""
        rows = self._db.execute(
            "SELECT pod, window_start, envelope FROM pending ORDER BY pod, window_start LIMIT ?",
            (self.settings.batch_max_windows,),
        ).fetchall()
        if not rows:
            return
        envelopes = [_WindowEnvelope.model_validate_json(r[2]) for r in rows]
        tree = batch_tree([e.message for e in envelopes])
        batch_id = self._next_batch_id()
        samples = sum(e.message.sample_count for e in envelopes)
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.execute(
                "INSERT INTO batches (batch_id, root, window_count, sample_count, status, "
                "envelopes) VALUES (?, ?, ?, ?, 'prepared', ?)",
                (batch_id, tree.root, len(rows), samples, json.dumps([r[2] for r in rows])),
            )
            self._db.executemany(
                "INSERT INTO windows (pod, window_start, root, batch_id) VALUES (?, ?, ?, ?)",
                [
                    (e.message.pod, e.message.window_start_s, b32(e.message.root), batch_id)
                    for e in envelopes
                ],
            )
            self._db.executemany(
                "DELETE FROM pending WHERE pod = ? AND window_start = ?",
                [(r[0], r[1]) for r in rows],
            )
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        log.info(
            "concentrator %s: batch %d of %d windows (%d samples), root 0x%s",
            self.concentrator_id,
            batch_id,
            len(rows),
            samples,
            tree.root.hex(),
        )

    async def _complete_batches(self) -> list[BatchManifest]:
        """Anchor every prepared batch and publish every anchored one, in id order."""
        published: list[BatchManifest] = []
        for batch_id, root, windows, samples, status in self._db.execute(
            "SELECT batch_id, root, window_count, sample_count, status FROM batches "
            "WHERE status != 'published' ORDER BY batch_id"
        ).fetchall():
            if status == "prepared":
                batch_id = await self._anchor(int(batch_id), bytes(root), windows, samples)
            published.append(await self._publish(batch_id))
        return published

    async def _anchor(self, batch_id: int, root: bytes, windows: int, samples: int) -> int:
        """Anchor a prepared batch; a new id if its id holds another root. Returns the id."""
        while True:
            try:
                result = await anchor_batch_once(
                    self.contracts.anchor, self.account, batch_id, root, windows, samples
                )
                break
            except AnchorConflictError:
                # The id was used by an earlier life of this concentrator whose state is lost.
                new_id = self._next_batch_id()
                log.warning("batch id %d holds another root on chain; using %d", batch_id, new_id)
                self._renumber(batch_id, new_id)
                batch_id = new_id
            except NotAuthorizedError as exc:
                log.error("concentrator %s cannot anchor: %s", self.concentrator_id, exc)
                raise
        self._db.execute(
            "UPDATE batches SET status = 'anchored', tx_hash = ? WHERE batch_id = ?",
            (result.tx_hash, batch_id),
        )
        self._health.batches_anchored += 1
        self._health.windows_batched += windows
        log.info(
            "concentrator %s: batch %d anchored (%d windows, tx %s%s)",
            self.concentrator_id,
            batch_id,
            windows,
            result.tx_hash,
            ", already on chain" if result.already else "",
        )
        return batch_id

    def _renumber(self, old: int, new: int) -> None:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.execute("UPDATE batches SET batch_id = ? WHERE batch_id = ?", (new, old))
            self._db.execute("UPDATE windows SET batch_id = ? WHERE batch_id = ?", (new, old))
            self._db.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('next_batch_id', ?)",
                (str(new + 1),),
            )
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    async def republish(self) -> int:
        """Publish every anchored batch's manifest again (a listener that missed one, e.g. an
        SCD whose connection dropped it under load, learns its windows; a duplicate is
        harmless). Returns how many were published."""
        async with self._lock:
            ids = [
                int(r[0])
                for r in self._db.execute(
                    "SELECT batch_id FROM batches WHERE status = 'published' ORDER BY batch_id"
                ).fetchall()
            ]
            for batch_id in ids:
                await self._publish(batch_id)
        return len(ids)

    async def _publish(self, batch_id: int) -> BatchManifest:
        root, tx_hash, envelopes = self._db.execute(
            "SELECT root, tx_hash, envelopes FROM batches WHERE batch_id = ?", (batch_id,)
        ).fetchone()
        manifest = BatchManifest(
            concentrator=self.address,
            concentrator_id=self.concentrator_id,
            batch_id=batch_id,
            root=h32(bytes(root)),
            windows=[_WindowEnvelope.model_validate_json(e) for e in json.loads(envelopes)],
            tx_hash=tx_hash,
        )
        await self.mqtt.publish(self.topics.concentrator_batch(self.concentrator_id), manifest)
        self._db.execute("UPDATE batches SET status = 'published' WHERE batch_id = ?", (batch_id,))
        self._health.batches_published += 1
        return manifest

    async def _health_loop(self) -> None:
        interval = 60.0
        while True:
            await asyncio.sleep(interval)
            log.info("%s", self.health.line())
