"""Nearest neighbours of unit text vectors by cosine (= inner product): exact or approximate.

:func:`text_top_k` returns, per row, the ``k`` other rows with the largest cosine
``v_x . v_x'`` (self excluded; zero rows have no neighbours and are nobody's neighbour),
optionally among a subset of candidate rows only.

Methods:

* ``exact`` -- blocks of rows times all candidate rows (numpy BLAS), ``argpartition`` per row:
  O(n^2 d) time, O(block * n) memory. Right for catalogs up to a few tens of thousands.
* ``faiss`` -- an HNSW graph (``faiss.IndexHNSWFlat``, inner product, M=32,
  efSearch=max(2k, 64)) from the optional ``faiss-cpu`` package
  (``pip install 'llmcf[ann]'``), imported only when used.
* ``auto`` -- ``exact`` up to ``EXACT_MAX`` rows, else ``faiss`` when installed, else ``exact``.
"""

from __future__ import annotations

import numpy as np

from llmcf.errors import ConfigError
from llmcf.text.embedding_base import MissingDependencyError

ANN_METHODS = ("auto", "exact", "faiss")
EXACT_MAX = 50_000

__all__ = ["ANN_METHODS", "EXACT_MAX", "text_top_k"]


def _exact(
    queries: np.ndarray, base: np.ndarray, self_pos: np.ndarray, k: int, block: int = 1024
) -> tuple[np.ndarray, np.ndarray]:
    """Top ``k`` rows of ``base`` per query row; ``self_pos[q]``: the query's row in base, or -1."""
    n = queries.shape[0]
    out_idx = np.full((n, k), -1, dtype=np.int32)
    out_sim = np.zeros((n, k), dtype=np.float32)
    m = min(k, base.shape[0])
    if m <= 0:
        return out_idx, out_sim
    for start in range(0, n, block):
        rows = np.arange(start, min(start + block, n))
        sims = queries[rows] @ base.T
        own = self_pos[rows] >= 0
        sims[rows[own] - start, self_pos[rows[own]]] = -np.inf
        part = np.argpartition(-sims, m - 1, axis=1)[:, :m]
        vals = np.take_along_axis(sims, part, axis=1)
        order = np.lexsort((part, -vals), axis=1)
        part = np.take_along_axis(part, order, axis=1)
        vals = np.take_along_axis(vals, order, axis=1)
        found = np.isfinite(vals)  # -inf: the query itself, when base has < k other rows
        out_idx[rows, :m] = np.where(found, part, -1)
        out_sim[rows, :m] = np.where(found, vals, 0.0)
    return out_idx, out_sim


def _faiss(
    queries: np.ndarray, base: np.ndarray, self_pos: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    try:
        import faiss
    except ImportError as exc:
        raise MissingDependencyError(
            "approximate text neighbours need faiss-cpu: pip install 'llmcf[ann]' "
            "(or pip install faiss-cpu), or use ann='exact'"
        ) from exc
    n, dim = queries.shape
    index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = 80
    index.add(np.ascontiguousarray(base, dtype=np.float32))
    index.hnsw.efSearch = max(2 * k, 64)
    sims, idx = index.search(np.ascontiguousarray(queries, dtype=np.float32), k + 1)
    out_idx = np.full((n, k), -1, dtype=np.int32)
    out_sim = np.zeros((n, k), dtype=np.float32)
    for row in range(n):  # drop self, keep order
        keep = (idx[row] >= 0) & (idx[row] != self_pos[row])
        found, vals = idx[row][keep][:k], sims[row][keep][:k]
        out_idx[row, : len(found)] = found
        out_sim[row, : len(found)] = vals
    return out_idx, out_sim


def text_top_k(
    vectors: np.ndarray,
    k: int,
    method: str = "auto",
    *,
    candidates: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` most cosine-similar other rows of each row of ``vectors`` (unit or zero rows).

    Returns ``(idx int32 (n, k), sim float32 (n, k))``, best first, -1 / 0 padded; rows that
    are zero vectors, and neighbours that are zero vectors, are left out. ``candidates`` (bool,
    length n) restricts the neighbours to the rows where it is true (every row still gets its
    neighbours among them).
    """
    if method not in ANN_METHODS:
        raise ConfigError(f"unknown ann method {method!r}; valid: {', '.join(ANN_METHODS)}")
    if k < 1:
        raise ConfigError(f"the number of text neighbours must be >= 1, got {k}")
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    n = vectors.shape[0]
    nonzero = np.linalg.norm(vectors, axis=1) > 0
    rows = np.flatnonzero(nonzero)
    if candidates is None:
        cols = rows
    else:
        mask = np.asarray(candidates, dtype=bool)
        if mask.shape != (n,):
            raise ConfigError(f"candidates must be a bool mask of length {n}, got {mask.shape}")
        cols = np.flatnonzero(nonzero & mask)
    position = np.full(n, -1, dtype=np.int64)
    position[cols] = np.arange(len(cols))
    self_pos = position[rows]
    if method == "auto":
        method = "exact"
        if len(rows) > EXACT_MAX:
            try:
                import faiss  # noqa: F401

                method = "faiss"
            except ImportError:
                pass
    queries, base = vectors[rows], vectors[cols]
    if method == "faiss":
        sub_idx, sub_sim = _faiss(queries, base, self_pos, k)
    else:
        sub_idx, sub_sim = _exact(queries, base, self_pos, k)
    out_idx = np.full((n, k), -1, dtype=np.int32)
    out_sim = np.zeros((n, k), dtype=np.float32)
    out_idx[rows] = np.where(sub_idx >= 0, cols[np.maximum(sub_idx, 0)], -1)
    out_sim[rows] = np.where(sub_idx >= 0, sub_sim, 0.0)
    return out_idx, out_sim
