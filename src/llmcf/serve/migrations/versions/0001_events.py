"""Events and item texts.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
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
        "events",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("event_id", sa.String(128), nullable=True),
        sa.Column("user_id", sa.String(256), nullable=False),
        sa.Column("item_id", sa.String(256), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("value", sa.Float, nullable=True),
        sa.Column("timestamp", sa.BigInteger, nullable=False),
        sa.Column("received_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ux_events_event_id", "events", ["event_id"], unique=True)
    op.create_index("ix_events_user_seq", "events", ["user_id", "seq"])
    op.create_table(
        "item_texts",
        sa.Column("item_id", sa.String(256), primary_key=True),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("item_texts")
    op.drop_index("ix_events_user_seq", table_name="events")
    op.drop_index("ux_events_event_id", table_name="events")
    op.drop_table("events")
