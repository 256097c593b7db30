"""The Light Node's durable buffer: every sample, signed message and window, in one SQLite file.

A sample stays here until the SCD has *certified* its window — not merely until the broker
acknowledged it — so a broker outage, a chain outage, an SCD restart or an agent restart loses
nothing: what is not yet published goes out in order when the broker is back, and the SCD can ask
for any window again (``ResendRequest``) until it says the window is certified.

Why ``synchronous=FULL`` (with WAL): a message leaves this device only after the transaction
that stored it has committed. With FULL that commit is on disk before the publish, so whatever
the SCD has seen survives even a power cut of the gateway. With NORMAL a power cut may roll back
the last commits; after the reboot the node would hand out the same sequence numbers again for
other readings — a conflict the SCD must reject, and lost measurements. The price is one fsync
per commit: one every 4 s in real time, one per chunk of up to a window while catching up
(samples are inserted in bulk), which this buffer never notices. WAL keeps readers (health,
resends) from blocking the writer.

Tables (``schema_version`` 1)::

    meta(key PRIMARY KEY, value)                 pod, device, window_s, next_seq, next_t
    samples(seq PRIMARY KEY, t_s UNIQUE, p_w, q_var, v_mv, window_start, leaf)
    batches(first_seq PRIMARY KEY, count, window_start, payload, published)
        payload: the exact JSON bytes of the Signed[MeasurementBatch] (a resend is the same bytes)
    setpoints(id PRIMARY KEY AUTOINCREMENT, window_start, received_at, setpoint_hash UNIQUE,
              signer, seq, leaf, envelope)       set-point leaves, in order of receipt (id)
    seen_setpoints(signer, seq, setpoint_hash)   replay protection, kept after a window is freed
    windows(window_start PRIMARY KEY, status, root, sample_count, first_seq, last_seq,
            setpoints_hash, setpoint_leaves, tx_hash, batch_id, manifest, manifest_published,
            manifest_sent_at, error)
        status: open → closed → anchored → certified (samples freed); 'empty' (nothing to
        anchor); 'conflict' (the chain holds another root for it: kept for forensics)

The buffer is synchronous and used from one event loop: each call is a short SQLite transaction
(sub-millisecond, plus the fsync), which costs less than handing it to a thread.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "BufferMismatchError",
    "SampleBuffer",
    "SampleRow",
    "WindowRow",
    "WindowStatus",
]

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
WindowStatus = Literal["open", "closed", "anchored", "certified", "empty", "conflict"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS samples (
    seq INTEGER PRIMARY KEY,
    t_s INTEGER NOT NULL UNIQUE,
    p_w INTEGER NOT NULL,
    q_var INTEGER NOT NULL,
    v_mv INTEGER NOT NULL,
    window_start INTEGER NOT NULL,
    leaf BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS samples_by_window ON samples (window_start, seq);
CREATE TABLE IF NOT EXISTS batches (
    first_seq INTEGER PRIMARY KEY,
    count INTEGER NOT NULL,
    window_start INTEGER NOT NULL,
    payload BLOB NOT NULL,
    published INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS batches_by_window ON batches (window_start, first_seq);
CREATE INDEX IF NOT EXISTS batches_unpublished ON batches (first_seq) WHERE published = 0;
CREATE TABLE IF NOT EXISTS setpoints (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    window_start INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    setpoint_hash BLOB NOT NULL UNIQUE,
    signer TEXT NOT NULL,
    seq INTEGER NOT NULL,
    leaf BLOB NOT NULL,
    envelope BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS setpoints_by_window ON setpoints (window_start, id);
CREATE TABLE IF NOT EXISTS seen_setpoints (
    signer TEXT NOT NULL,
    seq INTEGER NOT NULL,
    setpoint_hash BLOB NOT NULL,
    PRIMARY KEY (signer, seq)
);
CREATE TABLE IF NOT EXISTS windows (
    window_start INTEGER PRIMARY KEY,
    status TEXT NOT NULL,
    root BLOB,
    sample_count INTEGER,
    first_seq INTEGER,
    last_seq INTEGER,
    setpoints_hash BLOB,
    setpoint_leaves TEXT,
    tx_hash TEXT,
    batch_id INTEGER,
    manifest BLOB,
    manifest_published INTEGER NOT NULL DEFAULT 0,
    manifest_sent_at REAL,
    error TEXT
);
CREATE INDEX IF NOT EXISTS windows_by_status ON windows (status, window_start);
"""


class BufferMismatchError(RuntimeError):
    """The buffer file belongs to another POD, device or window length: refusing to mix them."""


@dataclass(frozen=True)
class SampleRow:
    """One stored sample: its canonical fields and its Merkle leaf."""

    seq: int
    t_s: int
    p_w: int
    q_var: int
    v_mv: int
    window_start: int
    leaf: bytes


@dataclass(frozen=True)
class WindowRow:
    """What the buffer knows of one window."""

    window_start: int
    status: WindowStatus
    root: bytes | None
    sample_count: int | None
    first_seq: int | None
    last_seq: int | None
    setpoints_hash: bytes | None
    setpoint_leaves: list[bytes]
    tx_hash: str | None
    batch_id: int | None
    manifest: bytes | None
    manifest_published: bool
    manifest_sent_at: float | None
    error: str | None


@dataclass(frozen=True)
class NewBatch:
    """A signed message to store with its samples: the exact bytes that go on the wire."""

    first_seq: int
    count: int
    window_start: int
    payload: bytes


class SampleBuffer:
    """The durable buffer of one Light Node (one POD, one device key, one window length).

    ``SampleBuffer(path, pod=…, device=…, window_s=…)`` creates the file or reopens it; a file
    made for another POD, device or window length is refused (``BufferMismatchError``) rather
    than mixed. ``":memory:"`` gives a throw-away buffer (tests of the logic only).
    """

    def __init__(
        self,
        path: Path | str,
        *,
        pod: str,
        device: str,
        window_s: int,
        synchronous: Literal["FULL", "NORMAL"] = "FULL",
    ) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self.pod = pod
        self.device = device
        self.window_s = window_s
        # isolation_level=None: we open transactions ourselves (BEGIN IMMEDIATE), so a
        # multi-statement write is one atomic commit and nothing is left half done.
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={synchronous}")
        self._db.executescript(_SCHEMA)
        self._check_identity()
        self._next_seq = int(self._meta("next_seq") or 0)
        next_t = self._meta("next_t")
        self._next_t: int | None = int(next_t) if next_t is not None else None

    # -- identity and counters ------------------------------------------------------------
    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _check_identity(self) -> None:
        want = {
            "schema_version": str(SCHEMA_VERSION),
            "pod": self.pod,
            "device": self.device.lower(),
            "window_s": str(self.window_s),
        }
        have = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        wrong = {k: (have[k], v) for k, v in want.items() if k in have and have[k] != v}
        if wrong:
            detail = ", ".join(f"{k} is {a!r}, not {b!r}" for k, (a, b) in wrong.items())
            raise BufferMismatchError(f"buffer {self.path}: {detail}")
        with self._tx():
            self._db.executemany(
                "INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", list(want.items())
            )

    def _tx(self) -> _Transaction:
        return _Transaction(self._db)

    @property
    def next_seq(self) -> int:
        """The sequence number of the next sample: never reused, across restarts too."""
        return self._next_seq

    @property
    def next_t(self) -> int | None:
        """The next instant to sample (None: nothing sampled yet)."""
        return self._next_t

    def close(self) -> None:
        self._db.close()

    def pragma(self, name: str) -> object:
        """A SQLite setting of this buffer (``synchronous``, ``journal_mode``…), to inspect."""
        if not name.isidentifier():
            raise ValueError(f"not a pragma name: {name!r}")
        return self._db.execute(f"PRAGMA {name}").fetchone()[0]

    # -- samples and their signed messages ----------------------------------------------------
    def append(
        self,
        samples: Sequence[SampleRow],
        batches: Sequence[NewBatch],
        next_t: int,
    ) -> None:
        """Store samples and the signed messages that carry them, and move the sampling cursor,
        in one transaction. Samples must continue the sequence (``next_seq`` …)."""
        if samples and samples[0].seq != self._next_seq:
            raise ValueError(f"samples start at seq {samples[0].seq}, expected {self._next_seq}")
        next_seq = samples[-1].seq + 1 if samples else self._next_seq
        windows = sorted({s.window_start for s in samples})
        with self._tx():
            for ws in windows:
                self._open_window(ws)
            self._db.executemany(
                "INSERT INTO samples (seq, t_s, p_w, q_var, v_mv, window_start, leaf) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(s.seq, s.t_s, s.p_w, s.q_var, s.v_mv, s.window_start, s.leaf) for s in samples],
            )
            self._db.executemany(
                "INSERT INTO batches (first_seq, count, window_start, payload) VALUES (?, ?, ?, ?)",
                [(b.first_seq, b.count, b.window_start, b.payload) for b in batches],
            )
            self._db.executemany(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                [("next_seq", str(next_seq)), ("next_t", str(next_t))],
            )
        self._next_seq = next_seq
        self._next_t = next_t

    def set_next_t(self, next_t: int) -> None:
        """Move the sampling cursor without a sample (the meter had nothing at those instants)."""
        with self._tx():
            self._db.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('next_t', ?)", (str(next_t),)
            )
        self._next_t = next_t

    def _open_window(self, window_start: int) -> None:
        self._db.execute(
            "INSERT OR IGNORE INTO windows (window_start, status) VALUES (?, 'open')",
            (window_start,),
        )
        status = self._db.execute(
            "SELECT status FROM windows WHERE window_start = ?", (window_start,)
        ).fetchone()[0]
        if status != "open":
            raise ValueError(f"window {window_start} is {status}: it takes nothing new")

    def samples(self, window_start: int) -> list[SampleRow]:
        """The window's stored samples, in sequence order."""
        rows = self._db.execute(
            "SELECT seq, t_s, p_w, q_var, v_mv, window_start, leaf FROM samples "
            "WHERE window_start = ? ORDER BY seq",
            (window_start,),
        ).fetchall()
        return [SampleRow(r[0], r[1], r[2], r[3], r[4], r[5], bytes(r[6])) for r in rows]

    def sample_leaves(self, window_start: int) -> list[bytes]:
        return [
            bytes(r[0])
            for r in self._db.execute(
                "SELECT leaf FROM samples WHERE window_start = ? ORDER BY seq", (window_start,)
            )
        ]

    def unpublished_batches(self, limit: int = 64) -> list[tuple[int, int, bytes]]:
        """``(first_seq, count, payload)`` of messages not yet acknowledged, in order."""
        return [
            (int(r[0]), int(r[1]), bytes(r[2]))
            for r in self._db.execute(
                "SELECT first_seq, count, payload FROM batches WHERE published = 0 "
                "ORDER BY first_seq LIMIT ?",
                (limit,),
            )
        ]

    def mark_published(self, first_seqs: Iterable[int]) -> None:
        seqs = [(s,) for s in first_seqs]
        if not seqs:
            return
        with self._tx():
            self._db.executemany("UPDATE batches SET published = 1 WHERE first_seq = ?", seqs)

    def batches_of(
        self, window_start: int, seqs: Iterable[int] | None = None, *, published_only: bool = True
    ) -> list[tuple[int, int, bytes]]:
        """The stored messages of a window (those holding one of ``seqs``, if given)."""
        rows = [
            (int(r[0]), int(r[1]), bytes(r[2]))
            for r in self._db.execute(
                "SELECT first_seq, count, payload FROM batches WHERE window_start = ? "
                + ("AND published = 1 " if published_only else "")
                + "ORDER BY first_seq",
                (window_start,),
            )
        ]
        if seqs is None:
            return rows
        wanted = sorted(set(seqs))
        return [
            r
            for r in rows
            if any(r[0] <= s < r[0] + r[1] for s in wanted)  # few seqs, few batches
        ]

    # -- set-points --------------------------------------------------------------------------
    def record_setpoint(
        self,
        *,
        setpoint_hash: bytes,
        signer: str,
        seq: int,
        received_at: int,
        leaf_of: Callable[[int], bytes],
        envelope: bytes,
    ) -> tuple[Literal["new", "duplicate", "conflict"], int, int]:
        """Record a verified set-point as a leaf of the window it was received in.

        Returns ``(outcome, window_start, received_at)``: ``duplicate`` for the same set-point
        again (a QoS 1 redelivery: not handed to the BMS twice), ``conflict`` for another
        set-point under a (signer, seq) already used. ``received_at`` moves to the next open
        window if its own window is already closed (a clock that went back), so that a closed
        window never changes.
        """
        with self._tx():
            seen = self._db.execute(
                "SELECT setpoint_hash FROM seen_setpoints WHERE signer = ? AND seq = ?",
                (signer, seq),
            ).fetchone()
            if seen is not None:
                outcome: Literal["duplicate", "conflict"] = (
                    "duplicate" if bytes(seen[0]) == setpoint_hash else "conflict"
                )
                return outcome, -1, received_at
            ws = received_at - received_at % self.window_s
            row = self._db.execute(
                "SELECT MAX(window_start) FROM windows WHERE status != 'open'"
            ).fetchone()
            last_closed = row[0]
            if last_closed is not None and ws <= last_closed:
                ws = last_closed + self.window_s
                received_at = ws
            self._open_window(ws)
            self._db.execute(
                "INSERT INTO seen_setpoints (signer, seq, setpoint_hash) VALUES (?, ?, ?)",
                (signer, seq, setpoint_hash),
            )
            self._db.execute(
                "INSERT INTO setpoints (window_start, received_at, setpoint_hash, signer, seq, "
                "leaf, envelope) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (ws, received_at, setpoint_hash, signer, seq, leaf_of(received_at), envelope),
            )
        return "new", ws, received_at

    def setpoint_leaves(self, window_start: int) -> list[bytes]:
        """The window's set-point leaves in order of receipt."""
        return [
            bytes(r[0])
            for r in self._db.execute(
                "SELECT leaf FROM setpoints WHERE window_start = ? ORDER BY id", (window_start,)
            )
        ]

    # -- windows -----------------------------------------------------------------------------
    def windows_to_close(self, upto_s: int) -> list[int]:
        """Open windows that end at or before ``upto_s``, oldest first."""
        return [
            int(r[0])
            for r in self._db.execute(
                "SELECT window_start FROM windows WHERE status = 'open' AND window_start + ? <= ? "
                "ORDER BY window_start",
                (self.window_s, upto_s),
            )
        ]

    def close_window(
        self,
        window_start: int,
        *,
        root: bytes | None,
        sample_count: int,
        first_seq: int | None,
        last_seq: int | None,
        setpoints_hash: bytes,
        setpoint_leaves: Sequence[bytes],
        manifest: bytes | None = None,
    ) -> None:
        """Fix the window's tree; ``root`` None marks an empty window (never anchored)."""
        status = "closed" if root is not None else "empty"
        with self._tx():
            cur = self._db.execute(
                "UPDATE windows SET status = ?, root = ?, sample_count = ?, first_seq = ?, "
                "last_seq = ?, setpoints_hash = ?, setpoint_leaves = ?, manifest = ?, "
                "manifest_published = 0 WHERE window_start = ? AND status = 'open'",
                (
                    status,
                    root,
                    sample_count,
                    first_seq,
                    last_seq,
                    setpoints_hash,
                    json.dumps(["0x" + leaf.hex() for leaf in setpoint_leaves]),
                    manifest,
                    window_start,
                ),
            )
            if cur.rowcount != 1:
                raise ValueError(f"window {window_start} is not open")

    def window(self, window_start: int) -> WindowRow | None:
        row = self._db.execute(
            "SELECT window_start, status, root, sample_count, first_seq, last_seq, "
            "setpoints_hash, setpoint_leaves, tx_hash, batch_id, manifest, manifest_published, "
            "manifest_sent_at, error FROM windows WHERE window_start = ?",
            (window_start,),
        ).fetchone()
        return None if row is None else _window_row(row)

    def windows(self, *statuses: WindowStatus) -> list[WindowRow]:
        """Windows in these statuses (all if none given), oldest first."""
        query = (
            "SELECT window_start, status, root, sample_count, first_seq, last_seq, "
            "setpoints_hash, setpoint_leaves, tx_hash, batch_id, manifest, manifest_published, "
            "manifest_sent_at, error FROM windows"
        )
        params: tuple[str, ...] = ()
        if statuses:
            query += f" WHERE status IN ({', '.join('?' for _ in statuses)})"
            params = tuple(statuses)
        rows = self._db.execute(query + " ORDER BY window_start", params).fetchall()
        return [_window_row(r) for r in rows]

    def mark_anchored(
        self,
        window_start: int,
        *,
        tx_hash: str | None,
        manifest: bytes | None = None,
        batch_id: int | None = None,
    ) -> None:
        """The window's root is on chain (its own anchor, or a concentrator's batch)."""
        with self._tx():
            self._db.execute(
                "UPDATE windows SET status = 'anchored', tx_hash = COALESCE(?, tx_hash), "
                "batch_id = COALESCE(?, batch_id), error = NULL, "
                "manifest = COALESCE(?, manifest), "
                "manifest_published = CASE WHEN ? IS NULL THEN manifest_published ELSE 0 END "
                "WHERE window_start = ? AND status IN ('closed', 'anchored')",
                (tx_hash, batch_id, manifest, manifest, window_start),
            )

    def mark_conflict(self, window_start: int, error: str) -> None:
        """The chain holds another root for this window: keep everything, anchor nothing."""
        with self._tx():
            self._db.execute(
                "UPDATE windows SET status = 'conflict', error = ? WHERE window_start = ?",
                (error, window_start),
            )

    def set_error(self, window_start: int, error: str | None) -> None:
        with self._tx():
            self._db.execute(
                "UPDATE windows SET error = ? WHERE window_start = ?", (error, window_start)
            )

    def manifests_ready(self) -> list[tuple[int, bytes]]:
        """Manifests to publish: their window's messages all acknowledged first, so that the SCD
        never sees a manifest before the samples it covers were sent."""
        rows = self._db.execute(
            "SELECT w.window_start, w.manifest FROM windows w WHERE w.manifest IS NOT NULL "
            "AND w.manifest_published = 0 AND w.status IN ('closed', 'anchored') "
            "AND NOT EXISTS (SELECT 1 FROM batches b WHERE b.published = 0 "
            "AND b.window_start <= w.window_start) ORDER BY w.window_start"
        ).fetchall()
        return [(int(r[0]), bytes(r[1])) for r in rows]

    def mark_manifest_published(self, window_start: int, at: float) -> None:
        with self._tx():
            self._db.execute(
                "UPDATE windows SET manifest_published = 1, manifest_sent_at = ? "
                "WHERE window_start = ?",
                (at, window_start),
            )

    def requeue_manifest(self, window_start: int) -> None:
        """Publish this window's manifest again (after a mismatch, with the resent samples)."""
        with self._tx():
            self._db.execute(
                "UPDATE windows SET manifest_published = 0 WHERE window_start = ? "
                "AND manifest IS NOT NULL",
                (window_start,),
            )

    def requeue_manifests(self, sent_before: float, statuses: Sequence[WindowStatus]) -> int:
        """Publish again the manifests sent before ``sent_before`` of windows still in
        ``statuses`` (not certified yet): the SCD or the concentrator may have missed them."""
        if not statuses:
            return 0
        with self._tx():
            cur = self._db.execute(
                "UPDATE windows SET manifest_published = 0 WHERE manifest_published = 1 "
                "AND manifest_sent_at < ? AND manifest IS NOT NULL "
                f"AND status IN ({', '.join('?' for _ in statuses)})",
                (sent_before, *statuses),
            )
        return cur.rowcount

    def free_window(self, window_start: int) -> int:
        """The SCD certified the window: drop its samples, messages and set-points (the
        window's row stays, as a record). Returns how many samples were freed."""
        with self._tx():
            n = self._db.execute(
                "DELETE FROM samples WHERE window_start = ?", (window_start,)
            ).rowcount
            self._db.execute("DELETE FROM batches WHERE window_start = ?", (window_start,))
            self._db.execute("DELETE FROM setpoints WHERE window_start = ?", (window_start,))
            self._db.execute(
                "UPDATE windows SET status = 'certified', manifest = NULL, error = NULL "
                "WHERE window_start = ?",
                (window_start,),
            )
        return n

    # -- health ------------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        """Samples buffered, messages unpublished, and windows by status."""
        out: dict[str, int] = {
            "samples": self._db.execute("SELECT COUNT(*) FROM samples").fetchone()[0],
            "unpublished_messages": self._db.execute(
                "SELECT COUNT(*) FROM batches WHERE published = 0"
            ).fetchone()[0],
        }
        for status, n in self._db.execute("SELECT status, COUNT(*) FROM windows GROUP BY status"):
            out[f"windows_{status}"] = int(n)
        return out


def _window_row(r: Any) -> WindowRow:
    leaves_json = r[7]
    return WindowRow(
        window_start=int(r[0]),
        status=r[1],
        root=bytes(r[2]) if r[2] is not None else None,
        sample_count=r[3],
        first_seq=r[4],
        last_seq=r[5],
        setpoints_hash=bytes(r[6]) if r[6] is not None else None,
        setpoint_leaves=[bytes.fromhex(h[2:]) for h in json.loads(leaves_json)]
        if leaves_json
        else [],
        tx_hash=r[8],
        batch_id=r[9],
        manifest=bytes(r[10]) if r[10] is not None else None,
        manifest_published=bool(r[11]),
        manifest_sent_at=r[12],
        error=r[13],
    )


class _Transaction:
    """``with buffer._tx():`` BEGIN IMMEDIATE … COMMIT, ROLLBACK on any error."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self._db.execute("COMMIT")
        else:
            self._db.execute("ROLLBACK")
