"""The world over MQTT: meters, BMS and the scenario clock for actors in other processes, and the
field sensors' readings and the topology events published as the clock reaches them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Self

from flexledger.transport import (
    DEFAULT_TOPICS,
    MqttBmsServer,
    MqttClient,
    MqttClockServer,
    MqttMeterServer,
    Topics,
)
from node.eip712 import Domain
from node.keys import dev_account
from node.signing import LocalSigner
from sim.sensors import TOPOLOGY_SENSOR_ID

if TYPE_CHECKING:
    from sim.world import World

__all__ = ["PUBLISHER", "WorldServer"]

log = logging.getLogger(__name__)

PUBLISHER = "world:grid"
"""The clock participant that publishes sensor readings and topology events."""


class WorldServer:
    """Serves a :class:`~sim.world.World` on one MQTT connection (see ``World.serve_mqtt``).

    ``published``: sensor readings and topology events sent so far.
    """

    def __init__(
        self,
        world: World,
        client: MqttClient,
        *,
        topics: Topics | None = None,
        domain: Domain | None = None,
        verify_setpoints: bool = False,
        publish: bool = True,
    ) -> None:
        self.world = world
        self.client = client
        self.topics = topics or DEFAULT_TOPICS
        self.domain = domain
        self.meter_server = MqttMeterServer(world.meters, client, topics=self.topics)
        self.bms_server = MqttBmsServer(
            world.bms, client, topics=self.topics, domain=domain if verify_setpoints else None
        )
        self.clock_server = MqttClockServer(world.clock, client, topics=self.topics)
        self.publish = publish and domain is not None
        self.published = 0
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.meter_server.start()
        await self.bms_server.start()
        await self.clock_server.start()
        if self.publish:
            self.world.clock.register(PUBLISHER)
            self._task = asyncio.create_task(self._publish_loop(), name="world-grid-publisher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
            await self.world.clock.unregister(PUBLISHER)
        await self.clock_server.stop()
        await self.bms_server.stop()
        await self.meter_server.stop()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _publish_loop(self) -> None:
        world = self.world
        clock = world.clock
        assert self.domain is not None
        signers = {
            sid: LocalSigner(dev_account(f"sensor:{sid}"), self.domain)
            for sid in world.sensor_ids()
        }
        topo = world.topology_feed()
        sensors = world.sensors
        done_until = clock.now_s()  # everything before this instant is published
        while True:
            now = clock.now_s()
            for sensor in sensors:
                for t in sensor.times(done_until, now + 1):
                    envelope = signers[sensor.id].sign(sensor.reading(t))
                    await self.client.publish(self.topics.grid_measure(sensor.id), envelope)
                    self.published += 1
            for event in topo.due(done_until, now + 1):
                signed_event = signers[TOPOLOGY_SENSOR_ID].sign(event)
                await self.client.publish(self.topics.grid_topology(), signed_event)
                self.published += 1
                log.info(
                    "topology event %s closed=%s at %d", event.element, event.closed, event.t_s
                )
            done_until = now + 1
            upcoming = [s.times(done_until, world.day_s + 2 * 86_400) for s in sensors]
            nexts = [r[0] for r in upcoming if len(r)]
            nxt = topo.next_after(now)
            if nxt is not None:
                nexts.append(nxt)
            if not nexts:
                await clock.mark_until(PUBLISHER, 2**62)
                return
            await clock.sleep_until(min(nexts), PUBLISHER)
