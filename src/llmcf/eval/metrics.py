"""Accuracy and ranking metrics: pure numpy / scipy.sparse functions.

Rating metrics take two aligned float arrays. Ranking metrics take a batch of top-N lists and
the relevant items of the same users, and are vectorised over the whole batch:

``recommended``
    int array of shape ``(n_users, L)``: row ``u`` holds the recommended item indices of user
    ``u``, best first; ``-1`` is padding (a list shorter than ``L``). Only the first ``n``
    columns are scored; a list shorter than ``n`` counts its missing positions as misses. An item
    repeated within a row counts only at its first position.
``relevant``
    scipy.sparse CSR matrix or array of shape ``(n_users, n_items)``: entry ``(u, i)`` is
    nonzero when item ``i`` is relevant to user ``u`` (e.g. the test interactions of ``u``).
    Row ``u`` of ``relevant`` belongs to row ``u`` of ``recommended``. Build it from
    ``(user_idx, item_idx)`` arrays with :func:`relevance_matrix`.

Each ranking metric returns a float64 array of shape ``(n_users,)``. A user with no relevant
item has no defined score and gets ``NaN`` in every ranking metric; :func:`ranking_report`
averages over the users with at least one relevant item.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

__all__ = [
    "catalog_coverage",
    "hit_rate_at_n",
    "mae",
    "mrr_at_n",
    "ndcg_at_n",
    "precision_at_n",
    "ranking_report",
    "recall_at_n",
    "relevance_matrix",
    "rmse",
]


# ---------------------------------------------------------------------- rating accuracy
def _aligned(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    true = np.asarray(y_true, dtype=np.float64).ravel()
    pred = np.asarray(y_pred, dtype=np.float64).ravel()
    if true.shape != pred.shape:
        raise ValueError(f"y_true and y_pred differ in length: {true.shape[0]} vs {pred.shape[0]}")
    return true, pred


def mae(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean absolute error: ``MAE = (1/n) * sum_j |y_true[j] - y_pred[j]|``.

    Args:
        y_true, y_pred: float arrays of shape ``(n,)``.

    Returns:
        The MAE, or ``NaN`` when ``n == 0``.
    """
    true, pred = _aligned(y_true, y_pred)
    if true.size == 0:
        return float("nan")
    return float(np.mean(np.abs(true - pred)))


def rmse(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Root mean squared error: ``RMSE = sqrt((1/n) * sum_j (y_true[j] - y_pred[j])**2)``.

    Args:
        y_true, y_pred: float arrays of shape ``(n,)``.

    Returns:
        The RMSE, or ``NaN`` when ``n == 0``.
    """
    true, pred = _aligned(y_true, y_pred)
    if true.size == 0:
        return float("nan")
    return float(np.sqrt(np.mean((true - pred) ** 2)))


# ---------------------------------------------------------------------- ranking
def relevance_matrix(
    user_idx: np.ndarray, item_idx: np.ndarray, n_users: int, n_items: int
) -> sp.csr_array:
    """The boolean CSR ``(n_users, n_items)`` relevance matrix of ``(user_idx[j], item_idx[j])`` pairs."""
    users = np.asarray(user_idx, dtype=np.int64).ravel()
    items = np.asarray(item_idx, dtype=np.int64).ravel()
    if users.shape != items.shape:
        raise ValueError(f"user_idx and item_idx differ in length: {users.size} vs {items.size}")
    data = np.ones(users.size, dtype=bool)
    rel = sp.csr_array((data, (users, items)), shape=(n_users, n_items))
    rel.sum_duplicates()
    return rel


def _hits(
    recommended: np.ndarray, relevant: sp.sparray | sp.spmatrix, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """``hits`` (bool, ``(n_users, n)``): position ``r`` of user ``u`` holds a relevant item
    (first occurrence only); ``n_relevant`` (int64, ``(n_users,)``): ``|relevant(u)|``."""
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    rec = np.asarray(recommended)
    if rec.ndim != 2 or not np.issubdtype(rec.dtype, np.integer):
        raise ValueError(
            f"recommended must be a 2-D int array (n_users, N), got {rec.dtype} shape {rec.shape}"
        )
    if not sp.issparse(relevant):
        raise ValueError(
            f"relevant must be a scipy.sparse CSR matrix, got {type(relevant).__name__}"
        )
    rel = sp.csr_array(relevant, copy=True)
    rel.eliminate_zeros()
    rel.sum_duplicates()  # also sorts the column indices within each row
    n_users, n_items = rel.shape
    if rec.shape[0] != n_users:
        raise ValueError(
            f"recommended has {rec.shape[0]} rows but relevant has {n_users} (one row per user)"
        )
    top = np.full((n_users, n), -1, dtype=np.int64)
    width = min(n, rec.shape[1])
    top[:, :width] = rec[:, :width]
    if top.size and (top.max() >= n_items or top.min() < -1):
        bad = top[(top >= n_items) | (top < -1)][0]
        raise ValueError(f"recommended item index {int(bad)} is outside [-1, {n_items})")

    valid = top >= 0
    rows = np.broadcast_to(np.arange(n_users, dtype=np.int64)[:, None], top.shape)
    key = rows * n_items + top  # unique per (user, item); padding is masked below
    # keep only the first occurrence of an item within a row: flat order is row-major
    first = np.zeros(top.size, dtype=bool)
    flat_valid = np.flatnonzero(valid.ravel())
    _, first_pos = np.unique(key.ravel()[flat_valid], return_index=True)
    first[flat_valid[first_pos]] = True
    first = first.reshape(top.shape)

    n_relevant = np.diff(rel.indptr).astype(np.int64)
    rel_rows = np.repeat(np.arange(n_users, dtype=np.int64), n_relevant)
    rel_key = rel_rows * n_items + rel.indices  # sorted: rows ascending, columns sorted
    if rel_key.size == 0:
        return np.zeros(top.shape, dtype=bool), n_relevant
    pos = np.minimum(np.searchsorted(rel_key, key), rel_key.size - 1)
    hits = first & (rel_key[pos] == key)
    return hits, n_relevant


def _undefined_to_nan(values: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    out = np.asarray(values, dtype=np.float64).copy()
    out[n_relevant == 0] = np.nan
    return out


def _discounts(n: int) -> np.ndarray:
    """``1 / log2(r + 1)`` for ranks ``r = 1..n``."""
    return 1.0 / np.log2(np.arange(2, n + 2, dtype=np.float64))


# per-user formulas on precomputed hits; the public functions and ranking_report share them
def _precision(hits: np.ndarray, n_relevant: np.ndarray, n: int) -> np.ndarray:
    return _undefined_to_nan(hits.sum(axis=1) / n, n_relevant)


def _recall(hits: np.ndarray, n_relevant: np.ndarray, n: int) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return _undefined_to_nan(hits.sum(axis=1) / n_relevant, n_relevant)


def _ndcg(hits: np.ndarray, n_relevant: np.ndarray, n: int) -> np.ndarray:
    discount = _discounts(n)
    dcg = hits @ discount
    ideal_cumulative = np.concatenate(([0.0], np.cumsum(discount)))
    idcg = ideal_cumulative[np.minimum(n_relevant, n)]
    with np.errstate(invalid="ignore", divide="ignore"):
        return _undefined_to_nan(dcg / idcg, n_relevant)


def _hit_rate(hits: np.ndarray, n_relevant: np.ndarray, n: int) -> np.ndarray:
    return _undefined_to_nan(np.asarray(hits.any(axis=1)), n_relevant)


def _reciprocal_rank(hits: np.ndarray, n_relevant: np.ndarray, n: int) -> np.ndarray:
    first_rank = np.argmax(hits, axis=1) + 1  # argmax of an all-False row is 0: masked next
    return _undefined_to_nan(np.where(hits.any(axis=1), 1.0 / first_rank, 0.0), n_relevant)


def precision_at_n(
    recommended: np.ndarray, relevant: sp.sparray | sp.spmatrix, n: int
) -> np.ndarray:
    """Precision@N per user: ``|top_N(u) ∩ relevant(u)| / N``.

    The denominator is ``N`` even when the list is shorter (padding counts as a miss).
    ``NaN`` for users with no relevant item. Shapes: see the module docstring.
    """
    return _precision(*_hits(recommended, relevant, n), n)


def recall_at_n(recommended: np.ndarray, relevant: sp.sparray | sp.spmatrix, n: int) -> np.ndarray:
    """Recall@N per user: ``|top_N(u) ∩ relevant(u)| / |relevant(u)|``.

    The standard denominator ``|relevant(u)|`` (not ``min(N, |relevant(u)|)``), so recall@N
    is below 1 whenever ``|relevant(u)| > N``. ``NaN`` for users with no relevant item.
    """
    return _recall(*_hits(recommended, relevant, n), n)


def ndcg_at_n(recommended: np.ndarray, relevant: sp.sparray | sp.spmatrix, n: int) -> np.ndarray:
    """NDCG@N per user with binary gains and a log2 discount.

    ``DCG(u) = sum_{r=1..N} rel(u, r) / log2(r + 1)`` where ``rel(u, r)`` is 1 when the item at
    rank ``r`` is relevant to ``u``, else 0. ``IDCG(u) = sum_{r=1..min(N, |relevant(u)|)}
    1 / log2(r + 1)`` (all relevant items ranked first). ``NDCG(u) = DCG(u) / IDCG(u)``, in
    ``[0, 1]``; ``NaN`` for users with no relevant item.
    """
    return _ndcg(*_hits(recommended, relevant, n), n)


def hit_rate_at_n(
    recommended: np.ndarray, relevant: sp.sparray | sp.spmatrix, n: int
) -> np.ndarray:
    """Hit rate@N per user: 1 when ``top_N(u) ∩ relevant(u)`` is not empty, else 0.

    ``NaN`` for users with no relevant item.
    """
    return _hit_rate(*_hits(recommended, relevant, n), n)


def mrr_at_n(recommended: np.ndarray, relevant: sp.sparray | sp.spmatrix, n: int) -> np.ndarray:
    """Reciprocal rank@N per user: ``1 / r`` for the first rank ``r <= N`` holding a relevant
    item, 0 when there is none in the top N; the mean over users is MRR@N.

    ``NaN`` for users with no relevant item.
    """
    return _reciprocal_rank(*_hits(recommended, relevant, n), n)


def catalog_coverage(recommended: np.ndarray, n_items: int, n: int | None = None) -> float:
    """Catalog coverage: ``|union_u top_N(u)| / n_items``.

    The fraction of the ``n_items`` items that appear in at least one list; ``-1`` padding is
    ignored. ``n`` keeps only the first ``n`` columns (default: all). 0.0 when ``n_items == 0``.
    """
    rec = np.asarray(recommended)
    if rec.ndim != 2:
        raise ValueError(f"recommended must be 2-D (n_users, N), got shape {rec.shape}")
    if n is not None:
        rec = rec[:, :n]
    if n_items <= 0:
        return 0.0
    items = rec[rec >= 0]
    if items.size and items.max() >= n_items:
        raise ValueError(f"recommended item index {int(items.max())} is outside [0, {n_items})")
    return float(np.unique(items).size / n_items)


_PER_USER = {
    "precision": _precision,
    "recall": _recall,
    "ndcg": _ndcg,
    "hit_rate": _hit_rate,
    "mrr": _reciprocal_rank,
}


def per_user_metrics(
    recommended: np.ndarray, relevant: sp.sparray | sp.spmatrix, n: int
) -> dict[str, np.ndarray]:
    """The per-user arrays behind :func:`ranking_report` (``precision@N`` ... ``mrr@N``), one
    value per row, NaN for a row without a relevant item (for paired tests over users)."""
    hits, n_relevant = _hits(recommended, relevant, n)
    evaluated = n_relevant > 0
    out: dict[str, np.ndarray] = {}
    for name, per_user in _PER_USER.items():
        values = np.full(len(n_relevant), np.nan)
        values[evaluated] = per_user(hits[evaluated], n_relevant[evaluated], n)
        out[f"{name}@{n}"] = values
    return out


def ranking_report(
    recommended: np.ndarray, relevant: sp.sparray | sp.spmatrix, n: int
) -> dict[str, float]:
    """Mean ranking metrics over the users with at least one relevant item.

    Returns a dict with keys ``precision@N``, ``recall@N``, ``ndcg@N``, ``hit_rate@N``,
    ``mrr@N`` (``np.nanmean`` of the per-user arrays, i.e. the mean over users with
    ``|relevant(u)| >= 1``; ``NaN`` when there is none), ``coverage@N``
    (:func:`catalog_coverage` of the top N of *all* rows, with ``n_items = relevant.shape[1]``)
    and ``n_users_evaluated`` (the number of users averaged over).
    """
    hits, n_relevant = _hits(recommended, relevant, n)
    evaluated = n_relevant > 0
    n_eval = int(evaluated.sum())
    hits, n_relevant = hits[evaluated], n_relevant[evaluated]
    report: dict[str, float] = {}
    for name, per_user in _PER_USER.items():
        values = per_user(hits, n_relevant, n)
        report[f"{name}@{n}"] = float(values.mean()) if n_eval else float("nan")
    report[f"coverage@{n}"] = catalog_coverage(recommended, int(relevant.shape[1]), n)
    report["n_users_evaluated"] = n_eval
    return report
