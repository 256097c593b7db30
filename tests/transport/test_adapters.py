"""Meter, BMS and clock adapters round-trip across two separate MQTT clients (two processes'
worth of connections): the world on one, the Light Node or actor on the other."""

from __future__ import annotations

import asyncio

import pytest

from flexledger.messages import MeterReading, SetPoint
from flexledger.protocols import Bms, Clock, MeterSource
from flexledger.time import ScenarioClock
from flexledger.transport import (
    AdapterError,
    AdapterTimeoutError,
    MqttBmsClient,
    MqttBmsServer,
    MqttClockClient,
    MqttClockServer,
    MqttMeterClient,
    MqttMeterServer,
    Topics,
)
from node.signing import LocalSigner
from tests.transport.helpers import DOMAIN, POD, POD2, T0, MakeClient, eventually, setpoint

pytestmark = pytest.mark.asyncio(loop_scope="session")


class FakeMeter:
    """A meter with readings every 4 s in [T0, T0 + 900)."""

    def __init__(self, pod: str) -> None:
        self.pod = pod

    async def read(self, t_s: int) -> MeterReading:
        if not (T0 <= t_s < T0 + 900) or t_s % 4:
            raise LookupError(f"no reading at {t_s}")
        return MeterReading(pod=self.pod, t_s=t_s, p_w=1000 + t_s - T0, q_var=-50, v_mv=230_500)

    async def read_range(self, start_s: int, end_s: int) -> list[MeterReading]:
        first = max(start_s + (-start_s) % 4, T0)
        return [await self.read(t) for t in range(first, min(end_s, T0 + 900), 4)]


class FakeBms:
    def __init__(self, pod: str, fail: bool = False) -> None:
        self.pod = pod
        self.fail = fail
        self.applied: list[SetPoint] = []

    async def apply(self, setpoint: SetPoint) -> None:
        if self.fail:
            raise RuntimeError("heat pump offline")
        self.applied.append(setpoint)


async def test_meter_round_trip(make_client: MakeClient, topics: Topics) -> None:
    world = await make_client("world")
    node = await make_client("ln")
    async with (
        MqttMeterServer({POD: FakeMeter(POD)}, world, topics=topics) as server,
        MqttMeterClient(POD, node, topics=topics, timeout_s=3) as meter,
    ):
        assert isinstance(meter, MeterSource)
        reading = await meter.read(T0 + 8)
        assert reading == await FakeMeter(POD).read(T0 + 8)
        readings = await meter.read_range(T0, T0 + 60)
        assert [r.t_s for r in readings] == list(range(T0, T0 + 60, 4))
        assert readings == await FakeMeter(POD).read_range(T0, T0 + 60)
        with pytest.raises(LookupError, match="no reading"):
            await meter.read(T0 + 5000)
        # concurrent reads are told apart by their correlation ids
        many = await asyncio.gather(*(meter.read(T0 + 4 * i) for i in range(20)))
        assert [r.t_s for r in many] == [T0 + 4 * i for i in range(20)]
        assert server.served == 23


async def test_meter_nobody_serves_this_pod_times_out_clearly(
    make_client: MakeClient, topics: Topics
) -> None:
    world = await make_client("world")
    node = await make_client("ln")
    async with MqttMeterServer({POD: FakeMeter(POD)}, world, topics=topics):
        meter = MqttMeterClient(POD2, node, topics=topics, timeout_s=0.3)
        with pytest.raises(AdapterTimeoutError, match=f"meter server for {POD2}"):
            await meter.read(T0)
        await meter.close()


async def test_bms_round_trip_with_acknowledgement(
    make_client: MakeClient, topics: Topics, dso: LocalSigner
) -> None:
    world = await make_client("world")
    node = await make_client("ln")
    bms, broken = FakeBms(POD), FakeBms(POD2, fail=True)
    async with (
        MqttBmsServer({POD: bms, POD2: broken}, world, topics=topics) as server,
        MqttBmsClient(POD, node, topics=topics, timeout_s=3) as client,
    ):
        assert isinstance(client, Bms)
        sp = setpoint()
        await client.apply(sp)  # returns only once the world acknowledged
        assert bms.applied == [sp]
        await client.apply_signed(dso.sign(setpoint(seq=2)))
        assert [s.seq for s in bms.applied] == [1, 2]
        with pytest.raises(AdapterError, match=r"rejected.*sent to the BMS of"):
            await client.apply(setpoint(pod=POD2))  # a set-point for another POD
        broken_client = MqttBmsClient(POD2, node, topics=topics, timeout_s=3)
        with pytest.raises(AdapterError, match="heat pump offline"):
            await broken_client.apply(setpoint(pod=POD2))
        await broken_client.close()
        assert server.applied == 2 and server.rejected == 1


async def test_bms_server_that_checks_signatures(
    make_client: MakeClient, topics: Topics, dso: LocalSigner, device: LocalSigner
) -> None:
    world = await make_client("world")
    node = await make_client("ln")
    bms = FakeBms(POD)
    async with (
        MqttBmsServer({POD: bms}, world, topics=topics, domain=DOMAIN),
        MqttBmsClient(POD, node, topics=topics, timeout_s=3) as client,
    ):
        await client.apply_signed(dso.sign(setpoint()))
        with pytest.raises(AdapterError, match="unsigned"):
            await client.apply(setpoint())
        signed = dso.sign(setpoint(power_w=1000))
        forged = signed.model_copy(update={"message": setpoint(power_w=9000)})
        with pytest.raises(AdapterError, match="bad signature"):
            await client.apply_signed(forged)
        assert [s.power_w for s in bms.applied] == [2000]


async def test_clock_advances_only_when_both_remote_participants_are_done(
    make_client: MakeClient, topics: Topics
) -> None:
    clock = ScenarioClock(T0, step_s=4)
    world = await make_client("world")
    a_conn = await make_client("actor-a")
    b_conn = await make_client("actor-b")
    async with (
        MqttClockServer(clock, world, topics=topics) as server,
        MqttClockClient("ln-a", a_conn, topics=topics) as a,
        MqttClockClient("ln-b", b_conn, topics=topics) as b,
    ):
        assert isinstance(a, Clock)
        assert clock.participants == ["ln-a", "ln-b"]
        assert a.now_s() == b.now_s() == T0 and a.step_s == 4

        step = asyncio.create_task(clock.advance())
        await a.finish()
        await eventually(lambda: clock.pending() == ["ln-b"])
        await asyncio.sleep(0.05)
        assert not step.done() and clock.now_s() == T0  # b has not finished: time stands still
        await b.finish(T0)
        assert await asyncio.wait_for(step, 5) == T0 + 4
        await eventually(lambda: a.now_s() == b.now_s() == T0 + 4)
        assert a.now().timestamp() == T0 + 4

        # a has nothing to do until T0 + 16; b finishes each step; time moves on b alone,
        # and a wakes exactly at T0 + 16.
        async def driver() -> None:
            await clock.run_until(T0 + 16)

        drive = asyncio.create_task(driver())
        sleeper = asyncio.create_task(a.sleep_until(T0 + 16))
        for t in (T0 + 4, T0 + 8, T0 + 12):
            await b.sleep_until(t + 4)  # finished t, wait for the next step
            assert b.now_s() == t + 4
        await asyncio.wait_for(drive, 5)
        await asyncio.wait_for(sleeper, 5)
        assert a.now_s() == T0 + 16 and clock.now_s() == T0 + 16
        assert server.rejected == 0

        # a report for an instant the clock has not reached is refused, not applied
        await b.finish(T0 + 400)
        await eventually(lambda: server.rejected == 1)

        # a participant that stops leaves the clock, which no longer waits for it
        await b.stop()
        await eventually(lambda: clock.participants == ["ln-a"])
        await a.finish()
        assert await asyncio.wait_for(clock.advance(), 5) == T0 + 20


async def test_clock_client_without_server_times_out(
    make_client: MakeClient, topics: Topics
) -> None:
    conn = await make_client("lonely")
    client = MqttClockClient("ln-x", conn, topics=topics, timeout_s=0.3)
    with pytest.raises(AdapterTimeoutError, match="clock server"):
        await client.start()
    await client.stop()
    with pytest.raises(RuntimeError, match="not started"):
        client.now_s()


async def test_observer_follows_without_holding_the_clock(
    make_client: MakeClient, topics: Topics
) -> None:
    clock = ScenarioClock(T0, step_s=4)
    world = await make_client("world")
    conn = await make_client("observer")
    async with MqttClockServer(clock, world, topics=topics):
        observer = MqttClockClient("auditor", conn, topics=topics)
        await observer.start(register=False)
        waiting = asyncio.create_task(observer.sleep_until(T0 + 8))
        await clock.run_until(T0 + 8)  # nobody registered: time moves freely
        await asyncio.wait_for(waiting, 5)
        assert observer.now_s() == T0 + 8 and clock.participants == []
        with pytest.raises(RuntimeError, match="register"):
            await observer.finish()
        await observer.stop()


async def test_clock_participant_rejoins_a_restarted_server(
    make_client: MakeClient, topics: Topics
) -> None:
    """A new server process knows nobody: the participant joins again by itself, and the new
    clock waits for it."""
    world = await make_client("world")
    conn = await make_client("actor")
    first = ScenarioClock(T0, step_s=4)
    async with MqttClockServer(first, world, topics=topics):
        actor = MqttClockClient("ln-a", conn, topics=topics, resend_s=0.1)
        await actor.start()
    assert actor.registered  # the client outlives the server

    second = ScenarioClock(T0 + 40, step_s=4)
    async with MqttClockServer(second, world, topics=topics):
        await eventually(lambda: second.participants == ["ln-a"])
        step = asyncio.create_task(second.advance())
        await eventually(lambda: actor.now_s() == T0 + 40)
        assert not step.done()  # waits for the re-joined participant
        waiting = asyncio.create_task(actor.sleep_until(T0 + 44))
        assert await asyncio.wait_for(step, 5) == T0 + 44
        await asyncio.wait_for(waiting, 5)
        await actor.stop()
