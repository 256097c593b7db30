"""What settlement reads from the Shared Customer Database, over its public HTTP API.

The market never imports the SCD: it asks ``GET /measures/quarterly`` (I-01, with the certified
flag), ``GET /windows`` (each window's anchor and certification) and ``GET /baselines/{day}``
(I-03, the BRP's signed baseline) through ``flexledger.transport.http``, and checks what it gets
against the chain itself (``market.service.settlement``). ``ScdReader`` is the Protocol, so a
test or a deployment may put another transport behind it.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

import httpx

from flexledger.messages import QuarterlyMeasure
from flexledger.transport.http import ServiceError, SyncSignedHttpClient

__all__ = ["HttpScdReader", "ScdReader"]

log = logging.getLogger(__name__)
_PAGE = 10_000


class ScdReader(Protocol):
    """The SCD reads settlement needs."""

    def quarterly(self, pod: str, from_s: int, to_s: int) -> list[QuarterlyMeasure]:
        """I-01 measures of ``pod`` for MTUs in ``[from_s, to_s)`` (samples' and history)."""
        ...

    def windows(self, pod: str, from_s: int, to_s: int) -> list[dict[str, Any]]:
        """Windows of ``pod`` starting in ``[from_s, to_s)`` with their certification."""
        ...

    def baselines(self, day_s: int) -> list[dict[str, Any]]:
        """Every BRP's signed baseline of the day (``[]`` when there is none)."""
        ...


class HttpScdReader:
    """``ScdReader`` over the SCD's HTTP API (``FLEX_SCD_URL``)."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.http = SyncSignedHttpClient(base_url, timeout_s=timeout_s, transport=transport)

    def quarterly(self, pod: str, from_s: int, to_s: int) -> list[QuarterlyMeasure]:
        rows = self.http.get(
            "/measures/quarterly",
            {"pod": pod, "from_s": from_s, "to_s": to_s, "limit": _PAGE},
        )
        return [QuarterlyMeasure.model_validate(r) for r in rows]

    def windows(self, pod: str, from_s: int, to_s: int) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        after: str | None = None
        while True:
            params: dict[str, Any] = {"pod": pod, "from_s": from_s, "to_s": to_s, "limit": _PAGE}
            if after:
                params["after"] = after
            page = list(self.http.get("/windows", params))
            out.extend(page)
            if len(page) < _PAGE:
                return out
            after = f"{page[-1]['pod']}@{page[-1]['window_start_s']}"

    def baselines(self, day_s: int) -> list[dict[str, Any]]:
        try:
            return list(self.http.get(f"/baselines/{day_s}"))
        except ServiceError as exc:
            if exc.status == 404:
                return []
            raise

    def close(self) -> None:
        self.http.close()
