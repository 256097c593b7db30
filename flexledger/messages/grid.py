"""The DSO's view of the grid: violation localisation (I-10), grid configuration (I-11) and
the activation signal a BMS sends its appliances (I-14)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from flexledger.messages.common import U64, Hash32, Message, PodCode
from flexledger.units import Direction

__all__ = ["ActivationSignal", "GridConfiguration", "Violation", "ViolationAlert", "ViolationKind"]

ViolationKind = Literal["voltage_high", "voltage_low", "line_overload", "trafo_overload"]


class Violation(Message):
    """One element outside its limit in one MTU, and by how much.

    Voltages in p.u. (``value``/``limit`` are vm_pu), loadings in percent of rating.
    """

    kind: ViolationKind
    element: str = Field(description="'bus:12', 'line:40', 'trafo:1'")
    mtu_start_s: U64
    value: float
    limit: float
    excess: float = Field(ge=0, description="how far beyond the limit, in the value's unit")


class ViolationAlert(Message):
    """I-10 Voltage violation localisation: the grid nodes and branches outside limits."""

    day_s: U64
    horizon: Literal["day_ahead", "real_time"]
    vm_min_pu: float
    vm_max_pu: float
    max_loading_percent: float
    violations: list[Violation]


class GridConfiguration(Message):
    """I-11 Grid configuration: the DSO's own remedy (OLTC taps, switching), what it solves."""

    day_s: U64
    taps: dict[str, int] = Field(default_factory=dict, description="transformer -> tap position")
    closed_switches: list[str] = Field(default_factory=list)
    opened_switches: list[str] = Field(default_factory=list)
    solved: list[Violation] = Field(default_factory=list)
    remaining: list[Violation] = Field(default_factory=list)


class ActivationSignal(Message):
    """I-14 Activation signal: a BMS/HMS tells one appliance what to do (inside the world)."""

    pod: PodCode
    device_id: str
    setpoint_hash: Hash32
    direction: Direction
    mtu_start_s: U64
    mtu_count: int = Field(ge=1, le=96)
    power_w: U64
