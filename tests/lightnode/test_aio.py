"""The agents' loops end when cancelled, even if the event they wait for is set at that very
moment (Python 3.11's ``asyncio.wait_for`` loses that cancellation; a stop then hung)."""

from __future__ import annotations

import asyncio

import pytest

from lightnode._aio import cancel_and_wait, wait_event

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_a_cancellation_racing_the_event_is_not_lost() -> None:
    event = asyncio.Event()

    async def loop() -> None:
        while True:
            await wait_event(event, 1.0)
            event.clear()

    task = asyncio.create_task(loop())
    await asyncio.sleep(0.01)
    event.set()
    assert await cancel_and_wait([task], timeout_s=1.5) == []
    assert task.cancelled()


async def test_a_task_that_refuses_to_end_does_not_hang_the_stop() -> None:
    async def slow_to_die() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            await asyncio.sleep(0.3)  # ignores its cancellation for a while

    task = asyncio.create_task(slow_to_die())
    await asyncio.sleep(0)
    assert await cancel_and_wait([task], timeout_s=0.05) == [task]
    await asyncio.wait([task], timeout=2)
    assert task.done() and await wait_event(asyncio.Event(), 0.01) is False
