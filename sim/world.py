"""The world outside the platform: the grid's true state over the delivery day, the meters, the
BMS and their devices, the field sensors, the topology events and the scenario clock.

``World(scenario)`` builds the day at once: element powers from the SimBench profiles of the
scenario's ``profile_day`` (with its stated changes), the devices' own behaviour, and one batched
power flow per grid configuration (events change it from their MTU on) for the 96 MTUs. On top:

- **meters** (:class:`PodMeter`, ``flexledger.protocols.MeterSource``): P, Q, V per POD every
  4 s: the MTU's element powers, what the devices did at that instant (baseline and
  activations), 4 s variation (AR(1), zero mean over each MTU, so the MTU's energy is the power
  flow's), voltage from the MTU's power flow with measurement noise. Integers: W, var, and mV of
  the phase-to-neutral voltage (``vm_pu × vn_kv / √3``). A meter reads nothing after the clock's
  ``now`` (``LookupError``): what has been read never changes.
- **BMS** (:class:`PodBms`, ``flexledger.protocols.Bms``): a set-point (I-09) becomes one
  activation signal (I-14) per device, split by what each device can do; the customer's delay,
  partial response or override (``ignores_signal``) apply. Devices act from the next instant
  on; the MTUs they change are re-run through the power flow before they are read again.
- **sensors** and **topology events** (I-18): see :mod:`sim.sensors`.

Everything random comes from the scenario's seed (:mod:`sim.rng`): the same file gives the same
day, bit for bit.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray
from scipy.signal import lfilter

from flexledger.messages import ActivationSignal, MeterReading, SetPoint
from flexledger.powerflow import GridConfig
from flexledger.scenario import Scenario, load_scenario
from flexledger.time import (
    DAY_S,
    MTU_S,
    MTUS_PER_DAY,
    SAMPLE_PERIOD_S,
    SAMPLES_PER_MTU,
    ScenarioClock,
)
from flexledger.units import Direction
from node.signing import message_hash
from sim.devices import N_STEPS, Command
from sim.grid import ElementPowers, WorldGrid, shared_grid
from sim.pods import PodModel, ScenarioCheckError, build_pods, element_power_w
from sim.rng import Stream, rng
from sim.truth import GridTruth, compose_powers

if TYPE_CHECKING:
    from flexledger.transport import MqttClient, Topics
    from node.eip712 import Domain
    from sim.sensors import FieldSensor, TopologyFeed
    from sim.serve import WorldServer

__all__ = ["PodBms", "PodMeter", "SampleArrays", "World"]

log = logging.getLogger(__name__)

#: Correlation of the 4 s variation from one sample to the next (AR(1)).
AR_PHI = 0.95
#: Standard deviation of the meters' voltage measurement, relative.
VOLTAGE_NOISE = 2e-4
#: Below this |P| (W) the 4 s variation is scaled as if the POD drew this much.
NOISE_FLOOR_W = 200.0
_SQRT3 = math.sqrt(3.0)


@dataclass(frozen=True)
class SampleArrays:
    """4 s samples of one POD as integer arrays: instants (s), P (W), Q (var), V (mV)."""

    t_s: NDArray[np.int64]
    p_w: NDArray[np.int64]
    q_var: NDArray[np.int64]
    v_mv: NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.t_s)

    def readings(self, pod: str) -> list[MeterReading]:
        """As ``MeterReading`` messages (built without re-validation: the values are ours)."""
        return [
            MeterReading.model_construct(pod=pod, t_s=int(t), p_w=int(p), q_var=int(q), v_mv=int(v))
            for t, p, q, v in zip(
                self.t_s.tolist(),
                self.p_w.tolist(),
                self.q_var.tolist(),
                self.v_mv.tolist(),
                strict=True,
            )
        ]


def _ar1(g: np.random.Generator) -> NDArray[np.float64]:
    """Unit-variance AR(1) series over the day, made zero-mean within every MTU."""
    white = g.standard_normal(N_STEPS) * math.sqrt(1 - AR_PHI**2)
    z = np.asarray(lfilter([1.0], [1.0, -AR_PHI], white), dtype=np.float64)
    z = z.reshape(MTUS_PER_DAY, SAMPLES_PER_MTU)
    z -= z.mean(axis=1, keepdims=True)
    return z.reshape(-1)


class World:
    """The simulated world of one scenario's delivery day (see the module docstring).

    Args:
        scenario: the scenario (or the path of its TOML file).
        base_dir: folder a relative grid file is resolved against (default: the scenario
            file's folder when a path is given).
        clock: the scenario clock to serve and to read ``now`` from (default: a new one at
            ``start_s``).
        start_s: where a new clock starts (default: the delivery day's midnight).
        share_grid: use the grid this process already built for the same grid section (worlds
            never change it); ``False`` builds its own.

    Raises:
        flexledger.scenario.ScenarioError: a malformed file.
        sim.pods.ScenarioCheckError: the scenario does not fit its grid.
        flexledger.powerflow.GridFileError: the grid or a change cannot be loaded.
    """

    def __init__(
        self,
        scenario: Scenario | str | os.PathLike[str],
        *,
        base_dir: str | os.PathLike[str] | None = None,
        clock: ScenarioClock | None = None,
        start_s: int | None = None,
        share_grid: bool = True,
    ) -> None:
        if not isinstance(scenario, Scenario):
            path = Path(scenario)
            scenario = load_scenario(path)
            base_dir = base_dir if base_dir is not None else path.parent
        self.scenario = scenario
        self.day_s = scenario.day_s
        self.grid = (
            shared_grid(scenario, base_dir=base_dir)
            if share_grid
            else WorldGrid(scenario, base_dir=base_dir)
        )
        self.powers: ElementPowers = self.grid.powers(0)
        self.pods: list[PodModel] = build_pods(scenario, self.grid, self.powers)
        self.pod_by_code = {p.code: p for p in self.pods}
        self.configs = self._event_configs()
        self.truth = GridTruth(self.grid.flow, self.day_s, self.configs)
        self.truth.solve(compose_powers(self.powers, self.pods), np.arange(MTUS_PER_DAY), 0)
        self.clock = (
            clock
            if clock is not None
            else ScenarioClock(self.day_s if start_s is None else start_s)
        )
        self._lock = threading.RLock()
        self._bus_pos = {int(b): i for i, b in enumerate(self.grid.flow.bus_index)}
        self._prepare_samples()
        self.meters: dict[str, PodMeter] = {p.code: PodMeter(self, p) for p in self.pods}
        self.bms: dict[str, PodBms] = {p.code: PodBms(self, p) for p in self.pods}
        self._sensors: list[FieldSensor] | None = None

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], **kw: object) -> World:
        """The world of the scenario file at ``path``."""
        return cls(path, **kw)  # type: ignore[arg-type]

    # -- the day -----------------------------------------------------------------------------

    @property
    def pod_codes(self) -> list[str]:
        return [p.code for p in self.pods]

    def pod(self, code: str) -> PodModel:
        try:
            return self.pod_by_code[code]
        except KeyError:
            raise KeyError(f"no POD {code} in scenario {self.scenario.name!r}") from None

    def mtu_start_s(self, mtu: int) -> int:
        return self.day_s + mtu * MTU_S

    def _event_configs(self) -> list[GridConfig]:
        configs = []
        config = GridConfig()
        events = sorted(enumerate(self.scenario.events), key=lambda e: (e[1].at_mtu, e[0]))
        k = 0
        for mtu in range(MTUS_PER_DAY):
            while k < len(events) and events[k][1].at_mtu <= mtu:
                i, ev = events[k]
                kind = "switch" if ev.kind == "switch" else "line"
                try:
                    config = self.grid.event_config(config, kind, ev.element, ev.closed)
                except ValueError as exc:
                    raise ScenarioCheckError(f"events.{i}.element: {exc}") from None
                k += 1
            configs.append(config)
        return configs

    def true_day(self, *, with_activations: bool = False) -> ElementPowers:
        """Element powers of the day per MTU with the devices' own behaviour (and, if asked,
        what activations changed): what the residual proof searches."""
        return compose_powers(self.powers, self.pods, with_activations=with_activations)

    # -- samples -----------------------------------------------------------------------------

    def _prepare_samples(self) -> None:
        seed = self.scenario.seed
        pct = self.scenario.noise.sample_pct / 100
        self._elem_p: dict[str, NDArray[np.float64]] = {}
        self._elem_q: dict[str, NDArray[np.float64]] = {}
        self._own_p: dict[str, NDArray[np.float64]] = {}
        self._own_q: dict[str, NDArray[np.float64]] = {}
        self._noise_p: dict[str, NDArray[np.float64]] = {}
        self._noise_q: dict[str, NDArray[np.float64]] = {}
        self._noise_v: dict[str, NDArray[np.float64]] = {}
        self._delta_p: dict[str, NDArray[np.float64]] = {}
        self._delta_q: dict[str, NDArray[np.float64]] = {}
        for pod in self.pods:
            self._delta_p[pod.code] = np.zeros(N_STEPS)
            self._delta_q[pod.code] = np.zeros(N_STEPS)
            p_mtu = element_power_w(self.powers, pod.elements)
            q_mtu = element_power_w(self.powers, pod.elements, reactive=True)
            own_p = pod.own_baseline_w()
            own_q = pod.own_baseline_var()
            self._elem_p[pod.code] = np.repeat(p_mtu, SAMPLES_PER_MTU)
            self._elem_q[pod.code] = np.repeat(q_mtu, SAMPLES_PER_MTU)
            self._own_p[pod.code] = own_p
            self._own_q[pod.code] = own_q
            level_p = np.abs(self._elem_p[pod.code] + own_p)
            level_q = np.abs(self._elem_q[pod.code] + own_q)
            scale_p = np.maximum(level_p, NOISE_FLOOR_W).reshape(MTUS_PER_DAY, -1).mean(axis=1)
            scale_q = np.maximum(level_q, NOISE_FLOOR_W / 4).reshape(MTUS_PER_DAY, -1).mean(axis=1)
            self._noise_p[pod.code] = _ar1(rng(seed, Stream.SAMPLE_P, pod.index)) * np.repeat(
                pct * scale_p, SAMPLES_PER_MTU
            )
            self._noise_q[pod.code] = _ar1(rng(seed, Stream.SAMPLE_Q, pod.index)) * np.repeat(
                pct * scale_q, SAMPLES_PER_MTU
            )
            self._noise_v[pod.code] = rng(seed, Stream.SAMPLE_V, pod.index).normal(
                0.0, VOLTAGE_NOISE, N_STEPS
            )

    def refresh(self) -> int:
        """Re-run the power flows of the MTUs activations changed (one batch per
        configuration); the number of MTUs re-run."""
        with self._lock:
            dirty = self.truth.take_dirty()
            if not dirty:
                return 0
            by_from: dict[int, list[int]] = {}
            for mtu, t in dirty.items():
                by_from.setdefault(t, []).append(mtu)
            day = compose_powers(self.powers, self.pods)
            for t, mtus in sorted(by_from.items()):
                rows = np.array(sorted(mtus), dtype=np.int64)
                self.truth.solve(day.select(rows), rows, t)
            return len(dirty)

    def samples(self, pod: str, start_s: int, end_s: int) -> SampleArrays:
        """The 4 s samples of ``pod`` in ``[start_s, end_s)`` on the delivery day, vectorised.

        No clock check: this is the world's truth as it stands (activations received so far).
        Instants outside the delivery day are left out.
        """
        model = self.pod(pod)
        first = max(start_s, self.day_s)
        first += (-(first - self.day_s)) % SAMPLE_PERIOD_S
        last = min(end_s, self.day_s + DAY_S)
        if last <= first:
            empty = np.zeros(0, dtype=np.int64)
            return SampleArrays(empty, empty, empty, empty)
        if self.truth.dirty():
            self.refresh()
        t = np.arange(first, last, SAMPLE_PERIOD_S, dtype=np.int64)
        k = (t - self.day_s) // SAMPLE_PERIOD_S
        code = model.code
        p = (
            self._elem_p[code][k]
            + self._own_p[code][k]
            + self._delta_p[code][k]
            + self._noise_p[code][k]
        )
        q = (
            self._elem_q[code][k]
            + self._own_q[code][k]
            + self._delta_q[code][k]
            + self._noise_q[code][k]
        )
        vm = np.empty(len(t))
        mtu = k // SAMPLES_PER_MTU
        bus = self._bus_pos[model.bus]
        for m in np.unique(mtu):
            sel = mtu == m
            vm[sel] = self.truth.vm_at(int(m), bus, t[sel])
        v_v = vm * (1.0 + self._noise_v[code][k]) * model.vn_kv * 1000 / _SQRT3
        return SampleArrays(
            t_s=t,
            p_w=np.rint(p).astype(np.int64),
            q_var=np.rint(q).astype(np.int64),
            v_mv=np.rint(np.nan_to_num(v_v) * 1000).astype(np.int64),
        )

    def sample(self, pod: str, t_s: int) -> MeterReading:
        """One 4 s sample of ``pod`` at ``t_s`` (on the day's 4 s grid): the same value as
        :meth:`samples` gives, on a scalar path for meters read one instant at a time."""
        model = self.pod(pod)
        k, off = divmod(t_s - self.day_s, SAMPLE_PERIOD_S)
        if off or not 0 <= k < N_STEPS:
            raise LookupError(f"{pod}: no sample at {t_s} (the 4 s grid of the day only)")
        if self.truth.dirty():
            self.refresh()
        p = (
            self._elem_p[pod][k]
            + self._own_p[pod][k]
            + self._delta_p[pod][k]
            + self._noise_p[pod][k]
        )
        q = (
            self._elem_q[pod][k]
            + self._own_q[pod][k]
            + self._delta_q[pod][k]
            + self._noise_q[pod][k]
        )
        state = self.truth.state(int(k) // SAMPLES_PER_MTU, t_s)
        vm = float(state.vm_pu[self._bus_pos[model.bus]])
        v_v = vm * (1.0 + self._noise_v[pod][k]) * model.vn_kv * 1000 / _SQRT3
        return MeterReading.model_construct(
            pod=pod,
            t_s=t_s,
            p_w=int(np.rint(p)),
            q_var=int(np.rint(q)),
            v_mv=int(np.rint(0.0 if math.isnan(v_v) else v_v * 1000)),
        )

    def _devices_changed(self, pod: PodModel) -> None:
        self._delta_p[pod.code] = pod.delta_w()
        self._delta_q[pod.code] = pod.delta_var()

    def mtu_energy_wh(self, pod: str) -> NDArray[np.int64]:
        """The POD's true energy per MTU of the day (Wh, load convention) from its samples,
        rounded as the protocol rounds measured energy."""
        s = self.samples(pod, self.day_s, self.day_s + DAY_S)
        totals = s.p_w.reshape(MTUS_PER_DAY, SAMPLES_PER_MTU).sum(axis=1) * SAMPLE_PERIOD_S
        return np.array([_round_half_even(int(x), 3600) for x in totals], dtype=np.int64)

    # -- sensors, topology, serving ----------------------------------------------------------

    @property
    def sensors(self) -> list[FieldSensor]:
        if self._sensors is None:
            from sim.sensors import build_sensors

            self._sensors = build_sensors(self)
        return self._sensors

    def topology_feed(self) -> TopologyFeed:
        from sim.sensors import TopologyFeed

        return TopologyFeed(self)

    def sensor_ids(self) -> list[str]:
        """The ids whose keys (``sensor:{id}``) sign this world's I-18 messages, the
        topology events' included: register them as field sensors."""
        from sim.sensors import TOPOLOGY_SENSOR_ID

        return [s.id for s in self.scenario.sensors] + [TOPOLOGY_SENSOR_ID]

    def serve_mqtt(
        self,
        client: MqttClient,
        *,
        topics: Topics | None = None,
        domain: Domain | None = None,
        verify_setpoints: bool = False,
        publish: bool = True,
    ) -> WorldServer:
        """Serve the meters, the BMS and the clock over MQTT, and publish the sensors' readings
        and the topology events as the clock reaches them (signed in ``domain``; without one,
        nothing is published).

        Use as ``async with world.serve_mqtt(client, domain=d) as server: …``.
        ``verify_setpoints``: the BMS server requires and checks the DSO's signature.
        """
        from sim.serve import WorldServer

        return WorldServer(
            self,
            client,
            topics=topics,
            domain=domain,
            verify_setpoints=verify_setpoints,
            publish=publish,
        )

    async def run(self, until_s: int, *, step_s: int | None = None) -> None:
        """Drive the clock to ``until_s`` in steps of ``step_s`` (default: the clock's own);
        each step waits until every participant has finished the current one."""
        step = self.clock.step_s if step_s is None else step_s
        while self.clock.now_s() < until_s:
            await self.clock.advance(min(step, until_s - self.clock.now_s()))


def _round_half_even(numerator: int, denominator: int) -> int:
    from flexledger.units import round_half_even_div

    return round_half_even_div(numerator, denominator)


class PodMeter:
    """A POD's meter in the world (``flexledger.protocols.MeterSource``).

    Reads only what has happened: an instant after the clock's ``now`` is not there yet
    (``LookupError`` for ``read``; ``read_range`` stops at ``now``).
    """

    def __init__(self, world: World, pod: PodModel) -> None:
        self.world = world
        self.model = pod
        self.pod = pod.code

    def _limit(self, end_s: int) -> int:
        return min(end_s, self.world.clock.now_s() + 1)

    async def read(self, t_s: int) -> MeterReading:
        if t_s % SAMPLE_PERIOD_S or not (self.world.day_s <= t_s < self.world.day_s + DAY_S):
            raise LookupError(f"{self.pod}: no reading at {t_s} (the 4 s grid of the day only)")
        if t_s > self.world.clock.now_s():
            raise LookupError(f"{self.pod}: {t_s} has not happened yet")
        return self.world.sample(self.pod, t_s)

    async def read_range(self, start_s: int, end_s: int) -> list[MeterReading]:
        return self.world.samples(self.pod, start_s, self._limit(end_s)).readings(self.pod)


class PodBms:
    """A POD's BMS/HMS (``flexledger.protocols.Bms``): set-points to activation signals (I-14).

    ``signals``: every activation signal sent to a device, in order; ``setpoints``: every
    set-point accepted. A customer who ignores the signal (``ignores_signal``) still gets the
    signals; its devices do nothing.
    """

    def __init__(self, world: World, pod: PodModel) -> None:
        self.world = world
        self.model = pod
        self.pod = pod.code
        self.signals: list[ActivationSignal] = []
        self.setpoints: list[SetPoint] = []
        self._commands: dict[str, list[Command]] = {d.id: [] for d in pod.devices}

    async def apply(self, setpoint: SetPoint) -> None:
        self.apply_now(setpoint)

    def apply_now(
        self, setpoint: SetPoint, received_s: int | None = None
    ) -> list[ActivationSignal]:
        """Act on a set-point received at ``received_s`` (default: the clock's now).

        Raises:
            ValueError: the set-point is for another POD, or has expired.
        """
        if setpoint.pod != self.pod:
            raise ValueError(f"set-point for {setpoint.pod} given to the BMS of {self.pod}")
        world = self.world
        now = world.clock.now_s() if received_s is None else received_s
        if setpoint.expiry_s and setpoint.expiry_s < now:
            raise ValueError(f"set-point seq {setpoint.seq} expired at {setpoint.expiry_s}")
        model = self.model
        self.setpoints.append(setpoint)
        sp_hash = "0x" + message_hash(setpoint).hex()
        key = setpoint.order_hash
        direction = Direction(setpoint.direction)
        start_s = setpoint.mtu_start_s
        end_s = start_s + setpoint.mtu_count * MTU_S
        first = max(start_s, now + 1) + model.response_delay_s
        k_first = max(0, -(-(first - world.day_s) // SAMPLE_PERIOD_S))
        k_end = min(N_STEPS, (end_s - world.day_s) // SAMPLE_PERIOD_S)
        k_now = max(0, (now - world.day_s) // SAMPLE_PERIOD_S + 1)
        wanted = float(setpoint.power_w) * model.response_factor
        caps = [max(d.capability_w(direction, k_first, k_end), 0.0) for d in model.devices]
        total = sum(caps)
        signals = []
        with world._lock:
            before = [d.delta_w.copy() for d in model.devices]
            for device, cap in zip(model.devices, caps, strict=True):
                share = wanted * cap / total if total > 0 else 0.0
                share = min(share, cap)
                signal = ActivationSignal(
                    pod=self.pod,
                    device_id=device.id,
                    setpoint_hash=sp_hash,
                    direction=direction,
                    mtu_start_s=start_s,
                    mtu_count=setpoint.mtu_count,
                    power_w=round(share),
                )
                signals.append(signal)
                commands = [c for c in self._commands[device.id] if c.key != key]
                if share > 0 and not model.spec.ignores_signal and k_end > k_first:
                    commands.append(Command(key, k_first, k_end, -direction.sign * share))
                self._commands[device.id] = commands
                device.set_commands(commands, k_now)
            changed: set[int] = set()
            for device, old in zip(model.devices, before, strict=True):
                diff = np.flatnonzero(old != device.delta_w)
                changed.update((diff // SAMPLES_PER_MTU).tolist())
            world._devices_changed(model)
            if changed:
                world.truth.mark_dirty(sorted(changed), now + 1)
        self.signals.extend(signals)
        log.info(
            "BMS %s: set-point seq %d %s %d W for %d MTU(s) from %d -> %s",
            self.pod,
            setpoint.seq,
            direction,
            setpoint.power_w,
            setpoint.mtu_count,
            start_s,
            "ignored by the customer" if model.spec.ignores_signal else f"{len(signals)} signal(s)",
        )
        return signals

    def devices(self) -> Sequence[object]:
        return self.model.devices
