"""Interfaces that two packages must agree on, as ``typing.Protocol``s (floor 1).

A Light Node reads a meter and drives a BMS without knowing whether they are a CSV replay, the
simulated world in the same process, or the world in another process over MQTT.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from flexledger.messages.market import SetPoint
from flexledger.messages.measurement import MeterReading

__all__ = ["Bms", "Clock", "MeterSource", "Signer"]


@runtime_checkable
class Clock(Protocol):
    """The one clock every actor reads (wall clock, or the scenario clock in a simulation)."""

    def now(self) -> datetime: ...

    def now_s(self) -> int: ...

    async def sleep_until(self, t_s: int) -> None: ...


@runtime_checkable
class MeterSource(Protocol):
    """A POD's meter: active and reactive power and voltage at a 4 s instant."""

    pod: str

    async def read(self, t_s: int) -> MeterReading:
        """The reading at ``t_s`` (on the 4 s grid); raises ``LookupError`` if there is none."""
        ...

    async def read_range(self, start_s: int, end_s: int) -> list[MeterReading]:
        """Every reading in ``[start_s, end_s)``, in time order (catch-up and accelerated days)."""
        ...


@runtime_checkable
class Bms(Protocol):
    """A building or home energy management system that acts on set-points (I-09 → I-14)."""

    pod: str

    async def apply(self, setpoint: SetPoint) -> None:
        """Hand a verified set-point to the resources behind the meter."""
        ...


@runtime_checkable
class Signer(Protocol):
    """Something that holds a key and signs flexledger EIP-712 messages in its domain."""

    @property
    def address(self) -> str: ...

    def sign_typed(self, primary_type: str, message: Mapping[str, Any]) -> bytes: ...
