"""Flexible devices behind a meter: what they do on their own and how they answer a command.

Every device lives on the day's 4 s grid (``N_STEPS`` steps; step ``k`` is the instant
``day_s + 4 k`` and the power holds for the 4 s that follow). Powers are W in load convention
(positive consumes), energies Wh. A device has

- ``baseline_w[k]``: what it does without any activation (the SimBench profile of the grid
  element it is, or its own behaviour: uncontrolled EV charging, air conditioning driven by the
  outdoor temperature, …);
- ``delta_w[k]``: the change that activations caused (zero without commands);

and its physics: power limits, a ramp limit on the change (W per step), and its state (battery
energy, EV energy delivered, thermal energy stored relative to the set-point). Commands
(:class:`Command`) come from the BMS (I-14 activation signals); :meth:`Device.set_commands`
re-simulates from a step on, never before it, so what was already measured never changes.

Models:

- :class:`Battery`: state of charge within ``[0, E]``, ``|P| ≤ p_max``, charge and discharge
  efficiency; keeps the SoC an activation left it with.
- :class:`PvCurtailment`: curtails between 0 and the available PV power (``down`` only).
- :class:`ElectricVehicle`: plugged in during a window with an energy need; uncontrolled it
  charges at ``p_max`` until full. It defers charging (``up``) only as long as it can still
  finish by departure, and catches up afterwards (rebound).
- :class:`ThermalLoad` (heat pump, commercial HVAC): moves within its comfort band (thermal
  energy ``|x| ≤ X``), then returns to its set-point (rebound, time constant 30 min).
- :class:`FlexibleLoad`: a load that can shed or add power within ``[0, p_max]``, no state.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from flexledger.time import DAY_S, SAMPLE_PERIOD_S
from flexledger.units import Direction

__all__ = [
    "N_STEPS",
    "STEP_H",
    "Battery",
    "Command",
    "Device",
    "ElectricVehicle",
    "FlexibleLoad",
    "PvCurtailment",
    "ThermalLoad",
]

N_STEPS = DAY_S // SAMPLE_PERIOD_S
"""4 s steps in a day (21,600)."""
STEP_H = SAMPLE_PERIOD_S / 3600
"""Length of a step in hours (energy in Wh = power in W × STEP_H)."""

_EPS_W = 1e-6


@dataclass(frozen=True)
class Command:
    """An activation signal for one device (I-14): change its power by ``delta_w`` (load
    convention: negative = consume less, an ``up`` activation) during steps ``[start, end)``.

    ``key`` names the set-point it comes from; a later command with the same key replaces it.
    """

    key: str
    start: int
    end: int
    delta_w: float


class Device(ABC):
    """A flexible appliance behind a POD's meter (see the module docstring).

    Args:
        device_id: the resource id of the scenario.
        p_max_w: rated power, W (> 0).
        baseline_w: its own power per step without activations, W (load convention).
        ramp_w_per_step: largest change of ``delta_w`` from one step to the next, W.
        adds_baseline: its baseline is not part of a grid element (the POD adds it).
        tan_phi: reactive over active power of what it adds (motors: > 0; inverters: 0).
    """

    kind: str = "device"

    def __init__(
        self,
        device_id: str,
        p_max_w: float,
        baseline_w: NDArray[np.float64],
        ramp_w_per_step: float,
        *,
        adds_baseline: bool,
        tan_phi: float = 0.0,
    ) -> None:
        if p_max_w <= 0:
            raise ValueError(f"{device_id}: p_max_w must be positive")
        base = np.asarray(baseline_w, dtype=np.float64)
        if base.shape != (N_STEPS,):
            raise ValueError(f"{device_id}: baseline has shape {base.shape}, not ({N_STEPS},)")
        self.id = device_id
        self.p_max_w = float(p_max_w)
        self.baseline_w = base
        self.ramp_w = float(ramp_w_per_step) if ramp_w_per_step > 0 else math.inf
        self.adds_baseline = adds_baseline
        self.tan_phi = float(tan_phi)
        self.delta_w = np.zeros(N_STEPS)
        self.commands: list[Command] = []

    # -- what it does --------------------------------------------------------------------------

    @property
    def power_w(self) -> NDArray[np.float64]:
        """Its actual power per step, W (load convention)."""
        return self.baseline_w + self.delta_w

    def set_commands(self, commands: list[Command], from_step: int) -> None:
        """Replace the command list and re-simulate from ``from_step`` (steps before it keep
        what they were)."""
        self.commands = sorted(commands, key=lambda c: (c.start, c.key))
        k0 = max(0, min(int(from_step), N_STEPS))
        self._simulate(k0)

    def target(self, k0: int) -> NDArray[np.float64]:
        """Sum of the commanded changes per step from ``k0`` on (length ``N_STEPS - k0``)."""
        out = np.zeros(N_STEPS - k0)
        for c in self.commands:
            lo, hi = max(c.start, k0), min(c.end, N_STEPS)
            if hi > lo:
                out[lo - k0 : hi - k0] += c.delta_w
        return out

    def last_command_end(self) -> int:
        return max((c.end for c in self.commands), default=0)

    @abstractmethod
    def capability_w(self, direction: Direction, start: int, end: int) -> float:
        """How much (W, ≥ 0) it could change its power in ``direction`` over ``[start, end)``,
        as the BMS estimates it to split a set-point."""

    @abstractmethod
    def _simulate(self, k0: int) -> None:
        """Recompute ``delta_w[k0:]`` (and the state) from the commands."""

    def _ramp(self, k: int, want: float) -> float:
        prev = self.delta_w[k - 1] if k > 0 else 0.0
        return min(max(want, prev - self.ramp_w), prev + self.ramp_w)


class Battery(Device):
    """A battery (or the battery of a PV + battery system): ``up`` discharges, ``down`` charges.

    ``energy_wh[k]`` is the stored energy at the start of step ``k`` (length ``N_STEPS + 1``),
    always within ``[0, e_max_wh]``. Its own schedule (the baseline) keeps the SoC; only
    activations move it, and it keeps the SoC they leave.
    """

    kind = "battery"

    def __init__(
        self,
        device_id: str,
        p_max_w: float,
        e_max_wh: float,
        soc_init: float,
        baseline_w: NDArray[np.float64],
        ramp_w_per_step: float,
        *,
        adds_baseline: bool,
        efficiency: float = 0.95,
    ) -> None:
        super().__init__(
            device_id, p_max_w, baseline_w, ramp_w_per_step, adds_baseline=adds_baseline
        )
        if e_max_wh <= 0:
            raise ValueError(f"{device_id}: a battery needs e_max_kwh > 0")
        self.e_max_wh = float(e_max_wh)
        self.efficiency = float(efficiency)
        self.energy_wh = np.full(N_STEPS + 1, float(np.clip(soc_init, 0, 1)) * self.e_max_wh)

    def capability_w(self, direction: Direction, start: int, end: int) -> float:
        hours = max(end - start, 1) * STEP_H
        e = float(self.energy_wh[min(start, N_STEPS)])
        if Direction(direction) is Direction.UP:
            return min(self.p_max_w, e * self.efficiency / hours)
        return min(self.p_max_w, (self.e_max_wh - e) / self.efficiency / hours)

    def _simulate(self, k0: int) -> None:
        target = self.target(k0)
        last = self.last_command_end()
        e = float(self.energy_wh[k0])
        eta, e_max, p_max = self.efficiency, self.e_max_wh, self.p_max_w
        for i in range(N_STEPS - k0):
            k = k0 + i
            d = self._ramp(k, float(target[i]))
            d = min(max(d, -p_max), p_max)
            if d > 0:
                d = min(d, (e_max - e) / (eta * STEP_H))
                e = min(e + d * eta * STEP_H, e_max)
            else:
                d = max(d, -e * eta / STEP_H)
                e = max(e + d / eta * STEP_H, 0.0)
            self.delta_w[k] = d
            self.energy_wh[k + 1] = e
            if k + 1 >= last and abs(d) <= _EPS_W:
                self.delta_w[k + 1 :] = 0.0
                self.energy_wh[k + 1 :] = e
                return

    @property
    def soc(self) -> NDArray[np.float64]:
        return self.energy_wh / self.e_max_wh


class PvCurtailment(Device):
    """A PV system that can be curtailed (``down``: less injection) down to zero output.

    Its baseline is the negative available PV power (load convention); ``delta_w`` stays within
    ``[0, available]``.
    """

    kind = "pv"

    def available_w(self) -> NDArray[np.float64]:
        return np.clip(-self.baseline_w, 0.0, None)

    def capability_w(self, direction: Direction, start: int, end: int) -> float:
        if Direction(direction) is Direction.UP or end <= start:
            return 0.0
        return float(self.available_w()[start:end].mean())

    def _simulate(self, k0: int) -> None:
        target = self.target(k0)
        last = self.last_command_end()
        avail = self.available_w()
        for i in range(N_STEPS - k0):
            k = k0 + i
            d = self._ramp(k, float(target[i]))
            d = min(max(d, 0.0), float(avail[k]))
            self.delta_w[k] = d
            if k + 1 >= last and d <= _EPS_W:
                self.delta_w[k + 1 :] = 0.0
                return


class ElectricVehicle(Device):
    """An EV on its charger: plugged in over steps ``[arrive, depart)`` needing ``need_wh``.

    Uncontrolled (its baseline) it charges at ``p_max`` from arrival until full. Controlled, its
    charging power stays within ``[0, p_max]``, never exceeds what it still needs, and never
    drops so low that it could not finish by departure; after an ``up`` activation it catches
    up at full power (rebound). ``energy_wh[k]``: energy delivered before step ``k``.
    """

    kind = "ev"

    def __init__(
        self,
        device_id: str,
        p_max_w: float,
        arrive: int,
        depart: int,
        need_wh: float,
        ramp_w_per_step: float,
        *,
        adds_baseline: bool = True,
    ) -> None:
        arrive, depart = max(0, int(arrive)), min(N_STEPS, int(depart))
        if depart <= arrive:
            raise ValueError(f"{device_id}: departure must be after arrival")
        self.arrive, self.depart = arrive, depart
        self.need_wh = float(min(max(need_wh, 0.0), p_max_w * (depart - arrive) * STEP_H))
        base = self.uncontrolled(p_max_w, arrive, depart, self.need_wh)
        super().__init__(device_id, p_max_w, base, ramp_w_per_step, adds_baseline=adds_baseline)
        self.energy_wh = np.concatenate(([0.0], np.cumsum(self.baseline_w) * STEP_H))
        self._base_energy = self.energy_wh.copy()

    @staticmethod
    def uncontrolled(
        p_max_w: float, arrive: int, depart: int, need_wh: float
    ) -> NDArray[np.float64]:
        """Charging at full power from arrival until ``need_wh`` is delivered, W per step."""
        p = np.zeros(N_STEPS)
        full_steps = int(need_wh // (p_max_w * STEP_H))
        end = min(arrive + full_steps, depart)
        p[arrive:end] = p_max_w
        rest = need_wh - (end - arrive) * p_max_w * STEP_H
        if rest > 1e-9 and end < depart:
            p[end] = rest / STEP_H
        return p

    def plugged(self, k: int) -> bool:
        return self.arrive <= k < self.depart

    def capability_w(self, direction: Direction, start: int, end: int) -> float:
        if end <= start:
            return 0.0
        planned = self.power_w[start:end]
        if Direction(direction) is Direction.UP:
            return float(planned.mean())
        room = np.where(
            (np.arange(start, end) >= self.arrive) & (np.arange(start, end) < self.depart),
            self.p_max_w - planned,
            0.0,
        )
        left = self.need_wh - float(self.energy_wh[min(start, N_STEPS)])
        hours = (end - start) * STEP_H
        return float(min(room.mean(), max(left, 0.0) / hours))

    def _simulate(self, k0: int) -> None:
        target = self.target(k0)
        last = self.last_command_end()
        e = float(self.energy_wh[k0])
        p_max, need = self.p_max_w, self.need_wh
        for i in range(N_STEPS - k0):
            k = k0 + i
            base = float(self.baseline_w[k])
            if not self.plugged(k):
                p = 0.0
            else:
                left = max(need - e, 0.0)
                p_cap = min(p_max, left / STEP_H)
                want = p_cap + float(target[i])  # what it would do on its own, plus the command
                d = self._ramp(k, want - base)
                p = base + d
                steps_after = self.depart - k - 1
                p_floor = min(p_cap, max(0.0, left / STEP_H - p_max * steps_after))
                p = min(max(p, p_floor), p_cap)
            self.delta_w[k] = p - base
            e += p * STEP_H
            self.energy_wh[k + 1] = e
            if (
                k + 1 >= last
                and abs(self.delta_w[k]) <= _EPS_W
                and abs(e - self._base_energy[k + 1]) <= 1e-6
            ):
                self.delta_w[k + 1 :] = 0.0
                self.energy_wh[k + 1 :] = self._base_energy[k + 1 :]
                return


class ThermalLoad(Device):
    """A heat pump or an air conditioner that may move within its comfort band.

    ``thermal_wh[k]``: electrical energy used more (+) or less (−) than its baseline up to step
    ``k``, i.e. heat (or cold) stored beyond its set-point, within ``[-band_wh, band_wh]`` —
    the comfort band (``comfort_band_c`` either side of the set-point). The power stays within
    ``[0, p_max]``. After its activations it returns to the set-point: rebound with a time
    constant of ``rebound_s``, drawing at most ``rebound_share × p_max`` more (or less) than its
    baseline, as building controllers recover gently; the building also drifts back on its own
    (exchange with outside, time constant ``drift_s``), which is all that brings it back when
    its power is at a limit.
    """

    kind = "thermal"

    def __init__(
        self,
        device_id: str,
        kind: str,
        p_max_w: float,
        baseline_w: NDArray[np.float64],
        band_wh: float,
        comfort_band_c: float,
        ramp_w_per_step: float,
        *,
        adds_baseline: bool,
        rebound_s: float = 3600.0,
        rebound_share: float = 0.2,
        drift_s: float = 3 * 3600.0,
        tan_phi: float = 0.0,
    ) -> None:
        super().__init__(
            device_id,
            p_max_w,
            np.clip(baseline_w, 0.0, p_max_w),
            ramp_w_per_step,
            adds_baseline=adds_baseline,
            tan_phi=tan_phi,
        )
        if band_wh <= 0:
            raise ValueError(f"{device_id}: the comfort band must hold some energy")
        self.kind = kind
        self.band_wh = float(band_wh)
        self.comfort_band_c = float(comfort_band_c)
        self.rebound_s = float(rebound_s)
        self.rebound_share = float(rebound_share)
        self.drift_s = float(drift_s)
        self.thermal_wh = np.zeros(N_STEPS + 1)

    @property
    def temperature_deviation_c(self) -> NDArray[np.float64]:
        """How far from its set-point the building is, °C (sign: stored heat or cold)."""
        return self.thermal_wh / self.band_wh * self.comfort_band_c

    def capability_w(self, direction: Direction, start: int, end: int) -> float:
        if end <= start:
            return 0.0
        hours = (end - start) * STEP_H
        x = float(self.thermal_wh[min(start, N_STEPS)])
        base = self.baseline_w[start:end]
        if Direction(direction) is Direction.UP:
            return float(min(base.mean(), (self.band_wh + x) / hours))
        return float(min((self.p_max_w - base).mean(), (self.band_wh - x) / hours))

    def _simulate(self, k0: int) -> None:
        target = self.target(k0)
        active = np.zeros(N_STEPS - k0, dtype=bool)
        for c in self.commands:
            lo, hi = max(c.start, k0), min(c.end, N_STEPS)
            if hi > lo:
                active[lo - k0 : hi - k0] = True
        last = self.last_command_end()
        x = float(self.thermal_wh[k0])
        band, p_max = self.band_wh, self.p_max_w
        recover = STEP_H * 3600 / self.rebound_s  # share of the stored energy returned per step
        rebound_w = self.rebound_share * p_max
        keep = 1.0 - STEP_H * 3600 / self.drift_s  # what the building keeps of it per step
        for i in range(N_STEPS - k0):
            k = k0 + i
            base = float(self.baseline_w[k])
            x *= keep
            if active[i]:
                want = float(target[i])
            else:  # recover towards the set-point, with at most rebound_w more or less power
                want = min(max(-x * recover / STEP_H, -rebound_w), rebound_w)
            d = self._ramp(k, want)
            d = min(max(d, -base), p_max - base)
            d = min(max(d, (-band - x) / STEP_H), (band - x) / STEP_H)
            x += d * STEP_H
            self.delta_w[k] = d
            self.thermal_wh[k + 1] = x
            if k + 1 >= last and abs(x) < 0.01 and abs(d) < 1.0:
                # back at the set-point (within 0.01 Wh): it stays there
                self.delta_w[k + 1 :] = 0.0
                self.thermal_wh[k + 1 :] = x
                return


class FlexibleLoad(Device):
    """A load that sheds (``up``) or adds (``down``) power within ``[0, p_max]``; no state."""

    kind = "other_load"

    def capability_w(self, direction: Direction, start: int, end: int) -> float:
        if end <= start:
            return 0.0
        base = self.baseline_w[start:end]
        if Direction(direction) is Direction.UP:
            return float(np.clip(base, 0, None).mean())
        return float(np.clip(self.p_max_w - base, 0, None).mean())

    def _simulate(self, k0: int) -> None:
        target = self.target(k0)
        last = self.last_command_end()
        for i in range(N_STEPS - k0):
            k = k0 + i
            base = float(self.baseline_w[k])
            d = self._ramp(k, float(target[i]))
            d = min(max(d, -max(base, 0.0)), max(self.p_max_w - base, 0.0))
            self.delta_w[k] = d
            if k + 1 >= last and abs(d) <= _EPS_W:
                self.delta_w[k + 1 :] = 0.0
                return
