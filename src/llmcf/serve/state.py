"""Run-time state of one service instance: settings, the event store, the current model, the
per-user cache (recent events and the ranking computed from them), the users with stored
events, the reader threads and the Prometheus metrics; and :func:`recommend`, the read path
shared by the FastAPI route and the fast path."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from llmcf.serve.engine import RankedItems, Ranking, ServingModel
from llmcf.serve.store import EventStore, UserHistory

T = TypeVar("T")


def default_events_db() -> str:
    """``$LLMCF_EVENTS_DB``, else a SQLite file ``events.sqlite`` in the llmcf cache folder."""
    from llmcf.settings import cache_dir

    return os.environ.get("LLMCF_EVENTS_DB") or f"sqlite:///{cache_dir() / 'events.sqlite'}"


@dataclass
class ServeSettings:
    """Service settings.

    Keys (the ``X-API-Key`` header): ``ingest_key`` (``$LLMCF_INGEST_KEY``) for
    ``POST /v1/events`` and ``PUT /v1/items/{id}``; ``admin_key`` (``$LLMCF_ADMIN_KEY``) for
    ``/v1/admin/*`` and, unless ``public_metrics``, ``/metrics``. ``api_key``
    (``$LLMCF_API_KEY``) stands in for either one that is not set. An endpoint whose key is
    unset refuses every request (403).
    """

    model_dir: Path | None = None
    events_db: str = field(default_factory=default_events_db)
    #: A/B test: a second model (``$LLMCF_MODEL_DIR_B``) served to the share ``ab_split``
    #: (``$LLMCF_AB_SPLIT``, default 0.5) of the users, chosen by a stable hash of the user id
    model_dir_b: Path | None = field(
        default_factory=lambda: Path(v) if (v := os.environ.get("LLMCF_MODEL_DIR_B")) else None
    )
    ab_split: float = field(default_factory=lambda: float(os.environ.get("LLMCF_AB_SPLIT") or 0.5))
    #: log every served list as an impression (batched, off the request path)
    impressions: bool = True
    api_key: str | None = field(default_factory=lambda: os.environ.get("LLMCF_API_KEY") or None)
    ingest_key: str | None = field(
        default_factory=lambda: os.environ.get("LLMCF_INGEST_KEY") or None
    )
    admin_key: str | None = field(default_factory=lambda: os.environ.get("LLMCF_ADMIN_KEY") or None)
    public_metrics: bool = False
    max_body_bytes: int = 1_000_000
    cors_origins: tuple[str, ...] = ()
    history_limit: int = 500  # most recent events per user folded in
    #: seconds between looks for events other server processes stored (0: this process is
    #: the store's only writer)
    follow_interval: float = 0.2

    def key_for(self, role: str) -> str | None:
        """The key of ``role`` (``"ingest"`` or ``"admin"``), else ``api_key``."""
        own = self.ingest_key if role == "ingest" else self.admin_key
        return own or self.api_key

    cache_users: int = 100_000  # users whose recent events (and rankings) are kept in memory
    #: length of the kept rankings (a request for more computes and keeps a longer one);
    #: about 1 kB per cached user at 50
    ranking_depth: int = 50
    #: answer plain GET recommendations before FastAPI's routing (same responses; see
    #: llmcf.serve.app)
    fast_path: bool = True
    reader_threads: int = 4  # threads for store reads on the recommendation path
    #: at most this many distinct users with stored events are kept in memory, so that the
    #: others need no store query (0: query the store for every user not in the cache)
    event_users_limit: int = 1_000_000
    #: move the objects alive after start-up and after each model load out of the garbage
    #: collector's reach (gc.freeze): a full collection of a served process then takes
    #: microseconds instead of tens of milliseconds. Process-wide, so off for an embedded
    #: app; ``llmcf serve`` turns it on.
    freeze_gc: bool = False


_NO_EVENTS = UserHistory.empty()  # shared by the entries of users without stored events


class UserEntry:
    """What the service keeps in memory about one user: the recent stored events and, once
    computed, the user's :class:`~llmcf.serve.engine.Ranking` under the current model (the
    fold-in result, reused by every request until the user's next event or a reload)."""

    __slots__ = ("history", "ranking")

    def __init__(self, history: UserHistory) -> None:
        self.history = history
        self.ranking: Ranking | None = None


class EventUsers:
    """The users that have stored events: a scan of the store at start-up plus this process's
    own writes. A user outside the set has an empty history, known without a store query.

    Until the scan is done (or when it found more than ``limit`` users, or ``limit`` is 0)
    every user may have events. Writes are recorded after their commit and before their
    answer, so a user whose events were acknowledged is never left out. Users whose events
    another server process wrote are added when this process sees them
    (:func:`llmcf.serve.app._follow_store`, every ``follow_interval`` seconds).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users: set[str] | None = None
        self._pending: set[str] | None = set()  # writes during the scan

    def scan(self, store: EventStore, limit: int) -> None:
        """Read the users of the stored events (blocking)."""
        try:
            found = store.event_users(limit) if limit > 0 else None
        except Exception:
            with self._lock:
                self._pending = None  # every user stays "may have events"
            raise
        with self._lock:
            if found is not None and self._pending is not None:
                self._users = found | self._pending
            self._pending = None

    def add(self, user_ids: set[str]) -> None:
        with self._lock:
            if self._users is not None:
                self._users |= user_ids
            elif self._pending is not None:
                self._pending |= user_ids

    def may_have_events(self, user_id: str) -> bool:
        users = self._users
        return users is None or user_id in users

    @property
    def ready(self) -> bool:
        return self._users is not None


class HistoryCache:
    """LRU cache of users' recent events (and their rankings), invalidated by writes.

    A reader that loaded a user's events from the store only caches them if no write happened
    in between (a global write counter), so a cached history is never older than an
    acknowledged write. A write drops the entries of its users, rankings included.
    """

    def __init__(self, store: EventStore, limit: int, size: int) -> None:
        self.store, self.limit, self.size = store, limit, size
        self._lock = threading.Lock()
        self._data: OrderedDict[str, UserEntry] = OrderedDict()
        self._writes = 0

    def cached(self, user_id: str) -> UserEntry | None:
        """The cached entry of ``user_id``, or ``None`` (no store access)."""
        with self._lock:
            hit = self._data.get(user_id)
            if hit is not None:
                self._data.move_to_end(user_id)
            return hit

    def get(self, user_id: str) -> UserEntry:
        """The cached entry, else one read from the store (blocking: call it off the event
        loop)."""
        with self._lock:
            hit = self._data.get(user_id)
            if hit is not None:
                self._data.move_to_end(user_id)
                return hit
            version = self._writes
        entry = UserEntry(self.store.user_history(user_id, self.limit))
        with self._lock:
            if self._writes == version:
                self._data[user_id] = entry
                if len(self._data) > self.size:
                    self._data.popitem(last=False)
        return entry

    def get_if_no_events(self, user_id: str, users: EventUsers) -> UserEntry | None:
        """The cached entry, else an empty one when ``users`` says the user has no stored
        events (no store access, so callable on the event loop), else ``None``."""
        with self._lock:
            hit = self._data.get(user_id)
            if hit is not None:
                self._data.move_to_end(user_id)
                return hit
            version = self._writes
        # checked after reading the write counter: a write between the check and the insert
        # below changes the counter, and the empty entry is not kept
        if users.may_have_events(user_id):
            return None
        entry = UserEntry(_NO_EVENTS)
        with self._lock:
            if self._writes == version:
                self._data[user_id] = entry
                if len(self._data) > self.size:
                    self._data.popitem(last=False)
        return entry

    def invalidate(self, user_ids: set[str]) -> None:
        with self._lock:
            self._writes += 1
            for u in user_ids:
                self._data.pop(u, None)

    def clear(self) -> None:
        with self._lock:
            self._writes += 1
            self._data.clear()

    def __len__(self) -> int:
        return len(self._data)


async def recommend(state: AppState, model: ServingModel, user_id: str, n: int) -> RankedItems:
    """Top-``n`` for a user with the stored events folded in, from the user's cached ranking
    when it is there and long enough.

    A ranking is computed ``max(n, settings.ranking_depth)`` long and kept in the user's cache
    entry until the user's next event or a model reload (item-based models; a ranking that
    needed stored item texts is not kept, as another user's event may change a text). Store
    reads run in the reader threads, and only for users that may have stored events; the
    in-memory scoring runs on the event loop (O(|h| * k) numpy work, cheaper than a thread
    hop).
    """
    entry = state.history.cached(user_id) or state.history.get_if_no_events(
        user_id, state.event_users
    )
    if entry is None:  # a store query: off the event loop
        entry = await state.in_thread(state.history.get, user_id)
    ranking = entry.ranking
    if ranking is None or ranking.token != model.token or ranking.depth < n:
        history = entry.history
        if model.needs_store(history):
            ranking = await state.in_thread(model.rank, user_id, n, history, state.store.item_texts)
        elif model.item_based:  # kept until the user's next event (or a reload)
            depth = max(n, state.settings.ranking_depth)
            ranking = entry.ranking = model.rank(user_id, depth, history)
        else:  # another model's own top-n: not kept
            ranking = model.rank(user_id, n, history)
    ranked = ranking.take(model.item_ids_str, n)
    state.log_list(
        user_id, "B" if model is state.model_b else "A", model, "recommendations", ranked
    )
    return ranked


class Metrics:
    """Prometheus metrics of one app (own registry, so several apps can live in one process)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter(
            "llmcf_http_requests",
            "HTTP requests by route template, method and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "llmcf_http_request_duration_seconds",
            "HTTP request latency by route template",
            ["route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=self.registry,
        )
        self.events = Counter("llmcf_events_ingested", "events stored", registry=self.registry)
        self.duplicates = Counter(
            "llmcf_events_duplicate", "events skipped as duplicates", registry=self.registry
        )
        self.fallbacks = Counter(
            "llmcf_fallback_lists",
            "lists served as a fallback",
            ["endpoint"],
            registry=self.registry,
        )
        self.reloads = Counter(
            "llmcf_model_reloads", "model (re)loads by outcome", ["outcome"], registry=self.registry
        )
        self.ready = Gauge("llmcf_model_ready", "1 when a model is loaded", registry=self.registry)
        # children per (method, route, status): labels() takes a lock and builds its key
        # on every call
        self._request_children: dict[tuple[str, str, str], tuple[Any, Any]] = {}

    def observe_request(self, method: str, route: str, status: int, t0: float) -> None:
        """Count a request and its latency since ``t0`` (``time.perf_counter()``)."""
        key = (method, route, str(status))
        children = self._request_children.get(key)
        if children is None:
            children = self.requests.labels(*key), self.latency.labels(route)
            self._request_children[key] = children
        children[0].inc()
        children[1].observe(time.perf_counter() - t0)


class AppState:
    """Everything the routes share. ``model`` is swapped atomically by a reload."""

    def __init__(self, settings: ServeSettings, store: EventStore) -> None:
        self.settings = settings
        self.store = store
        self.model: ServingModel | None = None
        #: the A/B test's arm B (``settings.model_dir_b``), or None
        self.model_b: ServingModel | None = None
        self.load_error: str | None = None
        from llmcf.serve.impressions import ImpressionLog

        self.impressions = ImpressionLog(store)
        self._labels: dict[int, str] = {}
        self.history = HistoryCache(store, settings.history_limit, settings.cache_users)
        self.event_users = EventUsers()
        self.metrics = Metrics()
        self.reload_lock = threading.Lock()
        #: bumped by every item-text write of this process (the storefront's catalog cache)
        self.texts_version = 0
        self._readers: ThreadPoolExecutor | None = None
        self._rerankers: ThreadPoolExecutor | None = None

    async def in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in the service's reader threads (store reads of the hot path).

        A plain executor hop costs a fraction of anyio's ``to_thread`` (FastAPI's thread pool:
        capacity limiter, context copy, cancellation scope), which is paid on every cache miss.
        """
        readers = self._readers
        if readers is None:
            readers = self._readers = ThreadPoolExecutor(
                max_workers=self.settings.reader_threads, thread_name_prefix="llmcf-read"
            )
        return await asyncio.get_running_loop().run_in_executor(readers, fn, *args)

    async def in_rerank_thread(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in the re-ranker's own thread: a language model call must not hold
        the event loop, and its runtime may not be thread-safe (one call at a time)."""
        rerankers = self._rerankers
        if rerankers is None:
            rerankers = self._rerankers = ThreadPoolExecutor(1, thread_name_prefix="llmcf-rerank")
        return await asyncio.get_running_loop().run_in_executor(rerankers, fn, *args)

    def model_for(self, user_id: str | None) -> tuple[str, ServingModel | None]:
        """``(arm, model)`` of a user: arm ``"B"`` (``model_b``) for the ``ab_split`` share
        of user ids by a stable hash (blake2b), else ``"A"``; anonymous visitors get A."""
        b = self.model_b
        if b is not None and user_id and ab_bucket(user_id) < self.settings.ab_split:
            return "B", b
        return "A", self.model

    def log_list(
        self, user_id: str, arm: str, model: ServingModel, endpoint: str, ranked: RankedItems
    ) -> None:
        """Queue a served list as an impression (:mod:`llmcf.serve.impressions`)."""
        if not self.settings.impressions:
            return
        label = self._labels.get(model.token)
        if label is None:
            label = self._labels[model.token] = f"{type(model.model).__name__} {model.source}"
        self.impressions.log(user_id, arm, label, endpoint, ranked.item_ids)

    def close(self) -> None:
        """Stop the reader and re-ranker threads (a later request starts them again)."""
        self.impressions.close()
        for pool in (self._readers, self._rerankers):
            if pool is not None:
                pool.shutdown(wait=False)
        self._readers = self._rerankers = None

    def set_model(self, model: ServingModel) -> ServingModel | None:
        previous, self.model = self.model, model
        self.load_error = None
        self.metrics.ready.set(1)
        return previous


def ab_bucket(user_id: str) -> float:
    """A user's stable position in [0, 1) for the A/B split (the same in every process)."""
    import hashlib

    digest = hashlib.blake2b(user_id.encode("utf-8", "surrogateescape"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def load_serving_model(model_dir: str | Path) -> ServingModel:
    """Load a model folder (npz + manifest only, via :func:`llmcf.models.load_model`) and
    precompute its serving structures. The manifest carries the events cutoff (which stored
    events the model was trained on) and the event weights of fold-in."""
    from llmcf.models import load_model

    folder = Path(model_dir)
    return ServingModel(load_model(folder), source=str(folder))
