"""I-04 samples, windows with their certification, and a sample's Merkle proof."""

from typing import Literal

from fastapi import APIRouter

from flexledger.transport.api import ERROR_RESPONSES
from scd.api.deps import After, Chain, Db, Limit
from scd.api.schemas import IngestStatsPublic, ProofPublic, SamplesPage, WindowPublic
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
