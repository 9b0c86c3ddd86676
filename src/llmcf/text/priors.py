"""Baselines whose item biases are shrunk towards the biases of text neighbours.

The ALS baselines of :mod:`llmcf.cf.baselines` shrink an item bias towards 0: an item with
three ratings gets ``b_i = sum (r - mu - b_u) / (reg_i + 3)``, mostly 0. With item text, a
better guess for a little-rated item is the bias of the items it reads like. Here ALS
alternates (``n_epochs`` times, items first as in Surprise)::

    p_i = strength * sum_j W_ij b_j                            (text prior of item i)
    b_i = (sum_{u in U_i} (r_ui - mu - b_u) + reg_i * p_i) / (reg_i + |U_i|)
    b_u =  sum_{i in I_u} (r_ui - mu - b_i) / (reg_u + |I_u|)

``W`` (:func:`text_prior_weights`): row i holds i's ``k`` nearest text neighbours among the
items that have training ratings (self excluded), weighted by their cosine (negative ones
dropped) and normalised to sum 1. So ``p_i`` is the similarity-weighted mean bias of those
neighbours; ``strength`` = 0 gives the plain ALS baselines, and an item with no training
ratings gets ``b_i = p_i`` instead of 0 (cold items with text). Users keep the usual prior 0.

Everything is vectorised (``bincount`` sums and one sparse product per epoch); memory is
O(ratings + n_items * k).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from llmcf.errors import ConfigError
from llmcf.text.ann import text_top_k

__all__ = ["text_prior_baselines", "text_prior_weights"]


def text_prior_weights(
    item_vectors: np.ndarray, candidates: np.ndarray, k: int = 20, ann: str = "auto"
) -> sp.csr_matrix:
    """Row-stochastic CSR ``(n_items, n_items)``: the ``k`` nearest text neighbours of each item.

    Args:
        item_vectors: ``(n_items, dim)`` unit (or zero) rows.
        candidates: bool mask of the items that may be neighbours (those with ratings).
        k: neighbours per item.
        ann: method of :func:`llmcf.text.ann.text_top_k`.

    Weights are the positive cosines, divided by their row sum; a row without a positive
    neighbour (a zero vector, or no candidate) is empty.
    """
    if k < 1:
        raise ConfigError(f"bias_prior_k must be >= 1, got {k}")
    n = item_vectors.shape[0]
    idx, sim = text_top_k(item_vectors, k, ann, candidates=candidates)
    w = np.where(idx >= 0, np.maximum(sim.astype(np.float64), 0.0), 0.0)
    total = w.sum(axis=1, keepdims=True)
    w = np.divide(w, total, out=np.zeros_like(w), where=total > 0)
    keep = w > 0
    rows = np.repeat(np.arange(n), keep.sum(axis=1))
    return sp.csr_matrix((w[keep], (rows, idx[keep])), shape=(n, n))


def text_prior_baselines(
    user_idx: np.ndarray,
    item_idx: np.ndarray,
    rating: np.ndarray,
    n_users: int,
    n_items: int,
    weights: sp.csr_matrix,
    *,
    strength: float = 1.0,
    reg_u: float = 15.0,
    reg_i: float = 10.0,
    n_epochs: int = 10,
) -> tuple[float, np.ndarray, np.ndarray]:
    """``(mu, b_u, b_i)`` by ALS with the text prior (formulas in the module docstring).

    ``weights`` is :func:`text_prior_weights`'s matrix; ``strength`` scales the prior
    (0: Surprise's ALS baselines up to floating-point summation order).
    """
    if not 0.0 <= strength <= 1.0:
        raise ConfigError(f"bias_prior must be in [0, 1], got {strength}")
    if weights.shape != (n_items, n_items):
        raise ConfigError(f"prior weights of shape {weights.shape} for {n_items} items")
    u = np.asarray(user_idx, dtype=np.int64)
    i = np.asarray(item_idx, dtype=np.int64)
    r = np.asarray(rating, dtype=np.float64)
    mu = float(r.mean()) if len(r) else 0.0
    den_u = reg_u + np.bincount(u, minlength=n_users).astype(np.float64)
    den_i = reg_i + np.bincount(i, minlength=n_items).astype(np.float64)
    bu = np.zeros(n_users)
    bi = np.zeros(n_items)
    centred = r - mu
    for _ in range(n_epochs):
        prior = strength * (weights @ bi)
        num = np.bincount(i, weights=centred - bu[u], minlength=n_items) + reg_i * prior
        bi = np.divide(num, den_i, out=np.zeros(n_items), where=den_i > 0)
        num = np.bincount(u, weights=centred - bi[i], minlength=n_users)
        bu = np.divide(num, den_u, out=np.zeros(n_users), where=den_u > 0)
    return mu, bu, bi
