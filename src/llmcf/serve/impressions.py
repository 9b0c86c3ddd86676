"""Online evaluation: every served list logged as an impression, and the events that follow
it attributed to it.

Write-back is off the request path: :meth:`ImpressionLog.log` puts a tuple on a queue (no
lock, no I/O); a background thread writes the queue in batches (one transaction per batch,
every ``interval`` seconds or ``batch`` rows). When the store cannot keep up, at most
``max_pending`` impressions wait and the rest are dropped and counted, so a slow store never
slows a request. ``flush()`` writes what is queued (tests, shutdown).

Attribution (:func:`online_metrics`): an impression of list L shown to user u at time t
*converts to a click* when u views, carts or purchases an item of L within ``window``
seconds after t (``received_at`` of the event), and *to a purchase* when one of those is a
purchase. Per arm (and model):

    CTR@N      = impressions with a click / impressions
    conversion = impressions with a purchase / impressions

with Wilson 95% intervals, and for two arms the difference B - A of CTR with its normal
(Wald) 95% interval ``d ± 1.96 sqrt(pA(1-pA)/nA + pB(1-pB)/nB)``. Anonymous lists (empty
user id) are logged but cannot be attributed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import BigInteger, Column, Index, Integer, String, Table, Text

from llmcf.serve.tables import metadata

log = logging.getLogger("llmcf.serve")

_ID = BigInteger().with_variant(Integer(), "sqlite")

impressions = Table(
    "impressions",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("user_id", String(256), nullable=False),
    Column("arm", String(8), nullable=False),
    Column("model", String(512), nullable=False),
    Column("endpoint", String(32), nullable=False),
    Column("items", Text, nullable=False),  # JSON list of item ids, in list order
    Column("created_at", BigInteger, nullable=False),  # unix ms
    Index("ix_impressions_created", "created_at"),
    Index("ix_impressions_user", "user_id", "created_at"),
)

#: event types that count as a click on an impressed item
CLICK_TYPES = ("view", "cart", "purchase")
Z95 = 1.959963984540054


class ImpressionLog:
    """The queue of impressions and its writer thread (module docstring)."""

    def __init__(
        self,
        store: Any,
        *,
        interval: float = 0.5,
        batch: int = 1000,
        max_pending: int = 100_000,
    ) -> None:
        self.store = store
        self.interval, self.batch, self.max_pending = interval, batch, max_pending
        self._queue: queue.SimpleQueue[tuple[str, str, str, str, str, int]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._stop = threading.Event()
        self._flush_lock = threading.Lock()
        self.logged = 0
        self.written = 0
        self.dropped = 0
        self.errors = 0

    def log(self, user_id: str, arm: str, model: str, endpoint: str, item_ids: list[str]) -> None:
        """Queue one served list (cheap: call it on the request path)."""
        if self._queue.qsize() >= self.max_pending:
            self.dropped += 1
            return
        self._queue.put(
            (user_id, arm, model, endpoint, json.dumps(item_ids), int(time.time() * 1000))
        )
        self.logged += 1
        if self._thread is None:
            self._start()

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="llmcf-impressions", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.flush()

    def flush(self) -> int:
        """Write every queued impression now; the number written."""
        with self._flush_lock:
            total = 0
            while True:
                rows: list[dict[str, Any]] = []
                while len(rows) < self.batch:
                    try:
                        u, arm, model, endpoint, items, at = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    rows.append(
                        {
                            "user_id": u,
                            "arm": arm,
                            "model": model[:512],
                            "endpoint": endpoint,
                            "items": items,
                            "created_at": at,
                        }
                    )
                if not rows:
                    return total
                # the store's own write lock (SQLite: one writer), so event batches queue
                # behind a short insert instead of SQLite's busy retries
                lock = getattr(self.store, "_write_lock", None) or contextlib.nullcontext()
                try:
                    with lock, self.store.engine.begin() as conn:
                        conn.execute(impressions.insert(), rows)
                except Exception as exc:  # the store is down: these are lost, counted
                    self.errors += len(rows)
                    log.warning("could not write %d impressions: %s", len(rows), exc)
                    return total
                self.written += len(rows)
                total += len(rows)

    def close(self) -> None:
        """Stop the writer thread after a last flush."""
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(5)
        self.flush()

    def stats(self) -> dict[str, int]:
        return {
            "logged": self.logged,
            "written": self.written,
            "pending": self._queue.qsize(),
            "dropped": self.dropped,
            "errors": self.errors,
        }


@dataclass
class ArmMetrics:
    arm: str
    model: str
    impressions: int
    clicks: int
    purchases: int

    def as_dict(self) -> dict[str, Any]:
        n = self.impressions
        return {
            "arm": self.arm,
            "model": self.model,
            "impressions": n,
            "clicks": self.clicks,
            "purchases": self.purchases,
            "ctr": self.clicks / n if n else 0.0,
            "ctr_ci": list(wilson(self.clicks, n)),
            "conversion": self.purchases / n if n else 0.0,
            "conversion_ci": list(wilson(self.purchases, n)),
        }


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion ``k / n`` ((0, 1) when ``n`` is 0)."""
    if n <= 0:
        return 0.0, 1.0
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def difference(a: ArmMetrics, b: ArmMetrics, z: float = Z95) -> dict[str, Any]:
    """CTR of ``b`` minus CTR of ``a`` with its Wald interval (module docstring)."""
    pa = a.clicks / a.impressions if a.impressions else 0.0
    pb = b.clicks / b.impressions if b.impressions else 0.0
    var = 0.0
    if a.impressions:
        var += pa * (1 - pa) / a.impressions
    if b.impressions:
        var += pb * (1 - pb) / b.impressions
    half = z * math.sqrt(var)
    d = pb - pa
    return {"of": f"{b.arm} - {a.arm}", "value": d, "ci": [d - half, d + half]}


def attribute(
    imp_users: np.ndarray,
    imp_items: list[list[str]],
    imp_times: np.ndarray,
    ev_users: np.ndarray,
    ev_items: np.ndarray,
    ev_types: np.ndarray,
    ev_times: np.ndarray,
    window_ms: int,
) -> tuple[np.ndarray, np.ndarray]:
    """``(clicked, purchased)`` bool arrays, one per impression (module docstring).

    Vectorised: the impressions are exploded to (impression, user, item) rows and joined
    with the click events on (user, item); a pair counts when the event falls in
    ``[t, t + window_ms]``.
    """
    import pandas as pd

    n = len(imp_users)
    clicked = np.zeros(n, dtype=bool)
    purchased = np.zeros(n, dtype=bool)
    if n == 0 or len(ev_users) == 0:
        return clicked, purchased
    lengths = np.array([len(x) for x in imp_items], dtype=np.int64)
    shown = pd.DataFrame(
        {
            "imp": np.repeat(np.arange(n), lengths),
            "user": np.repeat(imp_users, lengths),
            "item": np.concatenate([np.asarray(x, dtype=object) for x in imp_items])
            if lengths.sum()
            else np.zeros(0, dtype=object),
            "t0": np.repeat(imp_times, lengths),
        }
    )
    events = pd.DataFrame({"user": ev_users, "item": ev_items, "type": ev_types, "t": ev_times})
    events = events[events["type"].isin(CLICK_TYPES)]
    joined = shown.merge(events, on=["user", "item"], how="inner")
    inside = (joined["t"] >= joined["t0"]) & (joined["t"] <= joined["t0"] + window_ms)
    hit = joined[inside]
    clicked[hit["imp"].to_numpy(dtype=np.int64)] = True
    bought = hit[hit["type"] == "purchase"]
    purchased[bought["imp"].to_numpy(dtype=np.int64)] = True
    return clicked, purchased


def online_metrics(
    store: Any, window_s: float = 1800.0, since_s: float = 86_400.0
) -> dict[str, Any]:
    """CTR@N and conversion per arm over the impressions of the last ``since_s`` seconds
    (events up to ``window_s`` after each count; module docstring)."""
    from sqlalchemy import select

    from llmcf.serve.tables import events

    now_ms = int(time.time() * 1000)
    since_ms = now_ms - int(since_s * 1000)
    window_ms = int(window_s * 1000)
    with store.engine.connect() as conn:
        imps = conn.execute(
            select(
                impressions.c.user_id,
                impressions.c.arm,
                impressions.c.model,
                impressions.c["items"],
                impressions.c.created_at,
            )
            .where(impressions.c.created_at >= since_ms)
            .where(impressions.c.user_id != "")
        ).all()
        evs = conn.execute(
            select(events.c.user_id, events.c.item_id, events.c.type, events.c.received_at).where(
                events.c.received_at >= since_ms
            )
        ).all()
    imp_users = np.array([r[0] for r in imps], dtype=object)
    imp_items = [json.loads(r[3]) for r in imps]
    imp_times = np.array([r[4] for r in imps], dtype=np.int64)
    clicked, purchased = attribute(
        imp_users,
        imp_items,
        imp_times,
        np.array([r[0] for r in evs], dtype=object),
        np.array([r[1] for r in evs], dtype=object),
        np.array([r[2] for r in evs], dtype=object),
        np.array([r[3] for r in evs], dtype=np.int64),
        window_ms,
    )
    arms: dict[tuple[str, str], ArmMetrics] = {}
    for k, r in enumerate(imps):
        m = arms.setdefault((r[1], r[2]), ArmMetrics(r[1], r[2], 0, 0, 0))
        m.impressions += 1
        m.clicks += int(clicked[k])
        m.purchases += int(purchased[k])
    ordered = [arms[key] for key in sorted(arms)]
    out: dict[str, Any] = {
        "window_s": window_s,
        "since_s": since_s,
        "list_length": int(np.median([len(x) for x in imp_items])) if imp_items else 0,
        "arms": [m.as_dict() for m in ordered],
    }
    by_arm = {m.arm: m for m in ordered}
    if "A" in by_arm and "B" in by_arm:
        out["difference"] = difference(by_arm["A"], by_arm["B"])
    return out
