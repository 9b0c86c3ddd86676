"""Slow, obvious reference implementations (pure Python over dicts) used as test oracles."""

from __future__ import annotations

import math
from collections import defaultdict


def ratings_by(rows: list[tuple[str, str, float]], kind: str) -> dict[str, dict[str, float]]:
    """x -> {y: value}; x = item for kind 'item', user for 'user'."""
    out: dict[str, dict[str, float]] = defaultdict(dict)
    for user, item, r in rows:
        x, y = (item, user) if kind == "item" else (user, item)
        out[x][y] = r
    return out


def similarity(
    a: dict[str, float],
    b: dict[str, float],
    name: str,
    y_means: dict[str, float],
    min_support: int,
    shrinkage: float,
) -> float:
    common = sorted(set(a) & set(b))
    n = len(common)
    if n == 0 or n < max(min_support, 1):
        return 0.0
    if name == "adjusted_cosine":
        va = [a[y] - y_means[y] for y in common]
        vb = [b[y] - y_means[y] for y in common]
    else:
        va = [a[y] for y in common]
        vb = [b[y] for y in common]
    if name == "msd":
        sim = 1.0 / (sum((p - q) ** 2 for p, q in zip(va, vb, strict=True)) / n + 1.0)
    elif name == "pearson":
        ma, mb = sum(va) / n, sum(vb) / n
        num = sum((p - ma) * (q - mb) for p, q in zip(va, vb, strict=True))
        den = math.sqrt(sum((p - ma) ** 2 for p in va) * sum((q - mb) ** 2 for q in vb))
        sim = num / den if den > 1e-12 else 0.0
    else:
        num = sum(p * q for p, q in zip(va, vb, strict=True))
        den = math.sqrt(sum(p * p for p in va) * sum(q * q for q in vb))
        sim = num / den if den > 0 else 0.0
    if shrinkage > 0:
        sim *= (n - 1) / (n - 1 + shrinkage)
    return sim


def neighbor_lists(
    rows: list[tuple[str, str, float]],
    kind: str,
    name: str,
    k: int,
    min_support: int = 1,
    shrinkage: float = 0.0,
) -> dict[str, list[tuple[str, float]]]:
    """x -> its k best (x', sim > 0), by decreasing sim then lower (sorted) id."""
    by_x = ratings_by(rows, kind)
    by_y = ratings_by(rows, "user" if kind == "item" else "item")
    y_means = {y: sum(v.values()) / len(v) for y, v in by_y.items()}
    out = {}
    for x in sorted(by_x):
        cands = []
        for x2 in sorted(by_x):
            if x2 == x:
                continue
            s = similarity(by_x[x], by_x[x2], name, y_means, min_support, shrinkage)
            if s > 1e-12:
                cands.append((x2, s))
        cands.sort(key=lambda t: (-round(t[1], 12), t[0]))
        out[x] = cands[:k]
    return out


def recommendations(
    rows: list[tuple[str, str, float]],
    lists: dict[str, list[tuple[str, float]]],
    kind: str,
    n: int,
    k: int,
) -> dict[str, list[tuple[str, float, bool]]]:
    """user -> [(item, score, from_cf)], the rules of llmcf.backends.local.recommend_all."""
    users = sorted({u for u, _, _ in rows})
    items = sorted({i for _, i, _ in rows})
    R = ratings_by(rows, "user")
    R_items = ratings_by(rows, "item")
    pop = {i: len(R_items[i]) for i in items}
    out = {}
    for u in users:
        scores: dict[str, float] = defaultdict(float)
        for j in items:
            if kind == "item":
                for i2, s in lists.get(j, [])[:k]:
                    if i2 in R[u]:
                        scores[j] += R[u][i2] * s
            else:
                for v, s in lists.get(u, [])[:k]:
                    if j in R[v]:
                        scores[j] += s * R[v][j]
        ranked = sorted(
            ((j, s) for j, s in scores.items() if s > 0 and j not in R[u]),
            key=lambda t: (-round(t[1], 12), t[0]),
        )[:n]
        result = [(j, s, True) for j, s in ranked]
        listed = {j for j, _ in ranked}
        for j in sorted(items, key=lambda i: (-pop[i], i)):
            if len(result) >= n:
                break
            if j not in R[u] and j not in listed:
                result.append((j, float(pop[j]), False))
        out[u] = result
    return out
