"""Initial market tables: sessions, signed submissions, committed books, rounds, awards.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "areas",
        sa.Column("pod", sa.String(length=34), nullable=False),
        sa.Column("area", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("pod"),
    )
    op.create_index(op.f("ix_areas_area"), "areas", ["area"], unique=False)
    op.create_table(
        "awards",
        sa.Column("session_id", sa.String(length=64), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("award_hash", sa.String(length=66), nullable=False),
        sa.Column("offer_hash", sa.String(length=66), nullable=False),
        sa.Column("request_hash", sa.String(length=66), nullable=False),
        sa.Column("mtu_start_s", sa.BigInteger(), nullable=False),
        sa.Column("power_w", sa.BigInteger(), nullable=False),
        sa.Column("price_cents_per_mwh", sa.BigInteger(), nullable=False),
        sa.Column("pod", sa.String(length=34), nullable=False),
        sa.Column("direction", sa.Integer(), nullable=False),
        sa.Column("stage", sa.String(length=3), nullable=False),
        sa.Column("share_of_request", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("session_id", "round", "position"),
    )
    op.create_index(op.f("ix_awards_award_hash"), "awards", ["award_hash"], unique=False)
    op.create_table(
        "book_capacity",
        sa.Column("session_id", sa.String(length=64), nullable=False),
        sa.Column("offer_hash", sa.String(length=66), nullable=False),
        sa.Column("mtu_start_s", sa.BigInteger(), nullable=False),
        sa.Column("remaining_w", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("session_id", "offer_hash", "mtu_start_s"),
    )
    op.create_table(
        "book_entries",
        sa.Column("session_id", sa.String(length=64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("hash", sa.String(length=66), nullable=False),
        sa.Column("leaf", sa.String(length=66), nullable=False),
        sa.PrimaryKeyConstraint("session_id", "position"),
        sa.UniqueConstraint("session_id", "hash", name="uq_book_entry"),
    )
    op.create_table(
        "commands",
        sa.Column("hash", sa.String(length=66), nullable=False),
        sa.Column("session_id", sa.String(length=64), nullable=False),
        sa.Column("action", sa.Integer(), nullable=False),
        sa.Column("signer", sa.String(length=42), nullable=False),
        sa.Column("nonce", sa.String(length=20), nullable=False),
        sa.Column("envelope", sa.JSON(), nullable=False),
        sa.Column("received_s", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("hash"),
        sa.UniqueConstraint("signer", "nonce", name="uq_commands_nonce"),
    )
    op.create_table(
        "offers",
        sa.Column("hash", sa.String(length=66), nullable=False),
        sa.Column("session_id", sa.String(length=64), nullable=False),
        sa.Column("aggregator", sa.String(length=42), nullable=False),
        sa.Column("pod", sa.String(length=34), nullable=False),
        sa.Column("direction", sa.Integer(), nullable=False),
        sa.Column("mtu_start_s", sa.BigInteger(), nullable=False),
        sa.Column("mtu_count", sa.Integer(), nullable=False),
        sa.Column("max_w", sa.BigInteger(), nullable=False),
        sa.Column("min_w", sa.BigInteger(), nullable=False),
        sa.Column("price_cents_per_mwh", sa.BigInteger(), nullable=False),
        sa.Column("valid_until_s", sa.BigInteger(), nullable=False),
        sa.Column("nonce", sa.String(length=20), nullable=False),
        sa.Column("envelope", sa.JSON(), nullable=False),
        sa.Column("received_s", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("hash"),
        sa.UniqueConstraint("aggregator", "nonce", name="uq_offers_nonce"),
    )
    op.create_index(op.f("ix_offers_pod"), "offers", ["pod"], unique=False)
    op.create_index(op.f("ix_offers_session_id"), "offers", ["session_id"], unique=False)
    op.create_table(
        "orders",
        sa.Column("hash", sa.String(length=66), nullable=False),
        sa.Column("session_id", sa.String(length=64), nullable=False),
        sa.Column("issuer", sa.String(length=42), nullable=False),
        sa.Column("offer_hash", sa.String(length=66), nullable=False),
        sa.Column("request_hash", sa.String(length=66), nullable=False),
        sa.Column("mtu_start_s", sa.BigInteger(), nullable=False),
        sa.Column("mtu_count", sa.Integer(), nullable=False),
        sa.Column("power_w", sa.BigInteger(), nullable=False),
        sa.Column("nonce", sa.String(length=20), nullable=False),
        sa.Column("expiry_s", sa.BigInteger(), nullable=False),
        sa.Column("envelope", sa.JSON(), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=True),
        sa.Column("received_s", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("hash"),
        sa.UniqueConstraint("issuer", "nonce", name="uq_orders_nonce"),
    )
    op.create_index(op.f("ix_orders_session_id"), "orders", ["session_id"], unique=False)
    op.create_table(
        "outcomes",
        sa.Column("session_id", sa.String(length=64), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("final", sa.Boolean(), nullable=False),
        sa.Column("awards_root", sa.String(length=66), nullable=False),
        sa.Column("total_cost_cents", sa.BigInteger(), nullable=False),
        sa.Column("award_count", sa.Integer(), nullable=False),
        sa.Column("provenance", sa.JSON(), nullable=False),
        sa.Column("signer", sa.String(length=42), nullable=False),
        sa.Column("signature", sa.String(length=132), nullable=False),
        sa.Column("excluded", sa.JSON(), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=True),
        sa.Column("created_s", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("session_id", "round", "final"),
    )
    op.create_table(
        "requests",
        sa.Column("hash", sa.String(length=66), nullable=False),
        sa.Column("session_id", sa.String(length=64), nullable=False),
        sa.Column("requester", sa.String(length=42), nullable=False),
        sa.Column("stage", sa.String(length=3), nullable=False),
        sa.Column("direction", sa.Integer(), nullable=False),
        sa.Column("mtu_start_s", sa.BigInteger(), nullable=False),
        sa.Column("mtu_count", sa.Integer(), nullable=False),
        sa.Column("volume_w", sa.BigInteger(), nullable=False),
        sa.Column("max_price_cents_per_mwh", sa.BigInteger(), nullable=False),
        sa.Column("area", sa.String(length=64), nullable=True),
        sa.Column("nonce", sa.String(length=20), nullable=False),
        sa.Column("envelope", sa.JSON(), nullable=False),
        sa.Column("received_s", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("hash"),
        sa.UniqueConstraint("requester", "nonce", name="uq_requests_nonce"),
    )
    op.create_index(op.f("ix_requests_session_id"), "requests", ["session_id"], unique=False)
    op.create_table(
        "sessions",
        sa.Column("session_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("delivery_start_s", sa.BigInteger(), nullable=False),
        sa.Column("mtu_count", sa.Integer(), nullable=False),
        sa.Column("gate_closure_s", sa.BigInteger(), nullable=False),
        sa.Column("pricing", sa.String(length=32), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("round_limit", sa.Integer(), nullable=False),
        sa.Column("order_book_root", sa.String(length=66), nullable=True),
        sa.Column("offer_count", sa.Integer(), nullable=False),
        sa.Column("request_count", sa.Integer(), nullable=False),
        sa.Column("awards_root", sa.String(length=66), nullable=True),
        sa.Column("total_cost_cents", sa.BigInteger(), nullable=True),
        sa.Column("award_count", sa.Integer(), nullable=True),
        sa.Column("open_tx", sa.String(length=66), nullable=True),
        sa.Column("gate_tx", sa.String(length=66), nullable=True),
        sa.Column("outcome_tx", sa.String(length=66), nullable=True),
        sa.Column("based_on", sa.JSON(), nullable=False),
        sa.Column("clearing", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("opened_s", sa.BigInteger(), nullable=False),
        sa.Column("updated_s", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("session_id"),
    )
    op.create_table(
        "validations",
        sa.Column("hash", sa.String(length=66), nullable=False),
        sa.Column("session_id", sa.String(length=64), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("dso", sa.String(length=42), nullable=False),
        sa.Column("nonce", sa.String(length=20), nullable=False),
        sa.Column("approved_count", sa.Integer(), nullable=False),
        sa.Column("rejected_count", sa.Integer(), nullable=False),
        sa.Column("envelope", sa.JSON(), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=True),
        sa.Column("received_s", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("hash"),
        sa.UniqueConstraint("dso", "nonce", name="uq_validations_nonce"),
        sa.UniqueConstraint("session_id", "round", name="uq_validation_round"),
    )


def downgrade() -> None:
    op.drop_table("validations")
    op.drop_table("sessions")
    op.drop_index(op.f("ix_requests_session_id"), table_name="requests")
    op.drop_table("requests")
    op.drop_table("outcomes")
    op.drop_index(op.f("ix_orders_session_id"), table_name="orders")
    op.drop_table("orders")
    op.drop_index(op.f("ix_offers_session_id"), table_name="offers")
    op.drop_index(op.f("ix_offers_pod"), table_name="offers")
    op.drop_table("offers")
    op.drop_table("commands")
    op.drop_table("book_entries")
    op.drop_table("book_capacity")
    op.drop_index(op.f("ix_awards_award_hash"), table_name="awards")
    op.drop_table("awards")
    op.drop_index(op.f("ix_areas_area"), table_name="areas")
    op.drop_table("areas")
