"""Slow, obvious reference implementations of the kNN formulas, used as test oracles.

They follow the definitions in :mod:`llmcf.cf.similarity` and :mod:`llmcf.cf.knn` literally:
Python loops over co-rated entries and over candidate neighbours. Never use them on real data
sizes.
"""

from __future__ import annotations

import math

import numpy as np


def ratings_by_row(x: np.ndarray, y: np.ndarray, r: np.ndarray) -> list[dict[int, float]]:
    """``rows[x][y] = r`` for the entity x (dict per row)."""
    n_x = int(x.max()) + 1 if len(x) else 0
    rows: list[dict[int, float]] = [{} for _ in range(n_x)]
    for a, b, v in zip(x.tolist(), y.tolist(), r.tolist(), strict=True):
        rows[a][b] = v
    return rows


def similarity(
    name: str,
    row_a: dict[int, float],
    row_b: dict[int, float],
    *,
    min_support: int = 1,
    shrinkage: float = 0.0,
) -> float:
    """Similarity of two rows of already transformed values over their co-rated columns."""
    common = sorted(set(row_a) & set(row_b))
    n = len(common)
    if n == 0 or n < min_support:
        return 0.0
    a = [row_a[c] for c in common]
    b = [row_b[c] for c in common]
    if name == "msd":
        sim = 1.0 / (sum((p - q) ** 2 for p, q in zip(a, b, strict=True)) / n + 1.0)
    elif name == "pearson":
        ma, mb = sum(a) / n, sum(b) / n
        num = sum((p - ma) * (q - mb) for p, q in zip(a, b, strict=True))
        den = math.sqrt(sum((p - ma) ** 2 for p in a) * sum((q - mb) ** 2 for q in b))
        if den < 1e-12:
            return 0.0
        sim = num / den
    else:  # cosine family
        den = math.sqrt(sum(p * p for p in a) * sum(q * q for q in b))
        if den == 0.0:
            return 0.0
        sim = sum(p * q for p, q in zip(a, b, strict=True)) / den
    if shrinkage > 0:
        sim *= (n - 1) / (n - 1 + shrinkage)
    return sim


def knn_estimate(
    candidates: list[tuple[float, float]], k: int, min_k: int
) -> tuple[float, float, int] | None:
    """``(sum sim*dev, sum sim, used)`` over the k most similar positive candidates.

    ``candidates`` are (similarity, deviation) in input order; ties keep input order.
    Returns None when fewer than ``min_k`` (or zero) neighbours are usable.
    """
    positive = [(s, d) for s, d in candidates if s > 0]
    top = sorted(positive, key=lambda t: -t[0])[:k]  # sorted() is stable
    if len(top) < max(min_k, 1):
        return None
    return sum(s * d for s, d in top), sum(s for s, _ in top), len(top)
