"""User text vectors built from behaviour: a weighted average of the rated items' embeddings.

For user u with training ratings r_ui on the items I_u, item embeddings e_i (unit rows) and
weights w_ui::

    p_u = sum_{i in I_u} w_ui e_i,        v_u = p_u / ||p_u||_2

Weightings (``method``):

============  ==================================================================================
centered      w_ui = r_ui - mean_u (the user's mean rating): liked items pull towards, disliked
              items push away. When every w_ui is 0 (one rating, or all ratings equal), the
              plain mean (w_ui = 1) is used instead, so such a user still gets a vector.
residual      w_ui = r_ui - b_ui with baselines b_ui = mu + b_u + b_i (falls back like centered)
mean          w_ui = 1: the centroid of everything the user rated
positive      w_ui = max(r_ui - mean_u, 0), i.e. only above-mean items (falls back to mean)
============  ==================================================================================

A user without training ratings, or whose p_u is the zero vector, gets a zero row: no text
similarity to anyone.
"""

from __future__ import annotations

import numpy as np

from llmcf.errors import ConfigError
from llmcf.text.embedding_base import l2_normalize

USER_REPRESENTATIONS = ("centered", "residual", "mean", "positive")

__all__ = ["USER_REPRESENTATIONS", "user_vectors"]


def user_vectors(
    user_idx: np.ndarray,
    item_idx: np.ndarray,
    rating: np.ndarray,
    n_users: int,
    item_vectors: np.ndarray,
    method: str = "centered",
    *,
    baseline: np.ndarray | None = None,
) -> np.ndarray:
    """float32 ``(n_users, dim)`` unit rows (zero rows for users with no usable ratings).

    Args:
        user_idx, item_idx, rating: the training interactions (same length).
        item_vectors: float32 ``(n_items, dim)`` item embeddings.
        method: one of :data:`USER_REPRESENTATIONS` (formulas in the module docstring).
        baseline: ``b_ui`` per interaction, needed by ``residual``.
    """
    if method not in USER_REPRESENTATIONS:
        raise ConfigError(
            f"unknown user representation {method!r}; valid: {', '.join(USER_REPRESENTATIONS)}"
        )
    u = np.asarray(user_idx, dtype=np.int64)
    i = np.asarray(item_idx, dtype=np.int64)
    r = np.asarray(rating, dtype=np.float64)
    counts = np.bincount(u, minlength=n_users).astype(np.float64)
    means = np.bincount(u, weights=r, minlength=n_users) / np.maximum(counts, 1.0)
    if method == "mean":
        weights = np.ones_like(r)
    elif method == "residual":
        if baseline is None:
            raise ConfigError("user representation 'residual' needs the baselines b_ui")
        weights = r - np.asarray(baseline, dtype=np.float64)
    elif method == "positive":
        weights = np.maximum(r - means[u], 0.0)
    else:
        weights = r - means[u]
    # users whose weights are all zero fall back to the plain mean of their items
    mass = np.bincount(u, weights=np.abs(weights), minlength=n_users)
    weights = np.where(mass[u] > 1e-12, weights, 1.0)
    import scipy.sparse as sp

    w = sp.csr_matrix((weights, (u, i)), shape=(n_users, item_vectors.shape[0]))
    return l2_normalize(np.asarray(w @ item_vectors.astype(np.float64)))
