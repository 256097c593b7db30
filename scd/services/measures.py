"""Quarterly measures (I-01): computed from the stored 4 s samples, and imported history."""

from __future__ import annotations

from sqlalchemy import Connection, Engine, func, select, tuple_

from flexledger.messages import MeasureHistory, QuarterlyMeasure, Signed
from flexledger.storage import bulk_insert
from flexledger.time import MTU_S
from flexledger.transport.api import ApiError
from flexledger.units import measured_wh
from scd.chain import ChainView
from scd.db import quarterly_history, samples, windows
from scd.services.writes import WriteOutcome, accept_write
from scd.stats import IngestStats

__all__ = ["quarterly_measures", "submit_history"]


def submit_history(
    engine: Engine, chain: ChainView, envelope: Signed[MeasureHistory], stats: IngestStats
) -> WriteOutcome:
    """A DSO's bulk import of historical quarterly measures. A value that differs from one
    already imported for the same POD and MTU refuses the whole import (409 ``conflict``);
    identical ones are skipped."""
    m = envelope.message

    def store(conn: Connection, digest: str) -> int:
        keys = [(v.pod, v.mtu_start_s) for v in m.values]
        if len(set(keys)) != len(keys):
            raise ApiError(422, "invalid", "a POD and MTU appear twice in the history")
        existing: dict[tuple[str, int], tuple[int, int, bool]] = {}
        for i in range(0, len(keys), 2000):
            part = keys[i : i + 2000]
            for r in conn.execute(
                select(quarterly_history).where(
                    tuple_(quarterly_history.c.pod, quarterly_history.c.mtu_start_s).in_(part)
                )
            ):
                existing[(r.pod, int(r.mtu_start_s))] = (
                    int(r.e_wh),
                    int(r.sample_count),
                    bool(r.certified),
                )
        rows = []
        for v in m.values:
            have = existing.get((v.pod, v.mtu_start_s))
            if have is not None:
                if have != (v.e_wh, v.sample_count, v.certified):
                    raise ApiError(
                        409,
                        "conflict",
                        f"{v.pod} MTU {v.mtu_start_s} was imported with another value",
                        {"pod": v.pod, "mtu_start_s": v.mtu_start_s},
                    )
                continue
            rows.append(
                {
                    "pod": v.pod,
                    "mtu_start_s": v.mtu_start_s,
                    "e_wh": v.e_wh,
                    "sample_count": v.sample_count,
                    "certified": v.certified,
                    "upload_hash": digest,
                }
            )
        return bulk_insert(conn, quarterly_history, rows)

    return accept_write(
        engine,
        chain,
        envelope,
        kind="history",
        role="DSO",
        party=m.uploader,
        nonce=m.nonce,
        store=store,
        stats=stats,
    )


def quarterly_measures(
    engine: Engine,
    window_s: int,
    *,
    pod: str | None,
    from_s: int | None,
    to_s: int | None,
    limit: int,
) -> list[QuarterlyMeasure]:
    """Per POD and MTU: the energy of its stored samples, rounded once
    (``flexledger.units.measured_wh``), certified when every window over the MTU is; then the
    imported history of the same range."""
    mtu = (samples.c.t_s - samples.c.t_s % MTU_S).label("mtu")
    q = select(samples.c.pod, mtu, func.sum(samples.c.p_w), func.count()).group_by(
        samples.c.pod, mtu
    )
    w = select(windows.c.pod, windows.c.window_start_s, windows.c.status)
    h = select(quarterly_history)
    if pod is not None:
        q = q.where(samples.c.pod == pod)
        w = w.where(windows.c.pod == pod)
        h = h.where(quarterly_history.c.pod == pod)
    if from_s is not None:
        q = q.where(samples.c.t_s >= from_s - from_s % MTU_S)
        w = w.where(windows.c.window_start_s > from_s - window_s - MTU_S)
        h = h.where(quarterly_history.c.mtu_start_s >= from_s - from_s % MTU_S)
    if to_s is not None:
        q = q.where(samples.c.t_s < to_s)
        w = w.where(windows.c.window_start_s < to_s)
        h = h.where(quarterly_history.c.mtu_start_s < to_s)
    with engine.connect() as conn:
        sums = list(conn.execute(q.order_by(samples.c.pod, mtu).limit(limit)))
        status: dict[tuple[str, int], str] = {
            (r.pod, int(r.window_start_s)): r.status for r in conn.execute(w)
        }
        history = list(
            conn.execute(
                h.order_by(quarterly_history.c.pod, quarterly_history.c.mtu_start_s).limit(limit)
            )
        )
    out: list[QuarterlyMeasure] = []
    for p, m, total, n in sums:
        m = int(m)
        out.append(
            QuarterlyMeasure(
                pod=p,
                mtu_start_s=m,
                e_wh=measured_wh([int(total)]),
                sample_count=int(n),
                certified=_certified(status, p, m, window_s),
                source="lightnode",
            )
        )
    out.extend(
        QuarterlyMeasure(
            pod=r.pod,
            mtu_start_s=int(r.mtu_start_s),
            e_wh=int(r.e_wh),
            sample_count=int(r.sample_count),
            certified=bool(r.certified),
            source="history",
        )
        for r in history
    )
    return out[:limit]


def _certified(status: dict[tuple[str, int], str], pod: str, mtu: int, window_s: int) -> bool:
    first = mtu - mtu % window_s
    starts = range(first, mtu + MTU_S, window_s)
    return all(status.get((pod, s)) == "certified" for s in starts)
