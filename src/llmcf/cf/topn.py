"""Top-N recommendation for every model: vectorised sparse scoring, seen-item exclusion and a
popularity fallback that says so.

Scores by model (R = training matrix of ratings / implicit weights, users x items):

=============  ===============================================================================
ItemKNN        score(u, j) = sum_{i in I_u} R[u, i] * S_k[j, i]  (S_k: each item's k most
               similar items, similarity > 0) -- item-based top-N of Deshpande & Karypis
UserKNN        score(u, j) = sum_{v in N_k(u)} sim(u, v) * R[v, j]
BaselineOnly   score(u, j) = b_j  (the same order as mu + b_u + b_j)
GlobalMean     popularity (number of interactions)
=============  ===============================================================================

A user unknown to the training data, or whose scores are all zero, gets the most popular
unseen items, flagged as a fallback.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from llmcf.errors import ConfigError

if TYPE_CHECKING:
    import scipy.sparse as sp


@dataclass
class ItemList:
    """A ranked list for one user: item indices, external ids and scores (best first)."""

    item_idx: np.ndarray
    item_ids: np.ndarray
    scores: np.ndarray
    was_fallback: bool = False
    reason: str | None = None

    def __len__(self) -> int:
        return int(self.item_idx.shape[0])


@dataclass
class Recommendations:
    """Top-N lists for a batch of users: ``items`` (n_users, n) int32, -1 padded; ``scores``;
    ``was_fallback`` (n_users,) bool."""

    items: np.ndarray
    scores: np.ndarray
    was_fallback: np.ndarray


def top_n_rows(scores: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of the ``n`` largest finite entries of each row, best first.

    Ties are broken by lower column index. Rows with fewer than ``n`` finite entries are padded
    with -1 / -inf.
    """
    n_rows, n_cols = scores.shape
    m = min(n, n_cols)
    if m == 0:
        return np.full((n_rows, n), -1, np.int32), np.full((n_rows, n), -np.inf)
    part = np.argpartition(-scores, m - 1, axis=1)[:, :m] if m < n_cols else np.tile(
        np.arange(n_cols), (n_rows, 1)
    )
    vals = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -vals), axis=1)
    idx = np.take_along_axis(part, order, axis=1)
    vals = np.take_along_axis(vals, order, axis=1)
    idx = np.where(np.isfinite(vals), idx, -1).astype(np.int32)
    if m < n:
        idx = np.pad(idx, ((0, 0), (0, n - m)), constant_values=-1)
        vals = np.pad(vals, ((0, 0), (0, n - m)), constant_values=-np.inf)
    return idx, vals


class TopNMixin:
    """Adds ``recommend``, ``recommend_many`` and ``similar_items`` to a fitted model.

    Subclasses implement ``_score_block(users) -> (len(users), n_items) float64``.
    """

    users_: object
    items_: object
    user_idx_: np.ndarray
    item_idx_: np.ndarray
    rating_: np.ndarray

    def _train_matrix(self) -> sp.csr_matrix:
        cached = getattr(self, "_train_csr", None)
        if cached is None:
            import scipy.sparse as sp

            cached = sp.csr_matrix(
                (self.rating_, (self.user_idx_, self.item_idx_)),
                shape=(len(self.users_), len(self.items_)),  # type: ignore[arg-type]
            )
            self._train_csr = cached
        return cached

    def _popularity(self) -> np.ndarray:
        cached = getattr(self, "_pop", None)
        if cached is None:
            cached = np.bincount(self.item_idx_, minlength=len(self.items_)).astype(np.float64)  # type: ignore[arg-type]
            self._pop = cached
        return cached

    def _score_block(self, users: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def recommend_many(
        self,
        user_idx: np.ndarray,
        n: int = 10,
        *,
        exclude_seen: bool = True,
        candidates: np.ndarray | None = None,
        block_size: int = 2048,
    ) -> Recommendations:
        """Top-``n`` items for each user in ``user_idx`` (index -1 = unknown user).

        Scoring runs in blocks of ``block_size`` users (memory block_size x n_items).
        ``candidates`` optionally restricts the items that may be recommended.
        """
        self._check_fitted()  # type: ignore[attr-defined]
        if n < 1:
            raise ConfigError(f"n must be >= 1, got {n}")
        users = np.asarray(user_idx, dtype=np.int64).ravel()
        n_users, n_items = len(self.users_), len(self.items_)  # type: ignore[arg-type]
        known = (users >= 0) & (users < n_users)
        R = self._train_matrix()
        pop = self._popularity()
        allowed = None
        if candidates is not None:
            allowed = np.zeros(n_items, dtype=bool)
            allowed[np.asarray(candidates, dtype=np.int64)] = True
        out_items = np.full((len(users), n), -1, np.int32)
        out_scores = np.full((len(users), n), -np.inf)
        fallback = np.zeros(len(users), dtype=bool)
        for start in range(0, len(users), block_size):
            block = users[start : start + block_size]
            kb = known[start : start + block_size]
            safe = np.where(kb, block, 0)
            scores = self._score_block(safe)
            scores[~kb] = 0.0
            empty = ~(scores > 0).any(axis=1) | ~kb
            # fallback rows: popularity; keep a tiny popularity tie-break on all rows
            scores[empty] = pop
            fallback[start : start + block_size] = empty
            if allowed is not None:
                scores[:, ~allowed] = -np.inf
            if exclude_seen:
                sub = R[safe[kb]]
                rows = np.flatnonzero(kb)
                row_of = np.repeat(rows, np.diff(sub.indptr))
                scores[row_of, sub.indices] = -np.inf
            idx, vals = top_n_rows(scores, n)
            out_items[start : start + len(block)] = idx
            out_scores[start : start + len(block)] = vals
        return Recommendations(out_items, out_scores, fallback)

    def recommend(self, user_idx: int, n: int = 10, *, exclude_seen: bool = True) -> ItemList:
        """Top-``n`` for one user (a batch of one); -1 means an unknown user."""
        recs = self.recommend_many(np.array([user_idx]), n, exclude_seen=exclude_seen)
        keep = recs.items[0] >= 0
        items = recs.items[0][keep]
        fb = bool(recs.was_fallback[0])
        reason = None
        if fb:
            reason = "unknown user: most popular items" if user_idx < 0 else "no neighbour scores: most popular items"
        return ItemList(items, self.items_.external(items), recs.scores[0][keep], fb, reason)  # type: ignore[attr-defined]

    def similar_items(self, item_idx: int, n: int = 10) -> ItemList:
        """The ``n`` items most similar to ``item_idx`` (item-item similarity of the model)."""
        self._check_fitted()  # type: ignore[attr-defined]
        n_items = len(self.items_)  # type: ignore[arg-type]
        if not 0 <= item_idx < n_items:
            raise ConfigError(f"item index {item_idx} out of range 0..{n_items - 1}")
        idx, sims = self._item_neighbors(item_idx, n)
        return ItemList(idx, self.items_.external(idx), sims)  # type: ignore[attr-defined]

    def _item_neighbors(self, item_idx: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Default: cosine between item columns of the training matrix."""
        R = self._train_matrix().tocsc()
        col = R[:, item_idx]
        dots = np.asarray((R.T @ col).todense()).ravel()
        norms = np.sqrt(np.asarray(R.multiply(R).sum(axis=0)).ravel())
        with np.errstate(divide="ignore", invalid="ignore"):
            sims = dots / (norms * norms[item_idx])
        sims[~np.isfinite(sims)] = 0.0
        sims[item_idx] = -np.inf
        sims[sims <= 0] = -np.inf
        idx, vals = top_n_rows(sims[None, :], n)
        keep = idx[0] >= 0
        return idx[0][keep], vals[0][keep]
