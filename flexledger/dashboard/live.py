"""Live updates: one loop polls the services' public reads every ``poll_s`` and, when the
counters changed, hands the new snapshot to every open ``/events`` stream (server-sent
events). Each event says which views it concerns, so that a role sees only its own."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from .sources import Sources
from .views import live_snapshot

__all__ = ["Live"]

log = logging.getLogger(__name__)

#: snapshot key -> the views it concerns
_VIEWS_OF = {
    "sessions": {"market", "grid", "activation", "settlement"},
    "orders": {"activation", "market"},
    "setpoints": {"activation"},
    "samples": {"ledger", "activation"},
    "messages": {"ledger"},
    "audits": {"settlement"},
}


class Live:
    """The polling loop and its subscribers."""

    def __init__(self, src: Sources, poll_s: float = 2.0) -> None:
        self.src = src
        self.poll_s = poll_s
        self.last: dict[str, Any] = {}
        self.seq = 0
        self._queues: set[asyncio.Queue[dict[str, Any] | None]] = set()
        self._task: asyncio.Task[None] | None = None
        self.closed = asyncio.Event()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="dashboard-live")

    async def stop(self) -> None:
        """End every stream (a server cannot shut down under an open one) and the loop."""
        self.closed.set()
        for q in list(self._queues):
            q.put_nowait(None)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while not self.closed.is_set():
            try:
                snap = await live_snapshot(self.src)
            except Exception as exc:  # a poll must never end the loop
                log.warning("dashboard poll failed: %s", exc)
                snap = {}
            changed = sorted(k for k in snap if k != "at_s" and snap.get(k) != self.last.get(k))
            if changed:
                self.seq += 1
                event = {"seq": self.seq, "changed": changed, "snapshot": snap}
                self.last = snap
                for q in list(self._queues):
                    q.put_nowait(event)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.closed.wait(), self.poll_s)

    @staticmethod
    def scoped(event: dict[str, Any], views: frozenset[str]) -> dict[str, Any] | None:
        """The event as a role may see it: only keys of its views (None: nothing left)."""
        snap = {
            k: v
            for k, v in event["snapshot"].items()
            if k == "at_s" or k.endswith("_error") or _VIEWS_OF.get(k, set()) & views
        }
        changed = [k for k in event["changed"] if k in snap]
        if not changed:
            return None
        touched = sorted(set().union(*(_VIEWS_OF.get(k, set()) for k in changed)) & views)
        return {"seq": event["seq"], "changed": changed, "views": touched, "snapshot": snap}

    async def stream(self, views: frozenset[str], is_disconnected: Any) -> AsyncIterator[str]:
        """The SSE body for one page: the current snapshot, then every change."""
        q: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._queues.add(q)
        try:
            yield "retry: 3000\n\n"
            if self.last:
                first = self.scoped(
                    {"seq": self.seq, "changed": list(self.last), "snapshot": self.last}, views
                )
                if first:
                    yield f"event: snapshot\ndata: {json.dumps(first)}\n\n"
            while not self.closed.is_set():
                try:
                    event = await asyncio.wait_for(q.get(), 10)
                except TimeoutError:
                    if await is_disconnected():
                        return
                    yield ": keep-alive\n\n"
                    continue
                if event is None:
                    return
                scoped = self.scoped(event, views)
                if scoped:
                    yield f"event: update\ndata: {json.dumps(scoped)}\n\n"
        finally:
            self._queues.discard(q)
