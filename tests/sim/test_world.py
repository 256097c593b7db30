"""The world's day: reproducible, consistent with its power flow, and moved by set-points as the
devices' models say (after the delay, partially, or not at all)."""

from __future__ import annotations

import numpy as np
import pytest

from flexledger.messages import SetPoint
from flexledger.scenario import Scenario
from flexledger.time import DAY_S, MTU_S, SAMPLE_PERIOD_S, SAMPLES_PER_MTU
from flexledger.units import Direction
from sim import World, history_values
from tests.sim.conftest import MakeWorld

# PODs of scenarios/small.toml
HALL = "IT001E00000001"  # 250 kWp PV + 100 kW battery at the end of LV feeder 1
BAT_419 = "IT001E00000003"  # 15.4 kW battery, responds 90 % (the scenario's default)
BAT_433 = "IT001E00000004"  # 10 kW home battery, responds 60 %
EV_402 = "IT001E00000007"  # 22 kW EV charger
EV_412 = "IT001E00000010"  # 22 kW EV charger, the customer ignores set-points


def _setpoint(pod: str, day_s: int, mtu: int, direction: Direction, power_w: int, count: int = 1,
              seq: int = 1) -> SetPoint:  # fmt: skip
    return SetPoint(
        order_hash="0x" + f"{seq:064x}",
        pod=pod,
        direction=direction,
        mtu_start_s=day_s + mtu * MTU_S,
        mtu_count=count,
        power_w=power_w,
        seq=seq,
        expiry_s=day_s + DAY_S,
    )


def _day(world: World, pod: str) -> np.ndarray:
    return world.samples(pod, world.day_s, world.day_s + DAY_S).p_w


def test_the_same_seed_gives_the_same_day(make_world: MakeWorld, small_world: World) -> None:
    again = make_world(share_grid=False)  # grid, profiles and power flows built anew
    for pod in small_world.pod_codes:
        a = small_world.samples(pod, small_world.day_s, small_world.day_s + DAY_S)
        b = again.samples(pod, again.day_s, again.day_s + DAY_S)
        assert len(a) == DAY_S // SAMPLE_PERIOD_S
        for field in ("t_s", "p_w", "q_var", "v_mv"):
            assert np.array_equal(getattr(a, field), getattr(b, field)), (pod, field)
    assert [v.e_wh for v in history_values(small_world)] == [v.e_wh for v in history_values(again)]


def test_another_seed_gives_another_day(make_world: MakeWorld, small_scenario: Scenario) -> None:
    other = make_world(small_scenario.model_copy(update={"seed": small_scenario.seed + 1}))
    same = make_world()
    assert not np.array_equal(_day(other, HALL), _day(same, HALL))


def test_samples_carry_the_power_flow_energy(small_world: World) -> None:
    """The 4 s variation is zero-mean within each MTU: the samples' MTU means are the power
    flow's injections (up to the rounding to whole W), and V is the MTU's bus voltage."""
    w = small_world
    day = w.true_day(with_activations=True)
    pod = w.pod(HALL)
    from sim.pods import element_power_w

    flow_w = element_power_w(day, pod.elements)
    s = w.samples(HALL, w.day_s, w.day_s + DAY_S)
    means = s.p_w.reshape(-1, SAMPLES_PER_MTU).mean(axis=1)
    assert np.allclose(means, flow_w, atol=0.51)
    assert s.p_w.reshape(-1, SAMPLES_PER_MTU).std(axis=1).max() > 0  # there is 4 s variation
    vm, _, _ = w.truth.latest()
    bus = w.grid.flow.bus_positions([pod.bus])[0]
    volts = s.v_mv.reshape(-1, SAMPLES_PER_MTU).mean(axis=1) / 1000
    assert np.allclose(volts, vm[:, bus] * 400 / np.sqrt(3), rtol=2e-4)
    # noon on LV feeder 1: the hall's PV exports and its bus is above 1.05 p.u.
    assert flow_w[48] < -100_000 and vm[48, bus] > 1.05


@pytest.mark.parametrize(
    ("pod", "direction", "power_w", "factor"),
    [
        (BAT_419, Direction.UP, 10_000, 0.9),  # discharges 90 % of it
        (BAT_433, Direction.UP, 5_000, 0.6),  # a partial responder
        (BAT_419, Direction.DOWN, 8_000, 0.9),  # charges
        (EV_412, Direction.UP, 11_000, 0.0),  # ignores the signal
    ],
)
def test_a_setpoint_moves_the_meter_as_the_device_model_says(
    make_world: MakeWorld, pod: str, direction: Direction, power_w: int, factor: float
) -> None:
    world, twin = make_world(), make_world()
    mtu = 78  # 19:30: the EVs charge, the batteries are free
    received = world.day_s + mtu * MTU_S - 600
    signals = world.bms[pod].apply_now(
        _setpoint(pod, world.day_s, mtu, direction, power_w, count=2), received_s=received
    )
    assert signals and all(s.pod == pod for s in signals)
    diff = _day(world, pod) - _day(twin, pod)
    t = world.day_s + np.arange(len(diff)) * SAMPLE_PERIOD_S
    start = world.day_s + mtu * MTU_S
    delay = world.pod(pod).response_delay_s
    before = t < start + delay
    during = (t >= start + delay) & (t < start + 2 * MTU_S)
    after = t >= start + 2 * MTU_S
    expected = -direction.sign * power_w * factor
    assert np.all(np.abs(diff[before]) <= 1)  # nothing before the delay has passed
    assert np.all(np.abs(diff[during] - expected) <= 1)
    assert np.all(np.abs(diff[after]) <= 1)  # a battery keeps its new SoC: no rebound


def test_an_ev_defers_and_catches_up(make_world: MakeWorld) -> None:
    world, twin = make_world(), make_world()
    mtu = 74  # 18:30, charging
    world.bms[EV_402].apply_now(
        _setpoint(EV_402, world.day_s, mtu, Direction.UP, 22_000), received_s=world.day_s
    )
    diff = _day(world, EV_402) - _day(twin, EV_402)
    k = (mtu * MTU_S + 60) // SAMPLE_PERIOD_S  # after the 60 s delay
    assert np.all(np.abs(diff[k : (mtu + 1) * SAMPLES_PER_MTU] + 22_000 * 0.9) <= 1)
    assert diff[(mtu + 1) * SAMPLES_PER_MTU :].sum() > 0  # the deferred energy comes back
    assert abs(diff.sum()) <= len(diff)  # all of it (within the rounding of every sample)


def test_what_was_read_never_changes(make_world: MakeWorld) -> None:
    """A set-point acts from the instant after its receipt: samples up to it, voltages
    included, stay what they were, even in the MTU it changes."""
    world = make_world()
    mtu = 48
    received = world.day_s + mtu * MTU_S + 300
    before = world.samples(HALL, world.day_s, received + 1)
    world.bms[HALL].apply_now(
        _setpoint(HALL, world.day_s, mtu, Direction.DOWN, 100_000, count=2), received_s=received
    )
    after = world.samples(HALL, world.day_s, world.day_s + DAY_S)
    n = len(before)
    for field in ("p_w", "q_var", "v_mv"):
        assert np.array_equal(getattr(before, field), getattr(after, field)[:n])
    # what comes after moves: the hall curtails and charges, its bus voltage drops
    k = (received + 120 - world.day_s) // SAMPLE_PERIOD_S
    twin = make_world().samples(HALL, world.day_s, world.day_s + DAY_S)
    assert after.p_w[k] - twin.p_w[k] == pytest.approx(90_000, abs=1)
    assert after.v_mv[k] < twin.v_mv[k]
    assert world.truth.runs >= 2 and len(world.truth.states(mtu)) == 2


def test_a_meter_reads_only_what_has_happened(make_world: MakeWorld) -> None:
    import asyncio

    world = make_world(start_s=make_world().day_s + 12 * 3600)
    meter = world.meters[HALL]
    now = world.clock.now_s()
    reading = asyncio.run(meter.read(now))
    assert reading.t_s == now and reading.pod == HALL
    with pytest.raises(LookupError):
        asyncio.run(meter.read(now + SAMPLE_PERIOD_S))
    readings = asyncio.run(meter.read_range(now - 40, now + 400))
    assert [r.t_s for r in readings] == list(range(now - 40, now + 1, SAMPLE_PERIOD_S))
    assert readings[-1] == reading


def test_history_is_weeks_of_quarter_hours_before_the_day(small_world: World) -> None:
    values = history_values(small_world)
    days = small_world.scenario.history_days
    assert len(values) == len(small_world.pods) * days * 96
    assert all(v.source == "history" and not v.certified for v in values[:10])
    starts = sorted({v.mtu_start_s for v in values})
    assert starts[0] == small_world.day_s - days * DAY_S and starts[-1] == small_world.day_s - MTU_S
