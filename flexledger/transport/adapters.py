"""The simulated world served over MQTT, so a Light Node or an actor can run in another process.

In one process a Light Node reads ``sim``'s meter and drives its BMS directly, and every actor
follows the same ``ScenarioClock``. Across processes the same three Protocols
(``MeterSource``, ``Bms``, ``Clock``) are implemented here over MQTT:

- meters: request/response with a correlation id on ``{root}/sim/meter/{pod}/req`` →
  ``…/resp`` (``read`` and ``read_range``); a missing reading comes back as ``LookupError``, no
  answer as ``AdapterTimeoutError``;
- BMS: ``{root}/sim/bms/{pod}`` carries the set-point (with the DSO's signature when the caller
  has it, so the world can check it again) and ``…/ack`` the world's acknowledgement;
- clock: the server publishes the clock's state on ``{root}/clock/now`` (retained) every time it
  moves; participants join on ``{root}/clock/register/{name}`` and report on
  ``{root}/clock/done/{name}`` either "finished instant t" or "nothing to do until t". The
  server maps those onto the in-process ``ScenarioClock`` (``register`` / ``finish`` /
  ``sleep_until``), so time advances only when every participant, local or remote, has finished
  the step: exactly the in-process semantics.

Several world processes may share a root: a server answers only for the PODs it holds and stays
silent for the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable, Coroutine, Mapping
from datetime import datetime
from typing import Any, Generic, Literal, Self, TypeVar

from pydantic import BaseModel, Field, model_validator

from flexledger.messages.common import Address, Message, Signature, Signed
from flexledger.messages.market import SetPoint
from flexledger.messages.measurement import MeterReading
from flexledger.protocols import Bms, MeterSource
from flexledger.time import ClockStepError, ScenarioClock, from_s
from flexledger.transport.mqtt import MqttClient, Subscription
from flexledger.transport.topics import DEFAULT_TOPICS, TopicError, Topics
from node.eip712 import Domain, SignatureError
from node.signing import verify_envelope

__all__ = [
    "AdapterError",
    "AdapterTimeoutError",
    "BmsAck",
    "BmsCommand",
    "ClockDone",
    "ClockJoin",
    "ClockState",
    "MeterRequest",
    "MeterResponse",
    "MqttBmsClient",
    "MqttBmsServer",
    "MqttClockClient",
    "MqttClockServer",
    "MqttMeterClient",
    "MqttMeterServer",
    "RemoteFault",
]

log = logging.getLogger(__name__)


class AdapterError(RuntimeError):
    """The other side answered, but with a failure (a BMS refused a set-point, a meter failed)."""


class AdapterTimeoutError(AdapterError, TimeoutError):
    """Nobody answered in time: the world process is down, or on another broker or topic root."""


# -- wire messages (adapter-internal, JSON on MQTT) -------------------------------------------


class RemoteFault(Message):
    """Why a request failed on the serving side. ``lookup``: no such reading (``LookupError``)."""

    kind: Literal["lookup", "rejected", "error"]
    message: str


class MeterRequest(Message):
    id: str
    op: Literal["read", "read_range"]
    t_s: int | None = None
    start_s: int | None = None
    end_s: int | None = None

    @model_validator(mode="after")
    def _args(self) -> MeterRequest:
        if self.op == "read" and self.t_s is None:
            raise ValueError("read needs t_s")
        if self.op == "read_range" and (self.start_s is None or self.end_s is None):
            raise ValueError("read_range needs start_s and end_s")
        return self


class MeterResponse(Message):
    id: str
    readings: list[MeterReading] = Field(default_factory=list)
    fault: RemoteFault | None = None


class BmsCommand(Message):
    """A set-point for the world's BMS; ``signer``/``signature`` are the DSO's, when known."""

    id: str
    setpoint: SetPoint
    signer: Address | None = None
    signature: Signature | None = None


class BmsAck(Message):
    id: str
    fault: RemoteFault | None = None


class ClockState(Message):
    """The scenario clock as its server sees it; retained on ``{root}/clock/now``."""

    now_s: int
    step_s: int
    participants: list[str] = Field(default_factory=list)


class ClockJoin(Message):
    """On ``{root}/clock/register/{name}``: join (or, ``join=False``, leave) the clock."""

    join: bool = True


class ClockDone(Message):
    """On ``{root}/clock/done/{name}``: ``finished_s`` — done with that instant (``finish``);
    ``until_s`` — nothing to do before that instant (``sleep_until``). Exactly one is set."""

    finished_s: int | None = None
    until_s: int | None = None

    @model_validator(mode="after")
    def _one(self) -> ClockDone:
        if (self.finished_s is None) == (self.until_s is None):
            raise ValueError("a clock report has exactly one of finished_s and until_s")
        return self


# -- request/response -------------------------------------------------------------------------

Resp = TypeVar("Resp", MeterResponse, BmsAck)


class _Caller(Generic[Resp]):
    """Client half of a request/response pair: one response subscription, futures by id."""

    def __init__(
        self,
        client: MqttClient,
        request_topic: str,
        response_topic: str,
        response_model: type[Resp],
        timeout_s: float,
        what: str,
        qos: int,
        attempts: int,
    ) -> None:
        self._qos = qos
        self._attempts = attempts
        self._client = client
        self._request_topic = request_topic
        self._response_topic = response_topic
        self._model: type[Resp] = response_model
        self._timeout_s = timeout_s
        self._what = what
        self._pending: dict[str, asyncio.Future[Resp]] = {}
        self._sub: Subscription[Resp] | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        # Subscribe before the first request, or the answer could come before we listen.
        async with self._lock:
            if self._sub is None:
                self._sub = await self._client.subscribe(
                    self._response_topic, self._model, self._on_response
                )

    async def close(self) -> None:
        if self._sub is not None:
            await self._sub.close()
            self._sub = None
        for fut in self._pending.values():
            fut.cancel()
        self._pending.clear()

    async def _on_response(self, _topic: str, response: Resp) -> None:
        fut = self._pending.pop(response.id, None)
        if fut is not None and not fut.done():
            fut.set_result(response)

    async def call(self, request: BaseModel, request_id: str) -> Resp:
        """Send ``request`` and wait for the response with its id; resent (same id) up to
        ``attempts`` times in all when no answer comes in ``timeout_s``."""
        await self.start()
        fut: asyncio.Future[Resp] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = fut
        try:
            for _attempt in range(self._attempts):
                await self._client.publish(
                    self._request_topic, request, qos=self._qos, timeout_s=self._timeout_s
                )
                try:
                    # asyncio.timeout, not wait_for: on 3.11 wait_for can lose a cancellation
                    # that arrives as the future completes.
                    async with asyncio.timeout(self._timeout_s):
                        return await asyncio.shield(fut)
                except TimeoutError:
                    log.debug("no answer from %s yet; asking again", self._what)
            raise AdapterTimeoutError(
                f"no answer from {self._what} on {self._request_topic} within "
                f"{self._attempts} x {self._timeout_s} s: is the world process running, on the "
                f"same broker ({self._client.url}) and topic root, and does it serve this POD?"
            )
        finally:
            self._pending.pop(request_id, None)
            fut.cancel()


class _Server:
    """Server half: a wildcard request subscription; each request handled in its own task so a
    slow meter or BMS does not hold up the other PODs."""

    def __init__(self, client: MqttClient) -> None:
        self._client = client
        self._subs: list[Subscription[Any]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        raise NotImplementedError

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        for sub in self._subs:
            await sub.close()
        self._subs.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def _fault(exc: BaseException) -> RemoteFault:
    kind: Literal["lookup", "rejected", "error"] = (
        "lookup" if isinstance(exc, LookupError) else "error"
    )
    return RemoteFault(kind=kind, message=f"{type(exc).__name__}: {exc}")


# -- meters -----------------------------------------------------------------------------------


class MqttMeterServer(_Server):
    """Answers meter reads for the PODs in ``meters`` (the world side)."""

    def __init__(
        self,
        meters: Mapping[str, MeterSource],
        client: MqttClient,
        *,
        topics: Topics = DEFAULT_TOPICS,
        qos: int = 0,
    ) -> None:
        super().__init__(client)
        self.meters = dict(meters)
        self.topics = topics
        self.qos = qos
        self.served = 0

    async def start(self) -> None:
        self._subs.append(
            await self._client.subscribe(
                self.topics.all_meter_requests(), MeterRequest, self._on_request
            )
        )

    async def _on_request(self, topic: str, request: MeterRequest) -> None:
        try:
            pod = self.topics.parse(topic).pod
        except TopicError as exc:
            log.warning("meter request on a bad topic: %s", exc)
            return
        meter = self.meters.get(pod or "")
        if meter is None:
            log.debug("no meter for %s here; another world process may serve it", pod)
            return
        self._spawn(self._answer(pod or "", meter, request))

    async def _answer(self, pod: str, meter: MeterSource, request: MeterRequest) -> None:
        try:
            if request.op == "read":
                assert request.t_s is not None
                readings = [await meter.read(request.t_s)]
            else:
                assert request.start_s is not None and request.end_s is not None
                readings = await meter.read_range(request.start_s, request.end_s)
            response = MeterResponse(id=request.id, readings=readings)
        except Exception as exc:
            if not isinstance(exc, LookupError):
                log.exception("meter %s failed on %s", pod, request.op)
            response = MeterResponse(id=request.id, fault=_fault(exc))
        self.served += 1
        await self._client.publish(self.topics.meter_response(pod), response, qos=self.qos)


class MqttMeterClient:
    """A POD's meter in another process (implements ``flexledger.protocols.MeterSource``).

    Reads travel at QoS 0 and are asked again once (same correlation id) when no answer comes:
    a read is idempotent, and QoS 1 would cost each read a broker round of acknowledgements
    that, on a broker without TCP_NODELAY, stalls ~40 ms in Nagle's algorithm.
    """

    def __init__(
        self,
        pod: str,
        client: MqttClient,
        *,
        topics: Topics = DEFAULT_TOPICS,
        timeout_s: float = 2.0,
        attempts: int = 2,
        qos: int = 0,
    ) -> None:
        self.pod = pod
        self._caller = _Caller(
            client,
            topics.meter_request(pod),
            topics.meter_response(pod),
            MeterResponse,
            timeout_s,
            f"the meter server for {pod}",
            qos,
            attempts,
        )

    async def start(self) -> None:
        """Subscribe to the answers now (otherwise done on the first read)."""
        await self._caller.start()

    async def close(self) -> None:
        await self._caller.close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _ask(self, request: MeterRequest) -> list[MeterReading]:
        response = await self._caller.call(request, request.id)
        if response.fault is not None:
            if response.fault.kind == "lookup":
                raise LookupError(f"{self.pod}: {response.fault.message}")
            raise AdapterError(f"meter {self.pod}: {response.fault.message}")
        return response.readings

    async def read(self, t_s: int) -> MeterReading:
        readings = await self._ask(MeterRequest(id=uuid.uuid4().hex, op="read", t_s=t_s))
        if len(readings) != 1:
            raise AdapterError(f"meter {self.pod}: expected one reading, got {len(readings)}")
        return readings[0]

    async def read_range(self, start_s: int, end_s: int) -> list[MeterReading]:
        return await self._ask(
            MeterRequest(id=uuid.uuid4().hex, op="read_range", start_s=start_s, end_s=end_s)
        )


# -- BMS --------------------------------------------------------------------------------------


class MqttBmsServer(_Server):
    """Hands set-points to the world's BMS of each POD in ``bmses`` and acknowledges them.

    With ``domain``, a command must carry the DSO's signature and it must verify (the Light Node
    checked it already; the world checks again because it is another trust boundary).
    """

    def __init__(
        self,
        bmses: Mapping[str, Bms],
        client: MqttClient,
        *,
        topics: Topics = DEFAULT_TOPICS,
        domain: Domain | None = None,
    ) -> None:
        super().__init__(client)
        self.bmses = dict(bmses)
        self.topics = topics
        self.domain = domain
        self.applied = 0
        self.rejected = 0

    async def start(self) -> None:
        self._subs.append(
            await self._client.subscribe(
                self.topics.all_bms_setpoints(), BmsCommand, self._on_command
            )
        )

    async def _on_command(self, topic: str, command: BmsCommand) -> None:
        try:
            pod = self.topics.parse(topic).pod or ""
        except TopicError as exc:
            log.warning("BMS command on a bad topic: %s", exc)
            return
        bms = self.bmses.get(pod)
        if bms is None:
            log.debug("no BMS for %s here; another world process may serve it", pod)
            return
        self._spawn(self._apply(pod, bms, command))

    def _check(self, pod: str, command: BmsCommand) -> str | None:
        if command.setpoint.pod != pod:
            return f"set-point for {command.setpoint.pod} sent to the BMS of {pod}"
        if self.domain is None:
            return None
        if command.signer is None or command.signature is None:
            return "unsigned set-point: this world requires the DSO's signature"
        envelope = Signed[SetPoint](
            message=command.setpoint, signer=command.signer, signature=command.signature
        )
        try:
            verify_envelope(envelope, self.domain)
        except SignatureError as exc:
            return f"bad signature: {exc}"
        return None

    async def _apply(self, pod: str, bms: Bms, command: BmsCommand) -> None:
        problem = self._check(pod, command)
        if problem is not None:
            self.rejected += 1
            log.warning("BMS %s rejected a set-point: %s", pod, problem)
            ack = BmsAck(id=command.id, fault=RemoteFault(kind="rejected", message=problem))
        else:
            try:
                await bms.apply(command.setpoint)
                self.applied += 1
                ack = BmsAck(id=command.id)
            except Exception as exc:
                log.exception("BMS %s failed to apply a set-point", pod)
                ack = BmsAck(id=command.id, fault=_fault(exc))
        await self._client.publish(self.topics.bms_ack(pod), ack)


class MqttBmsClient:
    """A POD's BMS in another process (implements ``flexledger.protocols.Bms``): ``apply``
    returns once the world has acknowledged, and raises ``AdapterError`` if it refused."""

    def __init__(
        self,
        pod: str,
        client: MqttClient,
        *,
        topics: Topics = DEFAULT_TOPICS,
        timeout_s: float = 5.0,
    ) -> None:
        self.pod = pod
        self._caller = _Caller(
            client,
            topics.bms_setpoint(pod),
            topics.bms_ack(pod),
            BmsAck,
            timeout_s,
            f"the BMS server for {pod}",
            qos=1,
            attempts=1,
        )

    async def start(self) -> None:
        await self._caller.start()

    async def close(self) -> None:
        await self._caller.close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def apply(self, setpoint: SetPoint) -> None:
        await self._send(BmsCommand(id=uuid.uuid4().hex, setpoint=setpoint))

    async def apply_signed(self, envelope: Signed[SetPoint]) -> None:
        """Like ``apply``, carrying the DSO's signature for a world that checks it."""
        await self._send(
            BmsCommand(
                id=uuid.uuid4().hex,
                setpoint=envelope.message,
                signer=envelope.signer,
                signature=envelope.signature,
            )
        )

    async def _send(self, command: BmsCommand) -> None:
        ack = await self._caller.call(command, command.id)
        if ack.fault is not None:
            raise AdapterError(f"BMS {self.pod} {ack.fault.kind}: {ack.fault.message}")


# -- clock ------------------------------------------------------------------------------------


class MqttClockServer:
    """Serves a ``ScenarioClock`` to participants in other processes.

    It publishes the clock's state (retained) whenever time moves or the participants change,
    registers and unregisters remote participants, and maps their reports onto the clock:
    ``finished_s`` → ``clock.finish(name, t)``; ``until_s`` → ``clock.sleep_until(t, name)``
    (finished for every step before t). Whoever owns the clock keeps driving it
    (``advance`` / ``run_until``); this server never moves time itself.

    Reports from unknown participants or for instants the clock has not reached are refused and
    counted in ``rejected`` (and logged): they are bugs in the participant.
    """

    def __init__(
        self, clock: ScenarioClock, client: MqttClient, *, topics: Topics = DEFAULT_TOPICS
    ) -> None:
        self.clock = clock
        self.topics = topics
        self.rejected = 0
        self._client = client
        self._subs: list[Subscription[Any]] = []
        self._waits: dict[str, asyncio.Task[None]] = {}
        self._watcher: asyncio.Task[None] | None = None
        self._published: ClockState | None = None

    async def start(self) -> None:
        self._subs.append(
            await self._client.subscribe(
                self.topics.all_clock_registers(), ClockJoin, self._on_join
            )
        )
        self._subs.append(
            await self._client.subscribe(self.topics.all_clock_dones(), ClockDone, self._on_done)
        )
        await self._publish_state()
        self._watcher = asyncio.create_task(self._watch(), name="mqtt-clock-watch")
        self._client.add_reconnect_hook(self._republish)

    async def stop(self) -> None:
        """Stop serving and clear the retained state, so nobody follows a dead clock."""
        self._client.remove_reconnect_hook(self._republish)
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None
        for sub in self._subs:
            await sub.close()
        self._subs.clear()
        for task in self._waits.values():
            task.cancel()
        await asyncio.gather(*self._waits.values(), return_exceptions=True)
        self._waits.clear()
        with contextlib.suppress(Exception):
            await self._client.publish(self.topics.clock_now(), b"", retain=True, timeout_s=2.0)

    async def __aenter__(self) -> MqttClockServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def state(self) -> ClockState:
        return ClockState(
            now_s=self.clock.now_s(), step_s=self.clock.step_s, participants=self.clock.participants
        )

    async def _publish_state(self) -> None:
        # QoS 0: the state is retained, re-published after a reconnect, and followers re-read
        # it when they resubscribe; QoS 1 would add broker acknowledgements to every step.
        state = self.state()
        if state == self._published:
            return
        self._published = state
        await self._client.publish(self.topics.clock_now(), state, retain=True, qos=0)

    async def _republish(self) -> None:
        self._published = None
        await self._publish_state()

    async def _watch(self) -> None:
        # Follow the clock through its public API only: wake at every later instant.
        while True:
            t = self.clock.now_s()
            try:
                await self._publish_state()
            except Exception:
                log.exception("could not publish the clock state at %s", from_s(t))
            await self.clock.sleep_until(t + 1)

    def _participant(self, topic: str) -> str | None:
        try:
            return self.topics.parse(topic).participant
        except TopicError as exc:
            log.warning("clock message on a bad topic: %s", exc)
            return None

    async def _on_join(self, topic: str, join: ClockJoin) -> None:
        name = self._participant(topic)
        if name is None:
            return
        if join.join:
            self.clock.register(name)
            log.info("clock participant %s joined at %s", name, self.clock.now())
        else:
            wait = self._waits.pop(name, None)
            if wait is not None:
                wait.cancel()
            await self.clock.unregister(name)
            log.info("clock participant %s left at %s", name, self.clock.now())
        await self._publish_state()

    async def _on_done(self, topic: str, done: ClockDone) -> None:
        name = self._participant(topic)
        if name is None:
            return
        if name not in self.clock.participants:
            self.rejected += 1
            log.warning("clock report from %s, who has not registered", name)
            return
        if done.finished_s is not None:
            try:
                await self.clock.finish(name, done.finished_s)
            except ClockStepError as exc:
                self.rejected += 1
                log.warning("clock report refused: %s", exc)
            return
        assert done.until_s is not None
        previous = self._waits.pop(name, None)
        if previous is not None:
            previous.cancel()
        # ScenarioClock.sleep_until marks the participant finished before t at once, then waits
        # for t; the waiting task is ours to cancel and carries no other state.
        task = asyncio.create_task(self.clock.sleep_until(done.until_s, name))
        self._waits[name] = task
        task.add_done_callback(lambda t: self._forget_wait(name, t))
        await asyncio.sleep(0)  # let the mark land before the next report is handled

    def _forget_wait(self, name: str, task: asyncio.Task[None]) -> None:
        if self._waits.get(name) is task:
            del self._waits[name]


class MqttClockClient:
    """The scenario clock of another process (implements ``flexledger.protocols.Clock``).

    ``start()`` follows the server's retained state and, unless ``register=False``, joins as a
    participant, so time will not move past an instant until this client has finished it
    (``finish``) or declared it has nothing to do before a later one (``sleep_until``).

    Reports travel at QoS 0, because a step's latency is the simulation's speed. What QoS 0 may
    lose is repaired instead: while waiting, the last report is sent again every ``resend_s``
    (reports are idempotent: the clock keeps the latest instant per participant), and after a
    reconnect, or when the server's state no longer lists this participant (a restarted
    server), the client joins again.
    """

    def __init__(
        self,
        name: str,
        client: MqttClient,
        *,
        topics: Topics = DEFAULT_TOPICS,
        timeout_s: float = 10.0,
        resend_s: float = 1.0,
    ) -> None:
        self.name = name
        self.topics = topics
        self.timeout_s = timeout_s
        self.resend_s = resend_s
        self.registered = False
        self._client = client
        self._state: ClockState | None = None
        self._changed = asyncio.Condition()
        self._sub: Subscription[ClockState] | None = None
        self._last_report: ClockDone | None = None
        topics.clock_done(name)  # validate the name now, not at the first report

    async def start(self, register: bool = True) -> None:
        if self._sub is None:
            self._sub = await self._client.subscribe(
                self.topics.clock_now(), ClockState, self._on_state
            )
            self._client.add_reconnect_hook(self._rejoin)
        await self._wait_for(lambda: self._state is not None, "the clock server's state")
        if register and not self.registered:
            await self._join()
            await self._wait_for(
                lambda: self._state is not None and self.name in self._state.participants,
                "the clock server to register this participant",
            )
            self.registered = True

    async def stop(self) -> None:
        """Leave the clock (so it does not wait for us any more) and stop following it."""
        self._client.remove_reconnect_hook(self._rejoin)
        if self.registered:
            self.registered = False
            with contextlib.suppress(Exception):
                await self._client.publish(
                    self.topics.clock_register(self.name), ClockJoin(join=False), timeout_s=2.0
                )
        if self._sub is not None:
            await self._sub.close()
            self._sub = None

    async def __aenter__(self) -> MqttClockClient:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _join(self) -> None:
        await self._client.publish(self.topics.clock_register(self.name), ClockJoin(join=True))

    async def _rejoin(self) -> None:
        if self.registered:
            await self._join()
            await self._report()

    async def _on_state(self, _topic: str, state: ClockState) -> None:
        async with self._changed:
            if self._state is None or state.now_s >= self._state.now_s:
                self._state = state
            self._changed.notify_all()
        if self.registered and self.name not in state.participants:
            log.warning("clock server does not list %s (restarted?); joining again", self.name)
            await self._rejoin()

    async def _wait_for(self, predicate: Callable[[], bool], what: str) -> None:
        try:
            async with asyncio.timeout(self.timeout_s), self._changed:
                await self._changed.wait_for(predicate)
        except TimeoutError:
            raise AdapterTimeoutError(
                f"clock client {self.name}: no sign of {what} within {self.timeout_s} s on "
                f"{self.topics.clock_now()} ({self._client.url}); is the clock server running?"
            ) from None

    def _current(self) -> ClockState:
        if self._state is None:
            raise RuntimeError(f"clock client {self.name} is not started (no clock state yet)")
        return self._state

    def now_s(self) -> int:
        return self._current().now_s

    def now(self) -> datetime:
        return from_s(self.now_s())

    @property
    def step_s(self) -> int:
        return self._current().step_s

    async def _report(self, report: ClockDone | None = None) -> None:
        if report is not None:
            self._last_report = report
        if self._last_report is not None:
            await self._client.publish(self.topics.clock_done(self.name), self._last_report, qos=0)

    async def finish(self, t_s: int | None = None) -> None:
        """Done with everything at ``t_s`` (default: now)."""
        if not self.registered:
            raise RuntimeError(f"clock client {self.name} must start(register=True) to finish")
        await self._report(ClockDone(finished_s=self.now_s() if t_s is None else t_s))

    async def sleep_until(self, t_s: int) -> None:
        """Wait for instant ``t_s``; a registered participant counts as finished before it."""
        if self._current().now_s >= t_s:
            return
        if self.registered:
            await self._report(ClockDone(until_s=t_s))
        while True:
            try:
                async with asyncio.timeout(self.resend_s), self._changed:
                    await self._changed.wait_for(lambda: self._current().now_s >= t_s)
                return
            except TimeoutError:
                if self.registered:
                    await self._report()  # a QoS 0 report may have been lost: say it again
