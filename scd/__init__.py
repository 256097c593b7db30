"""Shared Customer Database: PODs, customers, availabilities, baselines, quarterly and 4 s
measures, certifications (ARCHITECTURE.md; routes in docs/API.md).

- ``create_app(settings)`` — the HTTP API (``flexledger serve scd``), which also runs
- ``ScdService`` — database (Alembic-migrated), ``ChainView``, MQTT ingestion
  (``MeasurementIngestor``, or ingest worker processes: ``scd.workers``) and certification
  (``Certifier``);
- ``ScdSettings`` — its ``FLEX_*`` settings;
- service modules in ``scd.services`` (registry, baselines, measures, samples, writes).

The names are imported when first used: an ingest worker process (``scd.workers``) needs
neither the HTTP API nor FastAPI.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from scd.api import create_app
    from scd.certify import Certifier
    from scd.chain import ChainView
    from scd.ingest import MeasurementIngestor
    from scd.service import ScdService
    from scd.settings import ScdSettings

__all__ = [
    "Certifier",
    "ChainView",
    "MeasurementIngestor",
    "ScdService",
    "ScdSettings",
    "create_app",
]

_WHERE = {
    "Certifier": "scd.certify",
    "ChainView": "scd.chain",
    "MeasurementIngestor": "scd.ingest",
    "ScdService": "scd.service",
    "ScdSettings": "scd.settings",
    "create_app": "scd.api",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'scd' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
