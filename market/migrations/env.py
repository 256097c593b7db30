"""Alembic environment of the market: ``flexledger.storage.run_alembic_env``."""

from flexledger.storage import run_alembic_env
from market.db import metadata

run_alembic_env(metadata, "market")
