"""A tiny SCD stand-in: the certifier peer a Light Node talks to, for tests that do not need the
real SCD.

It does what the Light Node expects of an SCD and nothing more: it takes the device-signed
sample messages (signatures verified by the subscription), stores each sample once per
(POD, seq) and counts idempotent duplicates and conflicts, and when a window's manifest is in
and the window's samples are all there, it rebuilds the root (samples in sequence order, then the
manifest's set-point leaves), compares it with the manifest and with the root on chain, and
publishes a ``WindowCertification``. Samples missing: it asks for them (``ResendRequest``) and
checks again when they come. ``drop`` loses chosen samples the first time they arrive (a lossy
path), ``certify=False`` keeps it quiet (a node waiting for an SCD that does not answer).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from flexledger.messages import (
    CertificationStatus,
    MeasurementBatch,
    ResendRequest,
    Sample,
    Signed,
    WindowCertification,
    WindowManifest,
    b32,
    id32,
)
from flexledger.transport import MqttClient, Topics
from lightnode import window_tree
from node.contracts import FlexContracts
from node.eip712 import Domain

log = logging.getLogger(__name__)


@dataclass
class PodRecord:
    samples: dict[int, Sample] = field(default_factory=dict)
    signers: set[str] = field(default_factory=set)
    manifests: dict[int, Signed[WindowManifest]] = field(default_factory=dict)
    verdicts: dict[int, str] = field(default_factory=dict)


class Certifier:
    def __init__(
        self,
        mqtt: MqttClient,
        topics: Topics,
        domain: Domain,
        contracts: FlexContracts,
        *,
        drop: Callable[[str, int], bool] | None = None,
        certify: bool = True,
    ) -> None:
        self.mqtt = mqtt
        self.topics = topics
        self.domain = domain
        self.contracts = contracts
        self.drop = drop
        self.certify = certify
        self.pods: dict[str, PodRecord] = {}
        self.messages: list[Signed[MeasurementBatch]] = []
        self.duplicates = 0
        self.conflicts = 0
        self.dropped: set[tuple[str, int]] = set()
        self.resends_asked = 0
        self.bad = Counter[str]()
        self._checker: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.mqtt.subscribe(
            self.topics.all_pod_measures(),
            Signed[MeasurementBatch],
            self._on_batch,
            domain=self.domain,
            on_invalid=lambda t, p, e: self.bad.update(["measure"]),
        )
        await self.mqtt.subscribe(
            self.topics.all_pod_manifests(),
            Signed[WindowManifest],
            self._on_manifest,
            domain=self.domain,
            on_invalid=lambda t, p, e: self.bad.update(["manifest"]),
        )
        if not self.mqtt.started:
            await self.mqtt.start(wait_s=5.0)
        self._checker = asyncio.create_task(self._recheck())

    async def stop(self) -> None:
        if self._checker is not None:
            self._checker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checker

    def pod(self, pod: str) -> PodRecord:
        return self.pods.setdefault(pod, PodRecord())

    def seqs(self, pod: str) -> list[int]:
        return sorted(self.pod(pod).samples)

    async def _on_batch(self, _topic: str, envelope: Signed[MeasurementBatch]) -> None:
        self.messages.append(envelope)
        rec = self.pod(envelope.message.pod)
        rec.signers.add(envelope.signer)
        for s in envelope.message.samples:
            key = (envelope.message.pod, s.seq)
            if self.drop is not None and key not in self.dropped and self.drop(*key):
                self.dropped.add(key)
                continue
            have = rec.samples.get(s.seq)
            if have is None:
                rec.samples[s.seq] = s
            elif have == s:
                self.duplicates += 1
            else:
                self.conflicts += 1

    async def _on_manifest(self, _topic: str, envelope: Signed[WindowManifest]) -> None:
        m = envelope.message
        self.pod(m.pod).manifests[m.window_start_s] = envelope
        await self.check(m.pod, m.window_start_s)

    async def _recheck(self) -> None:
        while True:
            await asyncio.sleep(0.1)
            for pod, rec in list(self.pods.items()):
                for ws in list(rec.manifests):
                    if rec.verdicts.get(ws) != "certified":
                        await self.check(pod, ws, ask=False)

    async def check(self, pod: str, ws: int, *, ask: bool = True) -> str | None:
        """Certify the window if everything agrees; the verdict published, if any."""
        if not self.certify:
            return None
        rec = self.pod(pod)
        m = rec.manifests[ws].message
        seqs = range(m.first_seq, m.first_seq + m.sample_count)
        missing = [q for q in seqs if q not in rec.samples]
        if missing:
            if ask:
                self.resends_asked += 1
                await self.mqtt.publish(
                    self.topics.pod_resend(pod),
                    ResendRequest(pod=pod, window_start_s=ws, seqs=missing),
                )
            return None
        pod32 = id32(pod)
        leaves = [rec.samples[q].leaf(pod32) for q in seqs]
        sp_leaves = [b32(h) for h in m.setpoint_leaves or []]
        tree = window_tree(leaves, sp_leaves)
        assert tree is not None
        if m.anchor == "direct":
            try:
                chain_root = await asyncio.to_thread(self.contracts.anchor.window_root, pod32, ws)
            except Exception as exc:  # the chain is down: check again later
                log.debug("certifier: chain unavailable (%s)", exc)
                return None
        else:
            chain_root = b32(m.root)  # the concentrator test checks the batch itself
        status: CertificationStatus = (
            "certified" if tree.root == b32(m.root) == chain_root else "mismatch"
        )
        if rec.verdicts.get(ws) == status:
            return status
        rec.verdicts[ws] = status
        await self.mqtt.publish(
            self.topics.pod_certification(pod),
            WindowCertification(
                pod=pod,
                window_start_s=ws,
                status=status,
                root=m.root,
                sample_count=m.sample_count,
            ),
        )
        return status
