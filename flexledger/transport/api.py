"""FastAPI helpers every service uses: one error shape, and signature checks that answer 401.

Every error a flexledger service returns has the same body::

    {"error": {"code": "bad_signature", "message": "…", "details": …}}

so that clients (``flexledger.transport.http.ServiceError``), the auditor and humans branch on a
stable ``code``. ``install_error_handlers(app)`` makes FastAPI's own errors (validation 422,
404, 405, unhandled 500) take that shape too; a validation message names the offending field
(``body.message.samples.0.seq: Input should be greater than or equal to 0``).

Needs FastAPI (the ``market`` extra); a Light Node never imports this module.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from flexledger.messages.common import Signed
from node.eip712 import Domain, SignatureError
from node.signing import verify_envelope

__all__ = [
    "ERROR_RESPONSES",
    "ApiError",
    "ErrorBody",
    "ErrorInfo",
    "error_response",
    "install_error_handlers",
    "verify_signed",
]

log = logging.getLogger(__name__)

_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
}


class ErrorInfo(BaseModel):
    code: str
    message: str
    details: Any = None


class ErrorBody(BaseModel):
    """The one error shape of every flexledger service."""

    error: ErrorInfo


#: For ``APIRouter(responses=ERROR_RESPONSES)``: documents the error shape in OpenAPI.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": desc}
    for status, desc in (
        (401, "Bad signature"),
        (403, "Signer lacks the role"),
        (409, "Conflict"),
        (422, "Invalid request"),
    )
}


class ApiError(Exception):
    """Raise in a handler or service module to answer ``status`` with our error shape."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details


def error_response(status: int, code: str, message: str, details: Any = None) -> JSONResponse:
    body = ErrorBody(error=ErrorInfo(code=code, message=message, details=details))
    return JSONResponse(status_code=status, content=body.model_dump(mode="json"))


def _loc(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(part) for part in loc)


def _validation_details(exc: RequestValidationError) -> list[dict[str, str]]:
    # Only location, message and type: pydantic's ``input`` and ``ctx`` may hold the caller's
    # whole body or non-JSON objects.
    return [
        {
            "field": _loc(err.get("loc", ())),
            "message": str(err.get("msg", "")),
            "type": str(err.get("type", "")),
        }
        for err in exc.errors()
    ]


async def _on_api_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message, exc.details)


async def _on_validation(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = _validation_details(exc)
    shown = "; ".join(f"{d['field']}: {d['message']}" for d in details[:5])
    more = f" (and {len(details) - 5} more)" if len(details) > 5 else ""
    return error_response(422, "invalid", (shown or "invalid request") + more, details)


async def _on_http(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _STATUS_CODES.get(exc.status_code, f"http_{exc.status_code}")
    return error_response(exc.status_code, code, str(exc.detail))


async def _on_unhandled(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal_error", "internal error; see the service log")


def install_error_handlers(app: FastAPI) -> None:
    """Make every error of ``app`` answer with our error shape."""
    app.add_exception_handler(ApiError, _on_api_error)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_exception_handler(Exception, _on_unhandled)


def verify_signed(envelope: Signed[Any], domain: Domain) -> str:
    """The address that signed ``envelope``; ``ApiError(401, "bad_signature")`` when the
    signature does not recover to the claimed signer. Whether that address holds the right role
    is the caller's check (403)."""
    try:
        return verify_envelope(envelope, domain)
    except SignatureError as exc:
        raise ApiError(401, "bad_signature", str(exc)) from exc
