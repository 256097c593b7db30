"""I-12 availabilities of FR owners' resources."""

from fastapi import APIRouter, Response

from flexledger.messages import DerStatus, Receipt, Signed
from flexledger.transport.api import ERROR_RESPONSES
from scd.api.deps import After, Chain, Db, Limit, Stats
from scd.api.schemas import AvailabilityPublic
from scd.services import registry

router = APIRouter(tags=["availability"], responses=ERROR_RESPONSES)


@router.post("/availability", status_code=201, response_model=Receipt)
def post_availability(
    envelope: Signed[DerStatus], response: Response, db: Db, chain: Chain, stats: Stats
) -> Receipt:
    """An FR owner's availability (I-12), signed by the FR owner (role granted on chain by
    the aggregator the message names), forwarded by that aggregator."""
    outcome = registry.submit_availability(db, chain, envelope, stats)
    if not outcome.created:
        response.status_code = 200
    return outcome.receipt


@router.get("/availability", response_model=list[AvailabilityPublic])
def get_availability(
    db: Db,
    day_s: int | None = None,
    pod: str | None = None,
    limit: Limit = 1000,
    after: After = None,
) -> list[dict[str, object]]:
    """Signed availabilities; ``after`` is the last hash seen."""
    return registry.list_availability(db, day_s=day_s, pod=pod, limit=limit, after=after)
