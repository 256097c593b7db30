"""Settings of the Aggregator Platform, read from ``FLEX_*`` variables (pydantic-settings)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from flexledger.time import MTUS_PER_DAY

__all__ = ["AggregatorSettings"]


def _window(text: str) -> tuple[int, int]:
    a, _, b = text.partition("-")
    lo, hi = int(a), int(b)
    if not 0 <= lo < hi <= MTUS_PER_DAY:
        raise ValueError(f"{text!r}: a window is 'FROM-TO' MTU indices within 0-{MTUS_PER_DAY}")
    return lo, hi


class AggregatorSettings(BaseSettings):
    """Everything ``flexledger serve aggregator`` needs; names are ``FLEX_AGGREGATOR_*`` but for
    the deployment's shared ones (``FLEX_DB_URL``, ``FLEX_RPC_URL``, …)."""

    model_config = SettingsConfigDict(env_prefix="FLEX_", extra="ignore")

    home: Path = Field(
        default=Path(".flexledger"),
        description="Folder of the embedded default: the aggregator's SQLite file lives here.",
    )
    db_url: str | None = Field(
        default=None,
        description="PostgreSQL URL (tables in schema 'aggregator'); unset: a SQLite file under "
        "<home> named after the aggregator.",
    )
    aggregator_db_schema: str = Field(
        default="aggregator", description="PostgreSQL schema of the aggregator's tables."
    )
    rpc_url: str | None = Field(default=None, description="JSON-RPC URL of the chain.")
    address_book: Path | None = Field(
        default=None, description="Address book of the deployment (default <home>/addresses.json)."
    )
    aggregator_key: str = Field(
        default="dev:aggregator:1",
        description="The aggregator's key (dev:NAME, keystore or 0x key): it signs customer "
        "lists, offers and plans, grants its FR owners and pays them.",
    )
    aggregator_name: str | None = Field(
        default=None,
        description="Its name in the portfolio's scenario (default: the dev key's name).",
    )
    aggregator_portfolio: Path | None = Field(
        default=None,
        description="Scenario TOML (this aggregator's PODs) or portfolio JSON of its customers.",
    )
    market_url: str = Field(
        default="http://127.0.0.1:8002", description="Base URL of the market API."
    )
    scd_url: str = Field(default="http://127.0.0.1:8001", description="Base URL of the SCD API.")
    aggregator_fee_ppm: int | None = Field(
        default=None,
        ge=0,
        le=1_000_000,
        description="Share (ppm) of what the market pays that the aggregator keeps before paying "
        "its FR owners (default: the portfolio's fee_percent, else 10 %).",
    )
    aggregator_margin: float = Field(
        default=0.05, ge=0, le=10, description="Margin on the resources' cost in offer prices."
    )
    aggregator_safety: float = Field(
        default=0.9, gt=0, le=1, description="Share of the modelled flexibility that is offered."
    )
    aggregator_history_days: int = Field(
        default=7, ge=1, le=60, description="Days of I-01 history each estimate reads."
    )
    aggregator_up_window: tuple[int, int] = Field(
        default=(0, MTUS_PER_DAY),
        description="MTUs of the day (FROM-TO) in which up flexibility is offered.",
    )
    aggregator_down_window: tuple[int, int] = Field(
        default=(0, MTUS_PER_DAY),
        description="MTUs of the day (FROM-TO) in which down flexibility is offered.",
    )
    aggregator_min_offer_w: int = Field(
        default=1000, ge=1, description="Smallest power offered in an MTU, W."
    )
    aggregator_poll_s: float = Field(
        default=2.0, gt=0, description="Seconds between looks at the market when following it."
    )
    aggregator_follow: bool = Field(
        default=False,
        description="Follow the market on its own: offers when a day-ahead session opens, "
        "plans when it is final, payouts when it is settled.",
    )
    mqtt_url: str | None = Field(
        default=None,
        description="Broker of the market's session events (FLEX_MQTT_URL): when following, "
        "each event wakes the follower at once instead of at its next poll.",
    )
    topic_root: str = Field(default="flex", description="MQTT topic root (FLEX_TOPIC_ROOT).")

    @field_validator("aggregator_up_window", "aggregator_down_window", mode="before")
    @classmethod
    def _parse_window(cls, value: object) -> object:
        return _window(value) if isinstance(value, str) else value

    def database_url(self) -> str:
        from flexledger.storage import database_url

        name = "aggregator-" + (self.aggregator_name or self.key_name()).replace(":", "-")
        return database_url(self.db_url, self.home, name)

    def key_name(self) -> str:
        """The dev key's name (``aggregator:1``), or the key spec itself."""
        return self.aggregator_key.removeprefix("dev:")
