"""Choosing the fusion weight w on validation users (mean NDCG@n of the fused order).

NDCG is :func:`llmcf.eval.metrics.ndcg_at_n` (binary gains, log2 discount), the same function
the evaluation reports use.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from llmcf.eval.metrics import ndcg_at_n
from llmcf.rerank.fusion import fuse_scores, order

__all__ = ["DEFAULT_WEIGHT_GRID", "choose_weight"]

#: the weights :func:`choose_weight` tries by default
DEFAULT_WEIGHT_GRID = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


def choose_weight(
    cf_scores: Sequence[np.ndarray],
    rerank_scores: Sequence[np.ndarray | None],
    relevant: Sequence[np.ndarray],
    n: int = 10,
    grid: Sequence[float] = DEFAULT_WEIGHT_GRID,
) -> tuple[float, dict[float, float]]:
    """The fusion weight maximising mean NDCG@n over validation users.

    Per user: CF scores of the candidates, re-ranker scores (None = failed: CF order), and a
    boolean array marking the relevant candidates. Users with no relevant candidate are left
    out. Returns ``(best_w, {w: mean NDCG@n})`` (0.0 for every w when no user is left); ties go
    to the smaller w (closer to CF), and w = 0 is always in the grid.
    """
    weights = sorted({0.0, *(float(w) for w in grid)})
    users: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for cf, rr, rel in zip(cf_scores, rerank_scores, relevant, strict=True):
        mask = np.asarray(rel, dtype=bool).ravel()
        if mask.any():
            cf_arr = np.asarray(cf, dtype=np.float64)
            rr_arr = np.asarray(rr, dtype=np.float64) if rr is not None else np.zeros(len(cf_arr))
            users.append((cf_arr, rr_arr, mask))
    if not users:
        return 0.0, dict.fromkeys(weights, 0.0)
    # rows: users; columns: candidate positions; an entry marks a relevant candidate
    width = max(len(mask) for _, _, mask in users)
    relevance = sp.csr_array(
        np.vstack([np.pad(mask, (0, width - len(mask))) for _, _, mask in users])
    )
    table: dict[float, float] = {}
    for w in weights:
        top = np.full((len(users), n), -1, dtype=np.int64)  # -1: a list shorter than n
        for row, (cf_arr, rr_arr, _) in enumerate(users):
            best = order(fuse_scores(cf_arr, rr_arr, w))[:n]
            top[row, : len(best)] = best
        table[w] = float(np.mean(ndcg_at_n(top, relevance, n)))
    best_w = max(weights, key=lambda w: (table[w], -w))
    return best_w, table
