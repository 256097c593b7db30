"""Shared Customer Database: PODs, customers, availabilities, baselines, quarterly and 4 s
measures, certifications (ARCHITECTURE.md; routes in docs/API.md).

- ``create_app(settings)`` — the HTTP API (``flexledger serve scd``), which also runs
- ``ScdService`` — database (Alembic-migrated), ``ChainView``, MQTT ingestion
  (``MeasurementIngestor``) and certification (``Certifier``);
- ``ScdSettings`` — its ``FLEX_*`` settings;
- service modules in ``scd.services`` (registry, baselines, measures, samples, writes).
"""

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
