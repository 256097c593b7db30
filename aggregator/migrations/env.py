"""Alembic environment of the aggregator: run on the connection ``flexledger.storage.migrate``
gives (no ``alembic.ini``: the service migrates itself at start)."""

from __future__ import annotations

from alembic import context

from aggregator.db import metadata

config = context.config
connection = config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table_schema=config.attributes.get("version_table_schema"),
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
