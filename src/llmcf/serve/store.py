"""The event store: durable, idempotent storage of user events through SQLAlchemy.

Backends: a SQLite file (the default; WAL journal with ``synchronous=FULL``, so an event is on
disk before its batch is acknowledged and survives ``kill -9``) or PostgreSQL by URL
(``postgresql+psycopg://user:password@host/db``). The schema is created and upgraded by the
Alembic migrations shipped in :mod:`llmcf.serve.migrations`, run programmatically by
:meth:`EventStore.open`.

Tables::

    events(seq BIGINT PK autoincrement, event_id VARCHAR(128) UNIQUE NULL, user_id VARCHAR(256),
           item_id VARCHAR(256), type VARCHAR(16), value FLOAT NULL, timestamp BIGINT (unix s),
           received_at BIGINT (unix ms)),  index (user_id, seq)
    item_texts(item_id VARCHAR(256) PK, text TEXT, updated_at BIGINT (unix ms))

Idempotency: an event carrying an ``event_id`` that is already stored (or repeated in the same
batch) is skipped and counted as a duplicate, so a client may retry a batch safely.

Events become implicit feedback through :class:`EventWeights`:

    w(e) = W[type(e)] * (value(e) if value(e) is given else 1)

and the weight of a (user, item) pair is the sum of its events' weights.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from llmcf.errors import ConfigError, DataError
from llmcf.ranking.events import EventWeights

MIGRATIONS = Path(__file__).parent / "migrations"


@dataclass
class Event:
    """One event as stored (ids are strings; ``timestamp`` unix seconds)."""

    user_id: str
    item_id: str
    type: str
    value: float | None = None
    timestamp: int | None = None
    event_id: str | None = None
    item_text: str | None = None


@dataclass
class UserHistory:
    """A user's most recent stored events, oldest first: ``seq`` int64, ``item_ids`` str,
    ``types`` str, ``values`` float64 (NaN: no value), all of shape (n,). The model maps them
    to its own units (:mod:`llmcf.ranking.events`)."""

    seq: np.ndarray
    item_ids: np.ndarray
    types: np.ndarray
    values: np.ndarray

    @classmethod
    def empty(cls) -> UserHistory:
        return cls(
            np.zeros(0, np.int64), np.zeros(0, dtype="<U1"), np.zeros(0, dtype="<U1"), np.zeros(0)
        )

    def after(self, seq: int) -> UserHistory:
        if len(self.seq) == 0 or self.seq[0] > seq:
            return self
        keep = self.seq > seq
        return UserHistory(self.seq[keep], self.item_ids[keep], self.types[keep], self.values[keep])

    def __len__(self) -> int:
        return int(self.seq.shape[0])


class EventConflictError(DataError):
    """An ``event_id`` was reused with a different payload (not a retry)."""

    def __init__(self, event_id: str) -> None:
        super().__init__(
            f"event_id {event_id!r} is already used by an event with another user, item, "
            "type or value; a retry must repeat the event unchanged"
        )
        self.event_id = event_id


def _payload(user_id: str, item_id: str, event_type: str, value: float | None) -> tuple[Any, ...]:
    return (str(user_id), str(item_id), str(event_type), None if value is None else float(value))


@dataclass
class IngestResult:
    accepted: int
    duplicates: int
    users: set[str] = field(default_factory=set)


def normalize_url(url: str | Path) -> str:
    """A SQLAlchemy URL; a bare path means a SQLite file (its folder is created)."""
    text = str(url)
    if "://" not in text:
        path = Path(text).expanduser().resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{path}"
    if text.startswith("sqlite:///") and text != "sqlite:///:memory:":
        Path(text[len("sqlite:///") :]).expanduser().parent.mkdir(parents=True, exist_ok=True)
    if text.startswith("postgresql://") or text.startswith("postgres://"):
        # psycopg 3 is the driver we ship; plain postgresql:// would ask for psycopg2
        text = "postgresql+psycopg://" + text.split("://", 1)[1]
    return text


class EventStore:
    """Durable event storage (see the module docstring). Thread-safe."""

    def __init__(self, url: str | Path) -> None:
        from sqlalchemy import create_engine, event

        self.url = normalize_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        kwargs: dict[str, Any] = {}
        if self.is_sqlite:
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        else:
            kwargs.update(pool_size=8, max_overflow=8, pool_pre_ping=True)
        try:
            self.engine = create_engine(self.url, **kwargs)
        except Exception as exc:  # bad URL, missing driver
            raise ConfigError(f"cannot use event store {self._safe_url()}: {exc}") from None
        if self.is_sqlite:

            @event.listens_for(self.engine, "connect")
            def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
                cur = dbapi_conn.cursor()
                # WAL + FULL: every commit is fsynced before it returns, so an acknowledged
                # batch survives a crash of the process (and of the machine).
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=FULL")
                cur.execute("PRAGMA busy_timeout=30000")
                cur.execute("PRAGMA foreign_keys=ON")
                cur.close()

        # SQLite has one writer at a time; serialising our own writes avoids busy retries
        self._write_lock = threading.Lock() if self.is_sqlite else None
        self._history_query: Any = None

    def _safe_url(self) -> str:
        from sqlalchemy.engine import make_url

        try:
            return make_url(self.url).render_as_string(hide_password=True)
        except Exception:
            return "<unparseable URL>"

    def __repr__(self) -> str:
        return f"EventStore({self._safe_url()})"

    # ------------------------------------------------------------------ set-up
    @classmethod
    def open(cls, url: str | Path) -> EventStore:
        """Connect and bring the schema to the newest migration."""
        store = cls(url)
        store.migrate()
        return store

    def migrate(self) -> None:
        """Run the shipped Alembic migrations up to ``head`` (idempotent)."""
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        deadline = time.monotonic() + 30.0
        delay = 0.05
        while True:
            try:
                with self.engine.begin() as conn:
                    cfg.attributes["connection"] = conn
                    command.upgrade(cfg, "head")
                return
            except Exception as exc:
                # several servers started together on one new SQLite store: one migrates, the
                # others wait for its lock instead of dying
                locked = "database is locked" in str(exc) or "already exists" in str(exc)
                if locked and time.monotonic() < deadline:
                    time.sleep(delay)
                    delay = min(delay * 2, 1.0)
                    continue
                raise ConfigError(f"cannot migrate event store {self._safe_url()}: {exc}") from exc

    def schema_revision(self) -> str | None:
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def close(self) -> None:
        self.engine.dispose()

    def pragma(self, name: str) -> Any:
        """A SQLite PRAGMA value as seen by a pooled connection (for checks)."""
        from sqlalchemy import text

        if not self.is_sqlite or not name.isidentifier():
            raise ConfigError(f"PRAGMA {name!r} only applies to SQLite stores")
        with self.engine.connect() as conn:
            return conn.execute(text(f"PRAGMA {name}")).scalar()

    # ------------------------------------------------------------------ writing
    def add_events(self, batch: Sequence[Event]) -> IngestResult:
        """Store a batch in one transaction (committed, i.e. durable, when this returns).

        Events whose ``event_id`` is already stored, or repeated earlier in the batch, are
        skipped and counted in ``duplicates``; an ``event_id`` reused with another payload
        (user, item, type or value) raises :class:`EventConflictError` and nothing of the
        batch is stored. Item texts given with the events are upserted.
        """
        from sqlalchemy import select

        from llmcf.serve.tables import events, item_texts

        now_ms = int(time.time() * 1000)
        now_s = now_ms // 1000
        seen_ids: set[str] = set()
        payloads: dict[str, tuple[Any, ...]] = {}
        rows: list[dict[str, Any]] = []
        duplicates = 0
        for e in batch:
            if e.event_id is not None:
                payload = _payload(e.user_id, e.item_id, e.type, e.value)
                if e.event_id in seen_ids:
                    if payloads[e.event_id] != payload:
                        raise EventConflictError(e.event_id)
                    duplicates += 1
                    continue
                seen_ids.add(e.event_id)
                payloads[e.event_id] = payload
            rows.append(
                {
                    "event_id": e.event_id,
                    "user_id": e.user_id,
                    "item_id": e.item_id,
                    "type": e.type,
                    "value": e.value,
                    "timestamp": now_s if e.timestamp is None else int(e.timestamp),
                    "received_at": now_ms,
                }
            )
        texts = {e.item_id: e.item_text for e in batch if e.item_text}
        lock = self._write_lock or _NULL_LOCK
        with lock, self.engine.begin() as conn:
            if seen_ids:
                found = conn.execute(
                    select(
                        events.c.event_id,
                        events.c.user_id,
                        events.c.item_id,
                        events.c.type,
                        events.c.value,
                    ).where(events.c.event_id.in_(list(seen_ids)))
                ).all()
                for r in found:
                    if _payload(r[1], r[2], r[3], r[4]) != payloads[r[0]]:
                        raise EventConflictError(r[0])
                stored = {r[0] for r in found}
                if stored:
                    duplicates += sum(1 for r in rows if r["event_id"] in stored)
                    rows = [r for r in rows if r["event_id"] not in stored]
            inserted: list[Any] = []
            if rows:
                stmt = self._insert(events).on_conflict_do_nothing(index_elements=["event_id"])
                inserted = list(conn.execute(stmt.returning(events.c.seq, events.c.user_id), rows))
                duplicates += len(rows) - len(inserted)  # lost a race with a concurrent retry
            if texts:
                ins = self._insert(item_texts)
                stmt = ins.on_conflict_do_update(
                    index_elements=["item_id"],
                    set_={"text": ins.excluded.text, "updated_at": ins.excluded.updated_at},
                )
                conn.execute(
                    stmt,
                    [{"item_id": k, "text": v, "updated_at": now_ms} for k, v in texts.items()],
                )
        return IngestResult(len(inserted), duplicates, {r[1] for r in inserted})

    def _insert(self, table: Any) -> Any:
        if self.is_sqlite:
            from sqlalchemy.dialects import sqlite

            return sqlite.insert(table)
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table)

    # ------------------------------------------------------------------ reading
    def user_history(self, user_id: str, limit: int = 500) -> UserHistory:
        """The user's ``limit`` most recent events, oldest first."""
        q = self._history_query
        if q is None:  # built once: a statement with bound parameters is compiled once
            from sqlalchemy import bindparam, select

            from llmcf.serve.tables import events

            q = self._history_query = (
                select(events.c.seq, events.c.item_id, events.c.type, events.c.value)
                .where(events.c.user_id == bindparam("user_id"))
                .order_by(events.c.seq.desc())
                .limit(bindparam("limit"))
            )
        with self.engine.connect() as conn:
            rows = conn.execute(q, {"user_id": user_id, "limit": int(limit)}).all()[::-1]
        if not rows:
            return UserHistory.empty()
        return UserHistory(
            np.array([r[0] for r in rows], dtype=np.int64),
            np.array([r[1] for r in rows], dtype=str),
            np.array([r[2] for r in rows], dtype=str),
            np.array([np.nan if r[3] is None else r[3] for r in rows], dtype=np.float64),
        )

    def put_item_text(self, item_id: str, text: str) -> None:
        """Store (or replace) the text of an item, durably."""
        from llmcf.serve.tables import item_texts

        now_ms = int(time.time() * 1000)
        with self._write_lock or _NULL_LOCK, self.engine.begin() as conn:
            ins = self._insert(item_texts)
            stmt = ins.on_conflict_do_update(
                index_elements=["item_id"],
                set_={"text": ins.excluded.text, "updated_at": ins.excluded.updated_at},
            )
            conn.execute(stmt, [{"item_id": item_id, "text": text, "updated_at": now_ms}])

    def put_item_texts(self, texts: dict[str, str], chunk: int = 5000) -> int:
        """Store (or replace) many item texts, durably, in transactions of ``chunk``."""
        from llmcf.serve.tables import item_texts

        now_ms = int(time.time() * 1000)
        rows = [{"item_id": k, "text": v, "updated_at": now_ms} for k, v in texts.items() if v]
        for start in range(0, len(rows), chunk):
            with self._write_lock or _NULL_LOCK, self.engine.begin() as conn:
                ins = self._insert(item_texts)
                stmt = ins.on_conflict_do_update(
                    index_elements=["item_id"],
                    set_={"text": ins.excluded.text, "updated_at": ins.excluded.updated_at},
                )
                conn.execute(stmt, rows[start : start + chunk])
        return len(rows)

    def item_text(self, item_id: str) -> str | None:
        from sqlalchemy import select

        from llmcf.serve.tables import item_texts

        with self.engine.connect() as conn:
            return conn.execute(
                select(item_texts.c.text).where(item_texts.c.item_id == item_id)
            ).scalar()

    def item_texts(self, item_ids: Iterable[str]) -> dict[str, str]:
        from sqlalchemy import select

        from llmcf.serve.tables import item_texts

        ids = list(dict.fromkeys(item_ids))
        if not ids:
            return {}
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(item_texts.c.item_id, item_texts.c.text).where(item_texts.c.item_id.in_(ids))
            ).all()
        return {r[0]: r[1] for r in rows}

    def all_item_texts(self, limit: int = 1_000_000) -> dict[str, str]:
        """Every stored item text (at most ``limit``), by item id: the storefront's catalog."""
        from sqlalchemy import select

        from llmcf.serve.tables import item_texts

        with self.engine.connect() as conn:
            rows = conn.execute(
                select(item_texts.c.item_id, item_texts.c.text)
                .order_by(item_texts.c.item_id)
                .limit(int(limit))
            ).all()
        return {r[0]: r[1] for r in rows}

    def count_item_texts(self) -> int:
        from sqlalchemy import func, select

        from llmcf.serve.tables import item_texts

        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(item_texts)).scalar() or 0)

    def event_users(self, limit: int) -> set[str] | None:
        """The distinct users with at least one stored event, or ``None`` when there are more
        than ``limit`` of them."""
        from sqlalchemy import select

        from llmcf.serve.tables import events

        with self.engine.connect() as conn:
            users = set(
                conn.execute(select(events.c.user_id).distinct().limit(limit + 1)).scalars()
            )
        return users if len(users) <= limit else None

    def count(self) -> int:
        from sqlalchemy import func, select

        from llmcf.serve.tables import events

        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(events)).scalar() or 0)

    def users_since(
        self, seq: int, limit: int = 100_000, *, lookback: int = 0, seen: set[int] | None = None
    ) -> tuple[int, set[str]]:
        """``(newest seq, users)`` of the events stored after ``seq`` (at most ``limit``
        events; call again from the returned seq for the rest). How a server process learns
        of the events other processes wrote.

        ``lookback`` > 0 also re-reads the ``lookback`` seqs at or below ``seq`` and reports
        the users of those not in ``seen`` (which it updates, keeping only that window):
        PostgreSQL hands out seqs at insert but commits can arrive out of seq order, so an
        event committed after a higher seq was read would otherwise be skipped for good."""
        from sqlalchemy import select

        from llmcf.serve.tables import events

        floor = max(0, int(seq) - int(lookback)) if lookback > 0 else int(seq)
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(events.c.seq, events.c.user_id)
                .where(events.c.seq > floor)
                .order_by(events.c.seq)
                .limit(int(limit) + max(0, int(seq) - floor))
            ).all()
        if seen is None:
            fresh = [r for r in rows if int(r[0]) > int(seq)]
        else:
            fresh = [r for r in rows if int(r[0]) > int(seq) or int(r[0]) not in seen]
        newest = max([int(seq), *(int(r[0]) for r in rows)])
        if seen is not None:
            seen.update(int(r[0]) for r in rows)
            low = newest - int(lookback)
            for q in [q for q in seen if q <= low]:
                seen.discard(q)
        return newest, {str(r[1]) for r in fresh}

    def max_seq(self) -> int:
        from sqlalchemy import func, select

        from llmcf.serve.tables import events

        with self.engine.connect() as conn:
            return int(conn.execute(select(func.max(events.c.seq))).scalar() or 0)

    def event_ids(self) -> set[str]:
        """Every stored ``event_id`` (for checks and tests)."""
        from sqlalchemy import select

        from llmcf.serve.tables import events

        with self.engine.connect() as conn:
            return set(
                conn.execute(
                    select(events.c.event_id).where(events.c.event_id.is_not(None))
                ).scalars()
            )

    def iter_events(self, chunk: int = 100_000) -> Iterable[list[Any]]:
        """All events in ``seq`` order, in lists of at most ``chunk`` rows
        ``(seq, user_id, item_id, type, value, timestamp)``."""
        from sqlalchemy import select

        from llmcf.serve.tables import events

        last = 0
        cols = (
            events.c.seq,
            events.c.user_id,
            events.c.item_id,
            events.c.type,
            events.c.value,
            events.c.timestamp,
        )
        while True:
            with self.engine.connect() as conn:
                rows = conn.execute(
                    select(*cols).where(events.c.seq > last).order_by(events.c.seq).limit(chunk)
                ).all()
            if not rows:
                return
            yield [tuple(r) for r in rows]
            last = int(rows[-1][0])

    def to_dataset(
        self, weights: EventWeights | None = None, *, name: str = "events"
    ) -> tuple[Any, int]:
        """All stored events as an implicit :class:`~llmcf.data.dataset.Dataset` and the
        highest ``seq`` it includes.

        Rating of (u, i) = sum of w(e) over the pair's events (see the module docstring);
        timestamp = the pair's latest event.
        """
        from llmcf.data.dataset import Dataset

        weights = weights or EventWeights()
        users: list[str] = []
        items: list[str] = []
        w: list[np.ndarray] = []
        ts: list[int] = []
        max_seq = 0
        for rows in self.iter_events():
            users.extend(r[1] for r in rows)
            items.extend(r[2] for r in rows)
            w.append(weights.weights([r[3] for r in rows], [r[4] for r in rows]))
            ts.extend(int(r[5]) for r in rows)
            max_seq = int(rows[-1][0])
        if not users:
            raise DataError(f"event store {self._safe_url()} holds no events to train on")
        dataset = Dataset.from_arrays(
            np.array(users, dtype=str),
            np.array(items, dtype=str),
            np.concatenate(w),
            np.array(ts, dtype=np.int64),
            duplicates="sum",
            feedback="implicit",
            name=name,
        )
        dataset.info["source"] = self._safe_url()
        dataset.info["event_weights"] = weights.as_dict()
        dataset.info["max_seq"] = max_seq
        return dataset, max_seq


class _NullLock:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


_NULL_LOCK = _NullLock()
