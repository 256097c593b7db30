"""Samples (I-04), windows with their certification, a sample's Merkle proof, ingest counts."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Engine, select

from flexledger.messages import BatchManifest, h32
from flexledger.messages.leaves import window_leaf_of
from flexledger.transport.api import ApiError
from flexledger.transport.mqtt import decode_payload
from node.merkle import MerkleTree
from scd.certification import window_leaves
from scd.db import concentrator_batches, sample_batches, samples, windows
from scd.stats import read_counts

__all__ = [
    "batch_manifest",
    "ingest_stats",
    "list_batches",
    "list_samples",
    "list_windows",
    "sample_columns",
    "sample_proof",
]


def list_samples(
    engine: Engine,
    *,
    pod: str,
    from_s: int | None,
    to_s: int | None,
    from_seq: int | None,
    to_seq: int | None,
    limit: int,
    after: int | None,
) -> dict[str, Any]:
    """A POD's samples in sequence order, with the device-signed messages they came in (so a
    reader can check every signature again). ``next_after`` is the cursor of the next page."""
    q = select(samples).where(samples.c.pod == pod).order_by(samples.c.seq)
    if from_s is not None:
        q = q.where(samples.c.t_s >= from_s)
    if to_s is not None:
        q = q.where(samples.c.t_s < to_s)
    if from_seq is not None:
        q = q.where(samples.c.seq >= from_seq)
    if to_seq is not None:
        q = q.where(samples.c.seq < to_seq)
    if after is not None:
        q = q.where(samples.c.seq > after)
    with engine.connect() as conn:
        rows = list(conn.execute(q.limit(limit)))
        ids = sorted({r.batch_id for r in rows})
        batches: list[Any] = []
        for i in range(0, len(ids), 2000):
            batches.extend(
                conn.execute(
                    select(sample_batches)
                    .where(sample_batches.c.id.in_(ids[i : i + 2000]))
                    .order_by(sample_batches.c.id)
                )
            )
    return {
        "pod": pod,
        "samples": [
            {
                "t_s": int(r.t_s),
                "p_w": int(r.p_w),
                "q_var": int(r.q_var),
                "v_mv": int(r.v_mv),
                "seq": int(r.seq),
                "batch_id": int(r.batch_id),
            }
            for r in rows
        ],
        "batches": [
            {
                "id": int(b.id),
                "first_seq": int(b.first_seq),
                "count": int(b.count),
                "signer": b.signer,
                "signature": b.signature,
            }
            for b in batches
        ],
        "next_after": int(rows[-1].seq) if len(rows) == limit else None,
    }


def sample_columns(
    engine: Engine,
    *,
    pod: str,
    from_s: int | None,
    to_s: int | None,
    limit: int,
    after: int | None,
) -> dict[str, Any]:
    """The bulk shape of :func:`list_samples` for a reader that re-hashes a whole day: one
    array per field (``t_s``, ``p_w``, ``q_var``, ``v_mv``, ``seq``, ``batch_id``) in sequence
    order, and the device-signed messages as arrays too (``batches``). About a tenth of the
    bytes and none of the per-sample objects of the paged list."""
    q = (
        select(
            samples.c.t_s,
            samples.c.p_w,
            samples.c.q_var,
            samples.c.v_mv,
            samples.c.seq,
            samples.c.batch_id,
        )
        .where(samples.c.pod == pod)
        .order_by(samples.c.seq)
    )
    if from_s is not None:
        q = q.where(samples.c.t_s >= from_s)
    if to_s is not None:
        q = q.where(samples.c.t_s < to_s)
    if after is not None:
        q = q.where(samples.c.seq > after)
    with engine.connect() as conn:
        rows = conn.execute(q.limit(limit)).all()
        ids = sorted({r[5] for r in rows})
        brows: list[Any] = []
        for i in range(0, len(ids), 2000):
            brows.extend(
                conn.execute(
                    select(
                        sample_batches.c.id,
                        sample_batches.c.first_seq,
                        sample_batches.c.count,
                        sample_batches.c.signer,
                        sample_batches.c.signature,
                    )
                    .where(sample_batches.c.id.in_(ids[i : i + 2000]))
                    .order_by(sample_batches.c.id)
                ).all()
            )
    cols = [list(c) for c in zip(*rows, strict=True)] if rows else [[] for _ in range(6)]
    bcols = [list(c) for c in zip(*brows, strict=True)] if brows else [[] for _ in range(5)]
    return {
        "pod": pod,
        **dict(zip(("t_s", "p_w", "q_var", "v_mv", "seq", "batch_id"), cols, strict=True)),
        "batches": dict(
            zip(("id", "first_seq", "count", "signer", "signature"), bcols, strict=True)
        ),
        "next_after": int(rows[-1][4]) if len(rows) == limit else None,
    }


def _cursor(after: str, shape: str) -> tuple[str, int]:
    """A page cursor ``NAME@NUMBER``; 422 when it is not one."""
    name, _, number = after.partition("@")
    try:
        return name, int(number)
    except ValueError:
        raise ApiError(422, "invalid", f"after is {shape}") from None


def _batch(row: Any, with_manifest: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "concentrator": row.concentrator,
        "batch_id": int(row.batch_id),
        "root": row.root,
        "window_count": row.window_count,
        "sample_count": row.sample_count,
        "anchor_tx": row.anchor_tx,
        "anchor_block": row.anchor_block,
        "status": row.status,
        "error": row.error,
    }
    if with_manifest:
        out["manifest"] = json.loads(row.manifest) if row.manifest else None
    return out


def list_batches(
    engine: Engine, *, concentrator: str | None, limit: int, after: str | None
) -> list[dict[str, Any]]:
    """Concentrator batches in (concentrator, batch id) order, without their manifests;
    ``after`` is ``CONCENTRATOR@BATCH_ID`` of the last one seen."""
    cb = concentrator_batches
    q = select(cb).order_by(cb.c.concentrator, cb.c.batch_id)
    if concentrator is not None:
        q = q.where(cb.c.concentrator == concentrator)
    if after is not None:
        a_conc, bid = _cursor(after, "CONCENTRATOR@BATCH_ID")
        q = q.where(
            (cb.c.concentrator > a_conc) | ((cb.c.concentrator == a_conc) & (cb.c.batch_id > bid))
        )
    with engine.connect() as conn:
        return [_batch(r, False) for r in conn.execute(q.limit(limit))]


def batch_manifest(engine: Engine, *, concentrator: str, batch_id: int) -> dict[str, Any]:
    """One concentrator batch with the manifest it published: every device-signed window
    root in the order of the batch tree (a reader rebuilds the batch root from it)."""
    cb = concentrator_batches
    with engine.connect() as conn:
        row = conn.execute(
            select(cb).where(cb.c.concentrator == concentrator, cb.c.batch_id == batch_id)
        ).first()
    if row is None:
        raise ApiError(404, "not_found", f"no batch {batch_id} of concentrator {concentrator}")
    return _batch(row, True)


def _window(row: Any) -> dict[str, Any]:
    return {
        "pod": row.pod,
        "window_start_s": int(row.window_start_s),
        "status": row.status if row.status != "anchored" else "pending",
        "root": row.root,
        "sample_count": row.sample_count,
        "setpoints_hash": row.setpoints_hash,
        "missing_seqs": json.loads(row.missing_seqs),
        "extra_seqs": json.loads(row.extra_seqs),
        "altered_seqs": json.loads(row.altered_seqs),
        "anchor": row.anchor,
        "anchor_tx": row.anchor_tx,
        "anchor_block": row.anchor_block,
        "concentrator": row.concentrator,
        "batch_id": row.batch_id,
        "manifest": json.loads(row.manifest) if row.manifest else None,
    }


def list_windows(
    engine: Engine,
    *,
    pod: str | None,
    from_s: int | None,
    to_s: int | None,
    status: str | None,
    limit: int,
    after: str | None,
) -> list[dict[str, Any]]:
    """Windows in (POD, start) order; ``after`` is ``POD@start`` of the last one seen."""
    q = select(windows).order_by(windows.c.pod, windows.c.window_start_s)
    if pod is not None:
        q = q.where(windows.c.pod == pod)
    if from_s is not None:
        q = q.where(windows.c.window_start_s >= from_s)
    if to_s is not None:
        q = q.where(windows.c.window_start_s < to_s)
    if status is not None:
        q = q.where(windows.c.status == status)
    if after is not None:
        a_pod, start = _cursor(after, "POD@window_start_s")
        q = q.where(
            (windows.c.pod > a_pod)
            | ((windows.c.pod == a_pod) & (windows.c.window_start_s > start))
        )
    with engine.connect() as conn:
        return [_window(r) for r in conn.execute(q.limit(limit))]


def sample_proof(engine: Engine, window_s: int, *, pod: str, t_s: int) -> dict[str, Any]:
    """The sample of ``pod`` at ``t_s``, its leaf and Merkle proof in its window's tree, the
    anchored root; in concentrator mode also the window's leaf and proof in its batch."""
    start = t_s - t_s % window_s
    with engine.connect() as conn:
        row = conn.execute(
            select(windows).where(windows.c.pod == pod, windows.c.window_start_s == start)
        ).first()
        sample = conn.execute(
            select(samples).where(samples.c.pod == pod, samples.c.t_s == t_s)
        ).first()
        if sample is None:
            raise ApiError(404, "not_found", f"no sample of {pod} at t_s={t_s}")
        if row is None or row.root is None:
            raise ApiError(404, "not_found", f"{pod} window {start} is not anchored")
        rows, leaves = window_leaves(conn, row, window_s)
        batch = None
        if row.anchor == "concentrator":
            batch = conn.execute(
                select(concentrator_batches).where(
                    concentrator_batches.c.concentrator == row.concentrator,
                    concentrator_batches.c.batch_id == row.batch_id,
                )
            ).first()
    index = next(i for i, r in enumerate(rows) if r.seq == sample.seq)
    tree = MerkleTree(leaves)
    out: dict[str, Any] = {
        "pod": pod,
        "window_start_s": start,
        "sample": {
            "t_s": int(sample.t_s),
            "p_w": int(sample.p_w),
            "q_var": int(sample.q_var),
            "v_mv": int(sample.v_mv),
            "seq": int(sample.seq),
        },
        "leaf": h32(leaves[index]),
        "proof": [h32(p) for p in tree.proof(index)],
        "computed_root": h32(tree.root),
        "window_root": row.root,
        "sample_count": row.sample_count,
        "setpoints_hash": row.setpoints_hash,
        "status": row.status,
        "anchor": row.anchor,
        "anchor_tx": row.anchor_tx,
        "batch": None,
    }
    if batch is not None and batch.manifest:
        manifest = decode_payload(BatchManifest, batch.manifest)
        wl = [window_leaf_of(e.message) for e in manifest.windows]
        w_index = next(
            i
            for i, e in enumerate(manifest.windows)
            if (e.message.pod, e.message.window_start_s) == (pod, start)
        )
        btree = MerkleTree(wl)
        out["batch"] = {
            "concentrator": batch.concentrator,
            "batch_id": int(batch.batch_id),
            "batch_root": batch.root,
            "window": {
                "pod": pod,
                "window_start_s": start,
                "root": row.root,
                "sample_count": row.sample_count,
                "setpoints_hash": row.setpoints_hash,
            },
            "window_leaf": h32(wl[w_index]),
            "window_proof": [h32(p) for p in btree.proof(w_index)],
        }
    return out


def ingest_stats(engine: Engine) -> dict[str, Any]:
    """What the ingestion accepted, found duplicate and refused (by reason), since the start of
    this database."""
    with engine.connect() as conn:
        counts = read_counts(conn)
    rejected = {
        k.removeprefix("rejected."): v
        for k, v in sorted(counts.items())
        if k.startswith("rejected.")
    }
    return {
        "accepted": counts.get("messages.accepted", 0),
        "duplicate": counts.get("messages.duplicate", 0),
        "rejected": rejected,
        "rejected_total": sum(rejected.values()),
        "samples_stored": counts.get("samples.stored", 0),
        "samples_duplicate": counts.get("samples.duplicate", 0),
        "other": {
            k: v
            for k, v in sorted(counts.items())
            if not k.startswith(("rejected.", "messages.", "samples."))
        },
    }
