"""A Light Node whose meter, clock and BMS are the simulated world's, in another process: over
MQTT through the transport adapters (what ``lightnode run --meter-mqtt --clock-mqtt
--bms-mqtt`` wires)."""

from __future__ import annotations

from pathlib import Path

import pytest

from flexledger.time import ScenarioClock
from flexledger.transport import (
    MqttBmsClient,
    MqttBmsServer,
    MqttClockClient,
    MqttClockServer,
    MqttMeterClient,
    MqttMeterServer,
    Topics,
)
from lightnode import CsvMeter, LightNode, LogBms
from node.signing import LocalSigner
from tests.lightnode.conftest import METER_CSV, T0, WINDOW_S, Chain, MakeClient, fast_settings
from tests.lightnode.helpers import eventually, setpoint

pytestmark = pytest.mark.asyncio(loop_scope="session")

POD = "IT001E00000002"


async def test_meter_clock_and_bms_over_mqtt(
    chain: Chain, make_client: MakeClient, topics: Topics, tmp_path: Path
) -> None:
    # The world: its clock, its meter and its BMS, served over MQTT.
    world = make_client("world")
    await world.start(wait_s=5)
    clock = ScenarioClock(T0)
    world_bms = LogBms(POD)
    servers: list[MqttClockServer | MqttMeterServer | MqttBmsServer] = [
        MqttClockServer(clock, world, topics=topics),
        MqttMeterServer({POD: CsvMeter(METER_CSV, POD)}, world, topics=topics),
        MqttBmsServer({POD: world_bms}, world, topics=topics, domain=chain.domain),
    ]
    for server in servers:
        await server.start()

    # The Light Node's side, wired as the CLI does.
    mqtt = make_client("ln")
    remote_clock = MqttClockClient(f"ln-{POD}", mqtt, topics=topics)
    node = LightNode(
        POD,
        account=chain.device(POD),
        meter=MqttMeterClient(POD, mqtt, topics=topics),
        clock=remote_clock,
        mqtt=mqtt,
        contracts=chain.c,
        buffer=tmp_path / "ln.sqlite",
        domain=chain.domain,
        bms=MqttBmsClient(POD, mqtt, topics=topics),
        topics=topics,
        settings=fast_settings(),
        start_s=T0,
    )
    await node.subscribe()
    await mqtt.start(wait_s=5)
    await remote_clock.start(register=False)
    await node.start()
    try:
        await clock.advance(WINDOW_S + 4)
        await eventually(lambda: node.health.windows_anchored == 1, what="a window anchored")
        await eventually(lambda: node.health.samples_read == 227, what="the next window's start")
        assert node.health.meter_gaps == 0

        sp = setpoint(POD, seq=9, mtu_start_s=T0 + WINDOW_S, expiry_s=T0 + 2 * WINDOW_S)
        await world.publish(topics.pod_setpoint(POD), LocalSigner(chain.dso, chain.domain).sign(sp))
        await eventually(lambda: world_bms.applied == [sp], what="the world's BMS obeys")
        assert node.health.setpoints_accepted == 1 and node.health.bms_errors == 0
    finally:
        await node.stop()
        await remote_clock.stop()
        for server in servers:
            await server.stop()
