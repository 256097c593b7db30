"""I-01 quarterly measures: from the samples, and imported history."""

from fastapi import APIRouter, Response

from flexledger.messages import MeasureHistory, QuarterlyMeasure, Receipt, Signed
from flexledger.transport.api import ERROR_RESPONSES
from scd.api.deps import Chain, Db, Limit, Stats
from scd.services import measures

router = APIRouter(tags=["measures"], responses=ERROR_RESPONSES)


@router.post("/measures/history", status_code=201, response_model=Receipt)
def post_history(
    envelope: Signed[MeasureHistory], response: Response, db: Db, chain: Chain, stats: Stats
) -> Receipt:
    """A bulk import of historical quarterly measures, signed by the DSO; ``count`` is how
    many new values were stored."""
    outcome = measures.submit_history(db, chain, envelope, stats)
    if not outcome.created:
        response.status_code = 200
    return outcome.receipt


@router.get("/measures/quarterly", response_model=list[QuarterlyMeasure])
def get_quarterly(
    db: Db,
    chain: Chain,
    pod: str | None = None,
    from_s: int | None = None,
    to_s: int | None = None,
    limit: Limit = 10_000,
) -> list[QuarterlyMeasure]:
    """Energy per POD and MTU from the stored samples (``source`` lightnode, ``certified``
    when every window over the MTU is), then imported history (``source`` history)."""
    return measures.quarterly_measures(
        db, chain.window_s, pod=pod, from_s=from_s, to_s=to_s, limit=limit
    )
