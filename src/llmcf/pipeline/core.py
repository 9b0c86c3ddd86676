"""The two-stage recommender, defined once: CF candidates -> re-ranker -> fusion -> top-N ->
optional explanations.

1. **Retrieve**: the CF model's top-M unseen items (``n_candidates``, default 20) with their
   CF scores (``recommend_many``; unknown users get the popular items, flagged).
2. **Re-rank** (optional): the re-ranker scores the M candidates given the user's history
   (their most recent liked items: rating >= the user's mean rating for explicit feedback,
   every interaction for implicit, ordered by time, the last ``history_size`` kept);
   :func:`~llmcf.rerank.reranker.rerank` fuses ``(1 - w) z(cf) + w z(rerank)`` and falls back
   to the CF order on any failure, saying so.
3. **Cut** to the top N.
4. **Explain** (optional, off the ranking path): one sentence per recommended item.

The fusion weight w is chosen on validation data held out of the training set
(:func:`tune_weight`), never on the test set.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from llmcf.data.dataset import Dataset
from llmcf.errors import ConfigError
from llmcf.rerank.reranker import (
    LatencyLog,
    RerankCache,
    Reranker,
    RerankResult,
    choose_weight,
    rerank,
)

__all__ = ["Pipeline", "PipelineResult", "item_texts", "tune_weight", "user_histories"]


def item_texts(dataset: Dataset) -> list[str]:
    """One text per item index: the catalog text (:func:`llmcf.text.profiles.item_texts`), or
    ``"item <id>"`` for a catalog without text fields (the re-rankers then see ids only)."""
    from llmcf.text.profiles import item_texts as texts_in_mode

    try:
        texts = texts_in_mode(dataset, "catalog")
    except ConfigError:
        texts = [""] * dataset.n_items
    ids = dataset.items.external(np.arange(dataset.n_items))
    return [t if t else f"item {i}" for t, i in zip(texts, ids.tolist(), strict=True)]


@dataclass
class PipelineResult:
    """One user's final list (best first) with everything that produced it."""

    user_idx: int
    items: np.ndarray
    item_ids: np.ndarray
    scores: np.ndarray
    cf_scores: np.ndarray
    rerank_scores: np.ndarray | None
    weight: float
    was_fallback: bool = False
    reasons: list[str] = field(default_factory=list)
    explanations: list[str | None] | None = None
    rerank_seconds: float = 0.0
    candidates: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.items)


def user_histories(train: Dataset, history_size: int = 10) -> list[np.ndarray]:
    """Per user index: the item indices of their last ``history_size`` liked interactions,
    oldest first (liked: rating >= the user's mean rating for explicit feedback, every
    interaction for implicit feedback; a user with no liked item gets their last items)."""
    n_users = train.n_users
    order = np.arange(len(train))
    if train.timestamp is not None:
        order = np.lexsort((order, train.timestamp, train.user_idx))
    else:
        order = np.lexsort((order, train.user_idx))
    users = train.user_idx[order]
    items = train.item_idx[order]
    ratings = train.rating[order]
    counts = np.bincount(train.user_idx, minlength=n_users)
    means = np.bincount(train.user_idx, weights=train.rating, minlength=n_users) / np.maximum(
        counts, 1
    )
    if train.feedback == "explicit":
        liked = ratings >= means[users] - 1e-9
    else:
        liked = np.ones(len(users), dtype=bool)
    bounds = np.concatenate(([0], np.cumsum(counts)))
    out: list[np.ndarray] = []
    for u in range(n_users):
        lo, hi = bounds[u], bounds[u + 1]
        mine = items[lo:hi]
        good = mine[liked[lo:hi]]
        chosen = good if len(good) else mine
        out.append(chosen[-history_size:].astype(np.int64))
    return out


class Pipeline:
    """CF retrieval + optional re-ranking + optional explanations (module docstring).

    Args:
        model: a fitted model with ``recommend_many`` (any llmcf model).
        train: the training data the model was fitted on (for histories).
        reranker: a :class:`~llmcf.rerank.reranker.Reranker`, or None for CF alone.
        weight: the fusion weight w (use :func:`tune_weight` to choose it).
        n_candidates: M, the number of CF candidates re-ranked.
        history_size: history items given to the re-ranker.
        explainer: an :class:`~llmcf.rerank.explain.Explainer` for ``explain=True``.
        cache: re-rank score cache; timeout: seconds per re-rank call (None: no limit).
    """

    def __init__(
        self,
        model: Any,
        train: Dataset,
        *,
        reranker: Reranker | None = None,
        weight: float = 0.5,
        n_candidates: int = 20,
        history_size: int = 10,
        explainer: Any = None,
        cache: RerankCache | None = None,
        timeout: float | None = None,
    ) -> None:
        if n_candidates < 1:
            raise ConfigError(f"n_candidates must be >= 1, got {n_candidates}")
        if not 0.0 <= weight <= 1.0:
            raise ConfigError(f"fusion weight must be in [0, 1], got {weight}")
        self.model = model
        self.train = train
        self.reranker = reranker
        self.weight = weight
        self.n_candidates = n_candidates
        self.history_size = history_size
        self.explainer = explainer
        self.cache = cache if cache is not None else RerankCache()
        self.timeout = timeout
        self.latency = LatencyLog()
        self._histories: list[np.ndarray] | None = None

    def history(self, user_idx: int) -> np.ndarray:
        """The re-ranker's view of a user's history (item indices, oldest first)."""
        if self._histories is None:
            self._histories = user_histories(self.train, self.history_size)
        if 0 <= user_idx < len(self._histories):
            return self._histories[user_idx]
        return np.zeros(0, dtype=np.int64)

    def recommend_many(
        self, user_idx: np.ndarray, n: int = 10
    ) -> tuple[np.ndarray, list[PipelineResult]]:
        """``(items (B, n) int32 -1 padded, results)`` for a batch of users."""
        users = np.asarray(user_idx, dtype=np.int64).ravel()
        m = max(n, self.n_candidates) if self.reranker is not None else n
        recs = self.model.recommend_many(users, m)
        out = np.full((len(users), n), -1, dtype=np.int32)
        results = []
        for row, u in enumerate(users):
            keep = recs.items[row] >= 0
            cands = recs.items[row][keep].astype(np.int64)
            cf = recs.scores[row][keep]
            result = self._finish(int(u), cands, cf, n, bool(recs.was_fallback[row]))
            out[row, : len(result.items)] = result.items
            results.append(result)
        return out, results

    def _finish(
        self, user: int, cands: np.ndarray, cf: np.ndarray, n: int, cf_fallback: bool
    ) -> PipelineResult:
        reasons = []
        if cf_fallback:
            reasons.append(
                "unknown user: most popular items"
                if user < 0
                else "no CF scores: most popular items"
            )
        rr_scores: np.ndarray | None = None
        scores = cf
        weight = 0.0
        seconds = 0.0
        items = cands
        if self.reranker is not None and len(cands) > 1:
            t0 = time.perf_counter()
            res: RerankResult = rerank(
                self.reranker,
                self.history(user),
                cands,
                cf,
                self.weight,
                cache=self.cache,
                timeout=self.timeout,
            )
            seconds = time.perf_counter() - t0
            if not res.cached:
                self.latency.add(seconds)
            items, scores, cf, rr_scores, weight = (
                res.items,
                res.scores,
                res.cf_scores,
                res.rerank_scores,
                res.weight,
            )
            if res.was_fallback and res.reason:
                reasons.append(res.reason)
        items = items[:n]
        ids = self.model.items_.external(items) if len(items) else np.asarray([], dtype=object)
        return PipelineResult(
            user,
            items,
            ids,
            scores[:n],
            cf[:n],
            None if rr_scores is None else rr_scores[:n],
            weight,
            cf_fallback,
            reasons,
            None,
            seconds,
            cands,
        )

    def recommend(self, user_idx: int, n: int = 10, *, explain: bool = False) -> PipelineResult:
        """The final top-``n`` for one user (index -1: unknown user), optionally explained."""
        _, results = self.recommend_many(np.array([user_idx]), n)
        result = results[0]
        if explain:
            if self.explainer is None:
                raise ConfigError("explain=True needs an explainer (Pipeline(explainer=...))")
            if hasattr(self.explainer, "explain_user"):  # explains from the user's features
                result.explanations = self.explainer.explain_user(user_idx, result.items)
            else:
                result.explanations = self.explainer.explain(self.history(user_idx), result.items)
        return result


def tune_weight(
    make_model: Callable[[], Any],
    train: Dataset,
    reranker: Reranker,
    *,
    relevance: float | None = 4.0,
    n: int = 10,
    n_candidates: int = 20,
    history_size: int = 10,
    max_users: int | None = 200,
    grid: Sequence[float] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
    seed: int = 0,
    cache: RerankCache | None = None,
    timeout: float | None = None,
) -> tuple[float, dict[float, float]]:
    """Choose the fusion weight on a validation split of ``train`` (never the test set).

    20% of each user's training interactions are held out (``holdout_split``), a fresh model
    from ``make_model()`` is fitted on the rest, the top ``n_candidates`` of up to
    ``max_users`` validation users (those with a relevant held-out item: rating >= relevance,
    any for implicit data or relevance None) are re-ranked, and :func:`choose_weight` picks
    the w maximising NDCG@n. A failed re-rank counts as the CF order.
    """
    from llmcf.eval.split import holdout_split

    fold = holdout_split(train, 0.2, seed)[0]
    inner, valid = train.subset(fold.train), train.subset(fold.test)
    model = make_model().fit(inner)
    keep = np.ones(len(valid), dtype=bool)
    if relevance is not None and train.feedback == "explicit":
        keep = valid.rating >= relevance
    rel_users = np.unique(valid.user_idx[keep])
    rng = np.random.default_rng(seed)
    if max_users is not None and len(rel_users) > max_users:
        rel_users = np.sort(rng.choice(rel_users, max_users, replace=False))
    relevant_sets: dict[int, set[int]] = {}
    for u, i in zip(valid.user_idx[keep].tolist(), valid.item_idx[keep].tolist(), strict=True):
        relevant_sets.setdefault(u, set()).add(i)
    histories = user_histories(inner, history_size)
    recs = model.recommend_many(rel_users, n_candidates)
    cf_list, rr_list, rel_list = [], [], []
    for row, u in enumerate(rel_users.tolist()):
        valid_pos = recs.items[row] >= 0
        cands = recs.items[row][valid_pos].astype(np.int64)
        cf = recs.scores[row][valid_pos]
        if len(cands) < 2:
            continue
        res = rerank(reranker, histories[u], cands, cf, 1.0, cache=cache, timeout=timeout)
        # scores of the original candidates (res.items is a permutation of cands)
        position = {int(item): j for j, item in enumerate(res.items.tolist())}
        rr = (
            None
            if res.was_fallback
            else np.array([res.rerank_scores[position[int(c)]] for c in cands])
        )
        cf_list.append(cf)
        rr_list.append(rr)
        rel_list.append(np.array([int(c) in relevant_sets.get(u, set()) for c in cands]))
    return choose_weight(cf_list, rr_list, rel_list, n=n, grid=grid)
