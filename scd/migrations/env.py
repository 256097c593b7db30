"""Alembic environment of the SCD: run by ``flexledger.storage.migrate`` on a live connection."""

from __future__ import annotations

from alembic import context

from scd.db import metadata

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # pragma: no cover - only through flexledger.storage.migrate
    raise RuntimeError("run the SCD migrations through flexledger.storage.migrate")

context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table_schema=config.attributes.get("version_table_schema"),
    render_as_batch=True,
)
with context.begin_transaction():
    context.run_migrations()
