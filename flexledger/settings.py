"""Settings, one pydantic-settings class per component, read from ``FLEX_*`` variables.

The embedded default needs none of them: ``flexledger demo`` starts its own devnet, broker and
SQLite files under ``./.flexledger``. Set them to run against existing engines.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = [
    "ChainSettings",
    "ConcentratorSettings",
    "DbSettings",
    "HomeSettings",
    "LightNodeSettings",
    "MqttSettings",
]


class _Flex(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FLEX_", extra="ignore")


class HomeSettings(_Flex):
    home: Path = Field(
        default=Path(".flexledger"),
        description="Folder for the embedded default's state: chain, SQLite files, keys, report.",
    )
    log_level: str = Field(default="INFO", description="Python logging level for the CLI.")


class ChainSettings(_Flex):
    rpc_url: str | None = Field(
        default=None,
        description="JSON-RPC URL of any EVM chain; unset: a local anvil devnet is started.",
    )
    address_book: Path | None = Field(
        default=None,
        description="Address book JSON from 'flexledger deploy' (default: <home>/addresses.json).",
    )
    chain_timeout_s: float = Field(default=30.0, description="Seconds to wait for a receipt.")


class DbSettings(_Flex):
    db_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL (postgresql+psycopg://…); unset: a SQLite file under home.",
    )


class MqttSettings(_Flex):
    mqtt_url: str | None = Field(
        default=None,
        description="mqtt://host:port of an MQTT 3.1.1/5 broker; unset: an embedded broker.",
    )
    mqtt_client_prefix: str = Field(default="flex", description="Prefix of MQTT client ids.")


class LightNodeSettings(_Flex):
    window_s: int = Field(default=900, description="Measurement window length, seconds.")
    buffer_path: Path | None = Field(
        default=None, description="SQLite file of the Light Node's durable sample buffer."
    )
    buffer_sync: Literal["FULL", "NORMAL"] = Field(
        default="FULL",
        description="SQLite synchronous mode of the buffer: FULL (a commit is on disk before "
        "its samples are published; survives a power cut) or NORMAL (survives a crash of the "
        "agent, not of the machine; for simulated gateways sharing one disk, as in the demo).",
    )
    health_interval_s: float = Field(default=60.0, description="Seconds between health lines.")
    anchor: Literal["direct", "concentrator"] = Field(
        default="direct",
        description="Anchor each window from the device key ('direct'), or publish its signed "
        "root for a concentrator to batch ('concentrator').",
    )
    max_batch_samples: int = Field(
        default=225,
        ge=1,
        le=10_000,
        description="Most samples in one signed MQTT message (catch-up, accelerated clock); "
        "a message never spans two windows.",
    )
    scd_url: str | None = Field(
        default=None,
        description="SCD HTTP base URL; when set, uncertified windows are also polled there "
        "(GET /windows) in case a certification message was missed.",
    )
    scd_poll_s: float = Field(default=60.0, description="Seconds between SCD polls.")
    manifest_retry_s: float = Field(
        default=120.0,
        description="Seconds after which the manifest of a window that is still not certified "
        "(or, in concentrator mode, not batched) is published again.",
    )
    anchor_backoff_max_s: float = Field(
        default=30.0, description="Longest wait between two attempts to anchor a window."
    )


class ConcentratorSettings(_Flex):
    concentrator_id: str = Field(
        default="c1", description="Topic-safe name of the concentrator (flex/concentrator/{id})."
    )
    concentrator_db: Path | None = Field(
        default=None, description="SQLite file of the concentrator's pending windows and batches."
    )
    batch_interval_s: float = Field(
        default=30.0, description="Seconds a received window root waits before its batch is sent."
    )
    batch_max_windows: int = Field(
        default=500, ge=1, le=100_000, description="Most window roots in one anchored batch."
    )
