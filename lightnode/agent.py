"""The Light Node agent on a meter gateway: sample, sign, publish, anchor, obey, forget.

One ``LightNode`` serves one POD with one device key. Four tasks share one event loop and one
durable buffer (``lightnode.buffer``), and talk through it rather than through memory, so that
killing the process at any instant loses nothing:

- **sampling**: reads the meter every 4 s through ``MeterSource`` (``read``); when behind — a
  restart, a meter outage, an accelerated clock — it reads what it missed in one ``read_range``
  per window instead, so a backlog is caught up in chunks of up to a window. Each chunk gets its
  sequence numbers, is signed once per message (``Signed[MeasurementBatch]``, never spanning two
  windows, at most ``max_batch_samples`` samples) and stored with the exact bytes to publish, in
  one transaction. Then every window whose end the clock has passed is closed: its tree is its
  samples in sequence order, then the set-points received in it in order of receipt.
- **publishing**: sends the stored messages in sequence order at QoS 1 to
  ``flex/pod/{pod}/measure`` and marks them once the broker acknowledged them; then each window's
  manifest (``Signed[WindowManifest]`` on ``flex/pod/{pod}/manifest``), never before the
  window's own samples went out. A broker outage just leaves them in the buffer.
- **anchoring** (``anchor="direct"``): puts each closed window's root on chain from the device
  key, retrying with back-off; idempotent when the root is there already; loud (error log,
  ``health.healthy = False``) when another root is. In ``"concentrator"`` mode the manifest
  (signed root) goes out at once and a concentrator anchors it in a batch.
- **maintenance**: a health line every ``health_interval_s``; manifests of windows still not
  certified are published again after ``manifest_retry_s``; with an SCD URL, uncertified windows
  are polled at ``GET /windows`` in case a certification message was missed.

Subscriptions: set-points (``flex/pod/{pod}/setpoint``: checked by ``SetPointGate``, recorded as
a leaf of the current window, then handed to the BMS), resend requests (the stored bytes again:
the SCD sees idempotent duplicates), certifications (``certified`` frees the window's samples;
``mismatch`` is logged loudly and the window is sent again) and, in concentrator mode, the
concentrators' batches (to know a window is anchored).

The agent contains no physics: a meter is whatever implements ``MeterSource``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Sequence
from pathlib import Path
from typing import Any, Literal

from eth_account.signers.local import LocalAccount
from pydantic import ValidationError

from flexledger.messages.common import Signed, b32, h32, id32
from flexledger.messages.leaves import keccak256 as keccak
from flexledger.messages.leaves import sample_leaf, setpoint_leaf, window_leaf_of
from flexledger.messages.market import SetPoint
from flexledger.messages.measurement import (
    CertificationStatus,
    MeasurementBatch,
    MeterReading,
    ResendRequest,
    WindowCertification,
    WindowManifest,
)
from flexledger.protocols import Bms, Clock, MeterSource
from flexledger.settings import LightNodeSettings
from flexledger.time import SAMPLE_PERIOD_S, window_start_s
from flexledger.transport.http import ServiceError, ServiceUnreachableError, SignedHttpClient
from flexledger.transport.mqtt import MqttClient, MqttUnavailableError, Subscription, encode_payload
from flexledger.transport.topics import DEFAULT_TOPICS, Topics
from lightnode._aio import cancel_and_wait, wait_event
from lightnode.anchoring import AnchorConflictError, Backoff, NotAuthorizedError, anchor_window_once
from lightnode.buffer import NewBatch, SampleBuffer, SampleRow, WindowRow, WindowStatus
from lightnode.health import LightNodeHealth
from lightnode.setpoints import SetPointGate, SetPointRejected
from lightnode.trees import setpoints_hash, window_tree
from node.contract_errors import ContractError
from node.contracts import FlexContracts
from node.eip712 import Domain
from node.merkle import MerkleTree
from node.signing import LocalSigner

__all__ = ["LightNode", "WindowStatusReport", "parse_window_statuses"]

log = logging.getLogger(__name__)

AnchorMode = Literal["direct", "concentrator"]


class LightNode:
    """The agent of one POD. ``async with LightNode(...) as node:`` runs it until the block ends.

    Args:
        pod: the POD code this gateway meters.
        account: the device key, bound to ``pod`` on chain (signs samples, manifests, anchors).
        meter: the meter (``MeterSource``): a CSV replay, the world in this process, or
            ``MqttMeterClient`` for the world in another process.
        clock: the one clock (``WallClock``, ``ScenarioClock``, ``MqttClockClient``).
        mqtt: the process's MQTT client. Pass it not yet started (the agent starts it) so that
            its subscriptions exist before a durable session delivers what was queued.
        contracts: the deployment (anchoring, the DSO role of set-point signers).
        buffer: a ``SampleBuffer`` or the path of its SQLite file.
        domain: the EIP-712 domain; default: read from the chain at start.
        bms: where verified set-points go (default: none; they are still checked and anchored).
        topics: the MQTT topic layout (a test's own root).
        settings: ``LightNodeSettings`` (window length, anchor mode, batch size, SCD polling…).
        start_s: the first instant to sample when the buffer is new (default: now).
        scd: an HTTP client of the SCD for polling certifications (default: from
            ``settings.scd_url``, if set).
    """

    def __init__(
        self,
        pod: str,
        *,
        account: LocalAccount,
        meter: MeterSource,
        clock: Clock,
        mqtt: MqttClient,
        contracts: FlexContracts,
        buffer: SampleBuffer | Path | str,
        domain: Domain | None = None,
        bms: Bms | None = None,
        topics: Topics = DEFAULT_TOPICS,
        settings: LightNodeSettings | None = None,
        start_s: int | None = None,
        scd: SignedHttpClient | None = None,
    ) -> None:
        self.pod = pod
        self.pod32 = id32(pod)
        self.account = account
        self.address = str(account.address)
        self.meter = meter
        self.clock = clock
        self.mqtt = mqtt
        self.contracts = contracts
        self.settings = settings or LightNodeSettings()
        self.window_s = self.settings.window_s
        self.mode: AnchorMode = self.settings.anchor
        self.bms = bms
        self.topics = topics
        self.start_s = start_s
        self.domain = domain
        if isinstance(buffer, SampleBuffer):
            self.buffer = buffer
        else:
            self.buffer = SampleBuffer(
                buffer,
                pod=pod,
                device=self.address,
                window_s=self.window_s,
                synchronous=self.settings.buffer_sync,
            )
        if self.buffer.pod != pod or self.buffer.window_s != self.window_s:
            raise ValueError("the buffer belongs to another POD or window length")
        self._scd = scd
        self._own_scd = False
        if scd is None and self.settings.scd_url:
            self._scd = SignedHttpClient(self.settings.scd_url, timeout_s=10.0, retries=1)
            self._own_scd = True
        self._health = LightNodeHealth(pod)
        self._signer: LocalSigner | None = None
        self._gate: SetPointGate | None = None
        self._outbox = asyncio.Event()
        self._anchor_wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._subs: list[Subscription[Any]] = []
        self._anchor_blocked = False
        self._subscribed = False
        self._ready = asyncio.Event()  # handlers wait for it: queued messages may come first
        self._stopped = asyncio.Event()

    # -- lifecycle -------------------------------------------------------------------------
    async def subscribe(self) -> None:
        """Make the agent's subscriptions (once). On a client not yet started this only records
        them, so that a durable session's queued set-points and certifications find their
        handler; ``start`` calls it."""
        if self._subscribed:
            return
        if self.domain is None:
            self.domain = await asyncio.to_thread(self.contracts.roles.domain)
        self._signer = LocalSigner(self.account, self.domain)
        self._gate = SetPointGate(self.pod, self.domain, self.contracts.roles, self.clock)
        t = self.topics
        self._subs.append(
            await self.mqtt.subscribe(
                t.pod_setpoint(self.pod),
                Signed[SetPoint],
                self._on_setpoint,
                on_invalid=self._on_bad_setpoint,
            )
        )
        self._subs.append(
            await self.mqtt.subscribe(t.pod_resend(self.pod), ResendRequest, self._on_resend)
        )
        self._subs.append(
            await self.mqtt.subscribe(
                t.pod_certification(self.pod), WindowCertification, self._on_certification
            )
        )
        if self.mode == "concentrator":
            self._subs.append(
                await self.mqtt.subscribe_raw(t.all_concentrator_batches(), self._on_batch_payload)
            )
        self._subscribed = True

    async def start(self) -> None:
        """Subscribe, start the MQTT client if needed, and start the agent's tasks."""
        await self.subscribe()
        if not self.mqtt.started:
            await self.mqtt.start()
        try:
            # Subscribed once connected: what is published to us from then on arrives. A node
            # that boots before its broker goes on anyway (the buffer keeps what it measures).
            await self.mqtt.wait_connected(self.mqtt.timeout_s)
        except MqttUnavailableError:
            log.warning("Light Node %s starts without its broker (%s)", self.pod, self.mqtt.url)
        self.mqtt.add_reconnect_hook(self._on_reconnect)
        self._spawn(self._sample_loop(), "sample")
        self._spawn(self._publish_loop(), "publish")
        if self.mode == "direct":
            self._spawn(self._anchor_loop(), "anchor")
        self._spawn(self._maintain_loop(), "maintain")
        self._ready.set()
        log.info(
            "Light Node %s (device %s) started: %s anchoring, window %d s, next seq %d",
            self.pod,
            self.address,
            self.mode,
            self.window_s,
            self.buffer.next_seq,
        )

    def _spawn(self, coro: Awaitable[None], name: str) -> None:
        task = asyncio.ensure_future(coro)
        task.set_name(f"lightnode {self.pod} {name}")
        task.add_done_callback(self._task_done)
        self._tasks.append(task)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            # A loop that died would silently stop sampling or publishing: say so, loudly.
            log.error("Light Node %s: task %s died", self.pod, task.get_name(), exc_info=exc)
            self._health.error(f"task {task.get_name()} died: {exc!r}", fatal=True)

    async def stop(self) -> None:
        """Stop the tasks and subscriptions and close the buffer. Nothing is flushed first: a
        stop is as abrupt as a kill, and the buffer makes that safe. Idempotent."""
        if self._stopped.is_set():
            return
        self.mqtt.remove_reconnect_hook(self._on_reconnect)
        await cancel_and_wait(self._tasks)
        self._tasks.clear()
        for sub in self._subs:
            with contextlib.suppress(Exception):
                await sub.close()
        self._subs.clear()
        if self._own_scd and self._scd is not None:
            await self._scd.aclose()
        self.buffer.close()
        self._stopped.set()
        log.info("Light Node %s stopped", self.pod)

    async def __aenter__(self) -> LightNode:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def run(self) -> None:
        """Start and run until cancelled (the CLI's main loop)."""
        await self.start()
        try:
            await self._stopped.wait()
        finally:
            if not self._stopped.is_set():
                await self.stop()

    @property
    def health(self) -> LightNodeHealth:
        """The counters, with the buffer's current figures."""
        h = self._health
        if not self._stopped.is_set():
            counts = self.buffer.counts()
            h.samples_buffered = counts["samples"]
            h.unpublished_messages = counts["unpublished_messages"]
            h.windows_pending = counts.get("windows_closed", 0) + counts.get("windows_anchored", 0)
        return h

    @property
    def signer(self) -> LocalSigner:
        if self._signer is None:
            raise RuntimeError("the Light Node is not started")
        return self._signer

    # -- sampling --------------------------------------------------------------------------
    async def _sample_loop(self) -> None:
        next_t = self.buffer.next_t
        if next_t is None:
            first = self.start_s if self.start_s is not None else self.clock.now_s()
            next_t = first + (-first) % SAMPLE_PERIOD_S
            self.buffer.set_next_t(next_t)
        backoff = Backoff(0.5, 10.0)
        while True:
            now = self.clock.now_s()
            if next_t > now:
                self._close_due()  # a window may have ended while we had nothing to read
                await self.clock.sleep_until(next_t)
                continue
            window_end = window_start_s(next_t, self.window_s) + self.window_s
            # Up to a window at once: one read, one transaction (one fsync) per chunk however
            # many messages ``max_batch_samples`` cuts it into.
            end = min(now + 1, window_end)
            # the first instant on the 4 s grid at or after ``end``
            new_next = next_t + -(-(end - next_t) // SAMPLE_PERIOD_S) * SAMPLE_PERIOD_S
            try:
                if new_next - next_t > SAMPLE_PERIOD_S:
                    readings = await self.meter.read_range(next_t, new_next)
                else:
                    try:
                        readings = [await self.meter.read(next_t)]
                    except LookupError:
                        readings = []
            except Exception as exc:
                self._health.meter_errors += 1
                self._health.error(f"meter: {exc!r}")
                delay = backoff.next()
                log.warning("meter %s failed (%s); trying again in %.1f s", self.pod, exc, delay)
                await asyncio.sleep(delay)
                continue
            backoff.reset()
            self._ingest(readings, next_t, new_next)
            next_t = new_next
            # Let the publisher and the MQTT client run between chunks while catching up.
            await asyncio.sleep(0)

    def _ingest(self, readings: Sequence[MeterReading], from_t: int, to_t: int) -> None:
        """Number, sign and store readings of ``[from_t, to_t)`` and move the cursor to ``to_t``."""
        rows: list[SampleRow] = []
        seq = self.buffer.next_seq
        last_t = from_t - 1
        for r in readings:
            if r.pod != self.pod or not from_t <= r.t_s < to_t or r.t_s <= last_t:
                log.warning("meter %s gave an unusable reading, skipped: %s", self.pod, r)
                continue
            leaf = sample_leaf(self.pod32, r.t_s, r.p_w, r.q_var, r.v_mv, seq)
            rows.append(
                SampleRow(seq, r.t_s, r.p_w, r.q_var, r.v_mv, r.t_s - r.t_s % self.window_s, leaf)
            )
            seq += 1
            last_t = r.t_s
        expected = len(range(from_t, to_t, SAMPLE_PERIOD_S))
        self._health.meter_gaps += expected - len(rows)
        if rows:
            self.buffer.append(rows, self._sign_batches(rows), to_t)
            self._health.samples_read += len(rows)
            self._outbox.set()
        else:
            self.buffer.set_next_t(to_t)
        self._close_due()

    def _sign_batches(self, rows: Sequence[SampleRow]) -> list[NewBatch]:
        """Split consecutive samples into messages (one window each, at most
        ``max_batch_samples``), sign each once, and return the bytes to publish."""
        out: list[NewBatch] = []
        chunk: list[SampleRow] = []
        limit = self.settings.max_batch_samples
        for row in rows:
            if chunk and (row.window_start != chunk[0].window_start or len(chunk) >= limit):
                out.append(self._sign_batch(chunk))
                chunk = []
            chunk.append(row)
        if chunk:
            out.append(self._sign_batch(chunk))
        return out

    def _sign_batch(self, chunk: Sequence[SampleRow]) -> NewBatch:
        # The struct is signed from the leaves we already hold (the same bytes the receiver
        # recomputes from the samples), rather than hashing every sample a second time.
        typed = {
            "pod": self.pod32,
            "firstSeq": chunk[0].seq,
            "count": len(chunk),
            "samplesHash": keccak(b"".join(r.leaf for r in chunk)),
        }
        signature = self.signer.sign_typed(MeasurementBatch.eip712_type, typed)
        payload = batch_payload(self.pod, chunk, self.address, "0x" + signature.hex())
        return NewBatch(chunk[0].seq, len(chunk), chunk[0].window_start, payload)

    # -- windows ---------------------------------------------------------------------------
    def _close_due(self) -> None:
        """Close every open window whose end both the clock and the sampling have passed."""
        next_t = self.buffer.next_t
        if next_t is None:
            return
        upto = min(next_t, self.clock.now_s())
        for ws in self.buffer.windows_to_close(upto):
            samples = self.buffer.samples(ws)
            sp_leaves = self.buffer.setpoint_leaves(ws)
            tree = window_tree([s.leaf for s in samples], sp_leaves)
            sph = setpoints_hash(sp_leaves)
            first = samples[0].seq if samples else 0
            last = samples[-1].seq if samples else 0
            manifest = None
            if tree is not None and self.mode == "concentrator":
                manifest = self._manifest(ws, tree.root, len(samples), first, last, sp_leaves)
            self.buffer.close_window(
                ws,
                root=tree.root if tree is not None else None,
                sample_count=len(samples),
                first_seq=first if samples else None,
                last_seq=last if samples else None,
                setpoints_hash=sph,
                setpoint_leaves=sp_leaves,
                manifest=manifest,
            )
            if tree is None:
                log.info("window %d of %s is empty: nothing to anchor", ws, self.pod)
                continue
            self._health.windows_closed += 1
            log.info(
                "window %d of %s closed: %d samples (seq %d-%d), %d set-points, root 0x%s",
                ws,
                self.pod,
                len(samples),
                first,
                last,
                len(sp_leaves),
                tree.root.hex(),
            )
            self._anchor_wake.set()
            self._outbox.set()

    def _manifest(
        self,
        window_start: int,
        root: bytes,
        sample_count: int,
        first_seq: int,
        last_seq: int,
        sp_leaves: Sequence[bytes],
        tx_hash: str | None = None,
    ) -> bytes:
        manifest = WindowManifest(
            pod=self.pod,
            window_start_s=window_start,
            root=h32(root),
            sample_count=sample_count,
            first_seq=first_seq,
            last_seq=last_seq,
            setpoints_hash=h32(setpoints_hash(sp_leaves)),
            anchor=self.mode,
            tx_hash=tx_hash,
            setpoint_leaves=[h32(leaf) for leaf in sp_leaves],
        )
        return encode_payload(self.signer.sign(manifest))

    def _row_manifest(self, row: WindowRow, tx_hash: str | None) -> bytes:
        assert row.root is not None and row.sample_count is not None
        return self._manifest(
            row.window_start,
            row.root,
            row.sample_count,
            row.first_seq or 0,
            row.last_seq or 0,
            row.setpoint_leaves,
            tx_hash,
        )

    # -- anchoring -------------------------------------------------------------------------
    async def _anchor_loop(self) -> None:
        backoff = Backoff(0.2, self.settings.anchor_backoff_max_s)
        while True:
            self._anchor_wake.clear()
            rows = self.buffer.windows("closed")
            if not rows:
                await wait_event(self._anchor_wake, 5.0)
                continue
            row = rows[0]
            assert row.root is not None and row.setpoints_hash is not None
            ws = row.window_start
            try:
                result = await anchor_window_once(
                    self.contracts.anchor,
                    self.account,
                    self.pod32,
                    ws,
                    row.root,
                    row.sample_count or 0,
                    row.setpoints_hash,
                )
            except AnchorConflictError as exc:
                self._health.root_conflicts += 1
                self._health.error(f"window {ws}: {exc}", fatal=True)
                log.error(
                    "ROOT CONFLICT: window %d of %s is anchored on chain with another root "
                    "(0x%s) than this Light Node's (0x%s); its samples are kept, nothing is "
                    "overwritten. An operator must look at this device.",
                    ws,
                    self.pod,
                    (exc.chain_root or b"").hex(),
                    row.root.hex(),
                )
                self.buffer.mark_conflict(ws, str(exc))
                continue
            except NotAuthorizedError as exc:
                self._anchor_blocked = True
                self._health.error(str(exc), fatal=True)
                self.buffer.set_error(ws, str(exc))
                delay = backoff.next()
                log.error(
                    "cannot anchor window %d of %s: %s (again in %.0f s)", ws, self.pod, exc, delay
                )
                await asyncio.sleep(delay)
                continue
            except Exception as exc:
                # A chain that does not answer is transient; a revert the contract explains
                # (an unaligned window: a window length other than the deployment's) is not,
                # and is reported as such, though retried in case the deployment changes.
                explained = isinstance(exc, ContractError)
                self._anchor_blocked = self._anchor_blocked or explained
                self._health.anchor_errors += 1
                self._health.error(f"anchor window {ws}: {exc!r}", fatal=explained)
                self.buffer.set_error(ws, repr(exc))
                delay = backoff.next()
                log.log(
                    logging.ERROR if explained else logging.WARNING,
                    "anchoring window %d of %s failed (%s); again in %.1f s",
                    ws,
                    self.pod,
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)
                continue
            backoff.reset()
            if self._anchor_blocked:
                self._anchor_blocked = False
                self._health.healthy = self._health.root_conflicts == 0
            manifest = self._row_manifest(row, result.tx_hash)
            self.buffer.mark_anchored(ws, tx_hash=result.tx_hash, manifest=manifest)
            self._health.windows_anchored += 1
            log.info(
                "window %d of %s anchored%s (tx %s)",
                ws,
                self.pod,
                " (already on chain)" if result.already else "",
                result.tx_hash,
            )
            self._outbox.set()

    # -- publishing ------------------------------------------------------------------------
    async def _publish_loop(self) -> None:
        backoff = Backoff(0.1, 5.0)
        while True:
            self._outbox.clear()
            try:
                sent = await self._publish_some()
            except MqttUnavailableError as exc:
                self._health.publish_errors += 1
                self._health.error(f"publish: {exc}")
                delay = backoff.next()
                log.warning("publishing for %s: %s; again in %.1f s", self.pod, exc, delay)
                await asyncio.sleep(delay)
                continue
            backoff.reset()
            if not sent:
                await wait_event(self._outbox, 1.0)

    async def _publish_some(self) -> int:
        """Publish what is waiting (messages first, in order, then ready manifests)."""
        topic = self.topics.pod_measure(self.pod)
        pending = self.buffer.unpublished_batches(64)
        done: list[int] = []
        try:
            for first_seq, count, payload in pending:
                await self.mqtt.publish(topic, payload, qos=1)
                done.append(first_seq)
                self._health.samples_published += count
                self._health.messages_published += 1
        finally:
            self.buffer.mark_published(done)
        sent = len(done)
        if len(pending) == 64:
            return sent
        manifest_topic = self.topics.pod_manifest(self.pod)
        for ws, manifest in self.buffer.manifests_ready():
            await self.mqtt.publish(manifest_topic, manifest, qos=1)
            self.buffer.mark_manifest_published(ws, time.time())
            self._health.manifests_published += 1
            sent += 1
        return sent

    async def _on_reconnect(self) -> None:
        self._outbox.set()

    # -- set-points ------------------------------------------------------------------------
    def _on_bad_setpoint(self, topic: str, payload: bytes, exc: Exception) -> None:
        self._reject("malformed", f"undecodable set-point on {topic}: {exc}")

    def _reject(self, reason: str, message: str) -> None:
        self._health.setpoints_rejected[reason] += 1
        log.warning("set-point for %s rejected (%s): %s", self.pod, reason, message)

    async def _on_setpoint(self, _topic: str, envelope: Signed[SetPoint]) -> None:
        await self._ready.wait()
        assert self._gate is not None
        try:
            struct_hash = await self._gate.check(envelope)
        except SetPointRejected as exc:
            self._reject(exc.reason, str(exc))
            return
        sp = envelope.message
        outcome, ws, received_at = self.buffer.record_setpoint(
            setpoint_hash=struct_hash,
            signer=envelope.signer,
            seq=sp.seq,
            received_at=self.clock.now_s(),
            leaf_of=lambda at: setpoint_leaf(self.pod32, struct_hash, at),
            envelope=encode_payload(envelope),
        )
        if outcome == "duplicate":
            self._health.setpoints_duplicate += 1
            log.debug("set-point seq %d for %s again: a duplicate, ignored", sp.seq, self.pod)
            return
        if outcome == "conflict":
            self._reject("conflict", f"seq {sp.seq} of {envelope.signer} reused for another one")
            return
        self._health.setpoints_accepted += 1
        log.info(
            "set-point seq %d for %s accepted at %d (window %d): %s %d W",
            sp.seq,
            self.pod,
            received_at,
            ws,
            sp.direction.name.lower(),
            sp.power_w,
        )
        if self.bms is None:
            return
        try:
            apply_signed = getattr(self.bms, "apply_signed", None)
            if apply_signed is not None:
                await apply_signed(envelope)  # a BMS in another process checks it again
            else:
                await self.bms.apply(sp)
        except Exception as exc:
            self._health.bms_errors += 1
            self._health.error(f"BMS: {exc!r}")
            log.exception("the BMS of %s failed on set-point seq %d", self.pod, sp.seq)

    # -- resends and certifications ----------------------------------------------------------
    async def _on_resend(self, _topic: str, request: ResendRequest) -> None:
        await self._ready.wait()
        if request.pod != self.pod:
            return
        await self._resend(request.window_start_s, request.seqs or None)

    async def _resend(self, window_start: int, seqs: Sequence[int] | None) -> int:
        rows = self.buffer.batches_of(window_start, seqs)
        if not rows:
            row = self.buffer.window(window_start)
            state = row.status if row is not None else "unknown here"
            log.warning(
                "resend of window %d of %s asked, nothing to send (window %s)",
                window_start,
                self.pod,
                state,
            )
            return 0
        topic = self.topics.pod_measure(self.pod)
        n = 0
        for _first, count, payload in rows:
            await self.mqtt.publish(topic, payload, qos=1)
            n += count
        self._health.samples_resent += n
        log.info("resent window %d of %s: %d samples", window_start, self.pod, n)
        return n

    async def _on_certification(self, _topic: str, cert: WindowCertification) -> None:
        await self._ready.wait()
        if cert.pod != self.pod:
            return
        await self._apply_verdict(
            WindowStatusReport(
                window_start_s=cert.window_start_s,
                status=cert.status,
                root=cert.root,
                missing_seqs=list(cert.missing_seqs),
                extra_seqs=list(cert.extra_seqs),
                altered_seqs=list(cert.altered_seqs),
            )
        )

    async def _apply_verdict(self, verdict: WindowStatusReport) -> None:
        ws = verdict.window_start_s
        row = self.buffer.window(ws)
        if row is None or row.status not in ("closed", "anchored") or row.root is None:
            log.debug("verdict %s on window %d of %s: nothing to do", verdict.status, ws, self.pod)
            return
        if verdict.status == "certified":
            if verdict.root is not None and b32(verdict.root) != row.root:
                self._health.error(f"window {ws} certified with another root", fatal=True)
                log.error(
                    "the SCD certified window %d of %s with root %s, but this node's root is "
                    "0x%s: the window is NOT freed",
                    ws,
                    self.pod,
                    verdict.root,
                    row.root.hex(),
                )
                return
            freed = self.buffer.free_window(ws)
            self._health.windows_certified += 1
            log.info("window %d of %s certified: %d samples freed", ws, self.pod, freed)
        elif verdict.status == "mismatch":
            self._health.windows_mismatch += 1
            self._health.error(f"window {ws}: the SCD reports a mismatch")
            log.error(
                "MISMATCH: the SCD's samples of window %d of %s do not hash to the anchored root "
                "(missing %s, extra %s, altered %s); sending the whole window again",
                ws,
                self.pod,
                verdict.missing_seqs,
                verdict.extra_seqs,
                verdict.altered_seqs,
            )
            await self._resend(ws, None)
            self.buffer.requeue_manifest(ws)
            self._outbox.set()
        else:
            log.info("window %d of %s: SCD says %s", ws, self.pod, verdict.status)

    async def _on_batch_payload(self, _topic: str, payload: bytes) -> None:
        """A concentrator's batch manifest, read only as far as this node needs it.

        Every Light Node hears every batch, each with the signed window roots of many PODs:
        decoding all of them as messages cost a node more than its own signing. It hashes
        each entry's window leaf to check the batch root and decodes only its own entries."""
        if self.pod.encode() not in payload:
            return
        await self._ready.wait()
        try:
            raw = json.loads(payload)
            entries = raw["windows"]
            leaves = [window_leaf_of(e["message"]) for e in entries]
            root, batch_id = str(raw["root"]).lower(), int(raw["batch_id"])
            tx_hash, concentrator = raw.get("tx_hash"), raw.get("concentrator_id")
            mine = [
                Signed[WindowManifest].model_validate(e)
                for e in entries
                if e["message"]["pod"] == self.pod
            ]
        except (ValueError, KeyError, TypeError, ValidationError) as exc:
            log.warning("%s: a malformed batch manifest: %s", self.pod, exc)
            return
        mine = [w for w in mine if w.signer == self.address]
        if not mine:
            return
        if "0x" + MerkleTree(leaves).root.hex() != root:
            log.warning("batch %d of %s does not hash to its root", batch_id, concentrator)
            return
        for w in mine:
            row = self.buffer.window(w.message.window_start_s)
            if row is not None and row.status == "closed" and row.root == b32(w.message.root):
                self.buffer.mark_anchored(row.window_start, tx_hash=tx_hash, batch_id=batch_id)
                self._health.windows_anchored += 1
                log.info(
                    "window %d of %s anchored by concentrator %s in batch %d",
                    row.window_start,
                    self.pod,
                    concentrator,
                    batch_id,
                )

    # -- maintenance -----------------------------------------------------------------------
    async def _maintain_loop(self) -> None:
        loop = asyncio.get_running_loop()
        last_health = loop.time()
        last_poll = loop.time()
        retry_statuses: list[WindowStatus] = (
            ["closed", "anchored"] if self.mode == "concentrator" else ["anchored"]
        )
        st = self.settings
        tick = min(1.0, st.health_interval_s, st.manifest_retry_s / 4)
        if self._scd is not None:
            tick = min(tick, st.scd_poll_s)
        while True:
            await asyncio.sleep(tick)
            now = loop.time()
            if self.buffer.requeue_manifests(
                time.time() - self.settings.manifest_retry_s, retry_statuses
            ):
                self._outbox.set()
            if self._scd is not None and now - last_poll >= self.settings.scd_poll_s:
                last_poll = now
                await self.poll_scd()
            if now - last_health >= self.settings.health_interval_s:
                last_health = now
                log.info("%s", self.health.line())

    async def poll_scd(self) -> int:
        """Ask the SCD (``GET /windows``) about every window not certified yet and act on its
        answers as on certification messages; the number of verdicts applied."""
        if self._scd is None:
            return 0
        rows = self.buffer.windows("closed", "anchored")
        if not rows:
            return 0
        params = {
            "pod": self.pod,
            "from_s": rows[0].window_start,
            "to_s": rows[-1].window_start + self.window_s,
        }
        try:
            answer = await self._scd.get("/windows", params)
        except (ServiceError, ServiceUnreachableError) as exc:
            log.warning("polling the SCD for %s: %s", self.pod, exc)
            self._health.error(f"SCD poll: {exc}")
            return 0
        verdicts = parse_window_statuses(answer)
        for verdict in verdicts:
            await self._apply_verdict(verdict)
        return len(verdicts)


class WindowStatusReport:
    """The SCD's verdict on one window, from a certification message or from ``GET /windows``."""

    __slots__ = ("altered_seqs", "extra_seqs", "missing_seqs", "root", "status", "window_start_s")

    def __init__(
        self,
        *,
        window_start_s: int,
        status: CertificationStatus,
        root: str | None = None,
        missing_seqs: list[int] | None = None,
        extra_seqs: list[int] | None = None,
        altered_seqs: list[int] | None = None,
    ) -> None:
        self.window_start_s = window_start_s
        self.status: CertificationStatus = status
        self.root = root
        self.missing_seqs = missing_seqs or []
        self.extra_seqs = extra_seqs or []
        self.altered_seqs = altered_seqs or []


_STATUSES = ("certified", "mismatch", "pending", "not_anchored")


def batch_payload(pod: str, chunk: Sequence[SampleRow], signer: str, signature: str) -> bytes:
    """The JSON of ``Signed[MeasurementBatch]`` for samples already checked and numbered,
    written directly: the same bytes as the pydantic model's ``model_dump_json`` (a test
    compares them) without building a model per sample — a simulated day is a million."""
    samples = [
        {"t_s": r.t_s, "p_w": r.p_w, "q_var": r.q_var, "v_mv": r.v_mv, "seq": r.seq} for r in chunk
    ]
    envelope = {
        "message": {"pod": pod, "samples": samples},
        "signer": signer,
        "signature": signature,
    }
    return json.dumps(envelope, separators=(",", ":")).encode()


def parse_window_statuses(answer: Any) -> list[WindowStatusReport]:
    """Verdicts from an SCD ``GET /windows`` answer (docs/API.md).

    Accepts a list of windows or an object holding it (``items``/``windows``/``data``); each
    window carries ``window_start_s`` and its ``status`` (or a ``certification`` object with
    ``status``), optionally ``root``, ``missing_seqs``, ``extra_seqs``, ``altered_seqs`` — the
    fields of ``WindowCertification``, so the SCD may simply list those. Entries that do not fit
    are skipped (logged): a malformed answer must not free anything.
    """
    items = answer
    if isinstance(answer, dict):
        for key in ("items", "windows", "data"):
            if isinstance(answer.get(key), list):
                items = answer[key]
                break
    if not isinstance(items, list):
        log.warning("unexpected SCD /windows answer: %.200r", answer)
        return []
    out: list[WindowStatusReport] = []
    for item in items:
        if not isinstance(item, dict):
            continue
        cert = item.get("certification")
        source: dict[str, Any] = cert if isinstance(cert, dict) else item
        status = source.get("status", cert if isinstance(cert, str) else None)
        ws = item.get("window_start_s", source.get("window_start_s"))
        root = source.get("root", item.get("root"))
        if status not in _STATUSES or not isinstance(ws, int):
            log.debug("skipping an SCD window entry: %.200r", item)
            continue
        out.append(
            WindowStatusReport(
                window_start_s=ws,
                status=status,
                root=root if isinstance(root, str) else None,
                missing_seqs=_ints(source.get("missing_seqs")),
                extra_seqs=_ints(source.get("extra_seqs")),
                altered_seqs=_ints(source.get("altered_seqs")),
            )
        )
    return out


def _ints(value: Any) -> list[int]:
    return [int(v) for v in value] if isinstance(value, list) else []
