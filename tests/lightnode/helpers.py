"""Small helpers of the Light Node tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from flexledger.messages import MeasurementBatch, SetPoint, Signed
from flexledger.time import SAMPLE_PERIOD_S, ScenarioClock
from flexledger.units import Direction


async def eventually(predicate: Callable[[], Any], timeout_s: float = 10.0, what: str = "") -> None:
    """Wait until ``predicate()`` is true; fail naming ``what``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"not within {timeout_s} s: {what or predicate}")
        await asyncio.sleep(0.02)


async def tick(clock: ScenarioClock, steps: int, pause_s: float = 0.005) -> None:
    """Move the clock ``steps`` samples, one at a time, giving the node time to keep up (the
    real-time path: one sample per message)."""
    for _ in range(steps):
        await clock.advance(SAMPLE_PERIOD_S)
        await asyncio.sleep(pause_s)


def all_samples(messages: list[Signed[MeasurementBatch]], pod: str) -> dict[int, tuple[int, ...]]:
    """seq → (t, p, q, v) of every sample of ``pod`` seen in ``messages``."""
    return {
        s.seq: (s.t_s, s.p_w, s.q_var, s.v_mv)
        for m in messages
        if m.message.pod == pod
        for s in m.message.samples
    }


def setpoint(
    pod: str, *, seq: int, mtu_start_s: int, expiry_s: int, power_w: int = 1500
) -> SetPoint:
    return SetPoint(
        order_hash="0x" + "ab" * 32,
        pod=pod,
        direction=Direction.UP,
        mtu_start_s=mtu_start_s,
        mtu_count=2,
        power_w=power_w,
        seq=seq,
        expiry_s=expiry_s,
    )
