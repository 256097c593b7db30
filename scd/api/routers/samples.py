"""I-04 samples, windows with their certification, and a sample's Merkle proof."""

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response

from flexledger.transport.api import ERROR_RESPONSES
from scd.api.deps import After, Chain, Db, Limit
from scd.api.schemas import BatchPublic, IngestStatsPublic, ProofPublic, SamplesPage, WindowPublic
from scd.services import samples

router = APIRouter(tags=["measurements"], responses=ERROR_RESPONSES)


@router.get("/samples", response_model=SamplesPage)
def get_samples(
    db: Db,
    pod: str,
    from_s: int | None = None,
    to_s: int | None = None,
    from_seq: int | None = None,
    to_seq: int | None = None,
    limit: Limit = 10_000,
    after: int | None = None,
) -> dict[str, object]:
    """A POD's samples in sequence order, with the device-signed messages they came in."""
    return samples.list_samples(
        db,
        pod=pod,
        from_s=from_s,
        to_s=to_s,
        from_seq=from_seq,
        to_seq=to_seq,
        limit=limit,
        after=after,
    )


_COLUMNS_DOC: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "`{pod, t_s, p_w, q_var, v_mv, seq, batch_id, batches, next_after}`: "
        "one array per field in sequence order; `batches` has the arrays `id`, `first_seq`, "
        "`count`, `signer`, `signature` of the device-signed messages",
        "content": {"application/json": {}},
    }
}


@router.get("/samples/columns", response_class=Response, responses=_COLUMNS_DOC)
def get_sample_columns(
    db: Db,
    pod: str,
    from_s: int | None = None,
    to_s: int | None = None,
    limit: Annotated[int, Query(ge=1, le=200_000, description="page size")] = 100_000,
    after: int | None = None,
) -> Response:
    """A POD's samples as columns (the auditor's bulk read of a day: 21,600 per POD)."""
    body = samples.sample_columns(db, pod=pod, from_s=from_s, to_s=to_s, limit=limit, after=after)
    return Response(json.dumps(body, separators=(",", ":")), media_type="application/json")


@router.get("/batches", response_model=list[BatchPublic])
def get_batches(
    db: Db, concentrator: str | None = None, limit: Limit = 10_000, after: After = None
) -> list[dict[str, object]]:
    """Concentrator batches (root, windows, anchor tx); ``after`` is ``CONCENTRATOR@ID``."""
    return samples.list_batches(db, concentrator=concentrator, limit=limit, after=after)


@router.get("/batches/{concentrator}/{batch_id}", response_model=BatchPublic)
def get_batch(db: Db, concentrator: str, batch_id: int) -> dict[str, object]:
    """One concentrator batch with its manifest: the device-signed window roots in the order
    of the batch tree, from which anyone rebuilds the root anchored on chain."""
    return samples.batch_manifest(db, concentrator=concentrator, batch_id=batch_id)


@router.get("/windows", response_model=list[WindowPublic])
def get_windows(
    db: Db,
    pod: str | None = None,
    from_s: int | None = None,
    to_s: int | None = None,
    status: Literal["certified", "mismatch", "pending", "not_anchored", "anchored"] | None = None,
    limit: Limit = 10_000,
    after: After = None,
) -> list[dict[str, object]]:
    """Windows with their anchor, manifest and certification; ``after`` is ``POD@start``."""
    return samples.list_windows(
        db, pod=pod, from_s=from_s, to_s=to_s, status=status, limit=limit, after=after
    )


@router.get("/proof", response_model=ProofPublic)
def get_proof(db: Db, chain: Chain, pod: str, t_s: int) -> dict[str, object]:
    """The sample at ``t_s``, its leaf and Merkle proof, the window root; in concentrator
    mode also the window's proof in its batch."""
    return samples.sample_proof(db, chain.window_s, pod=pod, t_s=t_s)


@router.get("/stats/ingest", response_model=IngestStatsPublic, tags=["stats"])
def get_ingest_stats(db: Db) -> dict[str, object]:
    """Measurement messages accepted, duplicate and refused by reason."""
    return samples.ingest_stats(db)
