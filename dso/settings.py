"""Settings of the DSO Technical Platform, from ``FLEX_DSO_*`` variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["DsoSettings"]


class DsoSettings(BaseSettings):
    """What ``flexledger serve dso`` and ``flexledger dso assess`` read."""

    model_config = SettingsConfigDict(env_prefix="FLEX_DSO_", extra="ignore")

    scenario: Path | None = Field(
        default=None,
        description="Scenario TOML: the grid and its changes, the PODs, the remedy space, the "
        "sensors (default: scenarios/default.toml when it exists).",
    )
    key: str = Field(default="dev:dso", description="The DSO's key: dev:NAME, keystore or 0x key.")
    market_operator: str = Field(
        default="dev:market",
        description="Who signs market outcomes: dev:NAME, keystore, 0x key or 0x address.",
    )
    issuers: list[str] = Field(
        default_factory=lambda: ["dev:dso", "dev:tso"],
        description="Who may issue the orders the DSO dispatches (dev:NAME or 0x address).",
    )
    scd_url: str = Field(default="http://127.0.0.1:8001", description="SCD HTTP base URL.")
    market_url: str = Field(default="http://127.0.0.1:8002", description="Market HTTP base URL.")
    host: str = Field(default="127.0.0.1", description="Interface the DSO API listens on.")
    port: int = Field(default=8003, description="TCP port of the DSO API.")
    history_days: int = Field(default=21, ge=1, le=365, description="Days of history forecast on.")
    max_price_eur_per_mwh: float = Field(
        default=500.0, gt=0, description="Price cap of the DSO's requests, EUR/MWh."
    )
    margin_pu: float = Field(
        default=0.002, ge=0, description="Voltage margin a request aims for inside the band, p.u."
    )
    margin_percent: float = Field(
        default=2.0, ge=0, description="Loading margin a request aims for, percentage points."
    )
    min_factor: float = Field(
        default=0.05, ge=0, le=1, description="Smallest effectiveness factor of an eligible POD."
    )
    pseudo_pct: float = Field(
        default=0.2, gt=0, description="σ of a forecast pseudo-measurement, share of its value."
    )
    topic_root: str = Field(default="flex", description="MQTT topic root.")
