"""Market time: MTUs, the 4 s sample clock, and the one clock every actor reads.

All times are UTC. On the wire and on chain a time is whole seconds since the epoch (``*_s``).
A market day has 96 MTUs of 15 minutes; a real-time session covers 16. A meter is sampled every
4 s, 225 samples per MTU.

``WallClock`` is production time. ``ScenarioClock`` is the simulation's: it is event-driven and
advances only when every registered participant has finished the current step, so an accelerated
day on two cores never skips an MTU. ``flexledger.transport`` serves it over MQTT so actors in
other processes follow the same time.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from typing import Final

__all__ = [
    "DAY_S",
    "MTUS_PER_DAY",
    "MTU_S",
    "RT_SESSION_MTUS",
    "SAMPLES_PER_MTU",
    "SAMPLE_PERIOD_S",
    "ClockStepError",
    "ScenarioClock",
    "WallClock",
    "day_mtus",
    "day_start_s",
    "from_s",
    "is_aligned",
    "mtu_index",
    "mtu_start_s",
    "mtus",
    "sample_times",
    "to_s",
    "window_start_s",
]

MTU_S: Final = 900
SAMPLE_PERIOD_S: Final = 4
SAMPLES_PER_MTU: Final = MTU_S // SAMPLE_PERIOD_S  # 225
DAY_S: Final = 86_400
MTUS_PER_DAY: Final = DAY_S // MTU_S  # 96
RT_SESSION_MTUS: Final = 16  # the next 4 hours


def to_s(when: datetime) -> int:
    """Whole seconds since the epoch of a timezone-aware datetime."""
    if when.tzinfo is None:
        raise ValueError("a naive datetime has no place here: give it a timezone (UTC)")
    return int(when.timestamp())


def from_s(t_s: int) -> datetime:
    return datetime.fromtimestamp(t_s, tz=UTC)


def day_start_s(day: date | datetime | int) -> int:
    """Midnight UTC of a delivery day, in seconds."""
    if isinstance(day, int):
        return day - day % DAY_S
    if isinstance(day, datetime):
        return to_s(day) - to_s(day) % DAY_S
    return to_s(datetime(day.year, day.month, day.day, tzinfo=UTC))


def is_aligned(t_s: int, period_s: int = MTU_S) -> bool:
    return t_s % period_s == 0


def mtu_start_s(t_s: int) -> int:
    """The start of the MTU that contains ``t_s``."""
    return t_s - t_s % MTU_S


def window_start_s(t_s: int, window_s: int = MTU_S) -> int:
    """The start of the measurement window that contains ``t_s``."""
    return t_s - t_s % window_s


def mtu_index(t_s: int) -> int:
    """The MTU's number in its day, 0 … 95."""
    return (t_s % DAY_S) // MTU_S


def mtus(start_s: int, count: int) -> list[int]:
    """The starts of ``count`` consecutive MTUs from ``start_s`` (aligned)."""
    if not is_aligned(start_s):
        raise ValueError(f"MTU start {start_s} is not aligned to {MTU_S} s")
    return [start_s + i * MTU_S for i in range(count)]


def day_mtus(day: date | datetime | int) -> list[int]:
    return mtus(day_start_s(day), MTUS_PER_DAY)


def sample_times(start_s: int, end_s: int) -> range:
    """Sample timestamps in ``[start_s, end_s)`` on the 4 s grid."""
    first = start_s + (-start_s) % SAMPLE_PERIOD_S
    return range(first, end_s, SAMPLE_PERIOD_S)


class WallClock:
    """Production time: the system clock, in UTC."""

    def now(self) -> datetime:
        return datetime.now(tz=UTC)

    def now_s(self) -> int:
        return int(datetime.now(tz=UTC).timestamp())

    async def sleep_until(self, t_s: int) -> None:
        delay = t_s - datetime.now(tz=UTC).timestamp()
        if delay > 0:
            await asyncio.sleep(delay)


class ClockStepError(RuntimeError):
    """A participant reported a step that is not the clock's current one."""


class ScenarioClock:
    """The simulation's clock: time moves only when every participant has finished its step.

    Participants ``register`` a name; each one, when it has done what the current instant asks,
    calls ``finish(name, t_s)``. ``advance`` waits for all of them and moves time one step.
    ``sleep_until`` lets an actor wait for a later instant without holding the clock back:
    a participant that is waiting has finished every step before the one it waits for.
    """

    def __init__(self, start_s: int, step_s: int = SAMPLE_PERIOD_S) -> None:
        if step_s <= 0:
            raise ValueError("a clock step is a positive number of seconds")
        self._now_s = start_s
        self.step_s = step_s
        self._participants: dict[str, int] = {}  # name -> last instant it finished
        self._changed = asyncio.Condition()

    def now_s(self) -> int:
        return self._now_s

    def now(self) -> datetime:
        return from_s(self._now_s)

    @property
    def participants(self) -> list[str]:
        return sorted(self._participants)

    def register(self, name: str) -> None:
        """Add a participant; it must finish the current step before time moves."""
        self._participants.setdefault(name, self._now_s - self.step_s)

    async def unregister(self, name: str) -> None:
        self._participants.pop(name, None)
        async with self._changed:
            self._changed.notify_all()

    async def finish(self, name: str, t_s: int | None = None) -> None:
        """``name`` has done all it had to do at ``t_s`` (default: now)."""
        if name not in self._participants:
            raise ClockStepError(f"{name!r} is not a participant of this clock")
        t = self._now_s if t_s is None else t_s
        if t > self._now_s:
            raise ClockStepError(f"{name!r} finished {t}, but the clock is at {self._now_s}")
        self._participants[name] = max(self._participants[name], t)
        async with self._changed:
            self._changed.notify_all()

    def pending(self) -> list[str]:
        """Participants that have not yet finished the current step."""
        return sorted(n for n, t in self._participants.items() if t < self._now_s)

    async def advance(self, step_s: int | None = None) -> int:
        """Wait until every participant finished the current step, then move time forward."""
        async with self._changed:
            await self._changed.wait_for(lambda: not self.pending())
            self._now_s += self.step_s if step_s is None else step_s
            self._changed.notify_all()
        return self._now_s

    async def advance_paced(self, until_s: int, step_s: int | None = None) -> int:
        """Wait until every participant finished the current step, then move time to the
        soonest instant a participant waits for (``sleep_until``'s instant, or the next step
        after a ``finish``), at most one step (``step_s``) ahead and at most to ``until_s``.

        A driver in another process paces the clock this way: it lands exactly on the instants
        it asks for, however they fall on the step grid.
        """
        async with self._changed:
            await self._changed.wait_for(lambda: not self.pending())
            target = min(self._now_s + (self.step_s if step_s is None else step_s), until_s)
            wanted = [t + self.step_s for t in self._participants.values()]
            wanted = [t for t in wanted if t > self._now_s]
            if wanted:
                target = min(target, min(wanted))
            self._now_s = max(target, self._now_s)
            self._changed.notify_all()
        return self._now_s

    async def run_until(self, end_s: int) -> None:
        while self._now_s < end_s:
            await self.advance(min(self.step_s, end_s - self._now_s))

    async def wait_changed(self, after_s: int) -> int:
        """Wait until the clock is past ``after_s``; the new instant (to follow the clock)."""
        async with self._changed:
            await self._changed.wait_for(lambda: self._now_s > after_s)
            return self._now_s

    async def mark_until(self, name: str, t_s: int) -> None:
        """``name`` has nothing to do before ``t_s``: finished for every step until then."""
        if name not in self._participants:
            raise ClockStepError(f"{name!r} is not a participant of this clock")
        async with self._changed:
            self._participants[name] = max(self._participants[name], t_s - self.step_s)
            self._changed.notify_all()

    async def sleep_until(self, t_s: int, name: str | None = None) -> None:
        """Wait until the clock reaches ``t_s``.

        A named participant declares that it has nothing to do before ``t_s``: it counts as
        finished for every step until then, so waiting never holds the clock back.
        """
        async with self._changed:
            if name is not None and name in self._participants:
                self._participants[name] = max(self._participants[name], t_s - self.step_s)
                self._changed.notify_all()
            await self._changed.wait_for(lambda: self._now_s >= t_s)
