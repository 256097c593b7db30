"""Ingestion counters: accepted, duplicate, rejected by reason — in memory and in the database."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping

from sqlalchemy import Connection, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from flexledger.storage import is_postgres
from scd.db import ingest_counts

__all__ = ["IngestStats", "add_counts", "read_counts"]


class IngestStats:
    """Counters since this process started; ``take()`` hands the deltas to the database."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.total: Counter[str] = Counter()
        self._delta: Counter[str] = Counter()

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.total[name] += n
            self._delta[name] += n

    def pending(self) -> bool:
        """Whether some counts are not in the database yet."""
        with self._lock:
            return any(self._delta.values())

    def take(self) -> dict[str, int]:
        with self._lock:
            delta, self._delta = dict(self._delta), Counter()
        return delta

    def give_back(self, delta: Mapping[str, int]) -> None:
        """A transaction that carried ``delta`` rolled back: count it again next time."""
        with self._lock:
            self._delta.update(delta)

    def add_persisted(self, counts: Mapping[str, int]) -> None:
        """Counts that are already in the database (written by the same transaction as what
        they count, or by an ingest worker process): add them to the totals only."""
        with self._lock:
            self.total.update(counts)


def add_counts(conn: Connection, delta: Mapping[str, int], shard: str = "") -> None:
    """Add ``delta`` to the persistent counters (an upsert per counter).

    ``shard``: concurrent writers (ingest worker processes) each keep rows of their own
    (``name#shard``), so that their transactions never wait on one another's counter rows;
    ``read_counts`` adds the shards up.
    """
    if not delta:
        return
    insert = pg_insert if is_postgres(conn) else sqlite_insert
    suffix = f"#{shard}" if shard else ""
    for name, n in sorted(delta.items()):
        stmt = insert(ingest_counts).values(name=name + suffix, count=n)
        stmt = stmt.on_conflict_do_update(
            index_elements=[ingest_counts.c.name],
            set_={"count": ingest_counts.c.count + stmt.excluded.count},
        )
        conn.execute(stmt)


def read_counts(conn: Connection) -> dict[str, int]:
    """Every counter, its writers' shards added up."""
    out: Counter[str] = Counter()
    for name, count in conn.execute(select(ingest_counts.c.name, ingest_counts.c.count)):
        out[str(name).partition("#")[0]] += int(count)
    return dict(out)
