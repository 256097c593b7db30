"""The SCD's tables (SQLAlchemy Core) and how to open its database.

Samples are the bulk: one row per 4 s sample, keyed by (POD, sequence), each pointing at the
device-signed message (``sample_batches``) it came in, so that anyone can check its signature
again. Everything else is small: customers (I-02), availabilities (I-12), baselines (I-03),
quarterly history (I-01), windows with their anchors and certification, concentrator batches,
accepted signed writes (replay protection) and the chain cursor.

Integers that the protocol allows up to 2**64 − 1 (sequence numbers, times, voltages) are stored
as signed 64-bit integers: the ingestor refuses larger ones (``out_of_range``).
"""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from flexledger.storage import database_url, is_postgres, make_engine, migrate

__all__ = [
    "MIGRATIONS",
    "availabilities",
    "baselines",
    "chain_cursor",
    "concentrator_batches",
    "customer_entries",
    "ingest_counts",
    "metadata",
    "open_database",
    "quarterly_history",
    "sample_batches",
    "samples",
    "windows",
    "writes",
]

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
metadata = MetaData()
H = 66  # 0x + 64 hex
A = 42  # 0x + 40 hex

writes = Table(
    "writes",
    metadata,
    Column("hash", String(H), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("signer", String(A), nullable=False),
    Column("nonce", String(20), nullable=False),
    Column("receipt", Text, nullable=False),
    Column("created_s", BigInteger, nullable=False),
    UniqueConstraint("kind", "signer", "nonce", name="uq_writes_kind_signer_nonce"),
)

customer_entries = Table(
    "customer_entries",
    metadata,
    Column("day_s", BigInteger, primary_key=True),
    Column("pod", String(34), primary_key=True),
    Column("aggregator", String(A), nullable=False),
    Column("fr_owner", String(A), nullable=False),
    Column("device", String(A), nullable=False),
    Column("bus", String(64)),
    Column("resources", Text, nullable=False),
    Column("list_hash", String(H), nullable=False),
)

availabilities = Table(
    "availabilities",
    metadata,
    Column("hash", String(H), primary_key=True),
    Column("day_s", BigInteger, nullable=False),
    Column("pod", String(34), nullable=False),
    Column("fr_owner", String(A), nullable=False),
    Column("aggregator", String(A), nullable=False),
    Column("envelope", Text, nullable=False),
    Index("ix_availabilities_day_pod", "day_s", "pod"),
)

baselines = Table(
    "baselines",
    metadata,
    Column("hash", String(H), primary_key=True),
    Column("brp", String(A), nullable=False),
    Column("day_s", BigInteger, nullable=False),
    Column("root", String(H), nullable=False),
    Column("pod_count", Integer, nullable=False),
    Column("committed_block", BigInteger, nullable=False),
    Column("envelope", Text, nullable=False),
    UniqueConstraint("brp", "day_s", name="uq_baselines_brp_day"),
)

quarterly_history = Table(
    "quarterly_history",
    metadata,
    Column("pod", String(34), primary_key=True),
    Column("mtu_start_s", BigInteger, primary_key=True),
    Column("e_wh", BigInteger, nullable=False),
    Column("sample_count", Integer, nullable=False),
    Column("certified", Boolean, nullable=False),
    Column("upload_hash", String(H), nullable=False),
)

sample_batches = Table(
    "sample_batches",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("pod", String(34), nullable=False),
    Column("first_seq", BigInteger, nullable=False),
    Column("count", Integer, nullable=False),
    Column("signer", String(A), nullable=False),
    Column("signature", String(132), nullable=False),
)

samples = Table(
    "samples",
    metadata,
    Column("pod", String(34), primary_key=True),
    Column("seq", BigInteger, primary_key=True),
    Column("t_s", BigInteger, nullable=False),
    Column("p_w", BigInteger, nullable=False),
    Column("q_var", BigInteger, nullable=False),
    Column("v_mv", BigInteger, nullable=False),
    Column("batch_id", BigInteger, nullable=False),
    Index("ix_samples_pod_t", "pod", "t_s"),
)

windows = Table(
    "windows",
    metadata,
    Column("pod", String(34), primary_key=True),
    Column("window_start_s", BigInteger, primary_key=True),
    # what the chain says (direct anchor, or the device-signed window of a verified batch)
    Column("root", String(H)),
    Column("sample_count", Integer),
    Column("setpoints_hash", String(H)),
    Column("anchor", String(16)),
    Column("anchor_tx", String(H)),
    Column("anchor_block", BigInteger),
    Column("concentrator", String(A)),
    Column("batch_id", BigInteger),
    # the Light Node's signed manifest (set-point leaves, sequence range), when it arrived
    Column("manifest", Text),
    # the verdict
    Column("status", String(16), nullable=False),
    Column("missing_seqs", Text, nullable=False, default="[]"),
    Column("extra_seqs", Text, nullable=False, default="[]"),
    Column("altered_seqs", Text, nullable=False, default="[]"),
    Column("resends", Integer, nullable=False, default=0),
    Column("updated_s", BigInteger, nullable=False),
    Index("ix_windows_status", "status"),
)

concentrator_batches = Table(
    "concentrator_batches",
    metadata,
    Column("concentrator", String(A), primary_key=True),
    Column("batch_id", BigInteger, primary_key=True),
    Column("root", String(H)),
    Column("window_count", Integer),
    Column("sample_count", Integer),
    Column("anchor_tx", String(H)),
    Column("anchor_block", BigInteger),
    Column("manifest", Text),
    Column("status", String(16), nullable=False),
    Column("error", Text),
)

chain_cursor = Table(
    "chain_cursor",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("block", BigInteger, nullable=False),
    Column("block_hash", String(H), nullable=False),
)

ingest_counts = Table(
    "ingest_counts",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("count", BigInteger, nullable=False),
)


def open_database(url: str | None, home: Path, schema: str = "scd") -> Engine:
    """The SCD's engine (SQLite file under ``home`` or ``url``), migrated to the newest schema."""
    engine = make_engine(database_url(url, home, "scd"), schema=schema)
    migrate(engine, MIGRATIONS, schema=schema if is_postgres(engine) else None)
    log.info("SCD database ready: %s", engine.url.render_as_string(hide_password=True))
    return engine
