"""The one ranking path: (fitted model, users' histories, n, exclusions) -> scored top-N.

Every list llmcf hands out comes from :func:`rank`: ``model.recommend`` and
``recommend_many``, ``llmcf evaluate --task topn``, ``llmcf recommend``, the service (with
stored events folded in) and ``llmcf fit --backend ... --recommend``. A model only supplies
its scorer, ``model.score_histories(histories) -> (scores, text_only)``; the rest is here,
once:

1. **History.** Each user's history row holds the training values summed per item, in the
   model's units (:class:`Histories`); the service and ``llmcf recommend --events-db`` fold
   the user's stored events into it (:mod:`llmcf.ranking.events`). Items the model does not
   know but that have a text become *text rows*, which text models score through their text
   neighbours.
2. **Scores.** ``scores[t, j]`` is the model's score of item j for user t, -inf (or NaN)
   where the model has none (kNN: no neighbour of the history reaches j).
3. **Exclusions.** Items in the history (training items and every event's item) are removed
   when ``exclude_seen``; with ``candidates`` only those items may be listed.
4. **Order.** The scored items by score (desc), ties by lower item index; then, if fewer
   than ``n`` are scored, the most popular remaining items (number of training
   interactions, desc; ties by a fixed seeded permutation of the items, :data:`TIE_SEED`), with the source ``popular`` and their
   popularity as score. The order is total, so a shorter list is a prefix of a longer one.
5. **Fallback.** A user with no scored item at all gets popularity only and
   ``was_fallback``; the reason says whether the user was unknown (no training row and no
   history) or the model had no score.

Scoring runs in blocks of users, so memory is bounded by block x n_items.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from llmcf.errors import ConfigError
from llmcf.ranking.lists import (
    REASON_NO_SCORES,
    REASON_UNKNOWN_USER,
    SOURCE_CODE,
    SOURCE_POPULAR,
    SOURCE_TEXT,
    Recommendations,
    top_n_rows,
)

if TYPE_CHECKING:
    import scipy.sparse as sp

#: upper bound on the entries of one block of dense scores (128 MiB of float64)
BLOCK_ENTRIES = 1 << 24
#: the longest list one call may ask for per user
MAX_N = 100_000


@dataclass
class TextRow:
    """An item the model does not know, in one user's history: its text and its value."""

    row: int
    text: str
    value: float


@dataclass
class Histories:
    """History rows of a batch of users, in the model's units.

    ``users`` int64 (b,): the users' training indices (-1: not a training user);
    ``values`` CSR (b, n_items): summed values per known item (training row plus folded-in
    events); ``seen`` CSR (b, n_items): the items to exclude (its structure counts);
    ``text_rows``: items unknown to the model, with text; ``allowed``: bool (n_items,), the
    only items a list may hold when :func:`rank` got ``candidates`` (None: every item). The
    path blocks the others itself; a model whose candidate stage is part of its scoring (the
    learned stage's retriever top M) reads it to draw its candidates from these items.
    """

    users: np.ndarray
    values: sp.csr_matrix
    seen: sp.csr_matrix
    text_rows: list[TextRow] = field(default_factory=list)
    notes: list[list[str]] = field(default_factory=list)
    allowed: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.users.shape[0])

    def block(self, start: int, stop: int) -> Histories:
        if start == 0 and stop >= len(self) and not self.notes:
            return self  # one block (a single list): no slicing
        rows = [
            TextRow(t.row - start, t.text, t.value) for t in self.text_rows if start <= t.row < stop
        ]
        return Histories(
            self.users[start:stop],
            self.values[start:stop],
            self.seen[start:stop],
            rows,
            allowed=self.allowed,
        )

    def has_history(self) -> np.ndarray:
        """(b,) bool: a training user, or any history entry."""
        out = (
            (self.users >= 0) | (np.diff(self.seen.indptr) > 0) | (np.diff(self.values.indptr) > 0)
        )
        for t in self.text_rows:
            out[t.row] = True
        return out


def training_histories(model: Any, users: np.ndarray) -> Histories:
    """The training rows of ``users`` (-1 or out of range: an empty row)."""
    import scipy.sparse as sp

    R = model.train_matrix()
    u = np.asarray(users, dtype=np.int64).ravel()
    known = (u >= 0) & (u < R.shape[0])
    if not known.any():  # new visitors only: empty rows, without a product
        rows = sp.csr_matrix((len(u), R.shape[1]), dtype=R.dtype)
    else:
        rows = R[np.where(known, u, 0)]
        if not known.all():
            keep = sp.diags(known.astype(np.float64))
            rows = sp.csr_matrix(keep @ rows)
            rows.eliminate_zeros()
    return Histories(np.where(known, u, -1), rows, rows)


def fold_in_histories(
    model: Any,
    users: np.ndarray,
    events: Sequence[Any | None],
    texts: Sequence[Sequence[tuple[str, float]]] | None = None,
) -> Histories:
    """Training rows of ``users`` with events folded in, in the model's units.

    ``events[t]``: an :class:`~llmcf.ranking.events.EventRows` of user t's events on known
    items, or None; ``texts[t]``: (text, value) of items unknown to the model that user t
    interacted with. Units and rules: :mod:`llmcf.ranking.events`.
    """
    base = training_histories(model, users)
    scale = getattr(model, "rating_scale_", None)
    explicit = scale is not None
    top = float(scale[1]) if scale is not None else 1.0
    weights = model.event_weights()
    n_items = base.values.shape[1]
    v_rows, s_rows = [], []
    for t in range(len(base)):
        lo, hi = base.values.indptr[t], base.values.indptr[t + 1]
        idx, vals = base.values.indices[lo:hi].astype(np.int64), base.values.data[lo:hi]
        seen = idx
        ev = events[t] if t < len(events) else None
        if ev is not None and len(ev.item_idx):
            idx, vals, touched = ev.fold(
                idx, vals, explicit=explicit, weights=weights, top_rating=top
            )
            seen = np.union1d(seen, touched)
        v_rows.append((idx, vals))
        s_rows.append(seen)
    values = _rows_csr(v_rows, n_items)
    seen_m = _rows_csr([(s, np.ones(len(s))) for s in s_rows], n_items)
    text_rows = []
    if texts is not None:
        for t, entries in enumerate(texts):
            for text, value in entries:
                text_rows.append(TextRow(t, text, float(value)))
    return Histories(base.users, values, seen_m, text_rows)


def _rows_csr(rows: list[tuple[np.ndarray, np.ndarray]], n_cols: int) -> sp.csr_matrix:
    import scipy.sparse as sp

    indptr = np.zeros(len(rows) + 1, dtype=np.int64)
    indptr[1:] = np.cumsum([len(i) for i, _ in rows])
    indices = np.concatenate([i for i, _ in rows]) if rows else np.zeros(0, np.int64)
    data = np.concatenate([v for _, v in rows]) if rows else np.zeros(0)
    return sp.csr_matrix(
        (data.astype(np.float64), indices.astype(np.int32), indptr), shape=(len(rows), n_cols)
    )


def check_n(n: Any) -> int:
    """``n`` as an int in 1..MAX_N; :class:`ConfigError` naming the value otherwise."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise ConfigError(f"n must be an integer, got {n!r}")
    if not 1 <= int(n) <= MAX_N:
        raise ConfigError(f"n must be between 1 and {MAX_N}, got {n}")
    return int(n)


#: seed of the fixed item permutation that breaks popularity ties in the padding
TIE_SEED = 20191


def popular_rank(model: Any) -> np.ndarray:
    """Position of each item in the popularity order (most popular first; ties, e.g. the
    items without training interactions, by a fixed seeded permutation of the item index, so
    the order of ids in the data file cannot leak into the padding)."""
    pop = model.popularity()
    tie = np.random.default_rng(TIE_SEED).permutation(len(pop))
    order = np.lexsort((tie, -pop))
    rank_of = np.empty(len(pop), dtype=np.int64)
    rank_of[order] = np.arange(len(pop))
    return rank_of


def rank(
    model: Any,
    n: int,
    *,
    users: np.ndarray | None = None,
    histories: Histories | None = None,
    exclude_seen: bool = True,
    candidates: np.ndarray | None = None,
    block_size: int | None = None,
) -> Recommendations:
    """Top-``n`` lists of ``histories`` (default: the training rows of ``users``) by the rules
    of the module docstring."""
    model._check_fitted()
    n = check_n(n)
    if histories is None:
        if users is None:
            raise ConfigError("rank needs users or histories")
        histories = training_histories(model, users)
    n_items = len(model.items_)
    n = min(n, max(n_items, 1))  # a list never holds more than the catalog
    b = len(histories)
    pop = model.popularity()
    # fixed per fit, as the popularity it orders: built once per model, not on every list
    cache = getattr(model, "_cache", None)
    build = lambda: popular_rank(model).astype(np.float64)  # noqa: E731
    pop_rank = cache("popular_rank", build) if cache is not None else build()
    allowed = None
    if candidates is not None:
        cand = np.asarray(candidates, dtype=np.int64).ravel()
        if len(cand) and (cand.min() < 0 or cand.max() >= n_items):
            raise ConfigError(f"candidate item indices must be in 0..{n_items - 1}")
        allowed = np.zeros(n_items, dtype=bool)
        allowed[cand] = True
        histories = replace(histories, allowed=allowed)
    source_code = SOURCE_CODE[model.ranking_source()]
    out_items = np.full((b, n), -1, np.int32)
    out_scores = np.full((b, n), -np.inf)
    out_src = np.full((b, n), SOURCE_CODE[SOURCE_POPULAR], np.uint8)
    n_scored = np.zeros(b, dtype=np.int64)
    step = block_size or max(1, min(2048, BLOCK_ENTRIES // max(n_items, 1)))
    has_history = histories.has_history()
    for start in range(0, b, step):
        stop = min(start + step, b)
        h = histories.block(start, stop)
        scores, text_only = model.score_histories(h)
        scores = np.where(np.isnan(scores), -np.inf, scores)
        blocked = np.zeros(scores.shape, dtype=bool)
        if allowed is not None:
            blocked[:, ~allowed] = True
        if exclude_seen:
            seen = h.seen
            row_of = np.repeat(np.arange(stop - start), np.diff(seen.indptr))
            blocked[row_of, seen.indices] = True
        scores[blocked] = -np.inf
        idx, vals = top_n_rows(scores, n)
        got = (idx >= 0).sum(axis=1)
        src = np.full(idx.shape, source_code, np.uint8)
        if text_only is not None:
            rows, cols = np.nonzero(idx >= 0)
            is_text = text_only[rows, idx[rows, cols]]
            src[rows[is_text], cols[is_text]] = SOURCE_CODE[SOURCE_TEXT]
        short = np.flatnonzero(got < n)
        if len(short):
            # padding: the most popular items neither blocked nor already listed
            pad = np.tile(-pop_rank, (len(short), 1))
            pad[blocked[short]] = -np.inf
            chosen = idx[short]
            rr, cc = np.nonzero(chosen >= 0)
            pad[rr, chosen[rr, cc]] = -np.inf
            pidx, _ = top_n_rows(pad, n)
            pos = np.arange(n)[None, :] - got[short][:, None]
            take = pos >= 0
            fill = np.take_along_axis(pidx, np.maximum(pos, 0), axis=1)
            sub_idx, sub_vals, sub_src = idx[short], vals[short], src[short]
            sub_idx[take] = fill[take]
            sub_vals[take] = np.where(fill[take] >= 0, pop[np.maximum(fill[take], 0)], -np.inf)
            sub_src[take] = SOURCE_CODE[SOURCE_POPULAR]
            idx[short], vals[short], src[short] = sub_idx, sub_vals, sub_src
        out_items[start:stop] = idx
        out_scores[start:stop] = vals
        out_src[start:stop] = src
        n_scored[start:stop] = got
    fallback = n_scored == 0
    reasons: list[str | None] = [None] * b
    for t in np.flatnonzero(fallback).tolist():
        reasons[t] = REASON_NO_SCORES if has_history[t] else REASON_UNKNOWN_USER
    return Recommendations(out_items, out_scores, fallback, out_src, n_scored, reasons)


def score_matrix(model: Any, users: np.ndarray) -> np.ndarray:
    """(len(users), n_items) scores of the training rows before exclusions; -inf where the
    model has no score; rows without any score hold the popularity."""
    model._check_fitted()
    h = training_histories(model, users)
    scores, _ = model.score_histories(h)
    scores = np.where(np.isnan(scores), -np.inf, scores)
    empty = ~np.isfinite(scores).any(axis=1)
    scores[empty] = model.popularity()
    return scores
