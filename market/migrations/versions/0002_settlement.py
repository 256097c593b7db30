"""Settlement: one run per session, one signed outcome per activated award.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "settlement_runs",
        sa.Column("session_id", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("baseline_method", sa.String(length=64), nullable=False),
        sa.Column("tolerance_ppm", sa.Integer(), nullable=False),
        sa.Column("penalty_ppm", sa.Integer(), nullable=False),
        sa.Column("not_activated", sa.JSON(), nullable=False),
        sa.Column("mark_tx", sa.String(length=66), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_s", sa.BigInteger(), nullable=False),
        sa.Column("updated_s", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("session_id"),
    )
    op.create_table(
        "settlements",
        sa.Column("award_hash", sa.String(length=66), nullable=False),
        sa.Column("session_id", sa.String(length=64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("pod", sa.String(length=34), nullable=False),
        sa.Column("mtu_start_s", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("claim_cents", sa.BigInteger(), nullable=False),
        sa.Column("payer", sa.String(length=42), nullable=False),
        sa.Column("payee", sa.String(length=42), nullable=False),
        sa.Column("brp", sa.String(length=42), nullable=False),
        sa.Column("day_s", sa.BigInteger(), nullable=False),
        sa.Column("record_hash", sa.String(length=66), nullable=False),
        sa.Column("envelope", sa.JSON(), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=True),
        sa.Column("created_s", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("award_hash"),
    )
    op.create_index(op.f("ix_settlements_session_id"), "settlements", ["session_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_settlements_session_id"), table_name="settlements")
    op.drop_table("settlements")
    op.drop_table("settlement_runs")
