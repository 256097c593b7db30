"""The checks every signed write goes through, in the order of docs/API.md's conventions:
signature (401), role (403), clock (422 expired, 409 gate closed), replay (200 duplicate,
409 conflict). Body validation (422) happened in FastAPI before any of these."""

from __future__ import annotations

import logging
from typing import Any

from flexledger.messages import Signed
from market.service.context import MarketContext
from market.service.errors import Conflict, Expired, MarketError, WrongRole
from node.eip712 import SignatureError
from node.signing import message_hash, verify_envelope

__all__ = ["BadSignature", "authenticate", "count", "not_expired", "struct_hash"]

log = logging.getLogger(__name__)


class BadSignature(MarketError):
    status, code = 401, "bad_signature"


def count(ctx: MarketContext, exc: MarketError) -> MarketError:
    """Count a refusal by its code (conflicts are reported in /health) and give it back."""
    ctx.counters[exc.code] += 1
    return exc


def struct_hash(envelope: Signed[Any]) -> str:
    return "0x" + message_hash(envelope.message).hex()


def authenticate(ctx: MarketContext, envelope: Signed[Any], *roles: str) -> str:
    """The verified signer, holding at least one of ``roles`` on chain."""
    try:
        signer = verify_envelope(envelope, ctx.domain)
    except SignatureError as exc:
        raise count(ctx, BadSignature(str(exc))) from exc
    if not any(ctx.roles.has(role, signer) for role in roles):
        raise count(ctx, WrongRole(f"{signer} holds none of the roles {', '.join(roles)} on chain"))
    return signer


def not_expired(ctx: MarketContext, until_s: int, field: str) -> None:
    now = ctx.clock.now_s()
    if until_s < now:
        raise count(ctx, Expired(f"{field} {until_s} has passed (now {now})", {"field": field}))


def nonce_conflict(ctx: MarketContext, what: str, signer: str, nonce: int) -> Conflict:
    return count(  # type: ignore[return-value]
        ctx,
        Conflict(
            f"{what}: nonce {nonce} of {signer} was used for another message",
            {"signer": signer, "nonce": nonce},
        ),
    )
