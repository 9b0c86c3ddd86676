"""Similarity registry. Every measure is computed over **co-rated** entries only.

Notation: for two rows x and x' (users in user-based kNN, items in item-based kNN), Y_xx' is the
set of columns both have a value for (co-ratings), n = |Y_xx'|, and a_y, b_y are the values of x
and x' at column y after the measure's transform.

==================  ===========================================================================
name                formula (over y in Y_xx')
==================  ===========================================================================
cosine              sum a b / sqrt(sum a^2 * sum b^2),   a, b = raw ratings
msd                 1 / (sum (a - b)^2 / n + 1)
pearson             (n sum ab - sum a sum b) / sqrt((n sum a^2 - (sum a)^2)(n sum b^2 - (sum b)^2))
                    (= Pearson correlation with the means of the co-rated values; 0 when undefined)
pearson_baseline    sum a b / sqrt(sum a^2 sum b^2) * (n - 1) / (n - 1 + shrinkage),
                    a = r_xy - b_xy with baselines b_xy = mu + b_x + b_y (default shrinkage 100,
                    support of at least 2)
adjusted_cosine     sum a b / sqrt(sum a^2 sum b^2),  a = r_xy - mean_y: item-item over
                    user-mean-centred ratings (Sarwar et al. 2001); user-user over
                    item-mean-centred ratings
==================  ===========================================================================

Pairs with ``n < min_support`` get 0. With ``shrinkage`` lambda > 0 every measure is multiplied
by ``(n - 1) / (n - 1 + lambda)`` (the same factor as pearson_baseline). cosine, msd, pearson and
pearson_baseline are defined exactly as in scikit-surprise 1.1.5; adjusted_cosine is not in
Surprise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from llmcf.cf import _kernels
from llmcf.errors import ConfigError

if TYPE_CHECKING:
    import scipy.sparse as sp


@dataclass(frozen=True)
class EntryContext:
    """Per-entry arrays a transform may use (x = row entity, y = column entity)."""

    x: np.ndarray
    y: np.ndarray
    r: np.ndarray
    mu: float
    bx: np.ndarray | None
    by: np.ndarray | None
    y_means: np.ndarray


@dataclass(frozen=True)
class Similarity:
    name: str
    kind: int
    transform: Callable[[EntryContext], np.ndarray]
    default_shrinkage: float = 0.0
    min_support_floor: int = 1
    needs_baselines: bool = False


def _raw(ctx: EntryContext) -> np.ndarray:
    return ctx.r


def _baseline_residual(ctx: EntryContext) -> np.ndarray:
    assert ctx.bx is not None and ctx.by is not None
    # same operation order as the reference definition: r - ((mu + b_y) + b_x)
    return ctx.r - ((ctx.mu + ctx.by[ctx.y]) + ctx.bx[ctx.x])


def _y_centred(ctx: EntryContext) -> np.ndarray:
    return ctx.r - ctx.y_means[ctx.y]


SIMILARITIES: dict[str, Similarity] = {
    "cosine": Similarity("cosine", _kernels.COSINE, _raw),
    "msd": Similarity("msd", _kernels.MSD, _raw),
    "pearson": Similarity("pearson", _kernels.PEARSON, _raw),
    "pearson_baseline": Similarity(
        "pearson_baseline",
        _kernels.PEARSON_BASELINE,
        _baseline_residual,
        default_shrinkage=100.0,
        min_support_floor=2,
        needs_baselines=True,
    ),
    "adjusted_cosine": Similarity("adjusted_cosine", _kernels.ADJUSTED_COSINE, _y_centred),
}


def get_similarity(name: str) -> Similarity:
    """Look up a similarity by name; unknown names raise a ConfigError listing the valid ones."""
    try:
        return SIMILARITIES[name]
    except KeyError:
        raise ConfigError(
            f"unknown similarity {name!r}; valid: {', '.join(sorted(SIMILARITIES))}"
        ) from None


@dataclass
class EntryLayout:
    """The training entries in the two layouts the kernels need.

    x-major: rows x, columns sorted by y. y-major: rows y, entries in input order (this order
    breaks ties between equally similar neighbours).
    """

    n_x: int
    n_y: int
    x_indptr: np.ndarray
    x_indices: np.ndarray
    x_order: np.ndarray  # entry ids in x-major order
    y_indptr: np.ndarray
    y_indices: np.ndarray
    y_order: np.ndarray  # entry ids in y-major order (input order within a row)
    ys_indices: np.ndarray  # y-major again, rows sorted by x (for the similarity kernels)
    ys_order: np.ndarray

    @classmethod
    def build(cls, x: np.ndarray, y: np.ndarray, n_x: int, n_y: int) -> EntryLayout:
        x_order = np.lexsort((y, x))
        y_order = np.argsort(y, kind="stable")
        ys_order = np.lexsort((x, y))
        x_indptr = np.zeros(n_x + 1, dtype=np.int64)
        np.cumsum(np.bincount(x, minlength=n_x), out=x_indptr[1:])
        y_indptr = np.zeros(n_y + 1, dtype=np.int64)
        np.cumsum(np.bincount(y, minlength=n_y), out=y_indptr[1:])
        return cls(
            n_x,
            n_y,
            x_indptr,
            np.ascontiguousarray(y[x_order], dtype=np.int64),
            x_order,
            y_indptr,
            np.ascontiguousarray(x[y_order], dtype=np.int64),
            y_order,
            np.ascontiguousarray(x[ys_order], dtype=np.int64),
            ys_order,
        )


def compute_similarities(
    layout: EntryLayout,
    values: np.ndarray,
    similarity: Similarity,
    *,
    min_support: int = 1,
    shrinkage: float | None = None,
    dense: bool,
    n_neighbors: int = 50,
    rows: np.ndarray | None = None,
    progress: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Similarities of ``rows`` (default: all x) to every x.

    ``dense=True`` returns an (len(rows), n_x) float64 array (diagonal 1); otherwise the
    ``n_neighbors`` most similar x' with similarity > 0 per row, as ``(idx int32, sim float64)``
    arrays of shape (len(rows), n_neighbors), -1 padded. Peak memory of the sparse form is
    O(nnz + len(rows) * n_neighbors + threads * n_x).
    """
    shrink = similarity.default_shrinkage if shrinkage is None else float(shrinkage)
    support = max(int(min_support), similarity.min_support_floor)
    x_values = np.ascontiguousarray(values[layout.x_order], dtype=np.float64)
    y_values = np.ascontiguousarray(values[layout.ys_order], dtype=np.float64)
    args = (
        layout.n_x,
        layout.x_indptr,
        layout.x_indices,
        x_values,
        layout.y_indptr,
        layout.ys_indices,
        y_values,
        similarity.kind,
        support,
        shrink,
    )
    if dense and rows is None:
        out = np.zeros((layout.n_x, layout.n_x), dtype=np.float64)
        _kernels.dense_similarity(*args, out, _kernels.n_chunks())
        return out
    row_ids = np.arange(layout.n_x, dtype=np.int64) if rows is None else rows.astype(np.int64)
    if dense:
        raise ValueError("dense similarities are computed for all rows at once")
    out_idx = np.empty((len(row_ids), n_neighbors), dtype=np.int32)
    out_sim = np.empty((len(row_ids), n_neighbors), dtype=np.float64)
    if not progress:
        _kernels.topk_similarity(
            row_ids, *args, n_neighbors, 0.0, out_idx, out_sim, _kernels.n_chunks()
        )
        return out_idx, out_sim
    # blocks of rows so that long fits report progress; each block is one parallel kernel call
    block = max(2048, len(row_ids) // 50)
    from tqdm.auto import tqdm

    with tqdm(total=len(row_ids), desc="neighbours", unit="row") as bar:
        for start in range(0, len(row_ids), block):
            stop = min(start + block, len(row_ids))
            _kernels.topk_similarity(
                row_ids[start:stop],
                *args,
                n_neighbors,
                0.0,
                out_idx[start:stop],
                out_sim[start:stop],
                _kernels.n_chunks(),
            )
            bar.update(stop - start)
    return out_idx, out_sim


def similarity_matrix(
    matrix: sp.spmatrix,
    name: str = "cosine",
    *,
    axis: int = 0,
    min_support: int = 1,
    shrinkage: float | None = None,
) -> np.ndarray:
    """Dense similarity matrix between the rows (axis=0) or columns (axis=1) of a small matrix.

    A convenience for notebooks and tests; models use :func:`compute_similarities`.
    ``pearson_baseline`` needs baselines and is not available here.
    """
    import scipy.sparse as sp

    sim = get_similarity(name)
    if sim.needs_baselines:
        raise ConfigError("pearson_baseline needs baselines; use UserKNN/ItemKNN")
    coo = sp.coo_matrix(matrix)
    x, y = (coo.row, coo.col) if axis == 0 else (coo.col, coo.row)
    n_x, n_y = (coo.shape[0], coo.shape[1]) if axis == 0 else (coo.shape[1], coo.shape[0])
    r = coo.data.astype(np.float64)
    y_means = np.bincount(y, weights=r, minlength=n_y) / np.maximum(
        np.bincount(y, minlength=n_y), 1
    )
    ctx = EntryContext(x, y, r, float(r.mean()) if len(r) else 0.0, None, None, y_means)
    layout = EntryLayout.build(x.astype(np.int64), y.astype(np.int64), n_x, n_y)
    out = compute_similarities(
        layout, sim.transform(ctx), sim, min_support=min_support, shrinkage=shrinkage, dense=True
    )
    assert isinstance(out, np.ndarray)
    return out
