"""MQTT ingestion of I-04 measurements: verify, deduplicate, store in bulk, count.

``MeasurementIngestor`` subscribes to ``{root}/pod/+/measure`` with raw payloads and buffers
them; a flusher hands up to ``flush_max`` messages at a time (or whatever arrived within
``flush_interval_s``) to a worker thread that

1. decodes each one (``scd.verify``: fast canonical path, pydantic otherwise),
2. checks that the topic's POD is the message's, that the signature recovers to the claimed
   signer, and that this key is the device bound to the POD on chain (``ChainView``),
3. classifies every sample by (POD, sequence): new, identical to what is stored (an idempotent
   redelivery) or different (a conflict: the whole message is refused),
4. stores the new samples and their signed envelopes with ``COPY`` (PostgreSQL) or one
   ``executemany`` (SQLite) in one transaction, with the counters.

A refused message changes nothing stored; it is counted under its reason (``malformed``,
``out_of_range``, ``topic_mismatch``, ``bad_signature``, ``unregistered``, ``revoked``,
``wrong_pod``, ``conflict``) and logged. The worker thread overlaps with the event loop's MQTT
reading (coincurve and keccak release the GIL); with ``verify_workers`` the decoding and
signature recovery run in that many processes of their own, the rest in the thread.
One ingestor writes a database: it keeps the newest sequence number per POD in memory so that
the common case — a new sample — needs no read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

from sqlalchemy import Engine, func, select, tuple_
from sqlalchemy.exc import IntegrityError

from flexledger.storage import bulk_insert
from flexledger.transport import MqttClient, Topics
from scd.chain import ChainView
from scd.db import sample_batches, samples
from scd.stats import IngestStats, add_counts
from scd.verify import SampleRow, VerifiedBatch, check_payloads

__all__ = ["FlushResult", "MeasurementIngestor"]

log = logging.getLogger(__name__)

_RECENT_MAX = 400_000  # (pod, seq) -> values of recently stored samples, for redeliveries
_LOG_FIRST = 20  # rejections logged per reason before only every 1,000th is


@dataclass
class FlushResult:
    """What one flush did: the windows it touched (for the certifier) and its counts."""

    touched: set[tuple[str, int]] = field(default_factory=set)
    accepted: int = 0
    duplicate: int = 0
    rejected: int = 0
    stored: int = 0


class MeasurementIngestor:
    """Verifies and stores ``Signed[MeasurementBatch]`` messages from MQTT (or handed in).

    Args:
        engine: the SCD database.
        chain: device bindings and the EIP-712 domain.
        topics: the MQTT layout (its root).
        stats: shared counters.
        on_stored: called on the event loop with the (POD, window start) pairs that got new
            samples (the certifier re-checks pending windows).
    """

    def __init__(
        self,
        engine: Engine,
        chain: ChainView,
        topics: Topics,
        stats: IngestStats,
        *,
        flush_max: int = 4000,
        flush_interval_s: float = 0.05,
        verify_workers: int = 0,
        on_stored: Callable[[set[tuple[str, int]]], None] | None = None,
    ) -> None:
        self.engine = engine
        self.chain = chain
        self.topics = topics
        self.stats = stats
        self.flush_max = flush_max
        self.flush_interval_s = flush_interval_s
        self.on_stored = on_stored
        self.verify_workers = verify_workers
        self._pool: ProcessPoolExecutor | None = None
        self.window_s = chain.window_s
        self._buf: list[tuple[str, bytes]] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._max_seq: dict[str, int] = {}
        self._recent: dict[tuple[str, int], SampleRow] = {}
        self._next_batch_id: int | None = None
        self._prefix = topics.root + "/pod/"
        self.received = 0

    # -- lifecycle ----------------------------------------------------------------------------
    async def attach(self, mqtt: MqttClient) -> None:
        """Subscribe to every POD's measurements (before or after ``mqtt.start()``)."""
        await mqtt.subscribe_raw(self.topics.all_pod_measures(), self._on_message, qos=1)

    async def start(self) -> None:
        """Start storing; with ``verify_workers``, once the worker processes are up (they
        import the protocol and coincurve: a second or two)."""
        if self.verify_workers > 0 and self._pool is None:
            self._pool = ProcessPoolExecutor(
                self.verify_workers, mp_context=multiprocessing.get_context("spawn")
            )
            warm = [
                asyncio.wrap_future(self._pool.submit(check_payloads, self.chain.domain, "", []))
                for _ in range(self.verify_workers)
            ]
            await asyncio.gather(*warm)
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="scd-ingest")

    async def stop(self) -> None:
        """Store what is buffered, then stop."""
        if self._task is None:
            return
        await self.drain()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    async def drain(self) -> None:
        """Wait until every message received so far is stored or refused."""
        while self._buf or not self._idle.is_set():
            self._wake.set()
            await asyncio.sleep(0.005)

    async def _on_message(self, topic: str, payload: bytes) -> None:
        self.received += 1
        self._buf.append((topic, payload))
        if len(self._buf) >= self.flush_max:
            self._wake.set()

    def submit(self, topic: str, payload: bytes) -> None:
        """Hand in a message as if it came over MQTT (tests, bulk loads)."""
        self.received += 1
        self._buf.append((topic, payload))
        self._wake.set()

    async def _run(self) -> None:
        while True:
            if not self._buf:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.flush_interval_s)
            if not self._buf:
                continue
            if len(self._buf) < self.flush_max:
                # let a burst fill the batch a little: fewer, larger transactions
                await asyncio.sleep(min(0.005, self.flush_interval_s))
            items, self._buf = self._buf[: self.flush_max], self._buf[self.flush_max :]
            self._idle.clear()
            try:
                result = await asyncio.to_thread(self.process, items)
            except Exception:
                log.exception("ingest flush of %d messages failed; they are dropped", len(items))
                self.stats.add("rejected.internal_error", len(items))
                result = None
            finally:
                self._idle.set()
            if result is not None and result.touched and self.on_stored is not None:
                try:
                    self.on_stored(result.touched)
                except Exception:
                    log.exception("on_stored callback failed")

    # -- the worker ----------------------------------------------------------------------------
    def _reject(self, reason: str, topic: str, detail: str) -> None:
        self.stats.add(f"rejected.{reason}")
        n = self.stats.total[f"rejected.{reason}"]
        if n <= _LOG_FIRST or n % 1000 == 0:
            log.warning("refused a measurement on %s (%s, #%d): %s", topic, reason, n, detail)

    def _verified(self, items: list[tuple[str, bytes]]) -> list[tuple[str, VerifiedBatch]]:
        domain = self.chain.domain
        if self._pool is None:
            checked = check_payloads(domain, self._prefix, items)
        else:
            # decode and recover in the worker processes, the binding here (it holds the cache)
            n = self.verify_workers
            size = -(-len(items) // n)
            parts = [items[i : i + size] for i in range(0, len(items), size)]
            futures = [self._pool.submit(check_payloads, domain, self._prefix, p) for p in parts]
            checked = [c for f in futures for c in f.result()]
        out: list[tuple[str, VerifiedBatch]] = []
        for (topic, _), (verdict, value) in zip(items, checked, strict=True):
            if verdict != "ok":
                self._reject(verdict, topic, str(value))
                continue
            assert isinstance(value, VerifiedBatch)
            binding = self.chain.binding(value.pod32, value.signer20)
            if not binding.ok:
                self._reject(binding.reason, topic, f"{value.signer} for {value.pod}")
                continue
            out.append((topic, value))
        return out

    def _load_state(self, conn: object, pods: set[str]) -> None:
        unknown = [p for p in pods if p not in self._max_seq]
        if not unknown:
            return
        rows = conn.execute(  # type: ignore[attr-defined]
            select(samples.c.pod, func.max(samples.c.seq))
            .where(samples.c.pod.in_(unknown))
            .group_by(samples.c.pod)
        ).all()
        for p in unknown:
            self._max_seq[p] = -1
        for p, m in rows:
            self._max_seq[p] = int(m)

    def process(self, items: list[tuple[str, bytes]]) -> FlushResult:
        """Verify, deduplicate and store ``items``; runs in a worker thread."""
        result = FlushResult()
        verified = self._verified(items)
        with self.engine.connect() as conn:
            if self._next_batch_id is None:
                top = conn.execute(select(func.max(sample_batches.c.id))).scalar()
                self._next_batch_id = int(top or 0) + 1
            self._load_state(conn, {b.pod for _, b in verified})
            # samples that may already be stored and are not in the recent cache: one query
            lookup: list[tuple[str, int]] = []
            for _, b in verified:
                top_seq = self._max_seq[b.pod]
                for s in b.samples:
                    if s[0] <= top_seq and (b.pod, s[0]) not in self._recent:
                        lookup.append((b.pod, s[0]))
            stored: dict[tuple[str, int], SampleRow] = {}
            for i in range(0, len(lookup), 2000):
                part = lookup[i : i + 2000]
                for r in conn.execute(
                    select(
                        samples.c.pod,
                        samples.c.seq,
                        samples.c.t_s,
                        samples.c.p_w,
                        samples.c.q_var,
                        samples.c.v_mv,
                    ).where(tuple_(samples.c.pod, samples.c.seq).in_(part))
                ):
                    stored[(r.pod, int(r.seq))] = (int(r.seq), r.t_s, r.p_w, r.q_var, r.v_mv)
            conn.rollback()

        batch_rows: list[dict[str, object]] = []
        sample_rows: list[dict[str, object]] = []
        new: dict[tuple[str, int], SampleRow] = {}
        accepted: list[VerifiedBatch] = []
        for topic, b in verified:
            top_seq = self._max_seq[b.pod]
            fresh: list[SampleRow] = []
            dup = 0
            conflict: int | None = None
            for s in b.samples:
                key = (b.pod, s[0])
                have = new.get(key)
                if have is None and s[0] <= top_seq:
                    have = self._recent.get(key) or stored.get(key)
                if have is None:
                    fresh.append(s)
                elif have == s:
                    dup += 1
                else:
                    conflict = s[0]
                    break
            if conflict is not None:
                self._reject(
                    "conflict", topic, f"{b.pod} seq {conflict} differs from the stored one"
                )
                result.rejected += 1
                continue
            if not fresh:
                self.stats.add("messages.duplicate")
                self.stats.add("samples.duplicate", dup)
                result.duplicate += 1
                continue
            batch_id = self._next_batch_id
            assert batch_id is not None
            self._next_batch_id = batch_id + 1
            batch_rows.append(
                {
                    "id": batch_id,
                    "pod": b.pod,
                    "first_seq": b.samples[0][0],
                    "count": len(b.samples),
                    "signer": b.signer,
                    "signature": "0x" + b.signature.hex(),
                }
            )
            for s in fresh:
                new[(b.pod, s[0])] = s
                sample_rows.append(
                    {
                        "pod": b.pod,
                        "seq": s[0],
                        "t_s": s[1],
                        "p_w": s[2],
                        "q_var": s[3],
                        "v_mv": s[4],
                        "batch_id": batch_id,
                    }
                )
                result.touched.add((b.pod, s[1] - s[1] % self.window_s))
            accepted.append(b)
            result.accepted += 1
            if dup:
                self.stats.add("samples.duplicate", dup)
        self.stats.add("messages.accepted", result.accepted)
        self.stats.add("samples.stored", len(sample_rows))
        result.stored = len(sample_rows)
        delta = self.stats.take()
        try:
            with self.engine.begin() as conn:
                bulk_insert(conn, sample_batches, batch_rows)
                bulk_insert(conn, samples, sample_rows)
                add_counts(conn, delta)
        except IntegrityError:
            # another writer, or a cache that was wrong: redo it one message at a time
            log.warning("bulk insert hit an existing key; storing message by message")
            self.stats.give_back(delta)
            self._max_seq.clear()
            self._recent.clear()
            return self._slow_store(accepted, batch_rows, sample_rows, result)
        except Exception:
            self.stats.give_back(delta)
            raise
        for key, s in new.items():
            self._recent[key] = s
            if s[0] > self._max_seq.get(key[0], -1):
                self._max_seq[key[0]] = s[0]
        if len(self._recent) > _RECENT_MAX:
            for key in list(self._recent)[: len(self._recent) - _RECENT_MAX // 2]:
                del self._recent[key]
        return result

    def _slow_store(
        self,
        accepted: list[VerifiedBatch],
        batch_rows: list[dict[str, object]],
        sample_rows: list[dict[str, object]],
        result: FlushResult,
    ) -> FlushResult:
        by_batch: dict[object, list[dict[str, object]]] = {}
        for row in sample_rows:
            by_batch.setdefault(row["batch_id"], []).append(row)
        result.stored = 0
        for b, brow in zip(accepted, batch_rows, strict=True):
            rows = by_batch.get(brow["id"], [])
            keys = [(b.pod, s[0]) for s in b.samples]
            with self.engine.begin() as conn:
                have = {
                    (r.pod, int(r.seq)): (int(r.seq), r.t_s, r.p_w, r.q_var, r.v_mv)
                    for r in conn.execute(
                        select(
                            samples.c.pod,
                            samples.c.seq,
                            samples.c.t_s,
                            samples.c.p_w,
                            samples.c.q_var,
                            samples.c.v_mv,
                        ).where(tuple_(samples.c.pod, samples.c.seq).in_(keys))
                    )
                }
                if any(have.get(k, s) != s for k, s in zip(keys, b.samples, strict=True)):
                    self._reject("conflict", b.pod, "differs from a sample stored meanwhile")
                    self.stats.add("messages.accepted", -1)
                    continue
                rows = [r for r in rows if (b.pod, r["seq"]) not in have]
                if rows:
                    conn.execute(sample_batches.insert(), [brow])
                    conn.execute(samples.insert(), rows)
                result.stored += len(rows)
        with self.engine.begin() as conn:
            add_counts(conn, self.stats.take())
        return result
