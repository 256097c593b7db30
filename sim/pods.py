"""The participating PODs: which grid elements are behind each meter, and their devices.

A POD's active power (load convention, W) is its loads minus its sgens plus its storages (the
pandapower values of its elements), plus the baseline of the devices that are not grid elements
(an EV charger, an air conditioner the SimBench grid does not have), plus what activations
changed. Devices that are grid elements (a PV sgen, a PV + battery storage, a heat-pump load)
act on that element; the others on the POD's *host* element (its first load, else its first
storage).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from flexledger.scenario import PodSpec, ResourceSpec, Scenario
from flexledger.time import DAY_S, MTUS_PER_DAY, SAMPLES_PER_MTU
from sim.devices import (
    N_STEPS,
    Battery,
    Device,
    ElectricVehicle,
    FlexibleLoad,
    PvCurtailment,
    ThermalLoad,
)
from sim.grid import ElementPowers, WorldGrid
from sim.rng import Stream, rng
from sim.weather import temperature_c

__all__ = [
    "ElementRef",
    "PodModel",
    "ScenarioCheckError",
    "build_pods",
    "device_baseline_w",
    "element_power_w",
]

_STEP_SECONDS = np.arange(N_STEPS, dtype=np.float64) * (DAY_S / N_STEPS)

#: Default ramp of each kind, as a share of its rated power per minute.
DEFAULT_RAMP_SHARE_PER_MIN = {
    "pv": 15.0,
    "battery": 15.0,
    "ev": 15.0,
    "heat_pump": 0.5,
    "hvac": 0.25,
    "other_load": 1.0,
}
#: Reactive over active power of what a device adds (compressors draw reactive power).
TAN_PHI = {"heat_pump": 0.3, "hvac": 0.5, "other_load": 0.3}
#: Default comfort band either side of the set-point, °C.
DEFAULT_COMFORT_BAND_C = {"heat_pump": 1.0, "hvac": 1.5}
#: Thermal storage of a comfort band when the scenario gives none: hours of rated power per °C.
BAND_HOURS_PER_C = 0.5
#: EV plug-in times vary by this much (standard deviation, minutes) from day to day.
EV_JITTER_MIN = 20.0


class ScenarioCheckError(ValueError):
    """The scenario does not fit its grid; the message names the field (``pods.3.loads.0``)."""


@dataclass(frozen=True)
class ElementRef:
    """One pandapower element: its table (``load``, ``sgen``, ``storage``) and row position."""

    table: str
    position: int

    @property
    def sign(self) -> float:
        """+1 where the table's ``p_mw`` is load convention, -1 for sgens."""
        return -1.0 if self.table == "sgen" else 1.0


def element_power_w(
    powers: ElementPowers, refs: list[ElementRef], reactive: bool = False
) -> NDArray[np.float64]:
    """Sum of these elements' power per MTU, W (var), load convention."""
    out = np.zeros(powers.n_mtus)
    for ref in refs:
        table = getattr(powers, f"{ref.table}_{'q_mvar' if reactive else 'p_mw'}")
        out += ref.sign * table[:, ref.position] * 1e6
    return out


@dataclass
class PodModel:
    """A POD of the world: its spec, where it is, its elements and its devices.

    ``elements``: its loads, sgens and storages; ``host``: where devices that are not grid
    elements act; ``device_refs[i]``: the element device ``i`` acts on.
    """

    index: int
    spec: PodSpec
    bus: int
    vn_kv: float
    elements: list[ElementRef]
    host: ElementRef
    devices: list[Device] = field(default_factory=list)
    device_refs: list[ElementRef] = field(default_factory=list)
    response_delay_s: int = 0
    response_factor: float = 1.0

    @property
    def code(self) -> str:
        return self.spec.code

    def device(self, device_id: str) -> Device:
        for d in self.devices:
            if d.id == device_id:
                return d
        raise KeyError(f"{self.code} has no device {device_id!r}")

    def own_baseline_w(self) -> NDArray[np.float64]:
        """Per step, W: the baselines of its devices that are not grid elements."""
        out = np.zeros(N_STEPS)
        for d in self.devices:
            if d.adds_baseline:
                out += d.baseline_w
        return out

    def own_baseline_var(self) -> NDArray[np.float64]:
        """Per step, var: the reactive power of the device baselines the POD adds."""
        out = np.zeros(N_STEPS)
        for d in self.devices:
            if d.adds_baseline and d.tan_phi:
                out += d.tan_phi * d.baseline_w
        return out

    def delta_w(self) -> NDArray[np.float64]:
        """Per step, W: what activations changed, all devices together."""
        out = np.zeros(N_STEPS)
        for d in self.devices:
            out += d.delta_w
        return out

    def delta_var(self) -> NDArray[np.float64]:
        """Per step, var: the reactive change that goes with the activations."""
        out = np.zeros(N_STEPS)
        for d in self.devices:
            if d.tan_phi:
                out += d.tan_phi * d.delta_w
        return out


def _mtu_steps(values_per_mtu: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.repeat(np.asarray(values_per_mtu, dtype=np.float64), SAMPLES_PER_MTU)


def device_baseline_w(
    scenario: Scenario,
    pod: PodSpec,
    pod_index: int,
    resource: ResourceSpec,
    element_w: NDArray[np.float64] | None,
    day_offset: int,
) -> NDArray[np.float64]:
    """What a device does on its own on day ``day_offset`` (0: the delivery day), W per step.

    ``element_w``: the power of the grid element it is (per MTU, load convention), if any.
    """
    p_max = resource.p_max_kw * 1000
    if element_w is not None:
        return _mtu_steps(element_w)
    start = resource.available_from_mtu * SAMPLES_PER_MTU
    end = resource.available_to_mtu * SAMPLES_PER_MTU
    window = np.zeros(N_STEPS, dtype=bool)
    window[start:end] = True
    if resource.kind == "battery":
        return np.zeros(N_STEPS)
    if resource.kind == "other_load":
        return np.where(window, 0.5 * p_max, 0.0)
    if resource.kind in ("hvac", "heat_pump"):
        offset = 0.0
        if day_offset != 0:
            offset = float(rng(scenario.seed, Stream.WEATHER, 0, day_offset).normal(0.0, 1.0))
            offset *= scenario.weather.day_sd_c
        temp = temperature_c(scenario.weather, _STEP_SECONDS, offset)
        if resource.kind == "hvac":
            # air conditioning in opening hours: fans plus cooling growing with the heat
            share = np.clip(0.25 + 0.75 * (temp - 21.0) / 12.0, 0.0, 1.0)
            return np.where(window, share * p_max, 0.0)
        heating = np.clip((16.0 - temp) / 20.0, 0.0, 1.0)
        cooling = np.clip((temp - 24.0) / 14.0, 0.0, 1.0)
        hours = _STEP_SECONDS / 3600
        hot_water = ((hours >= 6) & (hours < 7)) | ((hours >= 19) & (hours < 20))
        share = np.clip(0.8 * np.maximum(heating, cooling) + 0.3 * hot_water, 0.0, 1.0)
        return np.where(window, share * p_max, 0.0)
    raise ScenarioCheckError(
        f"pods.{pod_index}.resources.{resource.id}: a {resource.kind} needs its grid element"
    )


def _ev_plan(
    scenario: Scenario, pod_index: int, r_index: int, resource: ResourceSpec, day_offset: int
) -> tuple[int, int, float]:
    """Arrival and departure step and energy need (Wh) of an EV on day ``day_offset``."""
    g = rng(scenario.seed, Stream.EV, pod_index * 64 + r_index, day_offset)
    jitter_steps = round(float(g.normal(0.0, EV_JITTER_MIN)) * 60 / 4)
    arrive = resource.available_from_mtu * SAMPLES_PER_MTU + jitter_steps
    depart = resource.available_to_mtu * SAMPLES_PER_MTU
    arrive = int(np.clip(arrive, 0, depart - SAMPLES_PER_MTU))
    need = (1.0 - resource.soc_init) * resource.e_max_kwh * 1000 * float(g.uniform(0.85, 1.15))
    return arrive, depart, need


def ev_baseline_w(
    scenario: Scenario, pod_index: int, r_index: int, resource: ResourceSpec, day_offset: int
) -> NDArray[np.float64]:
    """Uncontrolled charging of an EV on day ``day_offset``, W per step."""
    arrive, depart, need = _ev_plan(scenario, pod_index, r_index, resource, day_offset)
    return ElectricVehicle.uncontrolled(resource.p_max_kw * 1000, arrive, depart, need)


def _element_ref(grid: WorldGrid, pod: PodSpec, where: str, table: str, element: int) -> ElementRef:
    positions = {"load": grid.load_pos, "sgen": grid.sgen_pos, "storage": grid.storage_pos}[table]
    if element not in positions:
        raise ScenarioCheckError(f"{where}: {table} {element} is not in the grid")
    bus = int(grid.net[table].at[element, "bus"])
    if bus != pod.bus:
        raise ScenarioCheckError(
            f"{where}: {table} {element} is at bus {bus}, not the POD's {pod.bus}"
        )
    return ElementRef(table, positions[element])


def resource_element(resource: ResourceSpec) -> tuple[str, int] | None:
    for table in ("sgen", "storage", "load"):
        value = getattr(resource, table)
        if value is not None:
            return table, int(value)
    return None


_ALLOWED = {
    "pv": ("sgen", "storage"),
    "battery": ("storage",),
    "ev": (),
    "heat_pump": ("load",),
    "hvac": ("load",),
    "other_load": ("load",),
}


def _make_device(
    scenario: Scenario,
    pod_index: int,
    r_index: int,
    resource: ResourceSpec,
    baseline: NDArray[np.float64],
    adds: bool,
) -> Device:
    p_max = resource.p_max_kw * 1000
    share = DEFAULT_RAMP_SHARE_PER_MIN[resource.kind]
    ramp_kw_min = resource.ramp_kw_per_min or share * resource.p_max_kw
    ramp = ramp_kw_min * 1000 * 4 / 60
    if resource.kind == "battery":
        return Battery(
            resource.id,
            p_max,
            resource.e_max_kwh * 1000,
            resource.soc_init,
            baseline,
            ramp,
            adds_baseline=adds,
        )
    if resource.kind == "pv":
        return PvCurtailment(resource.id, p_max, baseline, ramp, adds_baseline=adds)
    if resource.kind == "ev":
        arrive, depart, need = _ev_plan(scenario, pod_index, r_index, resource, 0)
        return ElectricVehicle(resource.id, p_max, arrive, depart, need, ramp)
    if resource.kind in ("heat_pump", "hvac"):
        band_c = resource.comfort_band_c or DEFAULT_COMFORT_BAND_C[resource.kind]
        band_wh = resource.e_max_kwh * 1000 or p_max * BAND_HOURS_PER_C * band_c
        return ThermalLoad(
            resource.id,
            resource.kind,
            p_max,
            baseline,
            band_wh,
            band_c,
            ramp,
            adds_baseline=adds,
            tan_phi=TAN_PHI[resource.kind],
        )
    return FlexibleLoad(
        resource.id, p_max, baseline, ramp, adds_baseline=adds, tan_phi=TAN_PHI["other_load"]
    )


def build_pods(scenario: Scenario, grid: WorldGrid, powers: ElementPowers) -> list[PodModel]:
    """The scenario's PODs on the delivery day (``powers``: its element powers per MTU), with
    their devices' baselines.

    Raises:
        ScenarioCheckError: an element is not in the grid, not at the POD's bus, belongs to two
            PODs, or a resource is mapped to an element it cannot be.
    """
    taken: dict[tuple[str, int], str] = {}
    pods: list[PodModel] = []
    behaviour = scenario.behaviour
    for i, spec in enumerate(scenario.pods):
        where = f"pods.{i}"
        if spec.bus not in grid.bus_vn_kv:
            raise ScenarioCheckError(f"{where}.bus: bus {spec.bus} is not in the grid")
        refs: dict[tuple[str, int], ElementRef] = {}
        for table in ("loads", "sgens", "storages"):
            name = table[:-1]
            for k, element in enumerate(getattr(spec, table)):
                ref = _element_ref(grid, spec, f"{where}.{table}.{k}", name, int(element))
                key = (name, int(element))
                if key in taken:
                    raise ScenarioCheckError(
                        f"{where}.{table}.{k}: {name} {element} is already {taken[key]}'s"
                    )
                taken[key] = spec.code
                refs[key] = ref
        ordered = list(refs.values())
        host_candidates = [r for r in ordered if r.table == "load"] + [
            r for r in ordered if r.table == "storage"
        ]
        pod = PodModel(
            index=i,
            spec=spec,
            bus=spec.bus,
            vn_kv=grid.bus_vn_kv[spec.bus],
            elements=ordered,
            host=host_candidates[0] if host_candidates else ElementRef("load", -1),
            response_delay_s=(
                spec.response_delay_s
                if spec.response_delay_s is not None
                else behaviour.response_delay_s
            ),
            response_factor=(
                spec.response_factor
                if spec.response_factor is not None
                else behaviour.partial_response
            ),
        )
        for r_index, resource in enumerate(spec.resources):
            rwhere = f"{where}.resources.{r_index}"
            mapped = resource_element(resource)
            if mapped is not None and mapped[0] not in _ALLOWED[resource.kind]:
                raise ScenarioCheckError(
                    f"{rwhere}.{mapped[0]}: a {resource.kind} cannot be a grid {mapped[0]}"
                )
            if mapped is None and resource.kind == "pv":
                raise ScenarioCheckError(f"{rwhere}: a pv resource names its sgen or storage")
            if resource.kind == "battery" and resource.e_max_kwh <= 0:
                raise ScenarioCheckError(f"{rwhere}.e_max_kwh: a battery needs its energy")
            if resource.kind == "ev" and resource.e_max_kwh <= 0:
                raise ScenarioCheckError(f"{rwhere}.e_max_kwh: an EV needs its battery size")
            if mapped is not None:
                if mapped not in refs:
                    raise ScenarioCheckError(
                        f"{rwhere}.{mapped[0]}: {mapped[0]} {mapped[1]} is not one of the POD's"
                    )
                ref = refs[mapped]
                element_w = element_power_w(powers, [ref])
                baseline = device_baseline_w(scenario, spec, i, resource, element_w, 0)
                adds = False
            else:
                if not host_candidates:
                    raise ScenarioCheckError(
                        f"{where}: the POD has no load or storage to carry {resource.id}"
                    )
                ref = pod.host
                if resource.kind == "ev":
                    baseline = ev_baseline_w(scenario, i, r_index, resource, 0)
                else:
                    baseline = device_baseline_w(scenario, spec, i, resource, None, 0)
                adds = True
            pod.devices.append(_make_device(scenario, i, r_index, resource, baseline, adds))
            pod.device_refs.append(ref)
        pods.append(pod)
    return pods


def own_baselines_mtu_w(
    scenario: Scenario, pods: list[PodModel], day_offset: int
) -> NDArray[np.float64]:
    """``[pod, mtu]`` mean power (W) of the devices that are not grid elements, on day
    ``day_offset`` (history days included: EVs arrive at other times, the weather differs)."""
    out = np.zeros((len(pods), MTUS_PER_DAY))
    for p, pod in enumerate(pods):
        for r_index, resource in enumerate(pod.spec.resources):
            if resource_element(resource) is not None:
                continue
            if resource.kind == "ev":
                base = ev_baseline_w(scenario, pod.index, r_index, resource, day_offset)
            else:
                base = device_baseline_w(scenario, pod.spec, pod.index, resource, None, day_offset)
            out[p] += base.reshape(MTUS_PER_DAY, SAMPLES_PER_MTU).mean(axis=1)
    return out
