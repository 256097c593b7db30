"""The world served over MQTT (Mosquitto): meters, BMS and the scenario clock round-trip with
the in-process world; sensor readings and topology events arrive signed as the clock passes."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest

from flexledger.messages import SensorReading, SetPoint, Signed, TopologyEvent
from flexledger.time import DAY_S, MTU_S, ScenarioClock
from flexledger.transport import (
    MqttBmsClient,
    MqttClient,
    MqttClockClient,
    MqttMeterClient,
    Topics,
    unique_client_id,
)
from flexledger.units import Direction
from node.eip712 import Domain
from node.keys import dev_account
from node.signing import verify_envelope
from sim import World
from tests.sim.conftest import MakeWorld
from tests.transport.helpers import SHARED_MOSQUITTO, listening

pytestmark = [
    pytest.mark.asyncio(loop_scope="session"),  # the clients' fixture loop is the session's
    pytest.mark.timeout(120),
    pytest.mark.skipif(not listening("127.0.0.1", 1883), reason="no Mosquitto on :1883"),
]
DOMAIN = Domain(chain_id=31337, verifying_contract="0x" + "22" * 20)
POD = "IT001E00000004"  # 10 kW home battery, responds 60 %


@pytest.fixture
def worlds(make_world: MakeWorld) -> tuple[World, World]:
    """A world and its twin, built before any MQTT client connects (building one blocks the
    event loop for a while the first time: the grid is loaded)."""
    return make_world(), make_world()


@pytest.fixture
async def clients(worlds: tuple[World, World]) -> AsyncIterator[tuple[MqttClient, MqttClient]]:
    world_side = MqttClient(SHARED_MOSQUITTO, unique_client_id("world", "test"), timeout_s=5)
    actor_side = MqttClient(SHARED_MOSQUITTO, unique_client_id("actor", "test"), timeout_s=5)
    await world_side.start(wait_s=5)
    await actor_side.start(wait_s=5)
    yield world_side, actor_side
    await actor_side.close()
    await world_side.close()


async def test_meter_bms_and_clock_round_trip(
    worlds: tuple[World, World], clients: tuple[MqttClient, MqttClient]
) -> None:
    world, twin = worlds
    world_side, actor_side = clients
    topics = Topics(f"test-{uuid.uuid4().hex[:10]}/flex")
    start = world.day_s + 17 * 3600
    world.clock = ScenarioClock(start)
    async with world.serve_mqtt(world_side, topics=topics):
        meter = MqttMeterClient(POD, actor_side, topics=topics)
        bms = MqttBmsClient(POD, actor_side, topics=topics)
        clock = MqttClockClient("ln:test", actor_side, topics=topics, timeout_s=5)
        await meter.start()
        await bms.start()
        await clock.start()
        local = world.samples(POD, start - 400, start + 1)
        remote = await meter.read_range(start - 400, start + 400)  # the future is not there
        assert [(r.t_s, r.p_w, r.q_var, r.v_mv) for r in remote] == list(
            zip(local.t_s.tolist(), local.p_w.tolist(), local.q_var.tolist(),
                local.v_mv.tolist(), strict=True)
        )  # fmt: skip
        assert await meter.read(start) == remote[-1]

        # the clock waits for the remote participant
        driver = asyncio.create_task(world.run(start + 8))
        await asyncio.sleep(0.3)
        assert world.clock.now_s() == start and "ln:test" in world.clock.pending()
        await clock.finish(start)
        await clock.sleep_until(start + 8)
        await asyncio.wait_for(driver, 5)
        assert world.clock.now_s() == start + 8 == clock.now_s()

        # a set-point through the BMS adapter moves the meter from the next MTU on (+ delay)
        mtu = (start - world.day_s) // MTU_S + 1
        sp = SetPoint(
            order_hash="0x" + "ab" * 32,
            pod=POD,
            direction=Direction.UP,
            mtu_start_s=world.day_s + mtu * MTU_S,
            mtu_count=1,
            power_w=5_000,
            seq=1,
            expiry_s=world.day_s + DAY_S,
        )
        await bms.apply(sp)
        assert world.bms[POD].setpoints == [sp] and world.bms[POD].signals
        t = world.day_s + mtu * MTU_S + 120
        moved = world.samples(POD, t, t + 1).p_w[0] - twin.samples(POD, t, t + 1).p_w[0]
        assert moved == pytest.approx(-3_000, abs=1)
        await clock.stop()
        await bms.close()
        await meter.close()


async def test_sensors_and_topology_events_are_published_signed(
    worlds: tuple[World, World], clients: tuple[MqttClient, MqttClient]
) -> None:
    world, _ = worlds
    world_side, actor_side = clients
    topics = Topics(f"test-{uuid.uuid4().hex[:10]}/flex")
    start = world.day_s + 60 * MTU_S - 120  # two minutes before the 15:00 outage
    world.clock = ScenarioClock(start)
    got: list[tuple[str, Any]] = []

    async def on_reading(topic: str, env: Signed[SensorReading]) -> None:
        got.append((topic, env))

    async def on_event(topic: str, env: Signed[TopologyEvent]) -> None:
        got.append((topic, env))

    await actor_side.subscribe(topics.all_grid_measures(), Signed[SensorReading], on_reading)
    await actor_side.subscribe(topics.grid_topology(), Signed[TopologyEvent], on_event)
    async with world.serve_mqtt(world_side, topics=topics, domain=DOMAIN) as server:
        await world.run(start + 180)
        for _ in range(50):
            if len(got) >= server.published:
                break
            await asyncio.sleep(0.05)
    sensors = len(world.scenario.sensors)
    events = [e for _, e in got if isinstance(e.message, TopologyEvent)]
    readings = [e for _, e in got if isinstance(e.message, SensorReading)]
    assert len(readings) == 4 * sensors  # readings at 14:58, 14:59, 15:00 and 15:01
    assert [(e.message.element, e.message.closed) for e in events] == [
        ("line:90", False),
        ("switch:247", True),
    ]
    for env in events + readings:
        name = "scada" if isinstance(env.message, TopologyEvent) else env.message.sensor_id
        assert verify_envelope(env, DOMAIN) == dev_account(f"sensor:{name}").address
    volts = [r.message.v_mv for r in readings if r.message.sensor_id == "vc-95"]
    assert all(11_000_000 < v < 12_500_000 for v in volts)  # 20 kV bus, phase voltage
    amps = [r.message.i_ma for r in readings if r.message.sensor_id == "ied-164"]
    assert all(a > 0 for a in amps)
    # after the outage the world's truth runs in the new configuration
    assert world.configs[60] != world.configs[59]
    assert np.isfinite(world.truth.state(60).vm_pu).sum() == len(world.grid.flow.bus_index)
