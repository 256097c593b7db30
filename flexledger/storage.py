"""Databases for the services (floor 2): one engine per service, migrations, bulk inserts.

The embedded default is a SQLite file per service under ``FLEX_HOME``; ``FLEX_DB_URL`` points
every service at one PostgreSQL database instead, each service in its own schema (``scd``,
``market``, …) so that they share a server without sharing tables. Migrations are Alembic's,
run at service start. Bulk paths: PostgreSQL ``COPY``; SQLite ``executemany`` in one transaction.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Table, create_engine, event, text
from sqlalchemy.engine import make_url

__all__ = [
    "bulk_insert",
    "database_url",
    "is_postgres",
    "make_engine",
    "migrate",
    "run_alembic_env",
]

log = logging.getLogger(__name__)
_SCHEMA_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def database_url(url: str | None, home: Path, service: str) -> str:
    """``url`` if given (``FLEX_DB_URL``), else the service's SQLite file under ``home``."""
    if url:
        parsed = make_url(url)
        if parsed.drivername in ("postgresql", "postgres"):
            parsed = parsed.set(drivername="postgresql+psycopg")
        return parsed.render_as_string(hide_password=False)
    home.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(home / f'{service}.sqlite').resolve()}"


def is_postgres(engine: Engine | Connection) -> bool:
    return engine.dialect.name == "postgresql"


def make_engine(url: str, *, schema: str | None = None) -> Engine:
    """An engine for one service; on PostgreSQL its tables live in ``schema``.

    SQLite gets WAL (readers never block the writer), ``synchronous=NORMAL`` (durable across
    a process crash, which is what a Light Node buffer needs) and enforced foreign keys.
    """
    parsed = make_url(url)
    if parsed.drivername.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    if parsed.drivername.startswith("postgresql"):
        if schema is not None and not _SCHEMA_RE.match(schema):
            raise ValueError(f"schema name {schema!r} is not a plain lower-case identifier")
        connect_args: dict[str, Any] = {}
        if schema:
            connect_args["options"] = f"-csearch_path={schema}"
        engine = create_engine(url, connect_args=connect_args, pool_pre_ping=True, pool_size=10)
        if schema:
            with engine.begin() as conn:
                conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        return engine
    raise ValueError(f"unsupported database URL {parsed.drivername!r}: use sqlite or postgresql")


def migrate(engine: Engine, script_location: Path, *, schema: str | None = None) -> None:
    """Bring the service's tables to the newest Alembic revision (idempotent)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(script_location))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        cfg.attributes["version_table_schema"] = schema if is_postgres(conn) else None
        command.upgrade(cfg, "head")


def run_alembic_env(metadata: Any, service: str) -> None:
    """The body of every service's Alembic ``env.py``: run on the connection ``migrate`` gives.

    No ``alembic.ini``: a service migrates itself at start; its version table goes to its
    PostgreSQL schema (``version_table_schema``) or SQLite's main.
    """
    from alembic import context

    config = context.config
    connection = config.attributes.get("connection")
    if connection is None:
        raise RuntimeError(f"run the {service} migrations through flexledger.storage.migrate")
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table_schema=config.attributes.get("version_table_schema"),
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def bulk_insert(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> int:
    """Insert many rows fast: ``COPY`` on PostgreSQL, one ``executemany`` elsewhere.

    The caller owns the transaction. Rows must all carry the same keys.
    """
    if not rows:
        return 0
    columns = list(rows[0].keys())
    if is_postgres(conn):
        raw = conn.connection.driver_connection
        assert raw is not None
        cols = ", ".join(f'"{c}"' for c in columns)
        with raw.cursor() as cur, cur.copy(f'COPY "{table.name}" ({cols}) FROM STDIN') as copy:
            for row in rows:
                copy.write_row([row[c] for c in columns])
        return len(rows)
    conn.execute(table.insert(), list(rows))
    return len(rows)


def chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
