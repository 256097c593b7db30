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

The ingestor keeps the newest sequence number per POD in memory so that the common case — a
new sample — needs no read. Several ingestors may write one database at once (the ingest worker
processes of ``scd.workers``): each takes ``sample_batches`` ids from its own residue class
(``id_slot``) and keeps its counter rows apart (``counter_shard``), and the primary key of
``samples`` decides between them — a bulk insert that hits a key another writer stored is
planned again from the database, so a duplicate stays a duplicate and a conflict a conflict,
counted once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

from sqlalchemy import Connection, Engine, func, select, tuple_
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


def _unique_violation(exc: BaseException) -> bool:
    """A stored key: SQLAlchemy's ``IntegrityError``, or the driver's own error from ``COPY``
    (psycopg raises ``UniqueViolation``, SQLSTATE 23505, past SQLAlchemy)."""
    return isinstance(exc, IntegrityError) or getattr(exc, "sqlstate", None) == "23505"


@dataclass
class FlushResult:
    """What one flush did: the windows it touched (for the certifier) and its counts."""

    touched: set[tuple[str, int]] = field(default_factory=set)
    accepted: int = 0
    duplicate: int = 0
    rejected: int = 0
    stored: int = 0


@dataclass
class _Plan:
    """What a flush will store and count, before it is committed."""

    result: FlushResult = field(default_factory=FlushResult)
    counts: Counter[str] = field(default_factory=Counter)
    batches: list[tuple[VerifiedBatch, list[SampleRow]]] = field(default_factory=list)
    new: dict[tuple[str, int], SampleRow] = field(default_factory=dict)
    conflicts: list[tuple[str, str]] = field(default_factory=list)


class MeasurementIngestor:
    """Verifies and stores ``Signed[MeasurementBatch]`` messages from MQTT (or handed in).

    Args:
        engine: the SCD database.
        chain: device bindings and the EIP-712 domain.
        topics: the MQTT layout (its root).
        stats: shared counters.
        on_stored: called on the event loop with the (POD, window start) pairs that got new
            samples (the certifier re-checks pending windows).
        id_slot: (index, stride): this writer's ``sample_batches`` ids are ``index`` modulo
            ``stride`` (concurrent writers take different indices).
        counter_shard: the suffix of this writer's rows in ``ingest_counts`` ("" for none).
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
        id_slot: tuple[int, int] = (0, 1),
        counter_shard: str = "",
    ) -> None:
        self.engine = engine
        self.chain = chain
        self.topics = topics
        self.stats = stats
        self.flush_max = flush_max
        self.flush_interval_s = flush_interval_s
        self.on_stored = on_stored
        self.verify_workers = verify_workers
        self.id_slot = id_slot
        self.counter_shard = counter_shard
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
                if self.stats.pending():
                    # counts of others (certifier, HTTP) with no flush to carry them
                    try:
                        await asyncio.to_thread(self._persist_counts)
                    except Exception:
                        log.exception("storing the ingest counters failed; retrying")
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

    def _persist_counts(self) -> None:
        delta = self.stats.take()
        try:
            with self.engine.begin() as conn:
                add_counts(conn, delta, self.counter_shard)
        except BaseException:
            self.stats.give_back(delta)
            raise

    # -- the worker ----------------------------------------------------------------------------
    def _reject(self, reason: str, topic: str, detail: str) -> None:
        self.stats.add(f"rejected.{reason}")
        self._log_reject(reason, topic, detail)

    def _log_reject(self, reason: str, topic: str, detail: str) -> None:
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

    def _load_state(self, conn: Connection, pods: set[str]) -> None:
        unknown = [p for p in pods if p not in self._max_seq]
        if not unknown:
            return
        rows = conn.execute(
            select(samples.c.pod, func.max(samples.c.seq))
            .where(samples.c.pod.in_(unknown))
            .group_by(samples.c.pod)
        ).all()
        for p in unknown:
            self._max_seq[p] = -1
        for p, m in rows:
            self._max_seq[p] = int(m)

    def _alloc_batch_id(self, conn: Connection) -> int:
        """The next ``sample_batches`` id of this writer: above every stored id, and in this
        writer's residue class (``id_slot``), so that concurrent writers never collide."""
        if self._next_batch_id is None:
            top = int(conn.execute(select(func.max(sample_batches.c.id))).scalar() or 0)
            index, stride = self.id_slot
            self._next_batch_id = (top // stride + 1) * stride + index
        batch_id = self._next_batch_id
        self._next_batch_id = batch_id + self.id_slot[1]
        return batch_id

    def _forget(self) -> None:
        """Another writer stored what this one's caches did not know: read them again."""
        self._max_seq.clear()
        self._recent.clear()
        self._next_batch_id = None

    def process(self, items: list[tuple[str, bytes]]) -> FlushResult:
        """Verify, deduplicate and store ``items`` (a worker thread, or an ingest process).

        The caches say which samples are new; the database's primary key has the last word: a
        bulk insert that hits a stored key (another writer got there first) is planned again
        from what is stored, then, if that too collides, stored message by message.
        """
        verified = self._verified(items)
        for attempt in range(2):
            stored = self._read_stored(verified, everything=attempt > 0)
            plan = self._plan(verified, stored)
            try:
                self._commit(plan)
            except Exception as exc:
                if not _unique_violation(exc):
                    raise
                log.info("bulk insert hit a stored key (another writer): planning again")
                self._forget()
                continue
            return plan.result
        return self._slow_store(verified)

    def _read_stored(
        self, verified: list[tuple[str, VerifiedBatch]], *, everything: bool
    ) -> dict[tuple[str, int], SampleRow]:
        """``_stored`` on a connection of its own, none when the caches rule everything out
        (the common case: new samples of known PODs need no read, not even a pool checkout)."""
        if (
            not everything
            and all(b.pod in self._max_seq for _, b in verified)
            and not self._lookup(verified, everything=False)
        ):
            return {}
        with self.engine.connect() as conn:
            self._load_state(conn, {b.pod for _, b in verified})
            stored = self._stored(conn, verified, everything=everything)
            conn.rollback()
        return stored

    def _lookup(
        self, verified: list[tuple[str, VerifiedBatch]], *, everything: bool
    ) -> list[tuple[str, int]]:
        """The keys among ``verified``'s that the caches cannot rule out (all with
        ``everything``)."""
        lookup: list[tuple[str, int]] = []
        for _, b in verified:
            top_seq = self._max_seq[b.pod]
            for s in b.samples:
                if everything or (s[0] <= top_seq and (b.pod, s[0]) not in self._recent):
                    lookup.append((b.pod, s[0]))
        return lookup

    def _stored(
        self, conn: Connection, verified: list[tuple[str, VerifiedBatch]], *, everything: bool
    ) -> dict[tuple[str, int], SampleRow]:
        """The stored samples among ``verified``'s that the caches cannot rule out (all of
        them with ``everything``): one query per 2,000 keys."""
        lookup = self._lookup(verified, everything=everything)
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
        return stored

    def _plan(
        self, verified: list[tuple[str, VerifiedBatch]], stored: dict[tuple[str, int], SampleRow]
    ) -> _Plan:
        """Classify every message (new, duplicate, conflict) against ``stored``, the caches
        and the messages before it; nothing is counted until the plan is committed."""
        plan = _Plan()
        result = plan.result
        counts = plan.counts
        new = plan.new
        for topic, b in verified:
            top_seq = self._max_seq[b.pod]
            fresh: list[SampleRow] = []
            dup = 0
            conflict: int | None = None
            for s in b.samples:
                key = (b.pod, s[0])
                have = new.get(key)
                if have is None:
                    have = stored.get(key)
                if have is None and s[0] <= top_seq:
                    have = self._recent.get(key)
                if have is None:
                    fresh.append(s)
                elif have == s:
                    dup += 1
                else:
                    conflict = s[0]
                    break
            if conflict is not None:
                counts["rejected.conflict"] += 1
                plan.conflicts.append(
                    (topic, f"{b.pod} seq {conflict} differs from the stored one")
                )
                result.rejected += 1
                continue
            if dup:
                counts["samples.duplicate"] += dup
            if not fresh:
                counts["messages.duplicate"] += 1
                result.duplicate += 1
                continue
            plan.batches.append((b, fresh))
            for s in fresh:
                new[(b.pod, s[0])] = s
                result.touched.add((b.pod, s[1] - s[1] % self.window_s))
            result.accepted += 1
            result.stored += len(fresh)
        counts["messages.accepted"] += result.accepted
        counts["samples.stored"] += result.stored
        return plan

    def _commit(self, plan: _Plan) -> None:
        """Store a plan's samples, their signed messages and every count in one transaction."""
        delta = self.stats.take()
        try:
            with self.engine.begin() as conn:
                batch_rows: list[dict[str, object]] = []
                sample_rows: list[dict[str, object]] = []
                for b, fresh in plan.batches:
                    batch_id = self._alloc_batch_id(conn)
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
                bulk_insert(conn, sample_batches, batch_rows)
                bulk_insert(conn, samples, sample_rows)
                add_counts(conn, Counter(delta) + plan.counts, self.counter_shard)
        except BaseException:
            self.stats.give_back(delta)
            raise
        self.stats.add_persisted(plan.counts)
        for topic, detail in plan.conflicts:
            self._log_reject("conflict", topic, detail)
        for key, s in plan.new.items():
            self._recent[key] = s
            if s[0] > self._max_seq.get(key[0], -1):
                self._max_seq[key[0]] = s[0]
        if len(self._recent) > _RECENT_MAX:
            for key in list(self._recent)[: len(self._recent) - _RECENT_MAX // 2]:
                del self._recent[key]

    def _slow_store(self, verified: list[tuple[str, VerifiedBatch]]) -> FlushResult:
        """Message by message, each in its own transaction, each against what is stored then
        (a key that another writer stores meanwhile is read again: at most three tries)."""
        result = FlushResult()
        for topic, b in verified:
            for _ in range(3):
                with self.engine.connect() as conn:
                    stored = self._stored(conn, [(topic, b)], everything=True)
                    conn.rollback()
                plan = self._plan([(topic, b)], stored)
                try:
                    self._commit(plan)
                except Exception as exc:
                    if not _unique_violation(exc):
                        raise
                    self._forget()
                    continue
                r = plan.result
                result.touched |= r.touched
                result.accepted += r.accepted
                result.duplicate += r.duplicate
                result.rejected += r.rejected
                result.stored += r.stored
                break
            else:
                raise RuntimeError(f"{b.pod}: samples kept colliding with another writer's")
        return result
