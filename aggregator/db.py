"""The aggregator's tables (SQLAlchemy Core); ``aggregator/migrations`` creates them.

Every signed message the aggregator receives (availabilities, I-12) or makes (customer lists,
offers, plans) is kept as its exact JSON envelope, so what it serves and resends is what was
signed; payouts keep the transaction that paid them. On PostgreSQL the tables live in the schema
``aggregator``.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
)

__all__ = [
    "availabilities",
    "customer_lists",
    "metadata",
    "offers",
    "payouts",
    "plans",
    "session_steps",
]

metadata = MetaData()
H = 66
A = 42

availabilities = Table(
    "availabilities",
    metadata,
    Column("hash", String(H), primary_key=True),
    Column("day_s", BigInteger, nullable=False, index=True),
    Column("pod", String(34), nullable=False),
    Column("fr_owner", String(A), nullable=False),
    Column("nonce", String(20), nullable=False),
    Column("envelope", JSON, nullable=False),
    Column("received_s", BigInteger, nullable=False),
    Column("forwarded", Boolean, nullable=False, default=False),
    UniqueConstraint("fr_owner", "nonce", name="uq_availability_nonce"),
)

customer_lists = Table(
    "customer_lists",
    metadata,
    Column("hash", String(H), primary_key=True),
    Column("day_s", BigInteger, nullable=False, index=True),
    Column("nonce", BigInteger, nullable=False),
    Column("envelope", JSON, nullable=False),
    Column("receipt", JSON),
    Column("created_s", BigInteger, nullable=False),
)

offers = Table(
    "offers",
    metadata,
    Column("hash", String(H), primary_key=True),
    Column("session_id", String(64), nullable=False, index=True),
    Column("pod", String(34), nullable=False),
    Column("resource_id", String(64), nullable=False),
    Column("fr_owner", String(A), nullable=False),
    Column("nonce", BigInteger, nullable=False, unique=True),
    Column("envelope", JSON, nullable=False),
    Column("receipt", JSON),
    Column("created_s", BigInteger, nullable=False),
)

plans = Table(
    "plans",
    metadata,
    Column("session_id", String(64), primary_key=True),
    Column("fr_owner", String(A), primary_key=True),
    Column("pod", String(34), primary_key=True),
    Column("envelope", JSON, nullable=False),
    Column("created_s", BigInteger, nullable=False),
)

payouts = Table(
    "payouts",
    metadata,
    Column("session_id", String(64), primary_key=True),
    Column("fr_owner", String(A), primary_key=True),
    Column("amount_cents", BigInteger, nullable=False),
    Column("ref", String(H), nullable=False),
    Column("tx_hash", String(H)),
    Column("created_s", BigInteger, nullable=False),
)

session_steps = Table(
    "session_steps",
    metadata,
    Column("session_id", String(64), primary_key=True),
    Column("step", String(16), primary_key=True),
    Column("detail", JSON),
    Column("done_s", BigInteger, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
)
