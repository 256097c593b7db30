"""MQTT topic names of ARCHITECTURE.md ("Transports"), built and parsed in one place.

Every topic starts with a root prefix (``flex`` by default). Tests and parallel deployments on a
shared broker pick their own root (``t1234/flex``) so that their messages and retained states
never meet.

| topic | what travels | publisher |
| --- | --- | --- |
| ``{root}/pod/{pod}/measure`` | ``Signed[MeasurementBatch]`` (I-04) | Light Node |
| ``{root}/pod/{pod}/setpoint`` | ``Signed[SetPoint]`` (I-09) | DSO TP |
| ``{root}/pod/{pod}/manifest`` | ``Signed[WindowManifest]`` | Light Node |
| ``{root}/pod/{pod}/resend`` | ``ResendRequest`` | SCD |
| ``{root}/grid/{sensor}/measure`` | ``Signed[SensorReading]`` (I-18) | field sensor |
| ``{root}/grid/topology`` | ``Signed[TopologyEvent]`` | grid (sim) |
| ``{root}/market/{session}`` | ``Signed[MarketOutcome]`` (I-08) | market |
| ``{root}/market/orders`` | ``Signed[Order]`` (I-09) | market |
| ``{root}/sim/meter/{pod}/req`` / ``…/resp`` | meter reads (adapter) | Light Node / world |
| ``{root}/sim/bms/{pod}`` / ``…/ack`` | set-points to a BMS (adapter) | Light Node / world |
| ``{root}/clock/now`` | the scenario clock's state, retained | clock server |
| ``{root}/clock/register/{participant}`` | join or leave the clock | participant |
| ``{root}/clock/done/{participant}`` | finished a step / nothing to do until t | participant |

``orders`` is a reserved word at the session level: ``{root}/market/+`` also matches the orders
topic, so a session may not be called ``orders`` and a session subscriber must look at the parsed
``kind``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

__all__ = [
    "DEFAULT_ROOT",
    "DEFAULT_TOPICS",
    "TopicError",
    "TopicInfo",
    "TopicKind",
    "Topics",
    "parse_topic",
]

DEFAULT_ROOT: Final = "flex"

_POD_RE = re.compile(r"^[A-Z]{2}[0-9A-Z]{4,30}$")  # the PodCode pattern of flexledger.messages
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,63}$")
_RESERVED_SESSIONS: Final = frozenset({"orders"})


class TopicError(ValueError):
    """A topic (or a name to put in one) that does not follow the flexledger layout."""


class TopicKind(StrEnum):
    """What a topic carries; ``parse_topic`` tells it from the topic's shape."""

    POD_MEASURE = "pod_measure"
    POD_SETPOINT = "pod_setpoint"
    POD_MANIFEST = "pod_manifest"
    POD_RESEND = "pod_resend"
    POD_CERTIFICATION = "pod_certification"
    CONCENTRATOR_BATCH = "concentrator_batch"
    GRID_MEASURE = "grid_measure"
    GRID_TOPOLOGY = "grid_topology"
    MARKET_SESSION = "market_session"
    MARKET_ORDERS = "market_orders"
    METER_REQUEST = "meter_request"
    METER_RESPONSE = "meter_response"
    BMS_SETPOINT = "bms_setpoint"
    BMS_ACK = "bms_ack"
    CLOCK_NOW = "clock_now"
    CLOCK_REGISTER = "clock_register"
    CLOCK_DONE = "clock_done"


@dataclass(frozen=True)
class TopicInfo:
    """A parsed topic: its kind and the identifier it names, if any."""

    kind: TopicKind
    pod: str | None = None
    sensor: str | None = None
    session: str | None = None
    participant: str | None = None


def _check_root(root: str) -> str:
    levels = root.split("/")
    if not root or any(not lv or any(c in lv for c in "+#\0") for lv in levels):
        raise TopicError(
            f"topic root {root!r} must be one or more non-empty levels without '+', '#' or NUL"
        )
    return root


def _pod(pod: str) -> str:
    if not isinstance(pod, str) or not _POD_RE.match(pod):
        raise TopicError(f"{pod!r} is not a POD code (two letters, then 4-30 digits/capitals)")
    return pod


def _name(value: str, what: str) -> str:
    if not isinstance(value, str) or not _NAME_RE.match(value):
        raise TopicError(
            f"{what} {value!r} is not a topic-safe name: 1-64 characters of letters, digits and "
            "'._:@-', starting with a letter or digit"
        )
    return value


def _session(session: str) -> str:
    _name(session, "session id")
    if session in _RESERVED_SESSIONS:
        raise TopicError(f"session id {session!r} is reserved (it is a market topic of its own)")
    return session


@dataclass(frozen=True)
class Topics:
    """The topic names under one root. ``Topics()`` is the production layout (``flex/…``).

    Builders validate what they put in a topic so that a bad POD code fails at the publisher,
    loudly, rather than silently landing on a topic nobody reads. The ``all_*`` helpers give
    the wildcard subscriptions.
    """

    root: str = DEFAULT_ROOT

    def __post_init__(self) -> None:
        _check_root(self.root)

    def _t(self, *levels: str) -> str:
        return "/".join((self.root, *levels))

    # -- Light Node ↔ SCD / DSO ------------------------------------------------------------------
    def pod_measure(self, pod: str) -> str:
        return self._t("pod", _pod(pod), "measure")

    def pod_setpoint(self, pod: str) -> str:
        return self._t("pod", _pod(pod), "setpoint")

    def pod_manifest(self, pod: str) -> str:
        return self._t("pod", _pod(pod), "manifest")

    def pod_resend(self, pod: str) -> str:
        return self._t("pod", _pod(pod), "resend")

    def pod_certification(self, pod: str) -> str:
        """The SCD's verdict on each of the POD's windows (the Light Node frees its buffer)."""
        return self._t("pod", _pod(pod), "certification")

    def all_pod_certifications(self) -> str:
        return self._t("pod", "+", "certification")

    def concentrator_batch(self, concentrator: str) -> str:
        """A concentrator's anchored batch of device-signed window roots."""
        return self._t("concentrator", _name(concentrator, "concentrator id"), "batch")

    def all_concentrator_batches(self) -> str:
        return self._t("concentrator", "+", "batch")

    def all_pod_measures(self) -> str:
        return self._t("pod", "+", "measure")

    def all_pod_setpoints(self) -> str:
        return self._t("pod", "+", "setpoint")

    def all_pod_manifests(self) -> str:
        return self._t("pod", "+", "manifest")

    def all_pod_resends(self) -> str:
        return self._t("pod", "+", "resend")

    # -- field sensors and topology ---------------------------------------------------------------
    def grid_measure(self, sensor: str) -> str:
        return self._t("grid", _name(sensor, "sensor id"), "measure")

    def all_grid_measures(self) -> str:
        return self._t("grid", "+", "measure")

    def grid_topology(self) -> str:
        return self._t("grid", "topology")

    # -- market ---------------------------------------------------------------------------------
    def market_session(self, session: str) -> str:
        return self._t("market", _session(session))

    def all_market_sessions(self) -> str:
        """Matches ``…/market/orders`` too: check ``parse_topic(t).kind``."""
        return self._t("market", "+")

    def market_orders(self) -> str:
        return self._t("market", "orders")

    # -- adapters: the simulated world served to other processes -----------------------------------
    def meter_request(self, pod: str) -> str:
        return self._t("sim", "meter", _pod(pod), "req")

    def meter_response(self, pod: str) -> str:
        return self._t("sim", "meter", _pod(pod), "resp")

    def all_meter_requests(self) -> str:
        return self._t("sim", "meter", "+", "req")

    def bms_setpoint(self, pod: str) -> str:
        return self._t("sim", "bms", _pod(pod))

    def bms_ack(self, pod: str) -> str:
        return self._t("sim", "bms", _pod(pod), "ack")

    def all_bms_setpoints(self) -> str:
        return self._t("sim", "bms", "+")

    def clock_now(self) -> str:
        return self._t("clock", "now")

    def clock_register(self, participant: str) -> str:
        return self._t("clock", "register", _name(participant, "clock participant"))

    def clock_done(self, participant: str) -> str:
        return self._t("clock", "done", _name(participant, "clock participant"))

    def all_clock_registers(self) -> str:
        return self._t("clock", "register", "+")

    def all_clock_dones(self) -> str:
        return self._t("clock", "done", "+")

    # -- parsing --------------------------------------------------------------------------------
    def parse(self, topic: str) -> TopicInfo:
        """What ``topic`` carries and for whom; ``TopicError`` when it is not one of ours."""
        prefix = self.root + "/"
        if not isinstance(topic, str) or not topic.startswith(prefix):
            raise TopicError(f"topic {topic!r} is not under the root {self.root!r}")
        if any(c in topic for c in "+#\0"):
            raise TopicError(f"topic {topic!r} contains a wildcard or NUL: not a concrete topic")
        levels = topic[len(prefix) :].split("/")
        try:
            info = _parse_levels(levels)
        except TopicError as exc:
            raise TopicError(f"topic {topic!r}: {exc}") from None
        if info is None:
            raise TopicError(
                f"topic {topic!r} is not a flexledger topic (see flexledger.transport.topics)"
            )
        return info


def _parse_levels(lv: list[str]) -> TopicInfo | None:
    match lv:
        case ["pod", pod, suffix] if suffix in _POD_SUFFIX:
            return TopicInfo(_POD_SUFFIX[suffix], pod=_pod(pod))
        case ["concentrator", name, "batch"]:
            return TopicInfo(
                TopicKind.CONCENTRATOR_BATCH, participant=_name(name, "concentrator id")
            )
        case ["grid", "topology"]:
            return TopicInfo(TopicKind.GRID_TOPOLOGY)
        case ["grid", sensor, "measure"]:
            return TopicInfo(TopicKind.GRID_MEASURE, sensor=_name(sensor, "sensor id"))
        case ["market", "orders"]:
            return TopicInfo(TopicKind.MARKET_ORDERS)
        case ["market", session]:
            return TopicInfo(TopicKind.MARKET_SESSION, session=_session(session))
        case ["sim", "meter", pod, "req"]:
            return TopicInfo(TopicKind.METER_REQUEST, pod=_pod(pod))
        case ["sim", "meter", pod, "resp"]:
            return TopicInfo(TopicKind.METER_RESPONSE, pod=_pod(pod))
        case ["sim", "bms", pod]:
            return TopicInfo(TopicKind.BMS_SETPOINT, pod=_pod(pod))
        case ["sim", "bms", pod, "ack"]:
            return TopicInfo(TopicKind.BMS_ACK, pod=_pod(pod))
        case ["clock", "now"]:
            return TopicInfo(TopicKind.CLOCK_NOW)
        case ["clock", "register", name]:
            return TopicInfo(TopicKind.CLOCK_REGISTER, participant=_name(name, "clock participant"))
        case ["clock", "done", name]:
            return TopicInfo(TopicKind.CLOCK_DONE, participant=_name(name, "clock participant"))
    return None


_POD_SUFFIX: Final = {
    "measure": TopicKind.POD_MEASURE,
    "setpoint": TopicKind.POD_SETPOINT,
    "manifest": TopicKind.POD_MANIFEST,
    "resend": TopicKind.POD_RESEND,
    "certification": TopicKind.POD_CERTIFICATION,
}


#: The production layout, ``flex/…``.
DEFAULT_TOPICS: Final = Topics()


def parse_topic(topic: str, root: str = DEFAULT_ROOT) -> TopicInfo:
    """``Topics(root).parse(topic)``: the kind and identifiers of a concrete topic."""
    return Topics(root).parse(topic)
