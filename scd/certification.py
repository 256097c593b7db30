"""The SCD's verdict on one window: do the samples it stores hash to the root on chain?

Pure database reads and hashing (no chain, no MQTT): ``evaluate`` rebuilds the window's Merkle
tree from the stored samples in sequence order, then the window's set-point leaves (from the
Light Node's signed manifest when ``setpointsHash`` is not zero), and compares it with the
anchored root. When they differ it says exactly what does not match:

- ``missing``: sequence numbers the window should hold (from the manifest's range, or the gaps
  between the stored ones) but the SCD does not have → ``pending`` (a resend is asked);
- ``extra``: stored samples outside the manifest's range → ``mismatch``;
- ``altered``: stored samples whose device-signed message no longer verifies → ``mismatch``.
A window whose samples are all there and all signed, but hash to another root, is a ``mismatch``
with empty lists: the device anchored something else than it published.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, select

from flexledger.messages import Signed, WindowManifest, b32
from flexledger.transport.mqtt import decode_payload
from node.eip712 import Domain, SignatureError
from node.merkle import MerkleTree
from scd.db import sample_batches, samples, windows
from scd.verify import (
    SampleRow,
    VerifiedBatch,
    batch_digest,
    pod32_of,
    recover_signer,
    sample_leaf_fast,
)

__all__ = ["Verdict", "altered_seqs", "evaluate", "window_leaves"]

ZERO = "0x" + "00" * 32


@dataclass
class Verdict:
    status: str
    missing: list[int] = field(default_factory=list)
    extra: list[int] = field(default_factory=list)
    altered: list[int] = field(default_factory=list)
    #: the missing sequence numbers are not all known (no manifest): ask for the whole window
    missing_unknown: bool = False


def load_manifest(text: str | None) -> Signed[WindowManifest] | None:
    if not text:
        return None
    return decode_payload(Signed[WindowManifest], text)


def setpoint_leaves(row: Any) -> list[bytes] | None:
    """The window's set-point leaves, or None while they are unknown."""
    if row.setpoints_hash in (None, ZERO):
        return []
    manifest = load_manifest(row.manifest)
    if manifest is None or manifest.message.setpoint_leaves is None:
        return None
    if manifest.message.setpoints_hash != row.setpoints_hash:
        return None
    return [b32(h) for h in manifest.message.setpoint_leaves]


def window_samples(conn: Connection, pod: str, start_s: int, window_s: int) -> list[Any]:
    return list(
        conn.execute(
            select(
                samples.c.seq,
                samples.c.t_s,
                samples.c.p_w,
                samples.c.q_var,
                samples.c.v_mv,
                samples.c.batch_id,
            )
            .where(
                samples.c.pod == pod,
                samples.c.t_s >= start_s,
                samples.c.t_s < start_s + window_s,
            )
            .order_by(samples.c.seq)
        )
    )


def window_leaves(conn: Connection, row: Any, window_s: int) -> tuple[list[Any], list[bytes]]:
    """(stored sample rows in sequence order, their leaves then the set-point leaves)."""
    rows = window_samples(conn, row.pod, row.window_start_s, window_s)
    pod32 = pod32_of(row.pod)
    leaves = [sample_leaf_fast(pod32, (r.seq, r.t_s, r.p_w, r.q_var, r.v_mv)) for r in rows]
    sp = setpoint_leaves(row) or []
    return rows, leaves + sp


def altered_seqs(conn: Connection, domain: Domain, pod: str, rows: list[Any]) -> list[int]:
    """Stored samples whose device-signed message, rebuilt from what is stored, no longer
    recovers to its signer (a message some of whose samples are gone is not judged)."""
    batch_ids = sorted({r.batch_id for r in rows})
    if not batch_ids:
        return []
    altered: list[int] = []
    in_window = {r.seq for r in rows}
    pod32 = pod32_of(pod)
    for b in conn.execute(select(sample_batches).where(sample_batches.c.id.in_(batch_ids))):
        members = list(
            conn.execute(
                select(samples.c.seq, samples.c.t_s, samples.c.p_w, samples.c.q_var, samples.c.v_mv)
                .where(
                    samples.c.pod == pod,
                    samples.c.seq >= b.first_seq,
                    samples.c.seq < b.first_seq + b.count,
                )
                .order_by(samples.c.seq)
            )
        )
        if len(members) != b.count:
            continue
        rows_: list[SampleRow] = [(m.seq, m.t_s, m.p_w, m.q_var, m.v_mv) for m in members]
        vb = VerifiedBatch(
            pod=pod,
            pod32=pod32,
            signer20=bytes.fromhex(b.signer[2:]),
            signer=b.signer,
            signature=bytes.fromhex(b.signature[2:]),
            samples=rows_,
        )
        try:
            ok = recover_signer(domain, vb) == vb.signer20
        except SignatureError:
            ok = False
        if not ok:
            altered.extend(m.seq for m in members if m.seq in in_window)
    _ = batch_digest  # the same digest the ingestor checked
    return sorted(altered)


def evaluate(conn: Connection, row: Any, window_s: int, domain: Domain) -> Verdict:
    """The verdict on one ``windows`` row (see the module docstring)."""
    if row.root is None:
        return Verdict("not_anchored")
    rows, leaves = window_leaves(conn, row, window_s)
    stored = [int(r.seq) for r in rows]
    count = int(row.sample_count or 0)
    manifest = load_manifest(row.manifest)
    expected: list[int] | None = None
    if manifest is not None:
        m = manifest.message
        if m.last_seq - m.first_seq + 1 == count and m.root == row.root:
            expected = list(range(m.first_seq, m.last_seq + 1))
    missing: list[int] = []
    extra: list[int] = []
    unknown = False
    if expected is not None:
        have = set(stored)
        want = set(expected)
        missing = sorted(want - have)
        extra = sorted(have - want)
    elif len(stored) < count:
        gaps = [s for a, b in itertools.pairwise(stored) for s in range(a + 1, b)]
        missing = gaps
        unknown = len(gaps) < count - len(stored)
    if missing or unknown:
        return Verdict("pending", missing=missing, extra=extra, missing_unknown=unknown)
    sp = setpoint_leaves(row)
    if sp is None:
        # anchored with set-points but no manifest yet: wait for it (the resend asks for it)
        return Verdict("pending", missing_unknown=True)
    if leaves and MerkleTree(leaves).root.hex() == row.root.removeprefix("0x"):
        return Verdict("certified")
    extra_set = set(extra)
    altered = [s for s in altered_seqs(conn, domain, row.pod, rows) if s not in extra_set]
    return Verdict("mismatch", extra=extra, altered=altered)


def verdict_json(v: Verdict) -> dict[str, str]:
    return {
        "missing_seqs": json.dumps(v.missing),
        "extra_seqs": json.dumps(v.extra),
        "altered_seqs": json.dumps(v.altered),
    }


def get_window(conn: Connection, pod: str, start_s: int) -> Any:
    return conn.execute(
        select(windows).where(windows.c.pod == pod, windows.c.window_start_s == start_s)
    ).first()
