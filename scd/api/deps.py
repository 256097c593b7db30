"""FastAPI dependencies of the SCD API, as ``Annotated`` aliases."""

from typing import Annotated

from fastapi import Depends, Query, Request
from sqlalchemy import Engine

from scd.chain import ChainView
from scd.service import ScdService
from scd.stats import IngestStats

__all__ = ["After", "Chain", "Db", "Limit", "Service", "Stats"]


def _service(request: Request) -> ScdService:
    service: ScdService = request.app.state.scd
    return service


def _engine(request: Request) -> Engine:
    return _service(request).engine


def _chain(request: Request) -> ChainView:
    return _service(request).chain


def _stats(request: Request) -> IngestStats:
    return _service(request).stats


Service = Annotated[ScdService, Depends(_service)]
Db = Annotated[Engine, Depends(_engine)]
Chain = Annotated[ChainView, Depends(_chain)]
Stats = Annotated[IngestStats, Depends(_stats)]
Limit = Annotated[int, Query(ge=1, le=10_000, description="page size")]
After = Annotated[str | None, Query(description="cursor: the last item's key of the page before")]
