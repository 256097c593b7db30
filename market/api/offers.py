"""Offers (I-05) from aggregators."""

from typing import Annotated

from fastapi import APIRouter, Query, Response

from flexledger.messages import Offer, Receipt, Signed
from flexledger.transport.api import ERROR_RESPONSES
from market.deps import After, Ctx, HashPath, Limit
from market.schemas import OfferPublic
from market.service import intake, reads

router = APIRouter(tags=["offers"], responses=ERROR_RESPONSES)


@router.post("/offers", status_code=201)
def post_offer(ctx: Ctx, envelope: Signed[Offer], response: Response) -> Receipt:
    """An aggregator's signed offer; 201 with its receipt (200 for the same offer again)."""
    receipt = intake.submit_offer(ctx, envelope)
    if receipt.duplicate:
        response.status_code = 200
    return receipt


@router.get("/offers")
def list_offers(
    ctx: Ctx,
    session: Annotated[str | None, Query(max_length=64)] = None,
    aggregator: Annotated[str | None, Query(max_length=42)] = None,
    pod: Annotated[str | None, Query(max_length=34)] = None,
    limit: Limit = 1000,
    after: After = None,
) -> list[OfferPublic]:
    return reads.offers(ctx, session, aggregator, pod, limit, after)


@router.get("/offers/{h}")
def get_offer(ctx: Ctx, h: HashPath) -> OfferPublic:
    """The signed offer, its hash and its W still free per MTU after committed awards."""
    return reads.offer(ctx, h)
