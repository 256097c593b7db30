"""The dashboard's only ways to the data: the services' public HTTP APIs and the chain's
JSON-RPC (never a database, never an in-process object). Every failure becomes a
:class:`SourceError` that names the service, so that a page can say what is missing."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx

from .config import DashboardConfig

__all__ = ["NotStarted", "SourceError", "Sources"]

log = logging.getLogger(__name__)


class SourceError(Exception):
    """A service did not answer, or answered an error. ``status``: 502 when it is down or
    broken, 404 when it says the thing does not exist, 503 when it is not configured."""

    def __init__(self, service: str, message: str, status: int = 502) -> None:
        super().__init__(f"{service}: {message}")
        self.service = service
        self.message = message
        self.status = status


class NotStarted(SourceError):
    """The day has not got that far yet (no session, no POD): a page waits, it is no error."""

    def __init__(self, service: str, message: str) -> None:
        super().__init__(service, message, 200)


class Sources:
    """Async reads of every service the dashboard shows."""

    def __init__(self, config: DashboardConfig) -> None:
        self.config = config
        self.http = httpx.AsyncClient(timeout=config.timeout_s)

    async def aclose(self) -> None:
        await self.http.aclose()

    def url_of(self, service: str) -> str:
        c = self.config
        if service.startswith("aggregator:"):
            url = c.aggregator_urls.get(service.removeprefix("aggregator:"))
        else:
            url = {
                "market": c.market_url,
                "scd": c.scd_url,
                "dso": c.dso_url,
                "audit": c.audit_url,
            }.get(service)
        if not url:
            raise SourceError(service, "not configured for this dashboard", 503)
        return url.rstrip("/")

    async def get(self, service: str, path: str, params: dict[str, Any] | None = None) -> Any:
        url = self.url_of(service) + path
        try:
            r = await self.http.get(url, params=params)
        except httpx.HTTPError as exc:
            raise SourceError(service, f"does not answer at {url} ({type(exc).__name__})") from exc
        if r.status_code == 404:
            raise SourceError(service, _message(r) or f"{path} not found", 404)
        if r.status_code >= 400:
            raise SourceError(service, f"{r.status_code} on {path}: {_message(r)}")
        try:
            return r.json()
        except ValueError as exc:
            raise SourceError(service, f"{path} did not answer JSON") from exc

    async def maybe(
        self, service: str, path: str, params: dict[str, Any] | None = None, default: Any = None
    ) -> Any:
        """``get``, or ``default`` when the thing does not exist (404) yet."""
        try:
            return await self.get(service, path, params)
        except SourceError as exc:
            if exc.status == 404:
                return default
            raise

    async def rpc(self, method: str, params: list[Any]) -> Any:
        """One JSON-RPC call to the chain."""
        body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
        try:
            r = await self.http.post(self.config.rpc_url, json=body)
            data = r.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise SourceError("chain", f"does not answer at {self.config.rpc_url}") from exc
        if "error" in data:
            raise SourceError("chain", str(data["error"].get("message", data["error"])))
        return data.get("result")

    async def gather(self, **calls: Any) -> dict[str, Any]:
        """Await several reads at once; the first failure is raised."""
        keys = list(calls)
        values = await asyncio.gather(*(calls[k] for k in keys), return_exceptions=True)
        for v in values:
            if isinstance(v, BaseException):
                raise v
        return dict(zip(keys, values, strict=True))


def _message(r: httpx.Response) -> str:
    try:
        body = r.json()
    except ValueError:
        return r.text[:200]
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return str(body["error"].get("message", ""))
    if isinstance(body, dict) and "detail" in body:
        return str(body["detail"])[:200]
    return str(body)[:200]
