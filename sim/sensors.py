"""Field sensors (I-18) and topology events: what the grid tells the DSO's operational systems.

A V&C sensor on a bus measures its phase-to-neutral voltage; a breaker IED on a line measures the
current through it and the voltage at its from-bus. Both read the world's power flow of the
instant's MTU (as known at that instant) with Gaussian noise of ``noise_pct`` percent, one
reading every ``period_s``. P and Q are not measured (0): the power flow gives branch currents,
not flows. A reading's ``seq`` is its number in the day (``(t - day) / period``), so a resend has
the same key.

Topology events (an outage, a reconfiguration) are the scenario's ``events``, announced at their
MTU's start as ``TopologyEvent`` (``element`` ``line:N`` or ``switch:N``), signed like the field
sensors by the key of the SCADA's id :data:`TOPOLOGY_SENSOR_ID` (``sensor:scada``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from flexledger.messages import SensorReading, TopologyEvent
from flexledger.scenario import SensorSpec
from flexledger.time import DAY_S, MTU_S
from sim.pods import ScenarioCheckError
from sim.rng import Stream, rng

if TYPE_CHECKING:
    from sim.world import World

__all__ = ["TOPOLOGY_SENSOR_ID", "FieldSensor", "TopologyFeed", "build_sensors"]

TOPOLOGY_SENSOR_ID = "scada"
"""The id whose key (``sensor:scada``) signs topology events."""
_SQRT3 = math.sqrt(3.0)


@dataclass
class FieldSensor:
    """One field sensor of the scenario (see the module docstring)."""

    world: World
    index: int
    spec: SensorSpec
    bus: int
    noise: NDArray[np.float64]  # relative, one value per reading of the day

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def period_s(self) -> int:
        return self.spec.period_s

    def times(self, start_s: int, end_s: int) -> range:
        """The instants of this sensor's readings in ``[start_s, end_s)`` on the delivery day."""
        day = self.world.day_s
        lo = max(start_s, day)
        lo += (-(lo - day)) % self.period_s
        return range(lo, min(end_s, day + DAY_S), self.period_s)

    def reading(self, t_s: int) -> SensorReading:
        """The (unsigned) reading at instant ``t_s`` (one of :meth:`times`).

        Raises:
            LookupError: no reading at that instant.
        """
        world = self.world
        k, off = divmod(t_s - world.day_s, self.period_s)
        if off or not 0 <= k < len(self.noise):
            raise LookupError(f"sensor {self.id}: no reading at {t_s}")
        if world.truth.dirty():
            world.refresh()
        mtu = (t_s - world.day_s) // MTU_S
        state = world.truth.state(mtu, t_s)
        factor = 1.0 + float(self.noise[k])
        bus_pos = world.grid.flow.bus_positions([self.bus])[0]
        vm = float(np.nan_to_num(state.vm_pu[bus_pos]))
        vn = world.grid.bus_vn_kv[self.bus]
        v_mv = round(vm * factor * vn * 1e6 / _SQRT3)
        i_ma = 0
        if self.spec.line is not None:
            pos = world.grid.line_pos[self.spec.line]
            i_ma = round(float(np.nan_to_num(state.line_i_ka[pos])) * 1e6 * factor)
        return SensorReading(
            sensor_id=self.id,
            t_s=t_s,
            v_mv=max(v_mv, 0),
            i_ma=max(i_ma, 0),
            seq=int(k),
        )

    def readings(self, start_s: int, end_s: int) -> list[SensorReading]:
        return [self.reading(t) for t in self.times(start_s, end_s)]


def build_sensors(world: World) -> list[FieldSensor]:
    """The scenario's field sensors in ``world``.

    Raises:
        ScenarioCheckError: a sensor's bus or line is not in the grid.
    """
    out = []
    net = world.grid.net
    for i, spec in enumerate(world.scenario.sensors):
        if spec.line is not None:
            if spec.line not in net.line.index:
                raise ScenarioCheckError(f"sensors.{i}.line: line {spec.line} is not in the grid")
            bus = int(net.line.at[spec.line, "from_bus"])
        else:
            assert spec.bus is not None
            if spec.bus not in net.bus.index:
                raise ScenarioCheckError(f"sensors.{i}.bus: bus {spec.bus} is not in the grid")
            bus = spec.bus
        n = DAY_S // spec.period_s + 1
        noise = rng(world.scenario.seed, Stream.SENSOR, i).normal(0.0, spec.noise_pct / 100, n)
        out.append(FieldSensor(world, i, spec, bus, noise))
    return out


class TopologyFeed:
    """The scenario's topology events as messages, each at its MTU's start."""

    def __init__(self, world: World) -> None:
        events = sorted(enumerate(world.scenario.events), key=lambda e: (e[1].at_mtu, e[0]))
        self.messages: list[TopologyEvent] = []
        for seq, (_, ev) in enumerate(events, start=1):
            prefix = "switch" if ev.kind == "switch" else "line"
            self.messages.append(
                TopologyEvent(
                    element=f"{prefix}:{ev.element}",
                    closed=ev.closed,
                    t_s=world.day_s + ev.at_mtu * MTU_S,
                    seq=seq,
                )
            )

    def due(self, start_s: int, end_s: int) -> list[TopologyEvent]:
        """Events in ``[start_s, end_s)``."""
        return [m for m in self.messages if start_s <= m.t_s < end_s]

    def next_after(self, t_s: int) -> int | None:
        later = [m.t_s for m in self.messages if m.t_s > t_s]
        return min(later) if later else None
