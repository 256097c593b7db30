"""Alembic environment of the SCD: ``flexledger.storage.run_alembic_env``."""

from flexledger.storage import run_alembic_env
from scd.db import metadata

run_alembic_env(metadata, "SCD")
