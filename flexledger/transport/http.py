"""HTTP client for the actors' APIs: signs through the ``Signer`` Protocol, speaks our one error
shape, retries only what is safe to retry.

Every service answers an error as ``{"error": {"code", "message", "details"}}``
(``flexledger.transport.api``); this client turns it into ``ServiceError`` so callers branch on a
stable ``code`` rather than on text. A service that does not answer at all is a different thing
(``ServiceUnreachableError``): a Light Node or an aggregator keeps its submission and tries later,
whereas a rejection is final.

Retries: a GET is idempotent and is retried on any transport error with exponential back-off. A
POST is retried only when the connection was never made (nothing reached the server); once the
request may have arrived, resending is the caller's decision (our protocol makes the same signed
bytes twice an idempotent duplicate, but a caller may prefer to ask first).

``SignedHttpClient`` is async (services, agents); ``SyncSignedHttpClient`` is the same for the
CLI and scripts.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any, TypeVar

import httpx

from flexledger.messages.common import Signed, SignedMessage
from flexledger.protocols import Signer
from node.signing import sign_message

__all__ = [
    "ServiceError",
    "ServiceUnreachableError",
    "SignedHttpClient",
    "SyncSignedHttpClient",
]

log = logging.getLogger(__name__)

M = TypeVar("M", bound=SignedMessage)

_POST_RETRYABLE = (httpx.ConnectError, httpx.ConnectTimeout)


class ServiceError(Exception):
    """A service answered with an error: HTTP ``status`` and our stable ``code``."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details


class ServiceUnreachableError(ConnectionError):
    """The service did not answer (connection refused, timed out, reset) after the retries."""


def _error_from(response: httpx.Response) -> ServiceError:
    """Our error shape when the body has it; otherwise a best-effort code from the status."""
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        err = body["error"]
        return ServiceError(
            status,
            str(err.get("code", f"http_{status}")),
            str(err.get("message", "")),
            err.get("details"),
        )
    detail = body.get("detail") if isinstance(body, dict) else None
    text = str(detail) if detail is not None else response.text[:500]
    return ServiceError(status, f"http_{status}", text or response.reason_phrase)


def _result(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        raise _error_from(response)
    if response.status_code == 204 or not response.content:
        return None
    try:
        return response.json()
    except ValueError as exc:
        raise ServiceError(
            response.status_code, "bad_response", f"the service answered non-JSON: {exc}"
        ) from exc


def _envelope_json(envelope: Signed[Any]) -> Any:
    # serialize_as_any: keep the message's own fields even if the envelope was built unparametrised
    return envelope.model_dump(mode="json", serialize_as_any=True)


class _Base:
    def __init__(
        self,
        base_url: str,
        signer: Signer | None,
        retries: int,
        backoff_s: float,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.signer = signer
        self.retries = retries
        self.backoff_s = backoff_s

    def sign(self, message: M) -> Signed[M]:
        """The ``Signed`` envelope of ``message`` under this client's signer."""
        if self.signer is None:
            raise RuntimeError(f"this client of {self.base_url} has no signer: cannot sign")
        return sign_message(self.signer, message)

    def _delay(self, attempt: int) -> float:
        return float(self.backoff_s * 2**attempt)

    def _give_up(
        self, method: str, path: str, exc: httpx.TransportError
    ) -> ServiceUnreachableError:
        return ServiceUnreachableError(
            f"{method} {self.base_url}{path}: no answer after {self.retries + 1} attempt(s): "
            f"{type(exc).__name__}: {exc}"
        )


class SignedHttpClient(_Base):
    """Async client of one flexledger service (``base_url``), signing with ``signer``."""

    def __init__(
        self,
        base_url: str,
        signer: Signer | None = None,
        *,
        timeout_s: float = 10.0,
        retries: int = 3,
        backoff_s: float = 0.1,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, signer, retries, backoff_s)
        self._http = httpx.AsyncClient(
            base_url=self.base_url, timeout=timeout_s, transport=transport
        )

    async def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """GET ``path`` → decoded JSON; retried on transport errors."""
        return await self._send("GET", path, params=dict(params or {}), idempotent=True)

    async def post_signed(self, path: str, message: SignedMessage) -> Any:
        """Sign ``message`` and POST its ``Signed`` envelope → decoded JSON."""
        return await self.post_envelope(path, self.sign(message))

    async def post_envelope(self, path: str, envelope: Signed[Any]) -> Any:
        """POST an envelope signed elsewhere (relayed, or pre-signed) → decoded JSON."""
        return await self.post_json(path, _envelope_json(envelope))

    async def post_json(self, path: str, body: Any) -> Any:
        """POST plain JSON (an unsigned request) → decoded JSON."""
        return await self._send("POST", path, json=body, idempotent=False)

    async def _send(self, method: str, path: str, *, idempotent: bool, **kw: Any) -> Any:
        attempt = 0
        while True:
            try:
                response = await self._http.request(method, path, **kw)
            except httpx.TransportError as exc:
                retryable = idempotent or isinstance(exc, _POST_RETRYABLE)
                if not retryable or attempt >= self.retries:
                    raise self._give_up(method, path, exc) from exc
                log.debug("%s %s: %s; retry %d", method, path, exc, attempt + 1)
                await asyncio.sleep(self._delay(attempt))
                attempt += 1
                continue
            return _result(response)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> SignedHttpClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class SyncSignedHttpClient(_Base):
    """The blocking twin of ``SignedHttpClient`` for the CLI and scripts."""

    def __init__(
        self,
        base_url: str,
        signer: Signer | None = None,
        *,
        timeout_s: float = 10.0,
        retries: int = 3,
        backoff_s: float = 0.1,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, signer, retries, backoff_s)
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout_s, transport=transport)

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return self._send("GET", path, params=dict(params or {}), idempotent=True)

    def post_signed(self, path: str, message: SignedMessage) -> Any:
        return self.post_envelope(path, self.sign(message))

    def post_envelope(self, path: str, envelope: Signed[Any]) -> Any:
        return self.post_json(path, _envelope_json(envelope))

    def post_json(self, path: str, body: Any) -> Any:
        return self._send("POST", path, json=body, idempotent=False)

    def _send(self, method: str, path: str, *, idempotent: bool, **kw: Any) -> Any:
        attempt = 0
        while True:
            try:
                response = self._http.request(method, path, **kw)
            except httpx.TransportError as exc:
                retryable = idempotent or isinstance(exc, _POST_RETRYABLE)
                if not retryable or attempt >= self.retries:
                    raise self._give_up(method, path, exc) from exc
                time.sleep(self._delay(attempt))
                attempt += 1
                continue
            return _result(response)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> SyncSignedHttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
