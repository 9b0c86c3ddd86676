"""Score fusion: validating a re-ranker's output, standardising, fusing with CF, ordering.

Both score lists are standardised within the candidate list and mixed::

    z(x) = (x - mean(x)) / std(x)   (0 when std(x) == 0)
    final = (1 - w) * z(cf) + w * z(rerank),   w in [0, 1]

and the final order sorts by ``final`` descending, ties by CF position (:func:`order`).
A leaf of :mod:`llmcf.rerank`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from llmcf.errors import ConfigError, LlmcfError

__all__ = [
    "RerankOutputError",
    "fuse_scores",
    "order",
    "scores_from_ranked_ids",
    "standardise",
    "validate_scores",
]


class RerankOutputError(LlmcfError, ValueError):
    """A re-ranker returned something that is not one finite score per candidate."""


#: the largest score magnitude a re-ranker may return (larger ones overflow standardisation)
MAX_SCORE = 1e100


def validate_scores(raw: Any, n: int) -> np.ndarray:
    """``raw`` as a float64 array of ``n`` finite scores, or :class:`RerankOutputError`."""
    try:
        arr = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise RerankOutputError(f"re-ranker output is not numeric: {str(raw)[:80]!r}") from exc
    if arr.ndim != 1 or arr.shape[0] != n:
        raise RerankOutputError(f"re-ranker returned shape {arr.shape}, expected ({n},)")
    if not np.isfinite(arr).all():
        raise RerankOutputError("re-ranker returned non-finite scores")
    if arr.size and float(np.abs(arr).max()) > MAX_SCORE:
        raise RerankOutputError(
            f"re-ranker returned a score of magnitude {float(np.abs(arr).max()):.3g} "
            f"(more than {MAX_SCORE:g}): treated as a failed re-rank"
        )
    return arr


def scores_from_ranked_ids(ranked: Sequence[Any], candidates: np.ndarray) -> np.ndarray:
    """Scores from a listwise answer (ids best first): ``score = n - position``.

    Ids not among ``candidates`` (invented) are dropped, duplicates count at their first
    position, candidates the answer left out score below every named one, in CF order
    (``-position_in_candidates / n``). Always one finite score per candidate.
    """
    cands = [int(c) for c in np.asarray(candidates).ravel()]
    n = len(cands)
    position = {c: j for j, c in enumerate(cands)}
    scores = np.array([-(j + 1) / (n + 1) for j in range(n)], dtype=np.float64)
    seen: set[int] = set()
    rank = 0
    for value in ranked:
        try:
            item = int(value)
        except (TypeError, ValueError, OverflowError):
            continue
        if item in position and item not in seen:
            seen.add(item)
            scores[position[item]] = float(n - rank)
            rank += 1
    return scores


def standardise(x: np.ndarray) -> np.ndarray:
    """``(x - mean(x)) / std(x)``; zeros when the standard deviation is 0 or not finite."""
    sd = float(np.std(x))
    if not np.isfinite(sd) or sd == 0.0:
        return np.zeros_like(x)
    return (x - float(np.mean(x))) / sd


def fuse_scores(cf_scores: np.ndarray, rerank_scores: np.ndarray, weight: float) -> np.ndarray:
    """``(1 - w) z(cf) + w z(rerank)`` (z: standardise within the list; formula above).

    Non-finite CF scores count as the smallest finite one (0 when none is finite).
    """
    if not 0.0 <= weight <= 1.0:
        raise ConfigError(f"fusion weight must be in [0, 1], got {weight}")
    cf = np.asarray(cf_scores, dtype=np.float64)
    cf = np.where(
        np.isfinite(cf),
        cf,
        np.nanmin(np.where(np.isfinite(cf), cf, np.nan)) if np.isfinite(cf).any() else 0.0,
    )
    return (1.0 - weight) * standardise(cf) + weight * standardise(
        np.asarray(rerank_scores, dtype=np.float64)
    )


def order(final: np.ndarray) -> np.ndarray:
    """Positions sorted by ``final`` descending, ties by position (CF order)."""
    return np.lexsort((np.arange(len(final)), -final))
