"""SQLAlchemy Core tables of the event store (the schema the migrations create)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Float, Index, Integer, MetaData, String, Table, Text

metadata = MetaData()

# SQLite only auto-increments an INTEGER PRIMARY KEY
_SEQ = BigInteger().with_variant(Integer(), "sqlite")

events = Table(
    "events",
    metadata,
    Column("seq", _SEQ, primary_key=True, autoincrement=True),
    Column("event_id", String(128), nullable=True),
    Column("user_id", String(256), nullable=False),
    Column("item_id", String(256), nullable=False),
    Column("type", String(16), nullable=False),
    Column("value", Float, nullable=True),
    Column("timestamp", BigInteger, nullable=False),
    Column("received_at", BigInteger, nullable=False),
    Index("ux_events_event_id", "event_id", unique=True),
    Index("ix_events_user_seq", "user_id", "seq"),
)

item_texts = Table(
    "item_texts",
    metadata,
    Column("item_id", String(256), primary_key=True),
    Column("text", Text, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)
