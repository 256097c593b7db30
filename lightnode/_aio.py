"""Two asyncio helpers the agents' loops need, because Python 3.11's ``asyncio.wait_for`` can
lose a cancellation that arrives as the awaited event is set (the loop then survives its
``cancel()``, and whoever waits for it to end waits for ever)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

__all__ = ["cancel_and_wait", "wait_event"]

log = logging.getLogger(__name__)


async def wait_event(event: asyncio.Event, timeout_s: float) -> bool:
    """Wait up to ``timeout_s`` for ``event``; whether it was set. ``asyncio.timeout`` counts
    cancellations, so a ``cancel()`` of the caller is never mistaken for the event."""
    try:
        async with asyncio.timeout(timeout_s):
            await event.wait()
    except TimeoutError:
        return False
    return True


async def cancel_and_wait(
    tasks: Sequence[asyncio.Task[None]], timeout_s: float = 5.0
) -> list[asyncio.Task[None]]:
    """Cancel ``tasks`` and wait (at most ``timeout_s``) for them to end; those that did not.

    The caller's own cancellation is not swallowed (``asyncio.wait`` lets it through), and a
    task that refuses to end cannot hang a shutdown.
    """
    for task in tasks:
        task.cancel()
    if not tasks:
        return []
    _done, pending = await asyncio.wait(tasks, timeout=timeout_s)
    for task in pending:
        log.error("task %s did not end %.0f s after its cancellation", task.get_name(), timeout_s)
    return list(pending)
