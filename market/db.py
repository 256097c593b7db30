"""The market's tables (SQLAlchemy Core). Migrations in ``market/migrations`` create them.

Why these tables: every signed submission is kept as the exact JSON envelope it arrived in
(``envelope``), so that what the API serves is what was signed, and the columns beside it are
only what queries filter or join on. The order book committed at gate closure (``book_entries``
with their leaves in root order, and for a real-time session the capacity it cleared against)
and every round's awards are kept too: the API serves rounds, proofs and receipts from them,
and an auditor who compares them with the chain finds any later change.

On PostgreSQL these tables live in the schema ``market`` (``flexledger.storage.make_engine``).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

__all__ = [
    "areas",
    "awards",
    "book_capacity",
    "book_entries",
    "commands",
    "metadata",
    "offers",
    "orders",
    "outcomes",
    "requests",
    "sessions",
    "settlement_runs",
    "settlements",
    "validations",
]

metadata = MetaData()
H = 66  # 0x + 64 hex
A = 42  # 0x + 40 hex

sessions = Table(
    "sessions",
    metadata,
    Column("session_id", String(64), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("state", String(16), nullable=False),
    Column("delivery_start_s", BigInteger, nullable=False),
    Column("mtu_count", Integer, nullable=False),
    Column("gate_closure_s", BigInteger, nullable=False),
    Column("pricing", String(32), nullable=False),
    Column("round", Integer, nullable=False, default=0),
    Column("round_limit", Integer, nullable=False),
    Column("order_book_root", String(H)),
    Column("offer_count", Integer, nullable=False, default=0),
    Column("request_count", Integer, nullable=False, default=0),
    Column("awards_root", String(H)),
    Column("total_cost_cents", BigInteger),
    Column("award_count", Integer),
    Column("open_tx", String(H)),
    Column("gate_tx", String(H)),
    Column("outcome_tx", String(H)),
    Column("based_on", JSON, nullable=False, default=list),
    Column("clearing", JSON),
    Column("error", Text),
    Column("opened_s", BigInteger, nullable=False),
    Column("updated_s", BigInteger, nullable=False),
)

offers = Table(
    "offers",
    metadata,
    Column("hash", String(H), primary_key=True),
    Column("session_id", String(64), nullable=False, index=True),
    Column("aggregator", String(A), nullable=False),
    Column("pod", String(34), nullable=False, index=True),
    Column("direction", Integer, nullable=False),
    Column("mtu_start_s", BigInteger, nullable=False),
    Column("mtu_count", Integer, nullable=False),
    Column("max_w", BigInteger, nullable=False),
    Column("min_w", BigInteger, nullable=False),
    Column("price_cents_per_mwh", BigInteger, nullable=False),
    Column("valid_until_s", BigInteger, nullable=False),
    Column("nonce", String(20), nullable=False),
    Column("envelope", JSON, nullable=False),
    Column("received_s", BigInteger, nullable=False),
    UniqueConstraint("aggregator", "nonce", name="uq_offers_nonce"),
)

requests = Table(
    "requests",
    metadata,
    Column("hash", String(H), primary_key=True),
    Column("session_id", String(64), nullable=False, index=True),
    Column("requester", String(A), nullable=False),
    Column("stage", String(3), nullable=False),
    Column("direction", Integer, nullable=False),
    Column("mtu_start_s", BigInteger, nullable=False),
    Column("mtu_count", Integer, nullable=False),
    Column("volume_w", BigInteger, nullable=False),
    Column("max_price_cents_per_mwh", BigInteger, nullable=False),
    Column("area", String(64)),
    Column("nonce", String(20), nullable=False),
    Column("envelope", JSON, nullable=False),
    Column("received_s", BigInteger, nullable=False),
    UniqueConstraint("requester", "nonce", name="uq_requests_nonce"),
)

book_entries = Table(
    "book_entries",
    metadata,
    Column("session_id", String(64), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("kind", String(8), nullable=False),
    Column("hash", String(H), nullable=False),
    Column("leaf", String(H), nullable=False),
    UniqueConstraint("session_id", "hash", name="uq_book_entry"),
)

book_capacity = Table(
    "book_capacity",
    metadata,
    Column("session_id", String(64), primary_key=True),
    Column("offer_hash", String(H), primary_key=True),
    Column("mtu_start_s", BigInteger, primary_key=True),
    Column("remaining_w", BigInteger, nullable=False),
)

outcomes = Table(
    "outcomes",
    metadata,
    Column("session_id", String(64), primary_key=True),
    Column("round", Integer, primary_key=True),
    Column("final", Boolean, primary_key=True),
    Column("awards_root", String(H), nullable=False),
    Column("total_cost_cents", BigInteger, nullable=False),
    Column("award_count", Integer, nullable=False),
    Column("provenance", JSON, nullable=False),
    Column("signer", String(A), nullable=False),
    Column("signature", String(132), nullable=False),
    Column("excluded", JSON, nullable=False, default=list),
    Column("tx_hash", String(H)),
    Column("created_s", BigInteger, nullable=False),
)

awards = Table(
    "awards",
    metadata,
    Column("session_id", String(64), primary_key=True),
    Column("round", Integer, primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("award_hash", String(H), nullable=False, index=True),
    Column("offer_hash", String(H), nullable=False),
    Column("request_hash", String(H), nullable=False),
    Column("mtu_start_s", BigInteger, nullable=False),
    Column("power_w", BigInteger, nullable=False),
    Column("price_cents_per_mwh", BigInteger, nullable=False),
    Column("pod", String(34), nullable=False),
    Column("direction", Integer, nullable=False),
    Column("stage", String(3), nullable=False),
    Column("share_of_request", Float, nullable=False),
)

validations = Table(
    "validations",
    metadata,
    Column("hash", String(H), primary_key=True),
    Column("session_id", String(64), nullable=False),
    Column("round", Integer, nullable=False),
    Column("dso", String(A), nullable=False),
    Column("nonce", String(20), nullable=False),
    Column("approved_count", Integer, nullable=False),
    Column("rejected_count", Integer, nullable=False),
    Column("envelope", JSON, nullable=False),
    Column("tx_hash", String(H)),
    Column("received_s", BigInteger, nullable=False),
    UniqueConstraint("session_id", "round", name="uq_validation_round"),
    UniqueConstraint("dso", "nonce", name="uq_validations_nonce"),
)

orders = Table(
    "orders",
    metadata,
    Column("hash", String(H), primary_key=True),
    Column("session_id", String(64), nullable=False, index=True),
    Column("issuer", String(A), nullable=False),
    Column("offer_hash", String(H), nullable=False),
    Column("request_hash", String(H), nullable=False),
    Column("mtu_start_s", BigInteger, nullable=False),
    Column("mtu_count", Integer, nullable=False),
    Column("power_w", BigInteger, nullable=False),
    Column("nonce", String(20), nullable=False),
    Column("expiry_s", BigInteger, nullable=False),
    Column("envelope", JSON, nullable=False),
    Column("tx_hash", String(H)),
    Column("received_s", BigInteger, nullable=False),
    UniqueConstraint("issuer", "nonce", name="uq_orders_nonce"),
)

commands = Table(
    "commands",
    metadata,
    Column("hash", String(H), primary_key=True),
    Column("session_id", String(64), nullable=False),
    Column("action", Integer, nullable=False),
    Column("signer", String(A), nullable=False),
    Column("nonce", String(20), nullable=False),
    Column("envelope", JSON, nullable=False),
    Column("received_s", BigInteger, nullable=False),
    UniqueConstraint("signer", "nonce", name="uq_commands_nonce"),
)

areas = Table(
    "areas",
    metadata,
    Column("pod", String(34), primary_key=True),
    Column("area", String(64), nullable=False, index=True),
)

settlement_runs = Table(
    "settlement_runs",
    metadata,
    Column("session_id", String(64), primary_key=True),
    Column("state", String(16), nullable=False),
    Column("baseline_method", String(64), nullable=False),
    Column("tolerance_ppm", Integer, nullable=False),
    Column("penalty_ppm", Integer, nullable=False),
    Column("not_activated", JSON, nullable=False, default=list),
    Column("mark_tx", String(H)),
    Column("error", Text),
    Column("created_s", BigInteger, nullable=False),
    Column("updated_s", BigInteger, nullable=False),
)

settlements = Table(
    "settlements",
    metadata,
    Column("award_hash", String(H), primary_key=True),
    Column("session_id", String(64), nullable=False, index=True),
    Column("position", Integer, nullable=False),
    Column("pod", String(34), nullable=False),
    Column("mtu_start_s", BigInteger, nullable=False),
    Column("status", String(24), nullable=False),
    Column("amount_cents", BigInteger, nullable=False),
    Column("claim_cents", BigInteger, nullable=False),
    Column("payer", String(A), nullable=False),
    Column("payee", String(A), nullable=False),
    Column("brp", String(A), nullable=False),
    Column("day_s", BigInteger, nullable=False),
    Column("record_hash", String(H), nullable=False),
    Column("envelope", JSON, nullable=False),
    Column("tx_hash", String(H)),
    Column("created_s", BigInteger, nullable=False),
)
