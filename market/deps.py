"""FastAPI dependencies of the market API, as ``Annotated`` aliases."""

from typing import Annotated

from fastapi import Depends, Path, Query, Request

from market.service.context import MarketContext

__all__ = ["After", "Ctx", "HashPath", "Limit", "SessionPath"]


def get_context(request: Request) -> MarketContext:
    ctx: MarketContext = request.app.state.ctx
    return ctx


Ctx = Annotated[MarketContext, Depends(get_context)]
HashPath = Annotated[str, Path(pattern=r"^0x[0-9a-fA-F]{64}$", description="0x + 64 hex")]
SessionPath = Annotated[str, Path(min_length=1, max_length=64)]
Limit = Annotated[int, Query(ge=1, le=10_000, description="at most this many")]
After = Annotated[str | None, Query(max_length=80, description="cursor: the last key seen")]
