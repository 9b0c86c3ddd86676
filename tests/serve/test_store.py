"""The event store on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import numpy as np
import pytest

from llmcf.errors import ConfigError, DataError
from llmcf.serve.store import Event, EventStore, EventWeights, normalize_url


def _exercise(store: EventStore) -> None:
    assert store.schema_revision() == "0002"
    first = store.add_events(
        [
            Event("u1", "i1", "view", event_id="e1"),
            Event("u1", "i2", "rating", 4.0, timestamp=1_700_000_000, event_id="e2"),
            Event("u1", "i1", "view", event_id="e1"),  # repeated in the batch
            Event("u2", "i9", "purchase", 2.0, item_text="A red scarf"),  # no event id
        ]
    )
    assert (first.accepted, first.duplicates) == (3, 1)
    assert first.users == {"u1", "u2"}
    retry = store.add_events([Event("u1", "i1", "view", event_id="e1"), Event("u3", "i1", "cart")])
    assert (retry.accepted, retry.duplicates) == (1, 1)
    assert store.count() == 4
    assert store.event_ids() == {"e1", "e2"}
    weights = EventWeights(view=1.0, cart=3.0, purchase=5.0, rating=1.0)
    h = store.user_history("u1")
    assert h.item_ids.tolist() == ["i1", "i2"]
    assert h.types.tolist() == ["view", "rating"] and h.values[1] == 4.0
    assert h.seq[0] < h.seq[1]
    assert len(h.after(int(h.seq[0]))) == 1
    u2 = store.user_history("u2")
    assert u2.types.tolist() == ["purchase"] and u2.values.tolist() == [2.0]  # quantity 2
    assert weights.weights(u2.types, u2.values).tolist() == [10.0]
    assert len(store.user_history("nobody")) == 0
    assert store.item_texts(["i9", "i1"]) == {"i9": "A red scarf"}
    store.add_events([Event("u4", "i9", "view", item_text="A blue scarf")])  # text updated
    assert store.item_text("i9") == "A blue scarf"
    dataset, max_seq = store.to_dataset(weights)
    assert max_seq == store.max_seq()
    assert dataset.feedback == "implicit"
    m = dataset.matrix().toarray()
    ui = dataset.users.index("u1"), dataset.items.index("i1")
    assert m[ui] == 1.0
    assert m[dataset.users.index("u2"), dataset.items.index("i9")] == 10.0
    assert m[dataset.users.index("u3"), dataset.items.index("i1")] == 3.0
    store.migrate()  # idempotent
    assert store.count() == 5
    assert store.event_users(10) == {"u1", "u2", "u3", "u4"}
    assert store.event_users(3) is None  # more users than the limit


def test_sqlite_store(tmp_path) -> None:
    store = EventStore.open(tmp_path / "sub" / "events.sqlite")  # a bare path, folder created
    try:
        assert store.pragma("journal_mode") == "wal"
        assert store.pragma("synchronous") == 2  # FULL
        _exercise(store)
    finally:
        store.close()


def test_postgres_store(postgres_url: str) -> None:
    store = EventStore.open(postgres_url)
    try:
        _exercise(store)
        with pytest.raises(ConfigError, match="only applies to SQLite"):
            store.pragma("journal_mode")
    finally:
        store.close()


def test_history_keeps_most_recent(tmp_path) -> None:
    store = EventStore.open(tmp_path / "e.sqlite")
    store.add_events([Event("u", f"i{k}", "view") for k in range(10)])
    h = store.user_history("u", limit=3)
    assert h.item_ids.tolist() == ["i7", "i8", "i9"]
    store.close()


def test_empty_store_cannot_train(tmp_path) -> None:
    store = EventStore.open(tmp_path / "e.sqlite")
    with pytest.raises(DataError, match="holds no events"):
        store.to_dataset()
    store.close()


def test_event_weights_parse() -> None:
    w = EventWeights.parse("view=0.5, purchase=7")
    assert (w.view, w.cart, w.purchase, w.rating) == (0.5, 3.0, 7.0, 1.0)
    assert w.weight("purchase", 2) == 14.0
    assert np.allclose(w.weights(["view", "rating"], [None, 3.0]), [0.5, 3.0])
    with pytest.raises(ConfigError, match="'click=1'"):
        EventWeights.parse("click=1")
    with pytest.raises(ConfigError, match="not a number"):
        EventWeights.parse("view=abc")
    with pytest.raises(ConfigError, match="finite"):
        EventWeights.parse("view=inf")


def test_urls(tmp_path) -> None:
    assert normalize_url(tmp_path / "x.db") == f"sqlite:///{tmp_path / 'x.db'}"
    assert normalize_url("postgresql://a:b@h/db") == "postgresql+psycopg://a:b@h/db"
    with pytest.raises(ConfigError, match="cannot"):
        EventStore.open("nosuchdialect://x/y")


def test_users_since_with_a_lookback_sees_a_commit_below_the_cursor(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """PostgreSQL may commit an event after a higher seq was read: the follower re-reads a
    window below its cursor and reports such an event once (and no event twice)."""
    from llmcf.serve.tables import events

    store = EventStore.open(tmp_path / "e.sqlite")
    try:
        store.add_events([Event("u1", "i1", "view"), Event("u2", "i2", "view")])
        seen: set[int] = set()
        last, users = store.users_since(0, lookback=100, seen=seen)
        assert users == {"u1", "u2"} and last == 2
        with store.engine.begin() as conn:  # seq 5 read first; seq 4 "commits" late
            conn.execute(events.insert().values(seq=5, user_id="u5", item_id="i", type="view",
                                                timestamp=0, received_at=0))  # fmt: skip
        last, users = store.users_since(last, lookback=100, seen=seen)
        assert users == {"u5"} and last == 5
        with store.engine.begin() as conn:
            conn.execute(events.insert().values(seq=4, user_id="u4", item_id="i", type="view",
                                                timestamp=0, received_at=0))  # fmt: skip
        assert store.users_since(last, lookback=100, seen=seen) == (5, {"u4"})
        assert store.users_since(last, lookback=100, seen=seen) == (5, set())  # once only
        # without a lookback the late commit is skipped (what the follower did before)
        assert store.users_since(5) == (5, set())
    finally:
        store.close()
