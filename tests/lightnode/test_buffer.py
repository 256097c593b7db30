"""The durable buffer on its own: what survives a reopen, what it refuses, when it lets go."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from lightnode.buffer import BufferMismatchError, NewBatch, SampleBuffer, SampleRow

POD = "IT001E00000001"
DEVICE = "0x" + "ab" * 20
W = 900


def rows(first_seq: int, first_t: int, n: int) -> list[SampleRow]:
    return [
        SampleRow(
            first_seq + i,
            first_t + 4 * i,
            100 + i,
            -5,
            230_000,
            first_t - first_t % W,
            bytes([i % 256]) * 32,
        )
        for i in range(n)
    ]


def test_sequence_and_cursor_survive_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "b.sqlite"
    b = SampleBuffer(path, pod=POD, device=DEVICE, window_s=W)
    assert b.next_seq == 0 and b.next_t is None
    b.append(rows(0, 0, 3), [NewBatch(0, 3, 0, b"m0")], next_t=12)
    b.close()
    b = SampleBuffer(path, pod=POD, device=DEVICE, window_s=W)
    assert (b.next_seq, b.next_t) == (3, 12)
    with pytest.raises(ValueError, match="expected 3"):
        b.append(rows(5, 12, 1), [], next_t=16)  # a gap in the sequence
    with pytest.raises(sqlite3.IntegrityError):
        b.append(rows(3, 8, 1), [], next_t=16)  # a timestamp already sampled
    assert (b.next_seq, b.next_t) == (3, 12)  # the failed writes changed nothing
    assert b.pragma("synchronous") == 2 and b.pragma("journal_mode") == "wal"  # FULL, WAL
    b.close()


@pytest.mark.parametrize(
    ("pod", "device", "window_s", "field"),
    [
        ("IT001E00000002", DEVICE, W, "pod"),
        (POD, "0x" + "cd" * 20, W, "device"),
        (POD, DEVICE, 60, "window_s"),
    ],
)
def test_a_buffer_of_another_pod_device_or_window_is_refused(
    tmp_path: Path, pod: str, device: str, window_s: int, field: str
) -> None:
    path = tmp_path / "b.sqlite"
    SampleBuffer(path, pod=POD, device=DEVICE, window_s=W).close()
    with pytest.raises(BufferMismatchError, match=field):
        SampleBuffer(path, pod=pod, device=device, window_s=window_s)


def test_window_lifecycle_and_manifest_order(tmp_path: Path) -> None:
    b = SampleBuffer(tmp_path / "b.sqlite", pod=POD, device=DEVICE, window_s=W)
    b.append(rows(0, 0, 225), [NewBatch(0, 200, 0, b"a"), NewBatch(200, 25, 0, b"b")], 900)
    b.append(rows(225, 900, 2), [NewBatch(225, 2, 900, b"c")], 908)
    assert b.windows_to_close(899) == [] and b.windows_to_close(900) == [0]
    b.close_window(
        0,
        root=b"\x01" * 32,
        sample_count=225,
        first_seq=0,
        last_seq=224,
        setpoints_hash=bytes(32),
        setpoint_leaves=[],
        manifest=b"M",
    )
    with pytest.raises(ValueError, match="closed"):
        b.append(rows(227, 0, 1), [], 912)  # a closed window takes nothing new
    # the manifest waits until the window's messages are acknowledged
    assert b.manifests_ready() == []
    b.mark_published([0])
    assert b.manifests_ready() == []
    b.mark_published([200])
    assert b.manifests_ready() == [(0, b"M")]
    assert [r[0] for r in b.batches_of(0, [210])] == [200]
    b.mark_anchored(0, tx_hash="0x" + "00" * 32)
    assert b.counts()["samples"] == 227
    assert b.free_window(0) == 225
    assert b.counts()["samples"] == 2 and b.window(0).status == "certified"  # type: ignore[union-attr]
    assert b.batches_of(0) == []


def test_setpoint_replays_and_a_closed_window(tmp_path: Path) -> None:
    b = SampleBuffer(tmp_path / "b.sqlite", pod=POD, device=DEVICE, window_s=W)

    def leaf(at: int) -> bytes:
        return at.to_bytes(32, "big")

    def record(h: bytes, seq: int, at: int) -> tuple[str, int, int]:
        return b.record_setpoint(
            setpoint_hash=h, signer="0xdso", seq=seq, received_at=at, leaf_of=leaf, envelope=b"{}"
        )

    assert record(b"h1", 1, 100) == ("new", 0, 100)
    assert record(b"h1", 1, 104)[0] == "duplicate"
    assert record(b"h2", 1, 104)[0] == "conflict"
    b.close_window(
        0,
        root=b"\x01" * 32,
        sample_count=0,
        first_seq=None,
        last_seq=None,
        setpoints_hash=bytes(32),
        setpoint_leaves=[leaf(100)],
    )
    # received "in" a window already closed (a clock that went back): the next window takes it
    assert record(b"h3", 2, 500) == ("new", 900, 900)
    assert b.setpoint_leaves(0) == [leaf(100)] and b.setpoint_leaves(900) == [leaf(900)]
