"""Settings of the Market Platform, read from ``FLEX_*`` variables (pydantic-settings)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from flexledger.messages import PricingRule

__all__ = ["MarketSettings"]


class MarketSettings(BaseSettings):
    """Everything ``flexledger serve market`` needs; the embedded default needs none of it."""

    model_config = SettingsConfigDict(env_prefix="FLEX_", extra="ignore")

    home: Path = Field(
        default=Path(".flexledger"),
        description="Folder of the embedded default: the market's SQLite file lives here.",
    )
    db_url: str | None = Field(
        default=None,
        description="PostgreSQL URL (tables in schema 'market'); unset: <home>/market.sqlite.",
    )
    db_schema: str = Field(
        default="market", description="PostgreSQL schema of the market's tables."
    )
    rpc_url: str | None = Field(
        default=None, description="JSON-RPC URL of the chain (when no contracts are injected)."
    )
    address_book: Path | None = Field(
        default=None, description="Address book of the deployment (default <home>/addresses.json)."
    )
    market_operator_key: str = Field(
        default="dev:market",
        description="The market operator's key: dev:NAME, a keystore file or a 0x private key. "
        "It signs outcomes and sends every market transaction.",
    )
    mqtt_url: str | None = Field(
        default=None, description="MQTT broker for announcements; unset: no announcements."
    )
    mqtt_root: str = Field(default="flex", description="Topic root of the announcements.")
    da_gate_closure_offset_s: int = Field(
        default=-12 * 3600,
        description="Day-ahead gate closure relative to the delivery start, seconds "
        "(default D-1 12:00 for a delivery starting at midnight).",
    )
    rt_gate_closure_offset_s: int = Field(
        default=-300,
        description="Real-time gate closure relative to the delivery start, seconds.",
    )
    round_limit: int = Field(
        default=5, ge=1, description="Validation rounds before a session is given up."
    )
    reliability_margin: float = Field(
        default=0.1, ge=0, description="Extra cover asked of DSO requests (fraction of volume)."
    )
    baseline_method: str = Field(
        default="brp", description="Baseline method recorded on chain for each session."
    )
    default_pricing: PricingRule = Field(
        default="pay_as_bid", description="Pricing when an open command does not say."
    )
    areas_file: Path | None = Field(
        default=None,
        description="JSON object {POD code: substation area} loaded into the areas table at "
        "start (locates TSO requests).",
    )
    scheduler_poll_s: float = Field(
        default=1.0, gt=0, description="Longest wall-clock wait of the gate-closure scheduler."
    )
    role_cache_s: float = Field(
        default=1.0, ge=0, description="Seconds between role-event polls of the role cache."
    )
    chain_timeout_s: float = Field(default=30.0, description="Seconds to wait for a receipt.")
    scd_url: str | None = Field(
        default=None,
        description="Base URL of the SCD API (quarterly measures, windows, baselines) that "
        "settlement reads; unset: settlement answers 409 wrong_state.",
    )
    settlement_tolerance_ppm: int = Field(
        default=100_000,
        ge=0,
        le=1_000_000,
        description="Share of an award's activated energy (ppm) that may go undelivered "
        "without penalty.",
    )
    settlement_penalty_ppm: int = Field(
        default=500_000,
        ge=0,
        le=10_000_000,
        description="Price of one Wh undelivered beyond the tolerance, as a share (ppm) of the "
        "award's price; a penalty beyond the amount is a claim, never moved.",
    )
    settle_delay_s: int = Field(
        default=900,
        ge=0,
        description="Seconds after a session's delivery end before it may be settled (the "
        "last windows' anchors and certifications).",
    )
    baseline_lookback_days: int = Field(
        default=45, ge=1, le=366, description="How far back high-X-of-Y looks for eligible days."
    )
    mbma_before_mtus: int = Field(
        default=4, ge=1, le=96, description="MTUs meter-before/meter-after averages."
    )

    def database_url(self) -> str:
        from flexledger.storage import database_url

        return database_url(self.db_url, self.home, "market")
