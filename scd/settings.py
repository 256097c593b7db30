"""Settings of the Shared Customer Database service, read from ``FLEX_*`` variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["ScdSettings"]


class ScdSettings(BaseSettings):
    """Everything ``flexledger serve scd`` needs; the embedded default needs none of it."""

    model_config = SettingsConfigDict(env_prefix="FLEX_", extra="ignore", populate_by_name=True)

    home: Path = Field(
        default=Path(".flexledger"),
        description="State folder of the embedded default (the SQLite file, the address book).",
    )
    db_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of PostgreSQL (tables in schema 'scd'); unset: "
        "<home>/scd.sqlite.",
    )
    db_schema: str = Field(
        default="scd", description="PostgreSQL schema of the SCD's tables (FLEX_DB_SCHEMA)."
    )
    mqtt_url: str | None = Field(
        default=None,
        description="mqtt://host:port of the broker; unset: no MQTT ingestion (HTTP API only).",
    )
    mqtt_client_id: str = Field(
        default="flex-scd",
        description="Stable MQTT client id: the broker keeps the SCD's durable session (QoS 1 "
        "measurements queued while it is down). Two SCDs on one broker need two ids.",
    )
    mqtt_connect_wait_s: float = Field(
        default=10.0, description="Seconds the start waits for the broker before going on."
    )
    topic_root: str = Field(
        default="flex", description="Root of the MQTT topics (FLEX_TOPIC_ROOT)."
    )
    rpc_url: str | None = Field(default=None, description="JSON-RPC URL of the chain.")
    address_book: Path | None = Field(
        default=None, description="Address book JSON (default: <home>/addresses.json)."
    )
    chain_poll_s: float = Field(
        default=1.0, description="Seconds between reads of new chain events (anchors, devices)."
    )
    flush_max: int = Field(
        default=4000, description="Most measurement messages verified and stored in one batch."
    )
    flush_interval_s: float = Field(
        default=0.05, description="Longest wait before a partial batch is stored."
    )
    verify_workers: int = Field(
        default=0,
        description="Processes that decode and verify measurements (0: a thread of the "
        "service's process). One or two on a machine with cores to spare.",
    )
    ingest_workers: int = Field(
        default=1,
        ge=1,
        validation_alias="FLEX_SCD_INGEST_WORKERS",
        description="Processes that take measurements from MQTT, verify and store them "
        "(FLEX_SCD_INGEST_WORKERS). 1: the service's own process. N > 1: N worker processes "
        "behind the shared subscription $share/scd/<root>/pod/+/measure, each with its own "
        "MQTT connection and database writer; needs PostgreSQL and a broker with shared "
        "subscriptions (Mosquitto >= 1.6, EMQX, HiveMQ...). On SQLite, or a broker without "
        "them (amqtt), the service says so and ingests in its own process.",
    )
    resend_interval_s: float = Field(
        default=30.0, description="Seconds between resend requests for a pending window."
    )
    resend_max: int = Field(
        default=10, description="Resend requests per window before it stays pending silently."
    )

    def book_path(self) -> Path:
        return self.address_book or self.home / "addresses.json"
