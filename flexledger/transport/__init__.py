"""How the actors talk (floor 2): MQTT topics and client, HTTP client and API helpers, brokers,
and the meter, BMS and clock adapters that let a Light Node or an actor run in another process
than the simulated world.

Imports floor 1 (``flexledger.messages``/``time``/``settings``/``protocols``) and ``node``'s
signing only; never an actor.

The FastAPI helpers (``ApiError``, ``install_error_handlers``, ``verify_signed``…) live in
``flexledger.transport.api`` and are loaded on first use, so that a lean Light Node install
without FastAPI can import this package.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from flexledger.transport.adapters import (
    AdapterError,
    AdapterTimeoutError,
    ClockState,
    MqttBmsClient,
    MqttBmsServer,
    MqttClockClient,
    MqttClockServer,
    MqttMeterClient,
    MqttMeterServer,
)
from flexledger.transport.brokers import EmbeddedBroker, MosquittoProcess, free_port
from flexledger.transport.http import (
    ServiceError,
    ServiceUnreachableError,
    SignedHttpClient,
    SyncSignedHttpClient,
)
from flexledger.transport.mqtt import (
    DecodeError,
    MqttClient,
    MqttUnavailableError,
    MqttUrl,
    Subscription,
    SubscriptionStats,
    connect,
    decode_payload,
    encode_payload,
    parse_mqtt_url,
    topic_matches,
    unique_client_id,
)
from flexledger.transport.topics import (
    DEFAULT_ROOT,
    DEFAULT_TOPICS,
    TopicError,
    TopicInfo,
    TopicKind,
    Topics,
    parse_topic,
)

if TYPE_CHECKING:
    from flexledger.transport.api import (
        ERROR_RESPONSES,
        ApiError,
        ErrorBody,
        install_error_handlers,
        verify_signed,
    )

_LAZY = {
    "ERROR_RESPONSES": "flexledger.transport.api",
    "ApiError": "flexledger.transport.api",
    "ErrorBody": "flexledger.transport.api",
    "install_error_handlers": "flexledger.transport.api",
    "verify_signed": "flexledger.transport.api",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "DEFAULT_ROOT",
    "DEFAULT_TOPICS",
    "ERROR_RESPONSES",
    "AdapterError",
    "AdapterTimeoutError",
    "ApiError",
    "ClockState",
    "DecodeError",
    "EmbeddedBroker",
    "ErrorBody",
    "MosquittoProcess",
    "MqttBmsClient",
    "MqttBmsServer",
    "MqttClient",
    "MqttClockClient",
    "MqttClockServer",
    "MqttMeterClient",
    "MqttMeterServer",
    "MqttUnavailableError",
    "MqttUrl",
    "ServiceError",
    "ServiceUnreachableError",
    "SignedHttpClient",
    "Subscription",
    "SubscriptionStats",
    "SyncSignedHttpClient",
    "TopicError",
    "TopicInfo",
    "TopicKind",
    "Topics",
    "connect",
    "decode_payload",
    "encode_payload",
    "free_port",
    "install_error_handlers",
    "parse_mqtt_url",
    "parse_topic",
    "topic_matches",
    "unique_client_id",
    "verify_signed",
]
