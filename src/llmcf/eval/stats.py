"""Paired significance tests between two methods' per-user metrics.

Two ranking methods evaluated on the same users give two arrays of per-user values
(:func:`llmcf.eval.metrics.per_user_metrics`, pooled over folds as (fold, user) pairs).
:func:`paired_test` compares them on the pairs where both are defined: the mean difference
with a 95% t-interval, the paired t-test and the Wilcoxon signed-rank test (two-sided; the
Wilcoxon test drops zero differences, the usual "wilcox" zero method). ``b - a`` is reported,
so a positive difference means ``b`` is better.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from llmcf.errors import ConfigError

__all__ = ["align", "paired_test", "pooled"]


def paired_test(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """``b - a`` over the pairs where both are finite: ``n``, ``mean_a``, ``mean_b``,
    ``diff``, ``ci95_low``/``ci95_high`` (t-interval of the mean difference), ``p_ttest``
    and ``p_wilcoxon`` (NaN with fewer than 2 pairs; 1.0 when every difference is 0)."""
    from scipy import stats

    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ConfigError(f"paired arrays differ in length: {len(a)} vs {len(b)}")
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    d = b - a
    n = len(d)
    out = {
        "n": float(n),
        "mean_a": float(a.mean()) if n else float("nan"),
        "mean_b": float(b.mean()) if n else float("nan"),
        "diff": float(d.mean()) if n else float("nan"),
    }
    if n < 2:
        return {
            **out,
            "ci95_low": np.nan,
            "ci95_high": np.nan,
            "p_ttest": np.nan,
            "p_wilcoxon": np.nan,
        }
    se = float(d.std(ddof=1) / np.sqrt(n))
    half = float(stats.t.ppf(0.975, n - 1)) * se
    if not np.any(d):
        p_t = p_w = 1.0
    else:
        p_t = float(stats.ttest_rel(b, a).pvalue) if se > 0 else 0.0
        p_w = float(stats.wilcoxon(d[d != 0]).pvalue)
    return {
        **out,
        "ci95_low": out["diff"] - half,
        "ci95_high": out["diff"] + half,
        "p_ttest": p_t,
        "p_wilcoxon": p_w,
    }


def pooled(
    per_user: dict[tuple[str, str], dict[str, Any]], method: str, metric: str
) -> tuple[np.ndarray, np.ndarray]:
    """``(keys, values)`` of one method's per-user ``metric`` over every fold, keyed by
    (fold, user) so two methods can be aligned (:func:`align`)."""
    keys: list[str] = []
    values: list[np.ndarray] = []
    for (name, fold), rec in per_user.items():
        if name != method:
            continue
        keys.extend(f"{fold}\x00{u}" for u in np.asarray(rec["users"]).tolist())
        values.append(np.asarray(rec[metric], dtype=np.float64))
    if not values:
        raise ConfigError(f"no per-user {metric} of method {method!r}")
    return np.array(keys), np.concatenate(values)


def align(
    per_user: dict[tuple[str, str], dict[str, Any]], a: str, b: str, metric: str
) -> tuple[np.ndarray, np.ndarray]:
    """The per-user ``metric`` of methods ``a`` and ``b`` on their common (fold, user) pairs."""
    ka, va = pooled(per_user, a, metric)
    kb, vb = pooled(per_user, b, metric)
    common, ia, ib = np.intersect1d(ka, kb, return_indices=True)
    if not len(common):
        raise ConfigError(f"{a!r} and {b!r} share no evaluated (fold, user) pair")
    return va[ia], vb[ib]
