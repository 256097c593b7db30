"""The scenario file (TOML): the world a market day runs in, as validated data (floor 1).

One file names the grid and its stated changes, the delivery day, the participating PODs and
their resources, the aggregators and their customers with their keys, the TSO's HV needs, the
field sensors, the events (a line outage before a real-time session), the noise and the random
seed. Runs are reproducible from the file. The DSO reads the grid, the POD mapping and the remedy
space from it; the world (``sim``) reads everything; nobody reads another actor's state.

``load_scenario(path)`` refuses a malformed file with an error that names the field
(``pods.3.bus: …``).
"""

from __future__ import annotations

import tomllib
from datetime import date
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from flexledger.messages.common import PodCode
from flexledger.time import MTUS_PER_DAY, day_start_s

__all__ = [
    "AggregatorSpec",
    "BehaviourSpec",
    "EventSpec",
    "ExpectedViolation",
    "GridChange",
    "GridSpec",
    "NoiseSpec",
    "PodSpec",
    "RemedySpace",
    "ResourceSpec",
    "Scenario",
    "ScenarioError",
    "SensorSpec",
    "TapChangerSpec",
    "TieSwitchSpec",
    "TsoNeed",
    "TsoSpec",
    "WeatherSpec",
    "load_scenario",
    "parse_scenario",
]

Mtu = Annotated[int, Field(ge=0, lt=MTUS_PER_DAY)]


class ScenarioError(ValueError):
    """A scenario file that cannot be used; the message names the field."""


class _Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class GridChange(_Spec):
    """A stated change to the SimBench grid, with its reason (e.g. more PV on one feeder)."""

    kind: Literal["scale_sgen", "scale_load", "set_line_max_i", "set_trafo_tap", "add_sgen"]
    elements: list[int] = Field(default_factory=list, description="pandapower indices")
    buses: list[int] = Field(default_factory=list)
    factor: float | None = None
    value: float | None = None
    reason: str = Field(min_length=1)


class GridSpec(_Spec):
    source: str = Field(description="SimBench code (e.g. 1-MVLV-semiurb-5.220-2-sw) or a JSON file")
    profile_day: int = Field(ge=0, le=365, description="day of the SimBench year the day replays")
    vm_min_pu: float = Field(default=0.95, gt=0.5, lt=1.0)
    vm_max_pu: float = Field(default=1.05, gt=1.0, lt=1.5)
    max_loading_percent: float = Field(default=100.0, gt=0, le=200)
    changes: list[GridChange] = Field(default_factory=list)


class TapChangerSpec(_Spec):
    """On-load tap changers the DSO may move; parallel transformers move together."""

    trafos: list[int] = Field(min_length=1, description="pandapower trafo indices, moved together")
    tap_min: int
    tap_max: int

    @model_validator(mode="after")
    def _range(self) -> TapChangerSpec:
        if self.tap_min > self.tap_max:
            raise ValueError("tap_min exceeds tap_max")
        return self


class TieSwitchSpec(_Spec):
    """An open tie point the DSO may close, opening ``opens`` so the grid stays radial."""

    close: int = Field(description="pandapower switch index, normally open")
    opens: list[int] = Field(default_factory=list, description="switches opened with it")


class RemedySpace(_Spec):
    """Exactly the space of the DSO's own remedies (I-11) that it searches.

    A point of the space: every tap-changer group at one position of its range (its trafos
    together), and any subset of the tie switches operated (each closes ``close`` and opens
    ``opens``); with ``keep_radial``, subsets that mesh the grid or leave a supplied bus
    unsupplied are not in the space. What is not named keeps the grid's own state (the base
    configuration, "no remedy").

    ``margin_vm_pu`` / ``margin_loading_percent``: how far beyond its limit the worst violation
    of every point of the space must be in the core of the scenario's residual MTUs (see
    :class:`ExpectedViolation`), so that a forecast with errors still sees them.
    """

    tap_changers: list[TapChangerSpec] = Field(default_factory=list)
    tie_switches: list[TieSwitchSpec] = Field(default_factory=list)
    keep_radial: bool = True
    margin_vm_pu: float = Field(default=0.01, ge=0, le=0.2)
    margin_loading_percent: float = Field(default=5.0, ge=0, le=100)


class ResourceSpec(_Spec):
    """A flexible resource behind a POD (the world's device; the aggregator's model)."""

    id: str = Field(min_length=1, max_length=64)
    kind: Literal["pv", "battery", "ev", "heat_pump", "hvac", "other_load"]
    p_max_kw: float = Field(gt=0)
    e_max_kwh: float = Field(default=0.0, ge=0)
    soc_init: float = Field(default=0.5, ge=0, le=1)
    available_from_mtu: Mtu = 0
    available_to_mtu: int = Field(default=MTUS_PER_DAY, gt=0, le=MTUS_PER_DAY)
    ramp_kw_per_min: float | None = Field(default=None, gt=0)
    comfort_band_c: float | None = Field(default=None, gt=0)
    cost_eur_per_mwh: float = Field(default=100.0, ge=0, description="the owner's cost of moving")
    sgen: int | None = Field(default=None, description="pandapower sgen that is this PV")
    storage: int | None = Field(default=None, description="pandapower storage that is this device")
    load: int | None = Field(
        default=None,
        description="pandapower load that is this device (its profile is the device's own "
        "consumption); none of sgen/storage/load: the device adds its own baseline to the POD",
    )

    @model_validator(mode="after")
    def _window_and_mapping(self) -> ResourceSpec:
        if self.available_to_mtu <= self.available_from_mtu:
            raise ValueError("available_to_mtu must be after available_from_mtu")
        mapped = [x for x in (self.sgen, self.storage, self.load) if x is not None]
        if len(mapped) > 1:
            raise ValueError("a resource is at most one grid element (sgen, storage or load)")
        return self


class PodSpec(_Spec):
    """A participating POD: where it is in the grid and what is behind it."""

    code: PodCode
    bus: int = Field(ge=0)
    loads: list[int] = Field(default_factory=list, description="pandapower load indices")
    sgens: list[int] = Field(default_factory=list)
    storages: list[int] = Field(default_factory=list)
    aggregator: str
    owner: str = Field(description="FR owner dev-key name or keystore")
    device_key: str | None = Field(default=None, description="default: dev:ln:<code>")
    area: str = Field(default="HV-1", description="TSO substation area")
    resources: list[ResourceSpec] = Field(default_factory=list)
    ignores_signal: bool = Field(
        default=False, description="the customer overrides its BMS: set-points change nothing"
    )
    response_delay_s: int | None = Field(
        default=None, ge=0, le=900, description="this customer's delay (default: behaviour's)"
    )
    response_factor: float | None = Field(
        default=None,
        gt=0,
        le=1.2,
        description="share of a set-point this customer's BMS delivers (default: behaviour's)",
    )

    @model_validator(mode="after")
    def _unique_resources(self) -> PodSpec:
        ids = [r.id for r in self.resources]
        if len(set(ids)) != len(ids):
            raise ValueError("a resource id appears twice in this POD")
        return self


class AggregatorSpec(_Spec):
    name: str
    key: str = Field(description="dev:NAME, keystore or 0x key")
    fee_percent: float = Field(default=10.0, ge=0, le=100)


class TsoNeed(_Spec):
    """What the TSO simulator needs from the distribution grid's resources in an HV area."""

    area: str
    direction: Literal["up", "down"]
    mtu_from: Mtu
    mtu_count: int = Field(ge=1, le=MTUS_PER_DAY)
    volume_kw: float = Field(gt=0)
    max_price_eur_per_mwh: float = Field(gt=0)
    session: Literal["day_ahead", "real_time"] = "day_ahead"


class TsoSpec(_Spec):
    key: str = "dev:tso"
    needs: list[TsoNeed] = Field(default_factory=list)


class SensorSpec(_Spec):
    """A field sensor (I-18): V&C sensor on a bus, or a breaker IED on a line."""

    id: str = Field(min_length=1, max_length=64)
    bus: int | None = None
    line: int | None = None
    noise_pct: float = Field(default=1.0, ge=0, le=20)
    period_s: int = Field(default=60, ge=4, le=900, description="one reading every period_s")

    @model_validator(mode="after")
    def _where(self) -> SensorSpec:
        if (self.bus is None) == (self.line is None):
            raise ValueError("a sensor is on a bus or on a line (exactly one)")
        return self


class EventSpec(_Spec):
    kind: Literal["line_outage", "switch"]
    element: int = Field(description="pandapower line or switch index")
    at_mtu: Mtu
    closed: bool = False
    reason: str = ""


class NoiseSpec(_Spec):
    sample_pct: float = Field(default=2.0, ge=0, le=50, description="4 s variation around the MTU")
    forecast_pct: float = Field(default=5.0, ge=0, le=100)
    brp_pct: float = Field(default=5.0, ge=0, le=100)


class WeatherSpec(_Spec):
    """Outdoor temperature of the day (drives heat pumps and air conditioning), °C.

    A daily cosine between ``t_min_c`` (at ``peak_hour - 12``) and ``t_max_c`` (at
    ``peak_hour``, UTC); history days vary around it by ``day_sd_c`` (seeded).
    """

    t_min_c: float = Field(default=18.0, ge=-40, le=45)
    t_max_c: float = Field(default=31.0, ge=-40, le=50)
    peak_hour: float = Field(default=14.0, ge=0, lt=24)
    day_sd_c: float = Field(default=1.5, ge=0, le=10)

    @model_validator(mode="after")
    def _order(self) -> WeatherSpec:
        if self.t_min_c > self.t_max_c:
            raise ValueError("t_min_c exceeds t_max_c")
        return self


class BehaviourSpec(_Spec):
    response_delay_s: int = Field(default=60, ge=0, le=900)
    partial_response: float = Field(default=0.9, gt=0, le=1.2)


class ExpectedViolation(_Spec):
    """A violation the DSO's own remedies cannot remove, and why (the scenario's promise).

    What remains, MTU by MTU, on the scenario's true day (its profiles, stated changes and the
    devices' own behaviour, no activation, no event): a point of the remedy space is
    *acceptable* in an MTU when its power flow converges, no element is beyond its limit that
    was not in the base configuration, and no violation grows (by more than 1e-4 p.u. or 0.1
    percentage points); the DSO takes the acceptable point with the fewest violations, then the
    least total excess (voltages per 0.01 p.u., loadings per percentage point), then the fewest
    operations. What remains is that point's violations (buses of the slack excluded). The
    ``expected`` entries list exactly those, one per element and run of consecutive MTUs
    (``mtu_from`` … ``mtu_to`` inclusive). In every MTU with something remaining no point of the
    space is free of violations; in each run of such MTUs, at least an hour of them (the core)
    keeps, at every point of the space, a violation at least ``remedies.margin_*`` beyond its
    limit, so that a forecast with errors still sees it (the edges of a run, where PV or load
    ramps through the limit, may be thinner).
    """

    kind: Literal["voltage_high", "voltage_low", "line_overload", "trafo_overload"]
    element: str = Field(description="'bus:12', 'line:40', 'trafo:1'")
    mtu_from: Mtu
    mtu_to: Mtu
    why: str = Field(min_length=1)


class Scenario(_Spec):
    name: str
    description: str = ""
    delivery_day: date
    seed: int = 0
    history_days: int = Field(default=28, ge=0, le=365)
    grid: GridSpec
    remedies: RemedySpace = RemedySpace()
    aggregators: list[AggregatorSpec] = Field(min_length=1)
    pods: list[PodSpec] = Field(min_length=1)
    tso: TsoSpec = TsoSpec()
    sensors: list[SensorSpec] = Field(default_factory=list)
    events: list[EventSpec] = Field(default_factory=list)
    noise: NoiseSpec = NoiseSpec()
    behaviour: BehaviourSpec = BehaviourSpec()
    weather: WeatherSpec = WeatherSpec()
    expected: list[ExpectedViolation] = Field(default_factory=list)

    @model_validator(mode="after")
    def _references(self) -> Scenario:
        aggs = {a.name for a in self.aggregators}
        codes = [p.code for p in self.pods]
        if len(set(codes)) != len(codes):
            raise ValueError("a POD code appears twice in pods")
        for i, pod in enumerate(self.pods):
            if pod.aggregator not in aggs:
                raise ValueError(f"pods.{i}.aggregator {pod.aggregator!r} is not in aggregators")
        return self

    @property
    def day_s(self) -> int:
        return day_start_s(self.delivery_day)


def parse_scenario(data: dict[str, object], *, source: str = "scenario") -> Scenario:
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(file)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ScenarioError(f"{source}: {problems}") from None


def load_scenario(path: Path | str) -> Scenario:
    """Read and validate a scenario TOML file."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text("utf-8"))
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: not valid TOML: {exc}") from None
    return parse_scenario(data, source=str(path))
