"""Impressions: every list the service handed out (online evaluation).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
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
        "impressions",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("user_id", sa.String(256), nullable=False),
        sa.Column("arm", sa.String(8), nullable=False),
        sa.Column("model", sa.String(512), nullable=False),
        sa.Column("endpoint", sa.String(32), nullable=False),
        sa.Column("items", sa.Text, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_impressions_created", "impressions", ["created_at"])
    op.create_index("ix_impressions_user", "impressions", ["user_id", "created_at"])
    op.create_index("ix_events_received", "events", ["received_at"])


def downgrade() -> None:
    op.drop_index("ix_events_received", table_name="events")
    op.drop_index("ix_impressions_user", table_name="impressions")
    op.drop_index("ix_impressions_created", table_name="impressions")
    op.drop_table("impressions")
