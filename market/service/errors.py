"""Domain errors of the market: raised by the service modules, answered by the API in the one
error shape of ``flexledger.transport.api`` (``market.app`` maps them)."""

from __future__ import annotations

from typing import Any

__all__ = [
    "ChainFailure",
    "ClearingFailed",
    "Conflict",
    "Expired",
    "GateClosed",
    "Invalid",
    "MarketError",
    "NotFound",
    "NotImplementedYet",
    "ScdFailure",
    "WrongRole",
    "WrongState",
]


class MarketError(Exception):
    """A refusal with a stable ``code`` and the HTTP status it is answered with."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class Invalid(MarketError):
    status, code = 422, "invalid"


class Expired(MarketError):
    status, code = 422, "expired"


class WrongRole(MarketError):
    status, code = 403, "wrong_role"


class NotFound(MarketError):
    status, code = 404, "not_found"


class Conflict(MarketError):
    status, code = 409, "conflict"


class GateClosed(MarketError):
    status, code = 409, "gate_closed"


class WrongState(MarketError):
    status, code = 409, "wrong_state"


class ClearingFailed(MarketError):
    status, code = 409, "clearing_failed"


class ChainFailure(MarketError):
    status, code = 502, "chain_error"


class ScdFailure(MarketError):
    """The SCD did not answer, or answered an error, while settlement read from it."""

    status, code = 502, "scd_error"


class NotImplementedYet(MarketError):
    status, code = 501, "not_implemented"
