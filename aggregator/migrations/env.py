"""Alembic environment of the aggregator: ``flexledger.storage.run_alembic_env``."""

from aggregator.db import metadata
from flexledger.storage import run_alembic_env

run_alembic_env(metadata, "aggregator")
