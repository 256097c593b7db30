"""Alembic environment of the market: run on the connection ``flexledger.storage.migrate`` gives.

No ``alembic.ini``: the service migrates itself at start (``market.service.store``); the version
table goes to the market's PostgreSQL schema (``version_table_schema``) or SQLite's main.
"""

from __future__ import annotations

from alembic import context

from market.db import metadata

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
