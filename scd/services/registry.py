"""Customers (I-02), PODs and availabilities (I-12)."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, Engine, delete, select

from flexledger.messages import CustomerList, DerStatus, Signed
from flexledger.transport.api import ApiError
from flexledger.transport.mqtt import encode_payload
from scd.chain import ChainView
from scd.db import availabilities, customer_entries
from scd.services.writes import WriteOutcome, accept_write, chain_call
from scd.stats import IngestStats
from scd.verify import pod32_of

__all__ = [
    "get_pod",
    "list_availability",
    "list_customers",
    "list_pods",
    "submit_availability",
    "submit_customers",
]


def submit_customers(
    engine: Engine, chain: ChainView, envelope: Signed[CustomerList], stats: IngestStats
) -> WriteOutcome:
    """An aggregator's customer list for a day. A POD another aggregator listed for that day
    is a 409 conflict; the aggregator's own entries are replaced by its newer list."""
    m = envelope.message

    def store(conn: Connection, digest: str) -> int:
        pods = [c.pod for c in m.customers]
        taken = conn.execute(
            select(customer_entries.c.pod, customer_entries.c.aggregator).where(
                customer_entries.c.day_s == m.day_s,
                customer_entries.c.pod.in_(pods),
                customer_entries.c.aggregator != m.aggregator,
            )
        ).first()
        if taken is not None:
            raise ApiError(
                409,
                "conflict",
                f"{taken.pod} is listed by aggregator {taken.aggregator} for this day",
                {"pod": taken.pod},
            )
        conn.execute(
            delete(customer_entries).where(
                customer_entries.c.day_s == m.day_s, customer_entries.c.pod.in_(pods)
            )
        )
        conn.execute(
            customer_entries.insert(),
            [
                {
                    "day_s": m.day_s,
                    "pod": c.pod,
                    "aggregator": m.aggregator,
                    "fr_owner": c.fr_owner,
                    "device": c.device,
                    "bus": c.bus,
                    "resources": json.dumps([r.model_dump(mode="json") for r in c.resources]),
                    "list_hash": digest,
                }
                for c in m.customers
            ],
        )
        return len(m.customers)

    return accept_write(
        engine,
        chain,
        envelope,
        kind="customers",
        role="AGGREGATOR",
        party=m.aggregator,
        nonce=m.nonce,
        store=store,
        stats=stats,
    )


def _entry(row: Any) -> dict[str, Any]:
    return {
        "day_s": int(row.day_s),
        "pod": row.pod,
        "aggregator": row.aggregator,
        "fr_owner": row.fr_owner,
        "device": row.device,
        "bus": row.bus,
        "resources": json.loads(row.resources),
        "list_hash": row.list_hash,
    }


def list_customers(
    engine: Engine,
    *,
    day_s: int | None,
    aggregator: str | None,
    limit: int,
    after: str | None,
) -> list[dict[str, Any]]:
    q = select(customer_entries).order_by(customer_entries.c.day_s, customer_entries.c.pod)
    if day_s is not None:
        q = q.where(customer_entries.c.day_s == day_s)
    if aggregator is not None:
        q = q.where(customer_entries.c.aggregator == aggregator)
    if after is not None:
        q = q.where(customer_entries.c.pod > after)
    with engine.connect() as conn:
        return [_entry(r) for r in conn.execute(q.limit(limit))]


def _latest_entries(conn: Connection, pod: str | None, limit: int, after: str | None) -> list[Any]:
    q = select(customer_entries).order_by(customer_entries.c.pod, customer_entries.c.day_s.desc())
    if pod is not None:
        q = q.where(customer_entries.c.pod == pod)
    if after is not None:
        q = q.where(customer_entries.c.pod > after)
    latest: dict[str, Any] = {}
    for row in conn.execute(q):
        if row.pod not in latest:
            latest[row.pod] = row
            if len(latest) >= limit:
                break
    return list(latest.values())


def _pod(row: Any, chain: ChainView) -> dict[str, Any]:
    device = chain_call(chain.device_of, pod32_of(row.pod))
    from eth_utils import to_checksum_address

    return {
        "pod": row.pod,
        "day_s": int(row.day_s),
        "bus": row.bus,
        "aggregator": row.aggregator,
        "fr_owner": row.fr_owner,
        "device": row.device,
        "device_on_chain": to_checksum_address(device) if device else None,
        "resources": json.loads(row.resources),
    }


def list_pods(
    engine: Engine, chain: ChainView, *, limit: int, after: str | None
) -> list[dict[str, Any]]:
    """Every POD an aggregator listed, as of its newest customer list."""
    with engine.connect() as conn:
        rows = _latest_entries(conn, None, limit, after)
    return [_pod(r, chain) for r in rows]


def get_pod(engine: Engine, chain: ChainView, pod: str) -> dict[str, Any]:
    with engine.connect() as conn:
        rows = _latest_entries(conn, pod, 1, None)
    if not rows:
        raise ApiError(404, "not_found", f"no customer list names {pod}")
    return _pod(rows[0], chain)


def submit_availability(
    engine: Engine, chain: ChainView, envelope: Signed[DerStatus], stats: IngestStats
) -> WriteOutcome:
    """An FR owner's availability; its FR owner role must have been granted by the aggregator
    the message names."""
    m = envelope.message

    def check() -> None:
        granted_by = chain_call(chain.aggregator_of, m.fr_owner)
        if granted_by != m.aggregator:
            raise ApiError(
                403,
                "wrong_role",
                f"{m.fr_owner} is an FR owner of {granted_by}, not of {m.aggregator}",
            )

    def store(conn: Connection, digest: str) -> int:
        conn.execute(
            availabilities.insert().values(
                hash=digest,
                day_s=m.day_s,
                pod=m.pod,
                fr_owner=m.fr_owner,
                aggregator=m.aggregator,
                envelope=encode_payload(envelope).decode(),
            )
        )
        return len(m.resources)

    return accept_write(
        engine,
        chain,
        envelope,
        kind="availability",
        role="FR_OWNER",
        party=m.fr_owner,
        nonce=m.nonce,
        store=store,
        check=check,
        stats=stats,
    )


def list_availability(
    engine: Engine, *, day_s: int | None, pod: str | None, limit: int, after: str | None
) -> list[dict[str, Any]]:
    q = select(availabilities).order_by(availabilities.c.hash)
    if day_s is not None:
        q = q.where(availabilities.c.day_s == day_s)
    if pod is not None:
        q = q.where(availabilities.c.pod == pod)
    if after is not None:
        q = q.where(availabilities.c.hash > after)
    with engine.connect() as conn:
        return [
            {"hash": r.hash, "envelope": json.loads(r.envelope)}
            for r in conn.execute(q.limit(limit))
        ]
