"""The auditor's check of the measurements: samples from the SCD's public API, roots from the
chain, every root rebuilt with the auditor's own code.

Nothing here reads the SCD's database or uses its certification code: samples and window
manifests come through ``GET /samples`` and ``GET /windows`` (the SCD is not trusted for
anything else), anchors are read from ``MeasurementAnchor`` events and views, trees are built
with ``node.merkle`` over the protocol's leaves, device signatures are checked again with
``node.signing``.

Per window (a POD's samples of one anchored window, or samples with no anchor):

- ``certified``: the samples the SCD serves, in sequence order, then the window's set-point
  leaves, hash to the root on chain (for a concentrator window: the device-signed window root,
  itself proven against the batch root on chain, signed by the POD's device);
- ``mismatch``: they do not; the lists say which sequence numbers are missing, extra, or
  altered (their device-signed message, rebuilt from what is served, no longer verifies);
- ``not_anchored``: samples whose window has no root on chain.
"""

from __future__ import annotations

import itertools
import logging
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from eth_utils import keccak, to_checksum_address

from flexledger.messages import (
    BatchManifest,
    MeasurementBatch,
    Sample,
    Signed,
    WindowManifest,
    b32,
    h32,
    id32,
)
from flexledger.messages.leaves import sample_leaf, window_leaf_of
from node.contracts import FlexContracts
from node.eip712 import SignatureError
from node.events import EventReader
from node.merkle import MerkleTree
from node.signing import verify_envelope

__all__ = [
    "Anchor",
    "BatchBook",
    "MeasurementAudit",
    "ScdReader",
    "WindowReport",
    "audit_measurements",
    "chain_anchors",
]

log = logging.getLogger(__name__)
ZERO = bytes(32)
PAGE = 10_000


class ScdReader(Protocol):
    """What the auditor needs of an HTTP client (``SyncSignedHttpClient`` has it)."""

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any: ...


@dataclass(frozen=True)
class Anchor:
    """A window root on chain, and how it got there."""

    root: bytes
    sample_count: int
    setpoints_hash: bytes
    tx: str
    batch: tuple[str, int] | None = None


@dataclass
class WindowReport:
    pod: str
    window_start_s: int
    status: str
    samples: int = 0
    anchored_count: int | None = None
    root_chain: str | None = None
    root_computed: str | None = None
    missing: list[int] = field(default_factory=list)
    extra: list[int] = field(default_factory=list)
    altered: list[int] = field(default_factory=list)
    note: str = ""

    def line(self) -> str:
        parts = [f"{self.pod} {self.window_start_s} {self.status}", f"samples={self.samples}"]
        if self.anchored_count is not None:
            parts.append(f"anchored={self.anchored_count}")
        for name in ("missing", "extra", "altered"):
            seqs = getattr(self, name)
            if seqs:
                shown = ",".join(map(str, seqs[:20])) + ("…" if len(seqs) > 20 else "")
                parts.append(f"{name}=[{shown}]")
        if self.note:
            parts.append(self.note)
        return " ".join(parts)


@dataclass
class MeasurementAudit:
    windows: list[WindowReport]

    @property
    def ok(self) -> bool:
        return not any(w.status == "mismatch" for w in self.windows)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = defaultdict(int)
        for w in self.windows:
            out[w.status] += 1
        return dict(out)


def chain_anchors(
    contracts: FlexContracts, from_block: int = 0
) -> tuple[dict[tuple[bytes, int], Anchor], dict[tuple[str, int], bytes]]:
    """Direct window anchors by (POD id, window start), and batch roots by (concentrator,
    batch id), from ``MeasurementAnchor``'s events."""
    reader = EventReader(contracts.anchor.w3, [contracts.anchor], from_block=from_block)
    direct: dict[tuple[bytes, int], Anchor] = {}
    batches: dict[tuple[str, int], bytes] = {}
    for e in reader.poll():
        a = e.args
        if e.name == "MeasurementsAnchored":
            direct[(bytes(a["pod"]), int(a["windowStart"]))] = Anchor(
                bytes(a["root"]),
                int(a["sampleCount"]),
                bytes(a["setpointsHash"]),
                "0x" + e.tx_hash.hex(),
            )
        elif e.name == "BatchAnchored":
            batches[(to_checksum_address(a["concentrator"]), int(a["batchId"]))] = bytes(a["root"])
    return direct, batches


def _pages(scd: ScdReader, path: str, params: dict[str, Any], key: str) -> Iterator[Any]:
    after: Any = None
    while True:
        page = scd.get(path, {**params, "limit": PAGE, **({"after": after} if after else {})})
        yield page
        after = page.get(key) if isinstance(page, dict) else None
        if after is None:
            return


def fetch_samples(
    scd: ScdReader, pod: str, params: dict[str, Any]
) -> tuple[list[dict[str, Any]], dict[int, dict[str, Any]]]:
    samples: list[dict[str, Any]] = []
    batches: dict[int, dict[str, Any]] = {}
    for page in _pages(scd, "/samples", {"pod": pod, **params}, "next_after"):
        samples.extend(page["samples"])
        batches.update({b["id"]: b for b in page["batches"]})
    return samples, batches


COLUMNS_PAGE = 100_000
_FIELDS = ("t_s", "p_w", "q_var", "v_mv", "seq", "batch_id")


def fetch_sample_rows(
    scd: ScdReader, pod: str, params: dict[str, Any]
) -> tuple[list[dict[str, Any]], dict[int, dict[str, Any]]]:
    """A POD's samples through the SCD's bulk read (``GET /samples/columns``), as the rows of
    :func:`fetch_samples`, and the device-signed messages they came in by id."""
    rows: list[dict[str, Any]] = []
    batches: dict[int, dict[str, Any]] = {}
    after: int | None = None
    while True:
        page = scd.get(
            "/samples/columns",
            {"pod": pod, **params, "limit": COLUMNS_PAGE, **({"after": after} if after else {})},
        )
        cols = [page[f] for f in _FIELDS]
        rows.extend(dict(zip(_FIELDS, r, strict=True)) for r in zip(*cols, strict=True))
        b = page["batches"]
        for bid, first, count, signer, sig in zip(
            b["id"], b["first_seq"], b["count"], b["signer"], b["signature"], strict=True
        ):
            batches[bid] = {
                "id": bid,
                "first_seq": first,
                "count": count,
                "signer": signer,
                "signature": sig,
            }
        after = page.get("next_after")
        if after is None:
            return rows, batches


def fetch_windows(scd: ScdReader, params: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    after: str | None = None
    while True:
        page = scd.get("/windows", {**params, "limit": PAGE, **({"after": after} if after else {})})
        out.extend(page)
        if len(page) < PAGE:
            return out
        after = f"{page[-1]['pod']}@{page[-1]['window_start_s']}"


def _sample(d: dict[str, Any]) -> Sample:
    return Sample(t_s=d["t_s"], p_w=d["p_w"], q_var=d["q_var"], v_mv=d["v_mv"], seq=d["seq"])


class _Verifier:
    """Re-checks the device signatures of the served samples, batch by batch."""

    def __init__(
        self,
        scd: ScdReader,
        contracts: FlexContracts,
        pod: str,
        served: list[dict[str, Any]],
        batches: dict[int, dict[str, Any]],
        device: str | None,
    ) -> None:
        self.scd = scd
        self.contracts = contracts
        self.pod = pod
        self.served = served
        self._by_seq: dict[int, Sample] | None = None
        self.batches = batches
        self.device = device
        self._ok: dict[int, bool | None] = {}

    @property
    def by_seq(self) -> dict[int, Sample]:
        """The served samples as messages, built only when a mismatch needs explaining."""
        if self._by_seq is None:
            self._by_seq = {d["seq"]: _sample(d) for d in self.served}
        return self._by_seq

    def batch_ok(self, batch_id: int) -> bool | None:
        """True/False for a message that verifies or not; None when some of its samples are
        not served (it cannot be judged)."""
        if batch_id in self._ok:
            return self._ok[batch_id]
        b = self.batches.get(batch_id)
        result: bool | None
        if b is None:
            result = False
        else:
            seqs = range(b["first_seq"], b["first_seq"] + b["count"])
            missing = [s for s in seqs if s not in self.by_seq]
            if missing:
                extra, _ = fetch_samples(
                    self.scd, self.pod, {"from_seq": seqs[0], "to_seq": seqs[-1] + 1}
                )
                self.by_seq.update({d["seq"]: _sample(d) for d in extra})
            members = [self.by_seq.get(s) for s in seqs]
            if any(m is None for m in members):
                result = None
            else:
                try:
                    env = Signed[MeasurementBatch](
                        message=MeasurementBatch(pod=self.pod, samples=members),  # type: ignore[arg-type]
                        signer=b["signer"],
                        signature=b["signature"],
                    )
                    signer = verify_envelope(env, self.contracts.roles.domain())
                    result = self.device is None or signer == self.device
                except (SignatureError, ValueError):
                    result = False
        self._ok[batch_id] = result
        return result


class BatchBook:
    """Concentrator batches as the auditor checks them: each batch's manifest fetched once
    from the SCD (``GET /batches/{concentrator}/{id}``), its tree rebuilt from the window
    roots it lists and compared with the root on chain; then a window belongs to the batch
    when its leaf is one of those the auditor hashed itself."""

    def __init__(
        self, contracts: FlexContracts, scd: ScdReader, batch_roots: dict[tuple[str, int], bytes]
    ) -> None:
        self.contracts = contracts
        self.scd = scd
        self.batch_roots = batch_roots
        self.domain = contracts.roles.domain()
        self._leaves: dict[tuple[str, int], set[bytes] | str] = {}

    def leaves(self, key: tuple[str, int]) -> set[bytes] | str:
        """The window leaves of a batch whose rebuilt root is the one on chain, or why not."""
        if key not in self._leaves:
            self._leaves[key] = self._check(key)
        return self._leaves[key]

    def _check(self, key: tuple[str, int]) -> set[bytes] | str:
        root = self.batch_roots.get(key) or self.contracts.anchor.batch_root(*key)
        if root is None:
            return f"batch {key[1]} of {key[0]} is not on chain"
        try:
            body = self.scd.get(f"/batches/{key[0]}/{key[1]}")
            manifest = BatchManifest.model_validate(body.get("manifest"))
        except Exception as exc:  # the SCD's answer is not trusted: any failure is a finding
            return f"batch {key[1]} of {key[0]}: no usable manifest from the SCD ({exc})"
        leaves = [window_leaf_of(e.message) for e in manifest.windows]
        if MerkleTree(leaves).root != root:
            return f"batch {key[1]} of {key[0]}: its windows do not hash to the root on chain"
        return set(leaves)


def _window_of_batch(
    w: dict[str, Any], batches: BatchBook, device: str | None
) -> tuple[Anchor | None, str]:
    """A concentrator window the SCD reports, checked by the auditor: signed by the POD's
    device, and its leaf one of the batch's whose root is on chain."""
    manifest = w.get("manifest")
    if manifest is None:
        return None, "concentrator window without its signed manifest"
    env = Signed[WindowManifest].model_validate(manifest)
    m = env.message
    try:
        signer = verify_envelope(env, batches.domain)
    except SignatureError as exc:
        return None, f"window manifest: {exc}"
    if signer != device:
        return None, "window manifest not signed by the POD's device"
    key = (to_checksum_address(w["concentrator"]), int(w["batch_id"]))
    leaves = batches.leaves(key)
    if isinstance(leaves, str):
        return None, leaves
    if window_leaf_of(m) not in leaves:
        return None, "the window is not in the batch root on chain"
    return Anchor(b32(m.root), m.sample_count, b32(m.setpoints_hash), w["anchor_tx"] or "", key), ""


def _setpoint_leaves(w: dict[str, Any] | None, anchor: Anchor) -> tuple[list[bytes] | None, str]:
    if anchor.setpoints_hash == ZERO:
        return [], ""
    manifest = (w or {}).get("manifest")
    leaves = (manifest or {}).get("message", {}).get("setpoint_leaves")
    if leaves is None:
        return None, "set-point leaves unknown (no manifest)"
    raw = [b32(x) for x in leaves]
    if keccak(b"".join(raw)) != anchor.setpoints_hash:
        return None, "set-point leaves do not hash to the anchored setpointsHash"
    return raw, ""


def audit_measurements(
    scd: ScdReader,
    contracts: FlexContracts,
    *,
    pods: Iterable[str] | None = None,
    from_s: int | None = None,
    to_s: int | None = None,
    from_block: int = 0,
) -> MeasurementAudit:
    """Check every window of ``pods`` (default: every POD the SCD or the chain names) whose
    start is in ``[from_s, to_s)``."""
    window_s = contracts.anchor.window_seconds()
    direct, batch_roots = chain_anchors(contracts, from_block)
    rng: dict[str, Any] = {}
    if from_s is not None:
        rng["from_s"] = from_s
    if to_s is not None:
        rng["to_s"] = to_s
    scd_windows = fetch_windows(scd, rng)
    pod_list = (
        sorted(set(pods))
        if pods
        else sorted(
            {w["pod"] for w in scd_windows} | {p["pod"] for p in scd.get("/pods", {"limit": PAGE})}
        )
    )
    batches = BatchBook(contracts, scd, batch_roots)
    by_pod: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for w in scd_windows:
        by_pod[w["pod"]].append(w)
    reports: list[WindowReport] = []
    for pod in pod_list:
        reports.extend(_audit_pod(scd, contracts, pod, window_s, direct, batches, by_pod[pod], rng))
    reports.sort(key=lambda r: (r.pod, r.window_start_s))
    return MeasurementAudit(reports)


def _audit_pod(
    scd: ScdReader,
    contracts: FlexContracts,
    pod: str,
    window_s: int,
    direct: dict[tuple[bytes, int], Anchor],
    batches: BatchBook,
    scd_windows: list[dict[str, Any]],
    rng: dict[str, Any],
) -> list[WindowReport]:
    pod32 = id32(pod)
    device = contracts.anchor.device_of(pod32)
    served, signed = fetch_sample_rows(scd, pod, rng)
    groups: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for d in served:
        groups[d["t_s"] - d["t_s"] % window_s].append(d)
    lo, hi = rng.get("from_s"), rng.get("to_s")
    starts = set(groups)
    starts |= {
        ws
        for (p, ws) in direct
        if p == pod32 and (lo is None or ws >= lo) and (hi is None or ws < hi)
    }
    meta = {w["window_start_s"]: w for w in scd_windows}
    verifier = _Verifier(scd, contracts, pod, served, signed, device)
    out: list[WindowReport] = []
    for ws in sorted(starts):
        rows = sorted(groups.get(ws, []), key=lambda d: d["seq"])
        report = WindowReport(pod, ws, "not_anchored", samples=len(rows))
        w = meta.get(ws)
        anchor = direct.get((pod32, ws))
        note = ""
        if anchor is None and w is not None and w.get("anchor") == "concentrator":
            anchor, note = _window_of_batch(w, batches, device)
        if anchor is None:
            report.note = note
            out.append(report)
            continue
        report.anchored_count = anchor.sample_count
        report.root_chain = h32(anchor.root)
        sp, sp_note = _setpoint_leaves(w, anchor)
        leaves = [
            sample_leaf(pod32, d["t_s"], d["p_w"], d["q_var"], d["v_mv"], d["seq"]) for d in rows
        ] + (sp or [])
        computed = MerkleTree(leaves).root if leaves else None
        report.root_computed = h32(computed) if computed else None
        if computed == anchor.root and sp is not None:
            report.status = "certified"
            out.append(report)
            continue
        report.status = "mismatch"
        report.note = sp_note
        _explain(report, rows, w, anchor, verifier)
        out.append(report)
    return out


def _explain(
    report: WindowReport,
    rows: list[dict[str, Any]],
    w: dict[str, Any] | None,
    anchor: Anchor,
    verifier: _Verifier,
) -> None:
    """Which sequence numbers do not match: missing and extra against the Light Node's signed
    manifest's range (or the gaps between served samples), altered by their signatures."""
    seqs = [d["seq"] for d in rows]
    manifest = ((w or {}).get("manifest") or {}).get("message")
    expected: list[int] | None = None
    if manifest and manifest["last_seq"] - manifest["first_seq"] + 1 == anchor.sample_count:
        expected = list(range(manifest["first_seq"], manifest["last_seq"] + 1))
    have = set(seqs)
    if expected is None and seqs and len(seqs) < anchor.sample_count:
        # no manifest: the gaps between served sequences are missing for sure
        report.missing = [s for a, b in itertools.pairwise(seqs) for s in range(a + 1, b)]
    if expected is not None:
        want = set(expected)
        report.missing = sorted(want - have)
        report.extra = sorted(have - want)
    extra = set(report.extra)
    for d in rows:
        if d["seq"] in extra:
            continue
        if verifier.batch_ok(d["batch_id"]) is False:
            report.altered.append(d["seq"])
