"""BRP baselines (I-03): accepted only when their root is committed on chain by that BRP."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, Engine, select

from flexledger.messages import BrpBaseline, Signed
from flexledger.transport.api import ApiError
from flexledger.transport.mqtt import encode_payload
from node.contracts import BaselineCommitment
from scd.chain import ChainView
from scd.db import baselines
from scd.services.writes import WriteOutcome, accept_write, chain_call
from scd.stats import IngestStats

__all__ = ["get_baseline", "submit_baseline"]


def submit_baseline(
    engine: Engine, chain: ChainView, envelope: Signed[BrpBaseline], stats: IngestStats
) -> WriteOutcome:
    """Store a BRP's signed baseline whose root (and POD count) it committed on chain for the
    day; otherwise 409 ``wrong_state`` (nothing committed, or another root)."""
    m = envelope.message
    committed: list[BaselineCommitment] = []

    def check() -> None:
        c = chain_call(chain.baseline_of, m.brp, m.day_s)
        if c is None:
            raise ApiError(
                409, "wrong_state", f"{m.brp} has committed no baseline root for day {m.day_s}"
            )
        if "0x" + c.root.hex() != m.root:
            raise ApiError(
                409,
                "wrong_state",
                "the baseline's root is not the one committed on chain",
                {"committed_root": "0x" + c.root.hex()},
            )
        if c.pod_count != len(m.pods):
            raise ApiError(
                409,
                "wrong_state",
                f"{len(m.pods)} PODs, the commitment says {c.pod_count}",
            )
        committed.append(c)

    def store(conn: Connection, digest: str) -> int:
        taken = conn.execute(
            select(baselines.c.hash).where(baselines.c.brp == m.brp, baselines.c.day_s == m.day_s)
        ).first()
        if taken is not None:
            raise ApiError(409, "conflict", "this BRP's baseline of the day is stored already")
        conn.execute(
            baselines.insert().values(
                hash=digest,
                brp=m.brp,
                day_s=m.day_s,
                root=m.root,
                pod_count=len(m.pods),
                committed_block=committed[0].committed_block,
                envelope=encode_payload(envelope).decode(),
            )
        )
        return len(m.values)

    return accept_write(
        engine,
        chain,
        envelope,
        kind="baseline",
        role="BRP",
        party=m.brp,
        nonce=m.nonce,
        store=store,
        check=check,
        stats=stats,
    )


def get_baseline(engine: Engine, day_s: int, brp: str | None) -> list[dict[str, Any]]:
    q = select(baselines).where(baselines.c.day_s == day_s).order_by(baselines.c.brp)
    if brp is not None:
        q = q.where(baselines.c.brp == brp)
    with engine.connect() as conn:
        rows = list(conn.execute(q))
    if not rows:
        raise ApiError(404, "not_found", f"no baseline for day {day_s}")
    return [
        {
            "brp": r.brp,
            "day_s": int(r.day_s),
            "root": r.root,
            "pod_count": r.pod_count,
            "committed_block": int(r.committed_block),
            "hash": r.hash,
            "baseline": json.loads(r.envelope),
        }
        for r in rows
    ]
