"""The write protocol every signed POST follows (docs/API.md, "Conventions").

Signature (401), signer is the party the message names and holds the role on chain (403),
the route's own checks, then replay: the same struct hash again answers the original receipt
with ``duplicate`` (200); the same (signer, nonce) with other content is a 409 ``conflict``.
Nothing is stored unless every check passes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, select
from sqlalchemy.exc import IntegrityError

from flexledger.messages import Receipt, Signed, h32
from flexledger.transport.api import ApiError, verify_signed
from node.contract_errors import ContractError
from node.signing import message_hash
from scd.chain import ChainView
from scd.db import writes
from scd.stats import IngestStats

__all__ = ["WriteOutcome", "accept_write", "chain_call"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WriteOutcome:
    receipt: Receipt
    created: bool


def chain_call(fn: Callable[..., Any], *args: Any) -> Any:
    """A chain read; any failure of the node is a 502 ``chain_error``."""
    try:
        return fn(*args)
    except ContractError as exc:
        raise ApiError(502, "chain_error", f"the chain refused a read: {exc}") from exc
    except Exception as exc:
        raise ApiError(502, "chain_error", f"the chain did not answer: {exc}") from exc


def accept_write(
    engine: Engine,
    chain: ChainView,
    envelope: Signed[Any],
    *,
    kind: str,
    role: str,
    party: str,
    nonce: int,
    store: Callable[[Connection, str], int],
    check: Callable[[], None] | None = None,
    stats: IngestStats | None = None,
) -> WriteOutcome:
    """Run the checks, then ``store(conn, hash)`` (returns a count) in one transaction."""
    signer = verify_signed(envelope, chain.domain)
    if signer != party:
        raise ApiError(
            403,
            "wrong_role",
            f"signed by {signer}, but the message is {party}'s",
            {"signer": signer},
        )
    if not chain_call(chain.has_role, role, signer):
        raise ApiError(403, "wrong_role", f"{signer} does not hold {role} on chain")
    if check is not None:
        check()
    digest = h32(message_hash(envelope.message))
    try:
        with engine.begin() as conn:
            previous = _replay(conn, digest, kind, signer, nonce, stats)
            if previous is not None:
                return WriteOutcome(previous.model_copy(update={"duplicate": True}), False)
            count = store(conn, digest)
            receipt = Receipt(kind=kind, hash=digest, count=count)  # type: ignore[arg-type]
            conn.execute(
                writes.insert().values(
                    hash=digest,
                    kind=kind,
                    signer=signer,
                    nonce=str(nonce),
                    receipt=receipt.model_dump_json(),
                    created_s=int(time.time()),
                )
            )
    except IntegrityError as exc:
        # a concurrent write of the same message or nonce: answer as if it came second
        with engine.connect() as conn:
            previous = _replay(conn, digest, kind, signer, nonce, stats)
        if previous is not None:
            return WriteOutcome(previous.model_copy(update={"duplicate": True}), False)
        raise ApiError(409, "conflict", "conflicts with a stored record") from exc
    log.info("stored %s %s from %s (%d)", kind, digest[:10], signer, count)
    return WriteOutcome(receipt, True)


def _replay(
    conn: Connection, digest: str, kind: str, signer: str, nonce: int, stats: IngestStats | None
) -> Receipt | None:
    row = conn.execute(select(writes.c.receipt).where(writes.c.hash == digest)).first()
    if row is not None:
        return Receipt.model_validate_json(row.receipt)
    other = conn.execute(
        select(writes.c.hash).where(
            writes.c.kind == kind, writes.c.signer == signer, writes.c.nonce == str(nonce)
        )
    ).first()
    if other is not None:
        if stats is not None:
            stats.add(f"http.conflict.{kind}")
        raise ApiError(
            409,
            "conflict",
            f"nonce {nonce} of {signer} was used by another {kind} message",
            {"hash": other.hash},
        )
    return None
