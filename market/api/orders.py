"""Activation orders (I-09) from the DSO and the TSO."""

from typing import Annotated

from fastapi import APIRouter, Query, Response

from flexledger.messages import Order, Receipt, Signed
from flexledger.transport.api import ERROR_RESPONSES
from market.deps import After, Ctx, Limit
from market.schemas import OrderPublic
from market.service import activation, reads

router = APIRouter(tags=["orders"], responses=ERROR_RESPONSES)


@router.post("/orders", status_code=201)
def post_order(ctx: Ctx, envelope: Signed[Order], response: Response) -> Receipt:
    """An order for an award of the issuer's own request; recorded on chain and announced."""
    receipt = activation.submit_order(ctx, envelope)
    if receipt.duplicate:
        response.status_code = 200
    return receipt


@router.get("/orders")
def list_orders(
    ctx: Ctx,
    session: Annotated[str | None, Query(max_length=64)] = None,
    limit: Limit = 1000,
    after: After = None,
) -> list[OrderPublic]:
    return reads.orders(ctx, session, limit, after)
