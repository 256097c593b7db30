"""Initial aggregator tables: availabilities, customer lists, offers, plans, payouts, steps.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
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
        "availabilities",
        sa.Column("hash", sa.String(length=66), nullable=False),
        sa.Column("day_s", sa.BigInteger(), nullable=False),
        sa.Column("pod", sa.String(length=34), nullable=False),
        sa.Column("fr_owner", sa.String(length=42), nullable=False),
        sa.Column("nonce", sa.String(length=20), nullable=False),
        sa.Column("envelope", sa.JSON(), nullable=False),
        sa.Column("received_s", sa.BigInteger(), nullable=False),
        sa.Column("forwarded", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("hash"),
        sa.UniqueConstraint("fr_owner", "nonce", name="uq_availability_nonce"),
    )
    op.create_index(op.f("ix_availabilities_day_s"), "availabilities", ["day_s"], unique=False)
    op.create_table(
        "customer_lists",
        sa.Column("hash", sa.String(length=66), nullable=False),
        sa.Column("day_s", sa.BigInteger(), nullable=False),
        sa.Column("nonce", sa.BigInteger(), nullable=False),
        sa.Column("envelope", sa.JSON(), nullable=False),
        sa.Column("receipt", sa.JSON(), nullable=True),
        sa.Column("created_s", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("hash"),
    )
    op.create_index(op.f("ix_customer_lists_day_s"), "customer_lists", ["day_s"], unique=False)
    op.create_table(
        "offers",
        sa.Column("hash", sa.String(length=66), nullable=False),
        sa.Column("session_id", sa.String(length=64), nullable=False),
        sa.Column("pod", sa.String(length=34), nullable=False),
        sa.Column("resource_id", sa.String(length=64), nullable=False),
        sa.Column("fr_owner", sa.String(length=42), nullable=False),
        sa.Column("nonce", sa.BigInteger(), nullable=False),
        sa.Column("envelope", sa.JSON(), nullable=False),
        sa.Column("receipt", sa.JSON(), nullable=True),
        sa.Column("created_s", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("hash"),
        sa.UniqueConstraint("nonce"),
    )
    op.create_index(op.f("ix_offers_session_id"), "offers", ["session_id"], unique=False)
    op.create_table(
        "plans",
        sa.Column("session_id", sa.String(length=64), nullable=False),
        sa.Column("fr_owner", sa.String(length=42), nullable=False),
        sa.Column("pod", sa.String(length=34), nullable=False),
        sa.Column("envelope", sa.JSON(), nullable=False),
        sa.Column("created_s", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("session_id", "fr_owner", "pod"),
    )
    op.create_table(
        "payouts",
        sa.Column("session_id", sa.String(length=64), nullable=False),
        sa.Column("fr_owner", sa.String(length=42), nullable=False),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("ref", sa.String(length=66), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=True),
        sa.Column("created_s", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("session_id", "fr_owner"),
    )
    op.create_table(
        "session_steps",
        sa.Column("session_id", sa.String(length=64), nullable=False),
        sa.Column("step", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.Column("done_s", sa.BigInteger(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("session_id", "step"),
    )


def downgrade() -> None:
    op.drop_table("session_steps")
    op.drop_table("payouts")
    op.drop_table("plans")
    op.drop_index(op.f("ix_offers_session_id"), table_name="offers")
    op.drop_table("offers")
    op.drop_index(op.f("ix_customer_lists_day_s"), table_name="customer_lists")
    op.drop_table("customer_lists")
    op.drop_index(op.f("ix_availabilities_day_s"), table_name="availabilities")
    op.drop_table("availabilities")
