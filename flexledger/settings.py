"""Settings, one pydantic-settings class per component, read from ``FLEX_*`` variables.

The embedded default needs none of them: ``flexledger demo`` starts its own devnet, broker and
SQLite files under ``./.flexledger``. Set them to run against existing engines.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = [
    "ChainSettings",
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
    health_interval_s: float = Field(default=60.0, description="Seconds between health lines.")
