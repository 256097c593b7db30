"""The platform closes gates itself, on the one clock (``flexledger.time``).

A task on the app's event loop runs ``sessions.tick`` in a worker thread (it talks to the
database and the chain), then waits for the next gate closure on the clock — the wall clock in
production, the scenario clock in a simulation, where it wakes exactly when the scenario reaches
the gate time — or for a wake-up (a session was opened), or ``poll_s`` of wall time at most.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import anyio

from market.service import sessions
from market.service.context import MarketContext

__all__ = ["GateScheduler"]

log = logging.getLogger(__name__)


class GateScheduler:
    """Closes due gates; ``start()`` on the loop, ``wake()`` from any thread."""

    def __init__(self, ctx: MarketContext) -> None:
        self.ctx = ctx
        self._event: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._event = asyncio.Event()
        self.ctx.wake = self.wake
        self._task = asyncio.create_task(self._run(), name="market-gate-scheduler")

    async def close(self) -> None:
        self.ctx.wake = lambda: None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def wake(self) -> None:
        if self._loop is not None and self._event is not None:
            self._loop.call_soon_threadsafe(self._event.set)

    async def _run(self) -> None:
        assert self._event is not None
        while True:
            try:
                nxt = await anyio.to_thread.run_sync(sessions.tick, self.ctx)
            except Exception:
                log.exception("gate scheduler tick failed")
                nxt = None
            waits: list[asyncio.Task[object]] = [asyncio.create_task(self._event.wait())]
            if nxt is not None:
                waits.append(asyncio.create_task(self.ctx.clock.sleep_until(nxt)))
            try:
                await asyncio.wait(
                    waits,
                    timeout=self.ctx.settings.scheduler_poll_s,
                    return_when=asyncio.FIRST_COMPLETED,
                )
            finally:
                for w in waits:
                    w.cancel()
                self._event.clear()
