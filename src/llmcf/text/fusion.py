"""The one text fusion: CF similarity blended with text-embedding similarity.

Used by the T-models (:mod:`llmcf.text.fused`) and by the neighbour-list builders of both
backends (:func:`llmcf.backends.artifact.fuse_neighbors`; Spark evaluates the same formula
in SQL and is checked against it)::

    text(x, x') = max(0, (cos - shift) / (1 - shift)) ** power
    fixed:    s = alpha * cf + (1 - alpha) * text
    support:  s = w * cf + (1 - w) * text,   w = n / (n + beta)
    sim = s ** amplify   where s > 0
"""

from __future__ import annotations

import numpy as np

from llmcf.errors import ConfigError

FUSIONS = ("fixed", "support")


def rescale_text(cos: np.ndarray, shift: float = 0.0, power: float = 1.0) -> np.ndarray:
    """``max(0, (cos - shift) / (1 - shift)) ** power`` (float64, same shape as ``cos``)."""
    t = np.maximum((np.asarray(cos, dtype=np.float64) - shift) / (1.0 - shift), 0.0)
    return t if power == 1.0 else t**power


def fuse_similarity(
    cf: np.ndarray,
    cos: np.ndarray,
    support: np.ndarray,
    *,
    fusion: str,
    alpha: float | np.ndarray,
    beta: float,
    shift: float = 0.0,
    power: float = 1.0,
    amplify: float = 1.0,
) -> np.ndarray:
    """Elementwise fused similarity (formulas in the module docstring); float64.

    ``amplify`` raises the positive values to that power; values <= 0 (never neighbours)
    are returned unchanged. ``alpha`` may be an array of per-pair weights (same shape).
    """
    text = rescale_text(cos, shift, power)
    cf = np.asarray(cf, dtype=np.float64)
    if fusion == "fixed":
        fused = alpha * cf + (1.0 - alpha) * text
    elif fusion == "support":
        n = np.asarray(support, dtype=np.float64)
        w = n / (n + beta)
        fused = w * cf + (1.0 - w) * text
    else:
        raise ConfigError(f"unknown fusion {fusion!r}; valid: {', '.join(FUSIONS)}")
    if amplify != 1.0:
        positive = fused > 0
        fused[positive] = fused[positive] ** amplify
    return fused
