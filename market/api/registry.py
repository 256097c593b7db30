"""Receipts, the areas that locate TSO requests, and health."""

from fastapi import APIRouter

from flexledger.messages import Receipt
from flexledger.transport.api import ERROR_RESPONSES
from market.deps import Ctx, HashPath
from market.schemas import AreaPublic, Health
from market.service import intake, reads

router = APIRouter(tags=["registry"], responses=ERROR_RESPONSES)


@router.get("/receipts/{h}")
def get_receipt(ctx: Ctx, h: HashPath) -> Receipt:
    """A submission's receipt; with its order-book proof once its gate closed."""
    return intake.receipt(ctx, h.lower())


@router.get("/areas")
def list_areas(ctx: Ctx) -> list[AreaPublic]:
    """POD → substation area, as the market locates TSO requests (from FLEX_AREAS_FILE)."""
    return reads.areas(ctx)


@router.get("/health")
def health(ctx: Ctx) -> Health:
    w3 = ctx.chain.market.w3
    return Health(
        status="ok",
        service="market",
        chain_id=ctx.domain.chain_id,
        block=int(w3.eth.block_number),
        counters=reads.counters(ctx),
    )
