"""Run-time state of one service instance: settings, the event store, the current model, the
per-user event cache and the Prometheus metrics."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmcf.serve.engine import ServingModel
from llmcf.serve.store import EventStore, EventWeights, UserHistory

CUTOFF_FILE = "events_cutoff.json"


def default_events_db() -> str:
    """``$LLMCF_EVENTS_DB``, else a SQLite file ``events.sqlite`` in the llmcf cache folder."""
    from llmcf.settings import cache_dir

    return os.environ.get("LLMCF_EVENTS_DB") or f"sqlite:///{cache_dir() / 'events.sqlite'}"


@dataclass
class ServeSettings:
    """Service settings. ``api_key`` defaults to ``$LLMCF_API_KEY`` (write and admin
    endpoints refuse every request while it is unset)."""

    model_dir: Path | None = None
    events_db: str = field(default_factory=default_events_db)
    api_key: str | None = field(default_factory=lambda: os.environ.get("LLMCF_API_KEY") or None)
    max_body_bytes: int = 1_000_000
    cors_origins: tuple[str, ...] = ()
    event_weights: EventWeights = field(default_factory=EventWeights)
    history_limit: int = 500  # most recent events per user folded in
    cache_users: int = 100_000  # users whose recent events are kept in memory


class HistoryCache:
    """LRU cache of users' recent events, invalidated by writes.

    A reader that loaded a user's events from the store only caches them if no write happened
    in between (a global write counter), so a cached history is never older than an
    acknowledged write.
    """

    def __init__(self, store: EventStore, weights: EventWeights, limit: int, size: int) -> None:
        self.store, self.weights, self.limit, self.size = store, weights, limit, size
        self._lock = threading.Lock()
        self._data: OrderedDict[str, UserHistory] = OrderedDict()
        self._writes = 0

    def cached(self, user_id: str) -> UserHistory | None:
        """The cached history of ``user_id``, or ``None`` (no store access)."""
        with self._lock:
            hit = self._data.get(user_id)
            if hit is not None:
                self._data.move_to_end(user_id)
            return hit

    def get(self, user_id: str) -> UserHistory:
        with self._lock:
            hit = self._data.get(user_id)
            if hit is not None:
                self._data.move_to_end(user_id)
                return hit
            version = self._writes
        history = self.store.user_history(user_id, self.weights, self.limit)
        with self._lock:
            if self._writes == version:
                self._data[user_id] = history
                if len(self._data) > self.size:
                    self._data.popitem(last=False)
        return history

    def invalidate(self, user_ids: set[str]) -> None:
        with self._lock:
            self._writes += 1
            for u in user_ids:
                self._data.pop(u, None)

    def clear(self) -> None:
        with self._lock:
            self._writes += 1
            self._data.clear()


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


class AppState:
    """Everything the routes share. ``model`` is swapped atomically by a reload."""

    def __init__(self, settings: ServeSettings, store: EventStore) -> None:
        self.settings = settings
        self.store = store
        self.model: ServingModel | None = None
        self.load_error: str | None = None
        self.history = HistoryCache(
            store, settings.event_weights, settings.history_limit, settings.cache_users
        )
        self.metrics = Metrics()
        self.reload_lock = threading.Lock()

    def set_model(self, model: ServingModel) -> ServingModel | None:
        previous, self.model = self.model, model
        self.load_error = None
        self.metrics.ready.set(1)
        return previous


def load_serving_model(model_dir: str | Path, text_index: Any = None) -> ServingModel:
    """Load a model folder (npz + manifest only, via :func:`llmcf.persist.load_model`) and
    precompute its serving structures. ``events_cutoff.json`` (written by
    ``llmcf fit --events-db``) tells which stored events the model was trained on."""
    import json

    from llmcf.errors import ModelLoadError
    from llmcf.persist import load_model

    folder = Path(model_dir)
    model = load_model(folder)
    cutoff = 0
    cpath = folder / CUTOFF_FILE
    if cpath.is_file():
        try:
            cutoff = int(json.loads(cpath.read_text())["max_seq"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ModelLoadError(f"{cpath}: unreadable events cutoff ({exc})") from None
    return ServingModel(model, source=str(folder), events_cutoff=cutoff, text_index=text_index)
