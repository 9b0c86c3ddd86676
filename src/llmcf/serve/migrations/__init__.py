"""Alembic migrations of the event store, run by :meth:`llmcf.serve.store.EventStore.migrate`."""
