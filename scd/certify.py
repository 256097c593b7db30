"""Certification: follow the anchors on chain, judge each window, tell the Light Node.

``Certifier`` polls the chain's events (``ChainView.reader``) every ``poll_s``:

- ``MeasurementsAnchored`` records a direct anchor (root, sample count, set-point hash, tx);
- ``BatchAnchored`` records a concentrator's batch; once its ``BatchManifest`` (MQTT
  ``{root}/concentrator/{id}/batch``) is there too, the batch is checked — its root rebuilt from
  the device-signed window roots equals the anchored one, window and sample counts match, every
  window is signed by the device bound to its POD and appears once (in no other batch or direct
  anchor) — and each good window is recorded like a direct anchor;
- device and role events correct ``ChainView``'s caches.

Each recorded window is judged (``scd.certification.evaluate``) in a worker thread, its verdict
stored and, when it changed, published as ``WindowCertification`` on
``{root}/pod/{pod}/certification`` (QoS 1). A ``pending`` window (samples missing) gets a
``ResendRequest`` on ``{root}/pod/{pod}/resend`` at once and every ``resend_interval_s`` after
(at most ``resend_max`` times); the samples the ingestor stores for it trigger a new judgement.
The chain cursor is stored after each poll's windows are, so a restart continues where it
stopped (events read twice are harmless).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Engine, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from flexledger.messages import (
    BatchManifest,
    ResendRequest,
    Signed,
    WindowCertification,
    WindowManifest,
    b32,
    h32,
    id32,
)
from flexledger.messages.leaves import window_leaf_of
from flexledger.storage import is_postgres
from flexledger.transport import DecodeError, MqttClient, Topics, decode_payload, encode_payload
from node.eip712 import SignatureError
from node.events import ChainEvent, ChainReset
from node.merkle import MerkleTree
from node.signing import verify_envelope
from scd.certification import Verdict, evaluate, get_window, verdict_json
from scd.chain import ChainView
from scd.db import chain_cursor, concentrator_batches, windows
from scd.stats import IngestStats

__all__ = ["Certifier"]

log = logging.getLogger(__name__)

Publish = Callable[[str, BaseModel], Awaitable[None]]
_CURSOR = "events"


def _now() -> int:
    return int(time.time())


def _hex(value: Any) -> str:
    return "0x" + bytes(value).hex()


class Certifier:
    """Follows the chain and judges windows; see the module docstring."""

    def __init__(
        self,
        engine: Engine,
        chain: ChainView,
        topics: Topics,
        stats: IngestStats,
        *,
        poll_s: float = 1.0,
        resend_interval_s: float = 30.0,
        resend_max: int = 10,
    ) -> None:
        self.engine = engine
        self.chain = chain
        self.topics = topics
        self.stats = stats
        self.poll_s = poll_s
        self.resend_interval_s = resend_interval_s
        self.resend_max = resend_max
        self.window_s = chain.window_s
        self.mqtt: MqttClient | None = None
        self._queue: asyncio.Queue[tuple[str, int]] = asyncio.Queue()
        self._queued: set[tuple[str, int]] = set()
        self._pending: dict[tuple[str, int], float] = {}  # window -> next resend (monotonic)
        self._tasks: list[asyncio.Task[None]] = []
        self._poll_lock = asyncio.Lock()
        self.synced_block = -1
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pod_codes: dict[bytes, str] = {}
        self._pod_scan_at = 0.0
        #: anchors of PODs whose code we do not know yet (the chain has only their hash)
        self._orphans: dict[bytes, list[ChainEvent]] = {}
        #: told (in the polling thread) every batch of events once ``chain`` has applied them;
        #: the ingest worker pool passes the device events on to its processes
        self.on_chain_events: Callable[[list[ChainEvent]], None] | None = None

    # -- lifecycle ----------------------------------------------------------------------------
    async def attach(self, mqtt: MqttClient) -> None:
        """Subscribe to manifests and concentrator batches; publish verdicts through ``mqtt``."""
        self.mqtt = mqtt
        await mqtt.subscribe_raw(self.topics.all_pod_manifests(), self.on_manifest, qos=1)
        await mqtt.subscribe_raw(
            self.topics.all_concentrator_batches(), self.on_batch_manifest, qos=1
        )

    async def start(self) -> None:
        """Resume the chain cursor and the pending windows, then follow the chain."""
        self._loop = asyncio.get_running_loop()
        checkpoint, pending = await asyncio.to_thread(self._load_state)
        if checkpoint is not None:
            self.chain.reader.resume(checkpoint)
        for key in pending:
            self.schedule(key)
        self._tasks = [
            asyncio.create_task(self._follow(), name="scd-chain"),
            asyncio.create_task(self._work(), name="scd-certify"),
            asyncio.create_task(self._resends(), name="scd-resend"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    def _load_state(self) -> tuple[tuple[int, bytes] | None, list[tuple[str, int]]]:
        with self.engine.connect() as conn:
            row = conn.execute(select(chain_cursor).where(chain_cursor.c.name == _CURSOR)).first()
            pending = conn.execute(
                select(windows.c.pod, windows.c.window_start_s).where(
                    windows.c.status.in_(("pending", "anchored"))
                )
            ).all()
        checkpoint = (int(row.block), b32(row.block_hash)) if row is not None else None
        return checkpoint, [(p, int(w)) for p, w in pending]

    # -- chain --------------------------------------------------------------------------------
    async def _follow(self) -> None:
        while True:
            try:
                await self.sync()
            except Exception:
                log.exception("reading chain events failed; retrying")
            await asyncio.sleep(self.poll_s)

    async def sync(self) -> int:
        """Read and apply every chain event up to the head now; the block reached."""
        async with self._poll_lock:
            return await asyncio.to_thread(self._sync)

    def _sync(self) -> int:
        try:
            events = self.chain.reader.poll()
        except ChainReset as exc:
            log.warning("%s: reading the chain again from block %d", exc, self.chain.from_block)
            self.chain.reader.restart()
            events = self.chain.reader.poll()
        touched: list[tuple[str, int]] = []
        batches: list[tuple[str, int]] = []
        for event in events:
            self.chain.apply(event)
            if event.name == "MeasurementsAnchored":
                key = self._record_anchor(event)
                if key is not None:
                    touched.append(key)
            elif event.name == "BatchAnchored":
                batches.append(self._record_batch(event))
        if events and self.on_chain_events is not None:
            self.on_chain_events(events)
        for concentrator, batch_id in batches:
            touched.extend(self._check_batch(concentrator, batch_id))
        checkpoint = self.chain.reader.checkpoint
        if checkpoint is not None:
            self._save_cursor(checkpoint)
            self.synced_block = checkpoint[0]
        if self._loop is not None:
            for key in touched:
                self._loop.call_soon_threadsafe(self.schedule, key)
        return self.synced_block

    def _save_cursor(self, checkpoint: tuple[int, bytes]) -> None:
        values = {"name": _CURSOR, "block": checkpoint[0], "block_hash": h32(checkpoint[1])}
        with self.engine.begin() as conn:
            insert = pg_insert if is_postgres(conn) else sqlite_insert
            stmt = insert(chain_cursor).values(**values)
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=[chain_cursor.c.name],
                    set_={"block": stmt.excluded.block, "block_hash": stmt.excluded.block_hash},
                )
            )

    def _pod_code(self, conn: Any, pod32: bytes) -> str | None:
        """The POD code of an on-chain id, from the PODs this SCD has seen (rescanned from the
        database at most every 10 s)."""
        code = self._pod_codes.get(pod32)
        if code is None and time.monotonic() - self._pod_scan_at > 10.0:
            self._pod_scan_at = time.monotonic()
            from scd.db import customer_entries, samples

            for table in (windows, customer_entries, samples):
                for (name,) in conn.execute(select(table.c.pod).distinct()):
                    self._pod_codes.setdefault(id32(name), name)
            code = self._pod_codes.get(pod32)
        return code

    def learn_pods(self, pods: set[str]) -> None:
        """Remember POD codes (an anchor names its POD only by its hash); anchors that were
        waiting for one of them are recorded now."""
        found: list[ChainEvent] = []
        for pod in pods:
            pod32 = id32(pod)
            if pod32 not in self._pod_codes:
                self._pod_codes[pod32] = pod
                found.extend(self._orphans.pop(pod32, []))
        if found and self._loop is not None:
            self._loop.create_task(asyncio.to_thread(self._record_orphans, found))

    def _record_orphans(self, events: list[ChainEvent]) -> None:
        for event in events:
            key = self._record_anchor(event)
            if key is not None and self._loop is not None:
                self._loop.call_soon_threadsafe(self.schedule, key)

    def _upsert_window(self, conn: Any, values: dict[str, Any]) -> None:
        insert = pg_insert if is_postgres(conn) else sqlite_insert
        stmt = insert(windows).values(**values)
        update_cols = {k: stmt.excluded[k] for k in values if k not in ("pod", "window_start_s")}
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[windows.c.pod, windows.c.window_start_s], set_=update_cols
            )
        )

    def _record_anchor(self, event: ChainEvent) -> tuple[str, int] | None:
        a = event.args
        with self.engine.begin() as conn:
            pod = self._pod_code(conn, bytes(a["pod"]))
            if pod is None:
                log.info(
                    "anchor of POD 0x%s before any sample or manifest of it: kept",
                    bytes(a["pod"]).hex()[:16],
                )
                self._orphans.setdefault(bytes(a["pod"]), []).append(event)
                return None
            start = int(a["windowStart"])
            row = get_window(conn, pod, start)
            if row is not None and row.root is not None and row.anchor == "concentrator":
                log.warning("%s window %d anchored directly and in a batch", pod, start)
            self._upsert_window(
                conn,
                {
                    "pod": pod,
                    "window_start_s": start,
                    "root": _hex(a["root"]),
                    "sample_count": int(a["sampleCount"]),
                    "setpoints_hash": _hex(a["setpointsHash"]),
                    "anchor": "direct",
                    "anchor_tx": _hex(event.tx_hash),
                    "anchor_block": event.block_number,
                    "status": "anchored"
                    if row is None or row.status == "not_anchored"
                    else row.status,
                    "updated_s": _now(),
                },
            )
        return pod, start

    def _record_batch(self, event: ChainEvent) -> tuple[str, int]:
        a = event.args
        concentrator, batch_id = a["concentrator"], int(a["batchId"])
        values = {
            "concentrator": concentrator,
            "batch_id": batch_id,
            "root": _hex(a["root"]),
            "window_count": int(a["windowCount"]),
            "sample_count": int(a["sampleCount"]),
            "anchor_tx": _hex(event.tx_hash),
            "anchor_block": event.block_number,
        }
        with self.engine.begin() as conn:
            insert = pg_insert if is_postgres(conn) else sqlite_insert
            stmt = insert(concentrator_batches).values(**values, status="anchored")
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=[
                        concentrator_batches.c.concentrator,
                        concentrator_batches.c.batch_id,
                    ],
                    set_={
                        k: stmt.excluded[k] for k in values if k not in ("concentrator", "batch_id")
                    },
                )
            )
        return concentrator, batch_id

    def _check_batch(self, concentrator: str, batch_id: int) -> list[tuple[str, int]]:
        """Verify an anchored batch whose manifest is here; record its good windows."""
        with self.engine.begin() as conn:
            row = conn.execute(
                select(concentrator_batches).where(
                    concentrator_batches.c.concentrator == concentrator,
                    concentrator_batches.c.batch_id == batch_id,
                )
            ).first()
            if row is None or row.manifest is None or row.root is None:
                return []
            if row.status in ("verified", "invalid"):
                return []
            manifest = decode_payload(BatchManifest, row.manifest)
            error, good = self._verify_batch(conn, row, manifest)
            status = "invalid" if error and not good else "verified"
            conn.execute(
                update(concentrator_batches)
                .where(
                    concentrator_batches.c.concentrator == concentrator,
                    concentrator_batches.c.batch_id == batch_id,
                )
                .values(status=status, error=error)
            )
            if error:
                log.warning("concentrator %s batch %d: %s", concentrator, batch_id, error)
                self.stats.add("batches.refused_windows" if good else "batches.invalid")
            keys = []
            for env in good:
                m = env.message
                self.learn_pods({m.pod})
                self._upsert_window(
                    conn,
                    {
                        "pod": m.pod,
                        "window_start_s": m.window_start_s,
                        "root": m.root,
                        "sample_count": m.sample_count,
                        "setpoints_hash": m.setpoints_hash,
                        "anchor": "concentrator",
                        "anchor_tx": row.anchor_tx,
                        "anchor_block": row.anchor_block,
                        "concentrator": concentrator,
                        "batch_id": batch_id,
                        "manifest": encode_payload(env).decode(),
                        "status": "anchored",
                        "updated_s": _now(),
                    },
                )
                keys.append((m.pod, m.window_start_s))
            return keys

    def _verify_batch(
        self, conn: Any, row: Any, manifest: BatchManifest
    ) -> tuple[str | None, list[Signed[WindowManifest]]]:
        leaves = [window_leaf_of(env.message) for env in manifest.windows]
        if MerkleTree(leaves).root.hex() != row.root.removeprefix("0x"):
            return "the windows do not hash to the anchored batch root", []
        if len(manifest.windows) != row.window_count:
            return f"{len(manifest.windows)} windows, the anchor says {row.window_count}", []
        if sum(e.message.sample_count for e in manifest.windows) != row.sample_count:
            return "the windows' sample counts do not add up to the anchored count", []
        errors: list[str] = []
        good: list[Signed[WindowManifest]] = []
        seen: set[tuple[str, int]] = set()
        for env in manifest.windows:
            m = env.message
            key = (m.pod, m.window_start_s)
            if key in seen:
                errors.append(f"{m.pod}@{m.window_start_s} twice in the batch")
                continue
            seen.add(key)
            try:
                signer = verify_envelope(env, self.chain.domain)
            except SignatureError as exc:
                errors.append(f"{m.pod}@{m.window_start_s}: {exc}")
                continue
            binding = self.chain.binding(id32(m.pod), bytes.fromhex(signer[2:]))
            if not binding.ok:
                errors.append(f"{m.pod}@{m.window_start_s}: device {binding.reason}")
                continue
            existing = get_window(conn, m.pod, m.window_start_s)
            if (
                existing is not None
                and existing.root is not None
                and not (
                    existing.anchor == "concentrator"
                    and existing.concentrator == row.concentrator
                    and existing.batch_id == row.batch_id
                )
            ):
                errors.append(f"{m.pod}@{m.window_start_s} anchored before")
                continue
            good.append(env)
        dups = [
            k
            for k in seen
            if sum(1 for e in manifest.windows if (e.message.pod, e.message.window_start_s) == k)
            > 1
        ]
        good = [e for e in good if (e.message.pod, e.message.window_start_s) not in dups]
        return ("; ".join(errors) or None), good

    # -- MQTT in --------------------------------------------------------------------------------
    async def on_manifest(self, topic: str, payload: bytes) -> None:
        """A Light Node's signed ``WindowManifest``: verified and kept with its window."""
        try:
            env = decode_payload(Signed[WindowManifest], payload)
            info = self.topics.parse(topic)
            if info.pod != env.message.pod:
                raise ValueError(f"manifest of {env.message.pod} on {topic}")
            signer = verify_envelope(env, self.chain.domain)
            binding = await asyncio.to_thread(
                self.chain.binding, id32(env.message.pod), bytes.fromhex(signer[2:])
            )
            if not binding.ok:
                raise ValueError(f"device {binding.reason}")
        except (DecodeError, SignatureError, ValueError) as exc:
            self.stats.add("manifests.rejected")
            log.warning("refused a window manifest on %s: %s", topic, str(exc).splitlines()[0])
            return
        self.stats.add("manifests.accepted")
        m = env.message
        self.learn_pods({m.pod})
        republish = await asyncio.to_thread(self._store_manifest, env)
        if republish is not None:
            await self._publish_certification(republish)
        else:
            self.schedule((m.pod, m.window_start_s))

    def _store_manifest(self, env: Signed[WindowManifest]) -> Any:
        m = env.message
        with self.engine.begin() as conn:
            row = get_window(conn, m.pod, m.window_start_s)
            text = encode_payload(env).decode()
            if row is None:
                self._upsert_window(
                    conn,
                    {
                        "pod": m.pod,
                        "window_start_s": m.window_start_s,
                        "manifest": text,
                        "status": "not_anchored",
                        "updated_s": _now(),
                    },
                )
                return None
            if row.status == "certified":
                return row  # the Light Node did not hear the verdict: tell it again
            if row.anchor != "concentrator":
                conn.execute(
                    update(windows)
                    .where(windows.c.pod == m.pod, windows.c.window_start_s == m.window_start_s)
                    .values(manifest=text)
                )
        return None

    async def on_batch_manifest(self, topic: str, payload: bytes) -> None:
        """A concentrator's ``BatchManifest``: kept until (or checked once) its anchor is seen."""
        try:
            manifest = decode_payload(BatchManifest, payload)
        except DecodeError as exc:
            self.stats.add("batches.malformed")
            log.warning("refused a batch manifest on %s: %s", topic, str(exc).splitlines()[0])
            return
        self.learn_pods({env.message.pod for env in manifest.windows})
        keys = await asyncio.to_thread(self._store_batch_manifest, manifest, payload)
        for key in keys:
            self.schedule(key)

    def _store_batch_manifest(
        self, manifest: BatchManifest, payload: bytes
    ) -> list[tuple[str, int]]:
        with self.engine.begin() as conn:
            insert = pg_insert if is_postgres(conn) else sqlite_insert
            stmt = insert(concentrator_batches).values(
                concentrator=manifest.concentrator,
                batch_id=manifest.batch_id,
                manifest=payload.decode(),
                status="manifest",
            )
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=[
                        concentrator_batches.c.concentrator,
                        concentrator_batches.c.batch_id,
                    ],
                    set_={"manifest": stmt.excluded.manifest},
                    where=concentrator_batches.c.manifest.is_(None),
                )
            )
        return self._check_batch(manifest.concentrator, manifest.batch_id)

    # -- judging -----------------------------------------------------------------------------
    def schedule(self, key: tuple[str, int]) -> None:
        """Judge this window (again) soon."""
        if key not in self._queued:
            self._queued.add(key)
            self._queue.put_nowait(key)

    def samples_arrived(self, touched: set[tuple[str, int]]) -> None:
        """The ingestor stored samples of these windows: re-judge the pending ones."""
        self.learn_pods({pod for pod, _ in touched})
        for key in touched:
            if key in self._pending:
                self.schedule(key)

    async def idle(self) -> None:
        """Wait until every scheduled window is judged (tests)."""
        while self._queued:
            await asyncio.sleep(0.01)

    async def _work(self) -> None:
        while True:
            key = await self._queue.get()
            try:
                outcome = await asyncio.to_thread(self._judge, key)
            except Exception:
                log.exception("judging %s window %d failed", *key)
                outcome = None
            finally:
                self._queued.discard(key)
            if outcome is None:
                continue
            row, verdict, changed = outcome
            if verdict.status == "pending":
                if key not in self._pending:
                    self._pending[key] = 0.0
                    await self._resend(key, row, verdict)
            else:
                self._pending.pop(key, None)
            if changed and verdict.status != "not_anchored":
                await self._publish_certification(row)

    def _judge(self, key: tuple[str, int]) -> tuple[Any, Verdict, bool] | None:
        pod, start = key
        with self.engine.begin() as conn:
            row = get_window(conn, pod, start)
            if row is None:
                return None
            verdict = evaluate(conn, row, self.window_s, self.chain.domain)
            fields = verdict_json(verdict)
            changed = row.status != verdict.status or any(
                getattr(row, k) != v for k, v in fields.items()
            )
            if changed:
                conn.execute(
                    update(windows)
                    .where(windows.c.pod == pod, windows.c.window_start_s == start)
                    .values(status=verdict.status, updated_s=_now(), **fields)
                )
                row = get_window(conn, pod, start)
        if changed:
            log.info("%s window %d: %s", pod, start, verdict.status)
            self.stats.add(f"windows.{verdict.status}")
        return row, verdict, changed

    async def _publish(self, topic: str, message: BaseModel) -> None:
        if self.mqtt is None:
            return
        try:
            await self.mqtt.publish(topic, message, qos=1)
        except Exception as exc:
            log.warning("could not publish to %s: %s", topic, exc)

    async def _publish_certification(self, row: Any) -> None:
        cert = WindowCertification(
            pod=row.pod,
            window_start_s=int(row.window_start_s),
            status=row.status,
            root=row.root,
            sample_count=int(row.sample_count or 0),
            missing_seqs=json.loads(row.missing_seqs),
            extra_seqs=json.loads(row.extra_seqs),
            altered_seqs=json.loads(row.altered_seqs),
            anchor_tx=row.anchor_tx,
            batch_id=row.batch_id,
        )
        await self._publish(self.topics.pod_certification(row.pod), cert)

    async def _resend(self, key: tuple[str, int], row: Any, verdict: Verdict | None) -> None:
        pod, start = key
        seqs = [] if verdict is None or verdict.missing_unknown else verdict.missing
        if row.resends >= self.resend_max:
            self._pending[key] = 0.0  # no more asking; new samples still re-judge it
            return
        self._pending[key] = time.monotonic() + self.resend_interval_s
        await asyncio.to_thread(self._count_resend, pod, start)
        self.stats.add("resends")
        log.info("asking %s to resend window %d (%d seqs)", pod, start, len(seqs))
        await self._publish(
            self.topics.pod_resend(pod), ResendRequest(pod=pod, window_start_s=start, seqs=seqs)
        )

    def _count_resend(self, pod: str, start: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(windows)
                .where(windows.c.pod == pod, windows.c.window_start_s == start)
                .values(resends=windows.c.resends + 1)
            )

    async def _resends(self) -> None:
        while True:
            await asyncio.sleep(min(self.resend_interval_s, 1.0))
            now = time.monotonic()
            for key, due in list(self._pending.items()):
                if due and due <= now:
                    outcome = await asyncio.to_thread(self._judge, key)
                    if outcome is None:
                        continue
                    row, verdict, _ = outcome
                    if verdict.status == "pending":
                        await self._resend(key, row, verdict)
                    else:
                        self._pending.pop(key, None)
                        await self._publish_certification(row)
