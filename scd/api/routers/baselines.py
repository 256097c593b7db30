"""I-03 BRP baselines, whose roots are committed on chain."""

from fastapi import APIRouter, Response

from flexledger.messages import BrpBaseline, Receipt, Signed
from flexledger.transport.api import ERROR_RESPONSES
from scd.api.deps import Chain, Db, Stats
from scd.api.schemas import BaselinePublic
from scd.services import baselines

router = APIRouter(tags=["baselines"], responses=ERROR_RESPONSES)


@router.post("/baselines", status_code=201, response_model=Receipt)
def post_baseline(
    envelope: Signed[BrpBaseline], response: Response, db: Db, chain: Chain, stats: Stats
) -> Receipt:
    """A BRP's baseline for a day (I-03). Refused (409 ``wrong_state``) unless the BRP
    committed its root (and POD count) on chain (``BaselineRegistry.baselineOf``)."""
    outcome = baselines.submit_baseline(db, chain, envelope, stats)
    if not outcome.created:
        response.status_code = 200
    return outcome.receipt


@router.get("/baselines/{day_s}", response_model=list[BaselinePublic])
def get_baselines(day_s: int, db: Db, brp: str | None = None) -> list[dict[str, object]]:
    """The signed baselines of a day (one per BRP), their roots and commit blocks."""
    return baselines.get_baseline(db, day_s, brp)
