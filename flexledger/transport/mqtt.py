"""MQTT on aiomqtt: one reconnecting connection per process, typed publish and subscribe.

Why a wrapper and not bare ``aiomqtt.Client``: a Light Node, the SCD or the simulated world each
run several subscribers (measurements, set-points, adapters, the clock) over one connection, must
keep running through a broker restart, and must never die because one peer published garbage.
``MqttClient`` therefore

- owns the connection and reconnects with capped, jittered exponential back-off, re-subscribing
  every filter after each reconnect (a clean session forgets them);
- dispatches each incoming message to every subscription whose filter matches, each subscription
  with its own queue and worker task, so a slow handler delays only its own topic and a handler
  may itself wait for another message (request/response) without deadlocking the dispatcher;
- decodes payloads into pydantic models (``Signed[MeasurementBatch]`` or plain messages) and,
  optionally, verifies EIP-712 signatures; a payload that does not decode or verify is counted
  and reported to a callback, never raised into the loop;
- publishes pydantic models as JSON at QoS 1, waiting through a reconnect rather than failing at
  the first dropped connection (a redelivered duplicate is harmless: the protocol treats the same
  bytes twice as an idempotent duplicate).

Works with any MQTT 3.1.1 broker (Mosquitto, amqtt) and with MQTT 5 brokers (``mqtt5=True``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import secrets
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, cast
from urllib.parse import unquote, urlsplit

import aiomqtt
from pydantic import BaseModel, TypeAdapter, ValidationError

from flexledger.messages.common import Signed
from node.eip712 import Domain, SignatureError
from node.signing import verify_envelope

__all__ = [
    "DecodeError",
    "MqttClient",
    "MqttUnavailableError",
    "MqttUrl",
    "Subscription",
    "SubscriptionStats",
    "connect",
    "decode_payload",
    "encode_payload",
    "parse_mqtt_url",
    "topic_matches",
    "unique_client_id",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: ``handler(topic, value)``: what a subscription calls for each decoded message.
Handler = Callable[[str, T], Awaitable[None]]
#: ``on_invalid(topic, payload, error)``: told about each payload that failed to decode/verify.
InvalidCallback = Callable[[str, bytes, Exception], None]


class MqttUnavailableError(ConnectionError):
    """The broker could not be reached (or lost) for longer than the caller was ready to wait."""


class DecodeError(ValueError):
    """A payload that is not the expected model (bad JSON, wrong fields, failed validation)."""


# -- URLs -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MqttUrl:
    """Where the broker is: ``mqtt://[user[:pass]@]host[:port]`` (``mqtts://`` for TLS)."""

    host: str
    port: int = 1883
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False

    def __str__(self) -> str:
        # Never print the password: URLs end up in logs.
        auth = f"{self.username}@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{auth}{self.host}:{self.port}"


def parse_mqtt_url(url: str | MqttUrl) -> MqttUrl:
    """Parse ``FLEX_MQTT_URL``; ``ValueError`` naming what is wrong."""
    if isinstance(url, MqttUrl):
        return url
    if not isinstance(url, str) or not url.strip():
        raise ValueError("an MQTT URL is mqtt://host:port (FLEX_MQTT_URL), got an empty value")
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in ("mqtt", "tcp", "mqtts", "ssl"):
        raise ValueError(f"MQTT URL {url!r}: scheme must be mqtt:// or mqtts://, not {scheme!r}://")
    tls = scheme in ("mqtts", "ssl")
    if not parts.hostname:
        raise ValueError(f"MQTT URL {url!r} has no host")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"MQTT URL {url!r}: a broker URL has no path, query or fragment")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"MQTT URL {url!r}: {exc}") from None
    return MqttUrl(
        host=parts.hostname,
        port=port if port is not None else (8883 if tls else 1883),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        tls=tls,
    )


def unique_client_id(name: str, prefix: str = "flex") -> str:
    """A client id that no other process uses: two clients with one id knock each other off the
    broker in an endless reconnect fight. Use a stable id only with ``clean_session=False``."""
    return f"{prefix}-{name}-{secrets.token_hex(4)}"


# -- payloads ---------------------------------------------------------------------------------


def encode_payload(value: BaseModel | bytes | str | dict[str, Any] | list[Any]) -> bytes:
    """JSON bytes of a pydantic model (or raw bytes / text / plain JSON data).

    ``serialize_as_any``: a ``Signed`` envelope built without its type parameter holds its
    message as the ``SignedMessage`` base, and would otherwise serialise it without its fields.
    """
    if isinstance(value, BaseModel):
        return value.model_dump_json(serialize_as_any=True).encode()
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if isinstance(value, str):
        return value.encode()
    return json.dumps(value, separators=(",", ":")).encode()


_ADAPTERS: dict[Any, TypeAdapter[Any]] = {}


def decode_payload(model: type[T] | TypeAdapter[T], payload: bytes | bytearray | str) -> T:
    """Decode JSON into ``model`` (a pydantic model class, ``Signed[X]``, or any type pydantic
    validates); ``DecodeError`` with pydantic's explanation when it does not fit."""
    if isinstance(model, TypeAdapter):
        adapter: TypeAdapter[Any] = model
    else:
        cached = _ADAPTERS.get(model)
        adapter = cached if cached is not None else TypeAdapter(cast(Any, model))
        _ADAPTERS[model] = adapter
    try:
        return cast(T, adapter.validate_json(payload))
    except ValidationError as exc:
        raise DecodeError(str(exc)) from exc


def _payload_bytes(payload: Any) -> bytes:
    if payload is None:
        return b""
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    return str(payload).encode()


# -- topic filters ----------------------------------------------------------------------------


def topic_matches(topic_filter: str, topic: str) -> bool:
    """Whether a concrete ``topic`` matches an MQTT filter with ``+`` and ``#`` wildcards."""
    return _match(tuple(topic_filter.split("/")), topic.split("/"))


def _match(filt: tuple[str, ...], levels: list[str]) -> bool:
    # [MQTT-4.7.2-1]: wildcards at the first level do not match topics starting with '$'.
    if levels and levels[0].startswith("$") and filt and filt[0] in ("+", "#"):
        return False
    for i, f in enumerate(filt):
        if f == "#":
            return True
        if i >= len(levels):
            return False
        if f != "+" and f != levels[i]:
            return False
    return len(filt) == len(levels)


# -- subscriptions ----------------------------------------------------------------------------


@dataclass
class SubscriptionStats:
    """What a subscription saw; ``malformed`` and ``bad_signature`` payloads were dropped."""

    received: int = 0
    delivered: int = 0
    empty: int = 0  # cleared retained messages
    malformed: int = 0
    bad_signature: int = 0
    handler_errors: int = 0


class Subscription(Generic[T]):
    """One filter, one decoder, one handler, with its own queue and worker task.

    Made by ``MqttClient.subscribe``; ``await sub.close()`` to stop receiving.
    """

    def __init__(
        self,
        owner: MqttClient,
        topic_filter: str,
        qos: int,
        decode: Callable[[bytes], T],
        handler: Handler[T],
        on_invalid: InvalidCallback | None,
        domain: Domain | None,
    ) -> None:
        self.topic_filter = topic_filter
        self.qos = qos
        self.stats = SubscriptionStats()
        self._filter = tuple(topic_filter.split("/"))
        self._owner = owner
        self._decode = decode
        self._handler = handler
        self._on_invalid = on_invalid
        self._domain = domain
        self._queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
        self._task = asyncio.create_task(self._run(), name=f"mqtt-sub {topic_filter}")

    def matches(self, topic: str) -> bool:
        return _match(self._filter, topic.split("/"))

    def _put(self, topic: str, payload: bytes) -> None:
        self._queue.put_nowait((topic, payload))

    async def close(self) -> None:
        """Stop this subscription (the broker subscription goes when its last user goes)."""
        await self._owner._remove(self)

    async def _stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def drain(self) -> None:
        """Wait until every message received so far has been handled (tests, shutdown)."""
        await self._queue.join()

    async def _run(self) -> None:
        while True:
            topic, payload = await self._queue.get()
            try:
                await self._one(topic, payload)
            finally:
                self._queue.task_done()

    async def _one(self, topic: str, payload: bytes) -> None:
        self.stats.received += 1
        if not payload:
            self.stats.empty += 1
            return
        try:
            value = self._decode(payload)
            if self._domain is not None:
                if not isinstance(value, Signed):
                    raise DecodeError("a verified subscription needs a Signed[...] model")
                verify_envelope(value, self._domain)
        except SignatureError as exc:
            self.stats.bad_signature += 1
            self._report(topic, payload, exc)
            return
        except (DecodeError, ValueError) as exc:
            self.stats.malformed += 1
            self._report(topic, payload, exc)
            return
        try:
            await self._handler(topic, value)
            self.stats.delivered += 1
        except Exception:
            self.stats.handler_errors += 1
            log.exception(
                "MQTT handler for %s failed on a message from %s", self.topic_filter, topic
            )

    def _report(self, topic: str, payload: bytes, exc: Exception) -> None:
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        log.warning("dropped a %d-byte payload on %s: %s", len(payload), topic, first_line)
        if self._on_invalid is not None:
            try:
                self._on_invalid(topic, payload, exc)
            except Exception:
                log.exception("on_invalid callback failed for %s", topic)


# -- the client -------------------------------------------------------------------------------


class MqttClient:
    """One MQTT connection that survives broker restarts; shared by every subscriber of a process.

    ``async with MqttClient(url, client_id) as mqtt:`` (or ``connect(...)``) starts it and waits
    for the first connection. ``clean_session=False`` with a stable id asks the broker to keep the
    subscriptions and queue QoS 1 messages while this client is away (and, with persistence,
    across a broker restart); the default clean session re-subscribes on every reconnect and
    misses what was published meanwhile. ``clean_session`` is an MQTT 3.1.1 flag: with
    ``mqtt5=True`` the session ends with the connection (no session expiry is asked).
    Sockets are ``TCP_NODELAY``; brokers should be too (Mosquitto: ``set_tcp_nodelay true``).
    """

    def __init__(
        self,
        url: str | MqttUrl,
        client_id: str,
        *,
        keepalive_s: int = 20,
        clean_session: bool = True,
        mqtt5: bool = False,
        timeout_s: float = 10.0,
        backoff_min_s: float = 0.05,
        backoff_max_s: float = 2.0,
        will: aiomqtt.Will | None = None,
    ) -> None:
        self.url = parse_mqtt_url(url)
        self.client_id = client_id
        self.keepalive_s = keepalive_s
        self.clean_session = clean_session
        self.mqtt5 = mqtt5
        self.timeout_s = timeout_s
        self.backoff_min_s = backoff_min_s
        self.backoff_max_s = backoff_max_s
        self._will = will
        self.connects = 0  # successful connections, the first one included
        self._client: aiomqtt.Client | None = None
        self._up = asyncio.Event()
        self._down = asyncio.Event()
        self._down.set()
        self._subs: list[Subscription[Any]] = []
        self._filters: dict[str, int] = {}  # filter -> highest QoS asked
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._hooks: list[Callable[[], Awaitable[None]]] = []
        self._hook_tasks: set[asyncio.Task[None]] = set()

    # -- lifecycle --------------------------------------------------------------------------
    async def start(self, wait_s: float | None = None) -> None:
        """Start connecting; with ``wait_s``, wait that long for the first connection."""
        if self._task is None:
            self._closing = False
            self._task = asyncio.create_task(self._supervise(), name=f"mqtt {self.client_id}")
        if wait_s is not None:
            await self.wait_connected(wait_s)

    async def close(self) -> None:
        """Stop every subscription and disconnect cleanly."""
        self._closing = True
        for sub in list(self._subs):
            await sub._stop()
        self._subs.clear()
        self._filters.clear()
        for task in list(self._hook_tasks):
            task.cancel()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await self._task
            self._task = None

    async def __aenter__(self) -> MqttClient:
        try:
            await self.start(wait_s=self.timeout_s)
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def connected(self) -> bool:
        return self._up.is_set()

    @property
    def started(self) -> bool:
        return self._task is not None

    async def wait_connected(self, timeout_s: float | None = None) -> None:
        """Wait until connected and every subscription is in place again."""
        if self._task is None:
            raise RuntimeError("MqttClient is not started")
        try:
            await asyncio.wait_for(self._up.wait(), timeout_s)
        except TimeoutError:
            raise MqttUnavailableError(
                f"no MQTT connection to {self.url} within {timeout_s} s (client {self.client_id})"
            ) from None

    async def wait_disconnected(self, timeout_s: float | None = None) -> None:
        """Wait until the connection is down (tests of outages)."""
        await asyncio.wait_for(self._down.wait(), timeout_s)

    def _new_client(self) -> aiomqtt.Client:
        tls = ssl.create_default_context() if self.url.tls else None
        return aiomqtt.Client(
            self.url.host,
            self.url.port,
            username=self.url.username,
            password=self.url.password,
            identifier=self.client_id,
            protocol=aiomqtt.ProtocolVersion.V5 if self.mqtt5 else aiomqtt.ProtocolVersion.V311,
            clean_session=None if self.mqtt5 else self.clean_session,
            keepalive=self.keepalive_s,
            timeout=self.timeout_s,
            tls_context=tls,
            will=self._will,
            # Small messages that answer other small messages (a PUBACK, then a clock report)
            # otherwise wait ~40 ms each for Nagle's algorithm and the peer's delayed ACK.
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
        )

    async def _supervise(self) -> None:
        backoff = self.backoff_min_s
        while not self._closing:
            client = self._new_client()
            try:
                async with client:
                    self._client = client
                    for topic_filter, qos in list(self._filters.items()):
                        await client.subscribe(topic_filter, qos)
                    self.connects += 1
                    if self.connects > 1:
                        log.info("MQTT %s reconnected to %s", self.client_id, self.url)
                    else:
                        log.debug("MQTT %s connected to %s", self.client_id, self.url)
                    self._down.clear()
                    self._up.set()
                    backoff = self.backoff_min_s
                    self._run_reconnect_hooks()
                    async for message in client.messages:
                        self._dispatch(str(message.topic), _payload_bytes(message.payload))
            except aiomqtt.MqttError as exc:
                level = logging.WARNING if self._up.is_set() else logging.DEBUG
                log.log(level, "MQTT %s: %s; retrying in %.2f s", self.client_id, exc, backoff)
            except Exception:
                # Whatever went wrong with this connection, the next one may work: never let the
                # supervisor die, or every subscriber of the process goes deaf.
                log.exception("MQTT %s: unexpected error; reconnecting", self.client_id)
            finally:
                self._client = None
                self._up.clear()
                self._down.set()
            if self._closing:
                break
            await asyncio.sleep(backoff * random.uniform(0.5, 1.0))
            backoff = min(backoff * 2, self.backoff_max_s)

    def add_reconnect_hook(self, hook: Callable[[], Awaitable[None]]) -> None:
        """Call ``hook()`` (in a task) after every reconnection, once subscriptions are back.

        For state that a clean session loses and that QoS 0 does not repeat: a clock
        participant re-joins and re-reports, the clock server re-publishes its state.
        """
        self._hooks.append(hook)

    def remove_reconnect_hook(self, hook: Callable[[], Awaitable[None]]) -> None:
        with contextlib.suppress(ValueError):
            self._hooks.remove(hook)

    def _run_reconnect_hooks(self) -> None:
        if self.connects <= 1:
            return
        for hook in list(self._hooks):
            task = asyncio.create_task(self._run_hook(hook))
            self._hook_tasks.add(task)
            task.add_done_callback(self._hook_tasks.discard)

    async def _run_hook(self, hook: Callable[[], Awaitable[None]]) -> None:
        try:
            await hook()
        except Exception:
            log.exception("MQTT %s: reconnect hook %r failed", self.client_id, hook)

    def _dispatch(self, topic: str, payload: bytes) -> None:
        matched = False
        for sub in self._subs:
            if sub.matches(topic):
                sub._put(topic, payload)
                matched = True
        if not matched:
            log.debug("MQTT %s: no subscriber for a message on %s", self.client_id, topic)

    # -- publishing -------------------------------------------------------------------------
    async def publish(
        self,
        topic: str,
        payload: BaseModel | bytes | str | dict[str, Any] | list[Any],
        *,
        qos: int = 1,
        retain: bool = False,
        timeout_s: float | None = None,
    ) -> None:
        """Publish (a model as JSON) and, at QoS 1, wait for the broker's acknowledgement.

        Waits through reconnects for up to ``timeout_s`` (default: the client's timeout), then
        raises ``MqttUnavailableError``. A message whose acknowledgement was lost in a dropped
        connection is sent again: at least once, as QoS 1 promises.
        """
        data = encode_payload(payload)
        if any(c in topic for c in "+#"):
            raise ValueError(f"cannot publish to a wildcard topic {topic!r}")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.timeout_s if timeout_s is None else timeout_s)
        last: Exception | None = None
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise MqttUnavailableError(
                    f"could not publish to {topic} via {self.url}: {last or 'not connected'}"
                )
            client = await self._connected_client(remaining, topic)
            try:
                await self._unless_dropped(
                    client.publish(topic, data, qos=qos, retain=retain, timeout=remaining)
                )
                return
            except aiomqtt.MqttError as exc:
                last = exc
                log.debug("publish to %s failed (%s); waiting for the connection", topic, exc)
                # Let the supervisor notice the drop rather than spinning on a dead client.
                await asyncio.sleep(0.01)

    async def _connected_client(self, timeout_s: float, what: str) -> aiomqtt.Client:
        if self._closing or self._task is None:
            raise RuntimeError("MqttClient is closed")
        try:
            await asyncio.wait_for(self._up.wait(), timeout_s)
        except TimeoutError:
            raise MqttUnavailableError(
                f"no MQTT connection to {self.url} within {timeout_s:.1f} s for {what}"
            ) from None
        assert self._client is not None
        return self._client

    async def _unless_dropped(self, call: Awaitable[Any]) -> None:
        """Await ``call`` but give up as soon as the connection drops: aiomqtt would otherwise
        wait for an acknowledgement that can no longer come, until its timeout."""
        task = asyncio.ensure_future(call)
        down = asyncio.ensure_future(self._down.wait())
        try:
            await asyncio.wait((task, down), return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            task.cancel()  # the caller is cancelled: so is its publish
            raise
        finally:
            down.cancel()
        if task.done():
            task.result()
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
            await task
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise asyncio.CancelledError  # ours, not the publish's: do not swallow it
        raise aiomqtt.MqttError("connection dropped before the broker acknowledged")

    # -- subscribing ------------------------------------------------------------------------
    async def subscribe(
        self,
        topic_filter: str,
        model: type[T] | TypeAdapter[T],
        handler: Handler[T],
        *,
        qos: int = 1,
        on_invalid: InvalidCallback | None = None,
        domain: Domain | None = None,
        timeout_s: float | None = None,
    ) -> Subscription[T]:
        """Deliver every message on ``topic_filter`` to ``handler(topic, decoded)``.

        ``model`` is a pydantic model (``Signed[MeasurementBatch]``, ``ResendRequest``…).
        A payload that does not decode is counted in ``stats.malformed`` and reported to
        ``on_invalid``; with ``domain``, an envelope whose signature does not recover to its
        claimed signer is counted in ``stats.bad_signature`` and dropped the same way.
        Returns once the broker has acknowledged the subscription. Called before ``start()``,
        it only records the subscription and the first connection makes it, before delivering
        anything: do that with ``clean_session=False``, whose queued messages arrive at once.
        """

        def decode(payload: bytes) -> T:
            return decode_payload(model, payload)

        return await self._add(topic_filter, qos, decode, handler, on_invalid, domain, timeout_s)

    async def subscribe_raw(
        self,
        topic_filter: str,
        handler: Handler[bytes],
        *,
        qos: int = 1,
        timeout_s: float | None = None,
    ) -> Subscription[bytes]:
        """Deliver the raw payload bytes (non-empty) of every message on ``topic_filter``."""
        return await self._add(topic_filter, qos, bytes, handler, None, None, timeout_s)

    async def _add(
        self,
        topic_filter: str,
        qos: int,
        decode: Callable[[bytes], T],
        handler: Handler[T],
        on_invalid: InvalidCallback | None,
        domain: Domain | None,
        timeout_s: float | None,
    ) -> Subscription[T]:
        if self._closing:
            raise RuntimeError("MqttClient is closed")
        sub = Subscription(self, topic_filter, qos, decode, handler, on_invalid, domain)
        self._subs.append(sub)
        new_qos = max(qos, self._filters.get(topic_filter, -1))
        needs_subscribe = new_qos != self._filters.get(topic_filter)
        self._filters[topic_filter] = new_qos
        if not needs_subscribe or self._task is None:
            # Not started yet: the first connection subscribes before dispatching anything,
            # so a durable session's queued messages find their subscriber.
            return sub
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.timeout_s if timeout_s is None else timeout_s)
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                await self._remove(sub)
                raise MqttUnavailableError(f"could not subscribe to {topic_filter} via {self.url}")
            client = await self._connected_client(remaining, f"subscribing to {topic_filter}")
            try:
                await self._unless_dropped(
                    client.subscribe(topic_filter, new_qos, timeout=remaining)
                )
                return sub
            except aiomqtt.MqttError as exc:
                log.debug("subscribe to %s failed (%s); retrying", topic_filter, exc)
                await asyncio.sleep(0.01)

    async def unsubscribe(self, topic_filter: str, *, timeout_s: float | None = None) -> None:
        """Ask the broker to drop ``topic_filter`` from this client's session.

        A durable session (``clean_session=False``) keeps its subscriptions from one
        connection to the next: a filter that this process no longer subscribes to must be
        dropped explicitly, or the broker keeps sending (and queueing) its messages. Does
        nothing while a subscription of this client uses the filter. Needs the connection.
        """
        if topic_filter in self._filters:
            return
        wait = self.timeout_s if timeout_s is None else timeout_s
        client = await self._connected_client(wait, f"unsubscribing from {topic_filter}")
        await self._unless_dropped(client.unsubscribe(topic_filter, timeout=wait))

    async def _remove(self, sub: Subscription[Any]) -> None:
        if sub in self._subs:
            self._subs.remove(sub)
        await sub._stop()
        if any(s.topic_filter == sub.topic_filter for s in self._subs):
            return
        self._filters.pop(sub.topic_filter, None)
        client = self._client
        if client is not None and self._up.is_set():
            try:
                await client.unsubscribe(sub.topic_filter, timeout=self.timeout_s)
            except aiomqtt.MqttError as exc:
                log.debug("unsubscribe from %s failed: %s", sub.topic_filter, exc)

    @property
    def subscriptions(self) -> list[Subscription[Any]]:
        return list(self._subs)


@contextlib.asynccontextmanager
async def connect(
    url: str | MqttUrl,
    client_id: str,
    *,
    wait_s: float | None = 10.0,
    **options: Any,
) -> AsyncIterator[MqttClient]:
    """``async with connect(FLEX_MQTT_URL, client_id) as mqtt:`` a started ``MqttClient``.

    Waits up to ``wait_s`` for the first connection (``None``: don't wait; the client keeps
    trying in the background, which is what a Light Node booting before its broker wants).
    ``options`` go to ``MqttClient`` (``keepalive_s``, ``clean_session``, ``mqtt5``…).
    """
    client = MqttClient(url, client_id, **options)
    await client.start()
    try:
        if wait_s is not None:
            await client.wait_connected(wait_s)
        yield client
    finally:
        await client.close()
