"""Every volume the aggregator offers is deliverable by the world's device: each resource of
the shipped scenario (and a heat pump added to it), modelled by ``aggregator.resources`` from
what the aggregator knows (the I-01 history, the declared window, the weather forecast), is
commanded by ``sim``'s own device model to move what was offered in *every* offered MTU at once
— the worst case the market may award — and must do so, MTU by MTU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aggregator.resources import (
    FlexParams,
    pod_power_history,
    resource_flexibility,
    temperature_forecast_c,
)
from flexledger.scenario import ResourceSpec
from flexledger.time import MTUS_PER_DAY, SAMPLES_PER_MTU
from flexledger.units import Direction

sim_world = pytest.importorskip("sim.world")
from sim.devices import Command, Device, ThermalLoad  # noqa: E402
from sim.history import history_values  # noqa: E402
from sim.pods import DEFAULT_RAMP_SHARE_PER_MIN, device_baseline_w  # noqa: E402

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "small.toml"
#: what a device may miss of an offered MTU: its ramp at the start of a command, from where a
#: rebound left it — the settlement's tolerance (10 %) is there for exactly that
RAMP_ALLOWANCE = 0.10

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def world() -> object:
    if not SCENARIO.exists():
        pytest.skip("no shipped scenario")
    return sim_world.World(SCENARIO)


def _history(world: object) -> dict[str, dict[int, int]]:
    out: dict[str, dict[int, int]] = {}
    for m in history_values(world):  # type: ignore[arg-type]
        out.setdefault(m.pod, {})[m.mtu_start_s] = m.e_wh
    return out


def _achieved(device: Device, direction: Direction, w: tuple[int, ...]) -> list[float]:
    """Command ``w`` in every offered MTU; what the device moved per MTU (W, ≥ 0 is the
    offered direction)."""
    sign = -1 if direction is Direction.UP else 1
    commands = [
        Command(f"m{i}", i * SAMPLES_PER_MTU, (i + 1) * SAMPLES_PER_MTU, sign * w[i])
        for i in range(MTUS_PER_DAY)
        if w[i] > 0
    ]
    device.set_commands(commands, 0)
    moved = device.delta_w.reshape(MTUS_PER_DAY, SAMPLES_PER_MTU).mean(axis=1) * sign
    device.set_commands([], 0)
    return [float(x) for x in moved]


def _check(device: Device, resource: ResourceSpec, flex_w: dict[Direction, tuple[int, ...]]) -> int:
    offered = 0
    for direction, w in flex_w.items():
        if not any(w):
            continue
        moved = _achieved(device, direction, w)
        for i in range(MTUS_PER_DAY):
            if w[i] > 0:
                offered += 1
                assert moved[i] >= w[i] * (1 - RAMP_ALLOWANCE), (
                    f"{resource.id} ({resource.kind}) {direction} MTU {i}: offered {w[i]} W, "
                    f"the device moved {moved[i]:.0f} W"
                )
    return offered


def test_every_offered_volume_is_deliverable(world: object) -> None:
    scenario = world.scenario  # type: ignore[attr-defined]
    history = _history(world)
    temperature = temperature_forecast_c(scenario.weather)
    params = FlexParams()
    offered_mtus: dict[str, int] = {}
    for pod in world.pods:  # type: ignore[attr-defined]
        power = pod_power_history(history[pod.code], scenario.day_s, 7)
        for resource in pod.spec.resources:
            flex = resource_flexibility(
                resource,
                available=(resource.available_from_mtu, resource.available_to_mtu),
                history_w=power,
                temperature_c=temperature,
                params=params,
            )
            device = pod.device(resource.id)
            n = _check(device, resource, {Direction.UP: flex.up_w, Direction.DOWN: flex.down_w})
            offered_mtus[resource.kind] = offered_mtus.get(resource.kind, 0) + n
    # the aggregator does offer: every kind of the scenario has offered MTUs
    assert {k for k, n in offered_mtus.items() if n > 0} >= {"pv", "battery", "ev", "hvac"}


@pytest.mark.parametrize("kind", ["heat_pump", "hvac", "other_load"])
def test_loads_without_grid_element_are_deliverable(world: object, kind: str) -> None:
    scenario = world.scenario  # type: ignore[attr-defined]
    pod = world.pods[0]  # type: ignore[attr-defined]
    resource = ResourceSpec(
        id=f"extra-{kind}",
        kind=kind,  # type: ignore[arg-type]
        p_max_kw=100.0,
        comfort_band_c=1.0 if kind != "other_load" else None,
        available_from_mtu=28,
        available_to_mtu=84,
    )
    baseline = device_baseline_w(scenario, pod.spec, pod.index, resource, None, 0)
    ramp = DEFAULT_RAMP_SHARE_PER_MIN[kind] * 100_000 * 4 / 60
    if kind == "other_load":
        from sim.devices import FlexibleLoad

        device: Device = FlexibleLoad(resource.id, 100_000, baseline, ramp, adds_baseline=True)
    else:
        device = ThermalLoad(
            resource.id, kind, 100_000, baseline, 100_000 * 0.5 * 1.0, 1.0, ramp, adds_baseline=True
        )
    flex = resource_flexibility(
        resource,
        available=(0, MTUS_PER_DAY),
        temperature_c=temperature_forecast_c(scenario.weather),
    )
    n = _check(device, resource, {Direction.UP: flex.up_w, Direction.DOWN: flex.down_w})
    assert n > 0
    assert np.isfinite(device.baseline_w).all()
