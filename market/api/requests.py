"""Requests (I-06) from the DSO and the TSO."""

from typing import Annotated

from fastapi import APIRouter, Query, Response

from flexledger.messages import Receipt, Request, Signed
from flexledger.transport.api import ERROR_RESPONSES
from market.deps import After, Ctx, HashPath, Limit
from market.schemas import RequestPublic
from market.service import intake, reads

router = APIRouter(tags=["requests"], responses=ERROR_RESPONSES)


@router.post("/requests", status_code=201)
def post_request(ctx: Ctx, envelope: Signed[Request], response: Response) -> Receipt:
    """A DSO request (eligible PODs) or TSO request (an area), signed by its requester."""
    receipt = intake.submit_request(ctx, envelope)
    if receipt.duplicate:
        response.status_code = 200
    return receipt


@router.get("/requests")
def list_requests(
    ctx: Ctx,
    session: Annotated[str | None, Query(max_length=64)] = None,
    limit: Limit = 1000,
    after: After = None,
) -> list[RequestPublic]:
    return reads.requests(ctx, session, limit, after)


@router.get("/requests/{h}")
def get_request(ctx: Ctx, h: HashPath) -> RequestPublic:
    return reads.request(ctx, h)
