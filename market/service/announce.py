"""Announcements on MQTT: outcomes and session notices on ``flex/market/{session}``, recorded
orders on ``flex/market/orders``.

The service modules run in worker threads (FastAPI runs sync handlers in a pool); MQTT lives on
the event loop. ``MqttAnnouncer.publish`` is therefore thread-safe and returns at once: it hands
the message to a queue that a task on the loop drains. An announcement is a notification, not
the record: everything announced is first stored and readable through the API, so a message
lost with a crashed process is recovered by reading the API (MQTT at-least-once covers the rest).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from typing import Protocol

from pydantic import BaseModel

from flexledger.transport import MqttClient, Topics, unique_client_id

__all__ = ["Announcer", "MemoryAnnouncer", "MqttAnnouncer"]

log = logging.getLogger(__name__)


class Announcer(Protocol):
    """Where the market says what happened."""

    topics: Topics

    def publish(self, topic: str, payload: BaseModel, *, retain: bool = False) -> None: ...


class MemoryAnnouncer:
    """Keeps what would be announced (no broker configured; tests)."""

    def __init__(self, topics: Topics | None = None) -> None:
        self.topics = topics or Topics()
        self.sent: list[tuple[str, BaseModel]] = []
        self._lock = threading.Lock()

    def publish(self, topic: str, payload: BaseModel, *, retain: bool = False) -> None:
        with self._lock:
            self.sent.append((topic, payload))


class MqttAnnouncer:
    """Publishes through one ``MqttClient`` from a queue drained on the event loop."""

    def __init__(self, url: str, topics: Topics | None = None, *, prefix: str = "flex") -> None:
        self.topics = topics or Topics()
        self.client = MqttClient(url, unique_client_id("market", prefix))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[tuple[str, BaseModel, bool]] | None = None
        self._task: asyncio.Task[None] | None = None
        self.failures = 0

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue()
        await self.client.start(wait_s=self.client.timeout_s)
        self._task = asyncio.create_task(self._drain(), name="market-announcer")

    async def close(self) -> None:
        if self._queue is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._queue.join(), timeout=5.0)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.client.close()

    async def flush(self) -> None:
        """Wait until everything published so far went to the broker."""
        if self._queue is not None:
            await self._queue.join()

    def publish(self, topic: str, payload: BaseModel, *, retain: bool = False) -> None:
        if self._loop is None or self._queue is None:
            log.warning("announcer not started: dropped a message for %s", topic)
            return
        item = (topic, payload, retain)
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._queue.put_nowait(item)
        else:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)

    async def _drain(self) -> None:
        assert self._queue is not None
        while True:
            topic, payload, retain = await self._queue.get()
            try:
                await self.client.publish(topic, payload, retain=retain)
            except Exception:
                self.failures += 1
                log.exception("could not announce on %s", topic)
            finally:
                self._queue.task_done()
