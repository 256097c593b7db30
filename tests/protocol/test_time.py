"""Market time and the event-driven scenario clock."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime

import pytest

from flexledger.time import (
    MTUS_PER_DAY,
    SAMPLES_PER_MTU,
    ClockStepError,
    ScenarioClock,
    day_mtus,
    day_start_s,
    mtu_index,
    sample_times,
    to_s,
)

DAY = day_start_s(date(2026, 11, 29))


def test_day_and_mtus() -> None:
    assert to_s(datetime(2026, 11, 29, tzinfo=UTC)) == DAY
    mtus = day_mtus(DAY + 5000)
    assert len(mtus) == MTUS_PER_DAY == 96 and mtus[0] == DAY and mtus[-1] == DAY + 95 * 900
    assert mtu_index(DAY + 95 * 900 + 899) == 95
    assert len(sample_times(DAY, DAY + 900)) == SAMPLES_PER_MTU == 225
    with pytest.raises(ValueError, match="naive"):
        to_s(datetime(2026, 11, 29))


async def test_clock_waits_for_every_participant() -> None:
    clock = ScenarioClock(DAY, step_s=4)
    clock.register("meter")
    clock.register("lightnode")
    advance = asyncio.create_task(clock.advance())
    await asyncio.sleep(0.01)
    assert not advance.done() and clock.pending() == ["lightnode", "meter"]
    await clock.finish("meter")
    await asyncio.sleep(0.01)
    assert not advance.done() and clock.pending() == ["lightnode"]
    await clock.finish("lightnode")
    assert await asyncio.wait_for(advance, 1) == DAY + 4
    assert clock.pending() == ["lightnode", "meter"]
    with pytest.raises(ClockStepError):
        await clock.finish("meter", DAY + 8)
    with pytest.raises(ClockStepError):
        await clock.finish("stranger")


async def test_sleeping_participant_does_not_hold_the_clock() -> None:
    clock = ScenarioClock(DAY, step_s=4)
    clock.register("dso")
    woke: list[int] = []

    async def dso() -> None:
        await clock.sleep_until(DAY + 900, name="dso")
        woke.append(clock.now_s())
        await clock.finish("dso")

    task = asyncio.create_task(dso())
    await asyncio.wait_for(clock.run_until(DAY + 900), 2)
    await asyncio.wait_for(task, 1)
    assert woke == [DAY + 900]
    # no step was skipped: the clock moved 225 times of 4 s
    assert clock.now_s() == DAY + 900


async def test_follow_and_mark_until() -> None:
    clock = ScenarioClock(DAY, step_s=4)
    clock.register("sensor")
    await clock.mark_until("sensor", DAY + 12)
    follower = asyncio.create_task(clock.wait_changed(DAY))
    assert await asyncio.wait_for(clock.advance(), 1) == DAY + 4
    assert await asyncio.wait_for(follower, 1) == DAY + 4
    await asyncio.wait_for(clock.advance(), 1)
    await asyncio.wait_for(clock.advance(), 1)
    assert clock.now_s() == DAY + 12 and clock.pending() == ["sensor"]
    with pytest.raises(ClockStepError):
        await clock.mark_until("stranger", DAY)


async def test_advance_paced_lands_on_the_instants_participants_wait_for() -> None:
    """A driver in another process asks for instants off the step grid (a gate closure 5 min
    before the hour): the paced clock stops exactly there, never past ``until_s``."""
    clock = ScenarioClock(DAY, step_s=4)
    clock.register("day")
    # nothing moves while the driver has not reported
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(clock.advance_paced(DAY + 3600, 900), 0.05)
    assert clock.now_s() == DAY
    driver = asyncio.create_task(clock.sleep_until(DAY + 3300, name="day"))
    while clock.now_s() < DAY + 3300:
        await asyncio.wait_for(clock.advance_paced(DAY + 3600, 900), 1)
    await asyncio.wait_for(driver, 1)
    # 900 s steps, then the remaining 600 s to the instant asked for; then it holds there
    assert clock.now_s() == DAY + 3300 and clock.pending() == ["day"]
    # a finished step asks for the next one; the limit caps the last step
    await clock.finish("day")
    assert await asyncio.wait_for(clock.advance_paced(DAY + 3600, 900), 1) == DAY + 3304
    await clock.mark_until("day", DAY + 10_000)
    assert await asyncio.wait_for(clock.advance_paced(DAY + 3600, 900), 1) == DAY + 3600
