"""Alembic environment: runs on the connection handed over by ``EventStore.migrate``."""

from __future__ import annotations

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only reachable from a hand-made alembic.ini
    raise RuntimeError("run migrations through llmcf.serve.store.EventStore.migrate()")
context.configure(connection=connection, target_metadata=None)
with context.begin_transaction():
    context.run_migrations()
