"""I-02 customer lists and the PODs they name."""

from fastapi import APIRouter, Response

from flexledger.messages import CustomerList, Receipt, Signed
from flexledger.transport.api import ERROR_RESPONSES
from scd.api.deps import After, Chain, Db, Limit, Stats
from scd.api.schemas import CustomerPublic, PodPublic
from scd.services import registry

router = APIRouter(tags=["customers"], responses=ERROR_RESPONSES)


@router.post("/customers", status_code=201, response_model=Receipt)
def post_customers(
    envelope: Signed[CustomerList], response: Response, db: Db, chain: Chain, stats: Stats
) -> Receipt:
    """An aggregator's customer list for a day (I-02), signed by the aggregator."""
    outcome = registry.submit_customers(db, chain, envelope, stats)
    if not outcome.created:
        response.status_code = 200
    return outcome.receipt


@router.get("/customers", response_model=list[CustomerPublic])
def get_customers(
    db: Db,
    day_s: int | None = None,
    aggregator: str | None = None,
    limit: Limit = 1000,
    after: After = None,
) -> list[dict[str, object]]:
    """Customer entries, by day and POD; ``after`` is the last POD seen."""
    return registry.list_customers(db, day_s=day_s, aggregator=aggregator, limit=limit, after=after)


@router.get("/pods", response_model=list[PodPublic], tags=["pods"])
def get_pods(
    db: Db, chain: Chain, limit: Limit = 1000, after: After = None
) -> list[dict[str, object]]:
    """Every POD, as of its newest customer list, with its device key on chain."""
    return registry.list_pods(db, chain, limit=limit, after=after)


@router.get("/pods/{pod}", response_model=PodPublic, tags=["pods"])
def get_pod(pod: str, db: Db, chain: Chain) -> dict[str, object]:
    return registry.get_pod(db, chain, pod)
