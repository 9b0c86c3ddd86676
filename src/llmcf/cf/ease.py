"""EASE, Steck (2019) "Embarrassingly Shallow Autoencoders for Sparse Data": a linear
item-item ranker with a closed form.

**Positives.** X is the users x items matrix of the training values summed per pair (the
model's units: ratings for explicit data, counts for implicit data), turned into positives:
an entry counts when its value is ``>= threshold``; ``threshold=None`` ("auto") means 4.0
(capped at the top of the rating scale) for explicit data with a rating scale and ``> 0``
(every interaction) for implicit data. ``weighting="binary"`` (default) sets each positive
to 1, ``"value"`` keeps its value; the other entries are dropped. History rows are turned
into x with the same rule, so a user folded in from events is scored exactly like a training
row with the same values.

**Exact model** (at most ``dense_max`` items)::

    G = X^T X + lam I,   P = G^-1,   B = I - P diag(1 / diag(P))

i.e. ``B_ij = -P_ij / P_jj`` and ``B_jj = 0``: column j is the ridge regression of item j on
every other item, ``min ||X - X B||^2 + lam ||B||^2`` subject to ``diag(B) = 0``. G is
formed in row blocks of sparse products, inverted in place (LAPACK ``?potrf`` + ``?potri``)
and turned into B in place, so a fit holds one dense n_items x n_items array. Float64 up to
``FLOAT32_FROM`` = 8,192 items, float32 above (``dense_dtype``; half the memory and about
2.3x faster, B within ~2e-8 of its largest entry): **memory about n_items^2 * 8 bytes**
up to 8,192 items (512 MiB), ``n_items^2 * 4`` above (20,000 items: 1.6 GB), plus the same
again while ``tune`` runs (G is kept beside each trial). ``dense_max=16384`` bounds it at
1 GiB.

**Bounded model** (more than ``dense_max`` items). For each item j, ``S_j`` is the
``n_neighbors`` (k) items i with the largest cosine ``G_ij / sqrt(G_ii G_jj)`` among those with
``G_ij > 0`` (ties: lower index), and column j of B is the ridge regression restricted to them::

    B[S_j, j] = (G~[S_j, S_j] + lam I)^-1 G[S_j, j],   B_ij = 0 for i not in S_j

``G~`` is the *pruned Gram*: each item keeps its ``gram_neighbors`` (m, default 2k) largest
co-occurrences ``G_ip``; ``G~_pq = G_pq`` when q is in p's list or p in q's, else 0; diagonal
and right-hand side are exact. With every co-occurring pair kept (k, m >= n_items - 1) this is
exactly column j of the exact model when every pair co-occurs. G is formed in row blocks of
sparse products and never held whole: memory ``O(nnz(X) + n_items (k + m))``, never
n_items^2; time ``O(sum_u deg(u)^2 + n_items (k m + k^3))``. B has at most k non-zeros per
column. Measured against the exact model (benchmarks/bench_ease.py): top-10 overlap 0.89 on
ml-100k u1 and 0.93 on a 5,000-item synthetic catalog at k = 200.

**Scores.** ``score(u, j) = (x_u B)_j`` for every item with a training positive (items
without one have an all-zero column and get no score, -inf); finite negative scores are
scores. A history row without any positive entry has no score at all (-inf), so the ranking
path falls back to popularity and flags it. Fold-in users come straight from their history
vector. The ranking configuration (``set_ranking``) does not change EASE's scores.

**Ratings.** EASE is a ranker: ``predict`` returns the training mean ``mu`` for every pair,
each flagged ``was_fallback``, so rating evaluations run but count every pair as a fallback.

**Tune** (``tune=True``): a validation carve of the *training* interactions (each held out
with probability ``tune_fraction``, seed ``tune_seed``) is hidden, the model is fitted on the
rest for every ``lam`` of ``lam_grid``, and the lam with the best validation NDCG@10 (held-out
positives relevant, the rest of the carve's training items excluded; first of equal ones)
is refitted on all the training data. Test data is never seen.

**Threads.** The bounded model's small systems are solved by ``threads`` worker threads
(default ``$LLMCF_THREADS``, else the usable cores); results do not depend on their number.
The exact model's Cholesky factorisation and inverse run on one BLAS thread: with scipy
1.17's bundled OpenBLAS 0.3.30, threaded ``dpotrf`` crashed (SIGSEGV) on a 20,000-item Gram
matrix and, on a loaded 2-core machine, took 2-8 s instead of 0.1 s at 1,682 items. One
thread is also reproducible to the bit. The Gram products (scipy.sparse) are single-threaded.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from llmcf.base import Model
from llmcf.data.dataset import Dataset
from llmcf.errors import ConfigError
from llmcf.options import config_from_dict
from llmcf.ranking.lists import top_n_rows
from llmcf.ranking.path import Histories
from llmcf.registry import register

if TYPE_CHECKING:
    import scipy.sparse as sp

WEIGHTINGS = ("binary", "value")
#: the positive threshold of explicit data when ``threshold`` is None (capped at the top rating)
EXPLICIT_THRESHOLD = 4.0
#: above this many items the exact model computes in float32 (``dense_dtype="auto"``)
FLOAT32_FROM = 8192
#: the lam values ``tune`` tries
LAM_GRID = (50.0, 100.0, 200.0, 300.0, 500.0, 750.0, 1000.0, 1500.0, 2000.0, 3000.0, 5000.0)
#: list length of the validation NDCG that ``tune`` maximises
TUNE_N = 10
#: validation users ``tune`` scores at most (a seeded sample beyond)
TUNE_MAX_USERS = 5000
#: entries of one block of temporaries (128 MiB of float64)
BLOCK_ENTRIES = 1 << 24


@dataclass(frozen=True)
class EASEConfig:
    """Hyperparameters of EASE (unknown keys are rejected by ``from_dict``).

    lam: the L2 penalty lambda (> 0). threshold: interactions with a value ``>= threshold``
    are positives; ``None`` = auto (4.0 for explicit data, capped at the top of the scale;
    every interaction with a value > 0 for implicit data). weighting: ``"binary"`` (1 per
    positive) or ``"value"`` (the positive's value). dense_max: the largest catalog fitted
    with the exact dense closed form (memory about n_items^2 * 8 bytes). n_neighbors: the
    non-zeros per column of the bounded model above ``dense_max``; gram_neighbors: entries
    per item of its pruned Gram (None: 2 * n_neighbors). tune, tune_fraction,
    tune_seed, lam_grid: choose lam on a validation carve of the training data. threads:
    worker threads of the bounded model (default ``$LLMCF_THREADS``, else the cores).
    """

    lam: float = 500.0
    threshold: float | None = None
    weighting: Literal["binary", "value"] = "binary"
    dense_max: int = 16384
    n_neighbors: int = 200
    gram_neighbors: int | None = None
    tune: bool = False
    tune_fraction: float = 0.1
    tune_seed: int = 0
    lam_grid: tuple[float, ...] = LAM_GRID
    threads: int | None = None
    #: float type of the exact model's G, inverse and B: "auto" = float64 up to
    #: FLOAT32_FROM items, float32 above (half the memory, ~2.3x faster LAPACK; B agrees with
    #: float64 to ~2e-8 of its largest entry on a 6,000-item Gram)
    dense_dtype: Literal["auto", "float64", "float32"] = "auto"

    def __post_init__(self) -> None:
        if not _positive_number(self.lam):
            raise ConfigError(f"lam must be a finite number > 0, got {self.lam!r}")
        if self.threshold is not None and not (
            _number(self.threshold) and np.isfinite(self.threshold)
        ):
            raise ConfigError(f"threshold must be a finite number or None, got {self.threshold!r}")
        if self.weighting not in WEIGHTINGS:
            raise ConfigError(
                f"unknown weighting {self.weighting!r}; valid: {', '.join(WEIGHTINGS)}"
            )
        for name in ("dense_max", "n_neighbors", "tune_seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise ConfigError(f"{name} must be an integer, got {value!r}")
        if self.dense_max < 0:
            raise ConfigError(f"dense_max must be >= 0, got {self.dense_max}")
        if self.n_neighbors < 1:
            raise ConfigError(f"n_neighbors must be >= 1, got {self.n_neighbors}")
        if self.gram_neighbors is not None and (
            isinstance(self.gram_neighbors, bool)
            or not isinstance(self.gram_neighbors, (int, np.integer))
            or self.gram_neighbors < 1
        ):
            raise ConfigError(
                f"gram_neighbors must be an integer >= 1 or None, got {self.gram_neighbors!r}"
            )
        if not isinstance(self.tune, (bool, np.bool_)):
            raise ConfigError(f"tune must be true or false, got {self.tune!r}")
        if not (_number(self.tune_fraction) and 0.0 < self.tune_fraction < 1.0):
            raise ConfigError(f"tune_fraction must be in (0, 1), got {self.tune_fraction!r}")
        if isinstance(self.lam_grid, (str, bytes)) or not hasattr(self.lam_grid, "__iter__"):
            raise ConfigError(f"lam_grid must be a list of numbers, got {self.lam_grid!r}")
        grid = tuple(self.lam_grid)
        if not grid or not all(_positive_number(v) for v in grid):
            raise ConfigError(f"lam_grid must be numbers > 0, got {list(grid)}")
        object.__setattr__(self, "lam_grid", tuple(float(v) for v in grid))
        if self.dense_dtype not in ("auto", "float64", "float32"):
            raise ConfigError(
                f"dense_dtype must be auto, float64 or float32, got {self.dense_dtype!r}"
            )
        if self.threads is not None and (
            isinstance(self.threads, bool)
            or not isinstance(self.threads, (int, np.integer))
            or self.threads < 1
        ):
            raise ConfigError(f"threads must be an integer >= 1, got {self.threads!r}")

    def dtype_for(self, n_items: int) -> type[np.floating[Any]]:
        """The float type of the exact model on ``n_items`` items (see ``dense_dtype``)."""
        if self.dense_dtype == "float32" or (self.dense_dtype == "auto" and n_items > FLOAT32_FROM):
            return np.float32
        return np.float64

    @property
    def gram_size(self) -> int:
        """Entries per item of the pruned Gram: ``gram_neighbors``, default 2 * n_neighbors."""
        return self.gram_neighbors if self.gram_neighbors is not None else 2 * self.n_neighbors

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> EASEConfig:
        return config_from_dict(cls, values, "EASE")


def _number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating))


def _positive_number(value: Any) -> bool:
    return _number(value) and bool(np.isfinite(value)) and value > 0


#: command-line option -> EASEConfig field (every other option is ignored)
OPTION_KEYS = {
    **{f.name: f.name for f in fields(EASEConfig)},
    "ease_lambda": "lam",
    "ease_lam": "lam",
    "ease_threshold": "threshold",
}


# ---------------------------------------------------------------------- closed forms
@contextmanager
def blas_threads(threads: int | None) -> Iterator[None]:
    """Cap the BLAS/LAPACK threads of numpy and scipy at ``threads`` (default
    ``$LLMCF_THREADS``, else the cores)."""
    from threadpoolctl import threadpool_limits

    from llmcf.cf import _kernels

    limit = threads if threads is not None else _kernels.max_threads()
    with threadpool_limits(limits=int(limit), user_api="blas"):
        yield


def positives(
    values: sp.spmatrix | sp.sparray, threshold: float | None, weighting: str
) -> sp.csr_matrix:
    """X from summed values: entries ``>= threshold`` (``> 0`` when None) kept, as 1
    (``binary``) or their value (``value``); float64 CSR with sorted indices."""
    import scipy.sparse as sp

    out = sp.csr_matrix(values, dtype=np.float64, copy=True)
    out.sum_duplicates()
    keep = out.data >= threshold if threshold is not None else out.data > 0
    out.data = np.where(keep, out.data if weighting == "value" else 1.0, 0.0)
    out.eliminate_zeros()
    out.sort_indices()
    return out


def gram_dense(X: sp.csr_matrix, dtype: Any = np.float64) -> np.ndarray:
    """G = X^T X as a dense C-order (n_items, n_items) array of ``dtype``, in row blocks
    (products in float64, one block at a time)."""
    n = X.shape[1]
    Xt = X.T.tocsr()
    G = np.empty((n, n), dtype=dtype)
    step = max(1, BLOCK_ENTRIES // max(n, 1))
    for a in range(0, n, step):
        b = min(a + step, n)
        if G.dtype == np.float64:
            (Xt[a:b] @ X).toarray(out=G[a:b])
        else:
            G[a:b] = (Xt[a:b] @ X).toarray()
    return G


def _symmetrize_from_lower(A: np.ndarray) -> None:
    """Copy the lower triangle of the square C-order ``A`` onto its upper one, in place."""
    n = A.shape[0]
    step = max(1, min(n, BLOCK_ENTRIES // max(n, 1), 2048))
    for a in range(0, n, step):
        b = min(a + step, n)
        low = np.tril(A[a:b, a:b])
        A[a:b, a:b] = low + np.tril(low, -1).T
        if b < n:
            A[a:b, b:] = A[b:, a:b].T


def spd_inverse_inplace(A: np.ndarray) -> np.ndarray:
    """The inverse of the symmetric positive definite C-order ``A``, overwriting it (Cholesky
    ``?potrf`` then ``?potri``, in ``A``'s precision: float64 or float32); returns it (``A``
    itself)."""
    from scipy.linalg import lapack

    n = A.shape[0]
    if n == 0:
        return A
    potrf, potri = (
        (lapack.spotrf, lapack.spotri) if A.dtype == np.float32 else (lapack.dpotrf, lapack.dpotri)
    )
    # A is symmetric, so its transpose (a Fortran-order view) is the same matrix: LAPACK
    # works on it in place; one thread (module docstring, "Threads")
    with blas_threads(1):
        c, info = potrf(A.T, lower=0, clean=0, overwrite_a=1)
        if info != 0:
            raise ConfigError(
                f"X^T X + lam I is not positive definite (LAPACK dpotrf info={info}); raise lam"
            )
        inv, info = potri(c, lower=0, overwrite_c=1)
    if info != 0:
        raise ConfigError(f"inverting X^T X + lam I failed (LAPACK dpotri info={info})")
    # the upper triangle of the Fortran-order result is the lower triangle of its transpose
    out: np.ndarray = inv.T
    if not np.shares_memory(out, A):  # pragma: no cover - LAPACK copied its input
        A[...] = out
    _symmetrize_from_lower(A)
    return A


def ease_dense(G: np.ndarray, lam: float, *, overwrite: bool = False) -> np.ndarray:
    """B of the exact model from the Gram matrix ``G = X^T X`` (overwritten when asked):
    ``P = (G + lam I)^-1``, ``B = I - P diag(1/diag(P))``, so ``B_ij = -P_ij / P_jj``, diag 0."""
    A = G if overwrite else G.copy()
    n = A.shape[0]
    A.flat[:: n + 1] += lam
    P = spd_inverse_inplace(A)
    d = np.diag(P).copy()
    P /= -d  # column j divided by -P_jj
    np.fill_diagonal(P, 0.0)
    return P


@dataclass
class PrunedGram:
    """What the bounded model needs of G = X^T X, in ``O(n (k + m))`` memory.

    ``nbr_idx``/``nbr_val`` (n, k): for each item j the k items i != j with the largest
    cosine ``G_ij / sqrt(G_ii G_jj)`` (G_ij > 0; ties: lower index), best first, and their
    ``G_ij``, padded with -1 / 0. ``gram_idx``/``gram_val`` (n + 1, m): the m items with the
    largest ``G_ij`` (the pruned Gram the small systems are built from), padded with n / 0;
    row n is a dummy item with no entries. ``diag`` (n,): ``G_jj``.
    """

    nbr_idx: np.ndarray
    nbr_val: np.ndarray
    gram_idx: np.ndarray
    gram_val: np.ndarray
    diag: np.ndarray


def _top_per_row(
    rows: np.ndarray, cols: np.ndarray, key: np.ndarray, vals: np.ndarray, n_rows: int, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(row, rank, col, val)`` of the ``k`` entries per row with the largest ``key`` (ties:
    lower column), of the entries ``(rows, cols, key, vals)``."""
    order = np.lexsort((cols, -key, rows))
    rows, cols, vals = rows[order], cols[order], vals[order]
    starts = np.searchsorted(rows, np.arange(n_rows))
    rank = np.arange(len(rows)) - starts[rows]
    top = rank < k
    return rows[top], rank[top], cols[top], vals[top]


def pruned_gram(X: sp.csr_matrix, k: int, m: int, extra: sp.csr_matrix | None = None) -> PrunedGram:
    """The :class:`PrunedGram` of ``G = X^T X (+ extra)`` with ``k`` neighbours and ``m`` Gram
    entries per item. ``extra``: a sparse symmetric (n_items, n_items) term added to G (the
    text rows of :class:`~llmcf.text.tease.TEASE`).

    G is formed in row blocks of sparse products and never held whole: memory
    ``O(nnz(X) + nnz(extra) + n (k + m))`` plus one block.
    """
    n = X.shape[1]
    Xt = X.T.tocsr()
    diag = np.asarray(X.multiply(X).sum(axis=0), dtype=np.float64).ravel()
    if extra is not None:
        extra = extra.tocsr()
        diag = diag + extra.diagonal()
    out = PrunedGram(
        np.full((n, k), -1, dtype=np.int32),
        np.zeros((n, k)),
        np.full((n + 1, m), n, dtype=np.int32),
        np.zeros((n + 1, m)),
        diag,
    )
    step = max(1, BLOCK_ENTRIES // max(8 * n, 1))
    for a in range(0, n, step):
        b = min(a + step, n)
        block = Xt[a:b] @ X
        if extra is not None:
            block = block + extra[a:b]
        block = block.tocsr()
        block.sum_duplicates()
        rows = np.repeat(np.arange(b - a), np.diff(block.indptr))
        cols, vals = block.indices.astype(np.int64), block.data
        keep = (cols != rows + a) & (vals > 0)
        rows, cols, vals = rows[keep], cols[keep], vals[keep]
        cosine = vals / np.sqrt(diag[rows + a] * diag[cols])
        for key, idx, val, size in (
            (cosine, out.nbr_idx, out.nbr_val, k),
            (vals, out.gram_idx, out.gram_val, m),
        ):
            r, rank, c, v = _top_per_row(rows, cols, key, vals, b - a, size)
            idx[a + r, rank] = c
            val[a + r, rank] = v
    return out


def _solve_batches(
    gram: PrunedGram, lam: float, starts: list[int], batch: int, W: np.ndarray
) -> None:
    """Fill ``W[a : a + batch]`` for each ``a`` in ``starts`` (one worker of :func:`solve_lists`)."""
    n, k = gram.nbr_idx.shape
    m = gram.gram_idx.shape[1]
    # where[i]: the place of item i in the S being built, k when it is not in it (i = n: the
    # dummy item of the padding)
    where = np.full(n + 1, k, dtype=np.int32)
    places = np.arange(k, dtype=np.int32)
    diag = np.append(gram.diag, 1.0)
    gram_val = gram.gram_val.ravel()
    eye = np.arange(k)
    for a in starts:
        b = min(a + batch, n)
        t_n = b - a
        valid = gram.nbr_idx[a:b] >= 0
        S = np.where(valid, gram.nbr_idx[a:b], n)
        lists = gram.gram_idx[S]  # (t_n, k, m): the Gram list of neighbour p of item a + t
        q = np.empty(lists.shape, dtype=np.int32)  # q[t, p, r]: the place of that entry in S
        for t in range(t_n):
            where[S[t]] = places
            where[n] = k
            np.take(where, lists[t], out=q[t])
            where[S[t]] = k
        hit = np.flatnonzero(q != k)
        row = hit // m  # t * k + p
        A = np.zeros((t_n, k, k + 1))
        A.ravel()[row * (k + 1) + q.ravel()[hit]] = gram_val[
            S.ravel()[row].astype(np.int64) * m + hit % m
        ]
        A = A[:, :, :k]
        A = np.maximum(A, A.transpose(0, 2, 1))
        A[:, eye, eye] = diag[S] + lam
        rhs = np.where(valid, gram.nbr_val[a:b], 0.0)
        W[a:b] = np.where(valid, np.linalg.solve(A, rhs[:, :, None])[:, :, 0], 0.0)


def solve_lists(
    gram: PrunedGram, lam: float, *, threads: int | None = None, batch: int = 64
) -> np.ndarray:
    """Weights of the bounded model: for each item j with neighbours ``S_j = nbr_idx[j]``,
    ``w_j = (G~[S_j, S_j] + lam I)^-1 G[S_j, j]``, where ``G~[p, q] = G_pq`` when q is in p's
    Gram list or p in q's, else 0, and ``G~[p, p] = G_pp``. Returns float64 (n, k), 0 where
    ``nbr_idx`` is -1.

    Batches of items are solved by ``threads`` Python threads (default ``$LLMCF_THREADS``,
    else the cores; numpy releases the GIL), interleaved; BLAS runs single-threaded meanwhile,
    so each item's solution does not depend on the thread count.
    """
    from concurrent.futures import ThreadPoolExecutor

    from llmcf.cf import _kernels

    n, k = gram.nbr_idx.shape
    W = np.zeros((n, k))
    if n == 0 or k == 0:
        return W
    batch = max(1, min(batch, BLOCK_ENTRIES // max(k * gram.gram_idx.shape[1], 1)))
    starts = list(range(0, n, batch))
    workers = max(1, min(threads or _kernels.max_threads(), len(starts)))
    with blas_threads(1):  # small systems: BLAS threads would only contend
        if workers == 1:
            _solve_batches(gram, lam, starts, batch, W)
        else:
            with ThreadPoolExecutor(workers) as pool:
                jobs = [
                    pool.submit(_solve_batches, gram, lam, starts[w::workers], batch, W)
                    for w in range(workers)
                ]
                for job in jobs:
                    job.result()
    return W


def lists_matrix(idx: np.ndarray, weights: np.ndarray) -> sp.csr_matrix:
    """B (n, n) CSR of the bounded model: ``B[idx[j, p], j] = weights[j, p]``."""
    import scipy.sparse as sp

    n, k = idx.shape
    valid = idx >= 0
    cols = np.broadcast_to(np.arange(n)[:, None], (n, k))[valid]
    B = sp.csr_matrix((weights[valid], (idx[valid], cols)), shape=(n, n))
    B.sum_duplicates()
    B.sort_indices()
    return B


# ---------------------------------------------------------------------- the model
@register("ease")
class EASE(Model):
    """EASE (Steck 2019): ``score(u) = x_u B`` with the closed-form item-item B (module
    docstring). A ranker: ``predict`` gives the training mean, flagged as a fallback."""

    #: ``--tune`` sits in the parser's text-option group; taking the text options lets it reach
    #: EASE (:meth:`from_options` keeps only EASE's own options)
    takes_text_options = True
    B_: np.ndarray | None = None
    nbr_idx_: np.ndarray | None = None
    nbr_weight_: np.ndarray | None = None

    def __init__(self, config: EASEConfig | None = None, **kwargs: Any) -> None:
        super().__init__()
        if config is not None and kwargs:
            raise ConfigError("pass either an EASEConfig or keyword options, not both")
        self.config = config or EASEConfig.from_dict(kwargs)
        self.mu_ = None
        self.lam_: float | None = None
        self.threshold_: float | None = None
        self.tune_results_: list[dict[str, float]] = []

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> EASE:
        """Build from command-line options; those that are not EASE options (k, similarity,
        the text options but ``tune``, ...) are ignored."""
        return cls(
            EASEConfig.from_dict(
                {OPTION_KEYS[k]: v for k, v in options.items() if k in OPTION_KEYS}
            )
        )

    def get_config(self) -> dict[str, Any]:
        return asdict(self.config)

    # ------------------------------------------------------------------ fit
    def _resolve_threshold(self) -> float | None:
        if self.config.threshold is not None:
            return float(self.config.threshold)
        scale = self.rating_scale_
        if scale is None:
            return None
        return min(EXPLICIT_THRESHOLD, float(scale[1]))

    def _positives(self, values: sp.spmatrix | sp.sparray) -> sp.csr_matrix:
        return positives(values, self.threshold_, self.config.weighting)

    @property
    def dense_(self) -> bool:
        return self.B_ is not None

    def fit(self, dataset: Dataset) -> EASE:
        """Fit B on ``dataset`` (choosing lam on a validation carve first with ``tune``)."""
        cfg = self.config
        t0 = time.perf_counter()
        self.mu_ = None
        self._begin_fit(dataset)
        self.B_ = self.nbr_idx_ = self.nbr_weight_ = None
        self.threshold_ = self._resolve_threshold()
        X = self._positives(self.train_matrix())
        self.item_known_ = np.bincount(X.indices, minlength=X.shape[1]) > 0
        lam = float(cfg.lam)
        results: list[dict[str, float]] = []
        if cfg.tune:
            lam, results = self._tune(dataset)
        self.lam_ = lam
        self.tune_results_ = results
        self._fit_closed_form(dataset, X, lam)
        self.mu_ = dataset.global_mean()
        self.fit_seconds_ = time.perf_counter() - t0
        return self

    def _fit_closed_form(self, dataset: Dataset, X: sp.csr_matrix, lam: float) -> None:
        """Set ``B_`` (exact model) or ``nbr_idx_``/``nbr_weight_`` (bounded) from X and lam."""
        cfg = self.config
        if X.shape[1] <= cfg.dense_max:
            self.B_ = ease_dense(gram_dense(X, cfg.dtype_for(X.shape[1])), lam, overwrite=True)
        else:
            gram = pruned_gram(X, cfg.n_neighbors, cfg.gram_size)
            self.nbr_idx_ = gram.nbr_idx
            self.nbr_weight_ = solve_lists(gram, lam, threads=cfg.threads)

    def _tune(self, dataset: Dataset) -> tuple[float, list[dict[str, float]]]:
        """lam of ``lam_grid`` with the best NDCG@TUNE_N on a validation carve of ``dataset``."""
        import scipy.sparse as sp

        from llmcf.eval.metrics import ndcg_at_n

        cfg = self.config
        rng = np.random.default_rng(cfg.tune_seed)
        held = rng.random(len(dataset)) < cfg.tune_fraction
        if held.all() or not held.any():
            raise ConfigError(
                f"tune: {len(dataset)} training interactions are too few for a "
                f"{cfg.tune_fraction:.0%} validation carve"
            )
        sub = dataset.subset(np.flatnonzero(~held))
        R = sub.matrix()
        X = self._positives(R)
        V = self._positives(dataset.subset(np.flatnonzero(held)).matrix())
        users = np.flatnonzero((np.diff(V.indptr) > 0) & (np.diff(X.indptr) > 0))
        if len(users) == 0:
            raise ConfigError("tune: no validation user has a held-out and a kept positive")
        if len(users) > TUNE_MAX_USERS:
            users = np.sort(rng.choice(users, TUNE_MAX_USERS, replace=False))
        Xu, seen, relevant = X[users], R[users], sp.csr_matrix(V[users] != 0)
        known = np.bincount(X.indices, minlength=X.shape[1]) > 0
        n = X.shape[1]
        dense = n <= cfg.dense_max
        G = gram_dense(X, cfg.dtype_for(n)) if dense else None
        gram = None if dense else pruned_gram(X, cfg.n_neighbors, cfg.gram_size)
        step = max(1, BLOCK_ENTRIES // max(n, 1))
        results: list[dict[str, float]] = []
        for lam in cfg.lam_grid:
            B: Any
            if G is not None:
                B = ease_dense(G, lam)
            else:
                assert gram is not None
                B = lists_matrix(gram.nbr_idx, solve_lists(gram, lam, threads=cfg.threads))
            top = np.full((len(users), TUNE_N), -1, dtype=np.int32)
            for a in range(0, len(users), step):
                b = min(a + step, len(users))
                xb = Xu[a:b] if sp.issparse(B) else Xu[a:b].astype(B.dtype)
                prod = xb @ B
                scores = np.asarray(prod.toarray() if sp.issparse(prod) else prod)
                scores[:, ~known] = -np.inf
                block = seen[a:b]
                scores[np.repeat(np.arange(b - a), np.diff(block.indptr)), block.indices] = -np.inf
                top[a:b] = top_n_rows(scores, TUNE_N)[0]
            ndcg = float(np.nanmean(ndcg_at_n(top, relevant, TUNE_N)))
            results.append({"lam": float(lam), f"ndcg@{TUNE_N}": ndcg})
        best = max(results, key=lambda row: row[f"ndcg@{TUNE_N}"])  # first of equal ones
        return best["lam"], results

    # ------------------------------------------------------------------ scores
    def _sparse_B(self) -> sp.csr_matrix:
        assert self.nbr_idx_ is not None and self.nbr_weight_ is not None
        idx, weights = self.nbr_idx_, self.nbr_weight_
        return self._cache("ease_B", lambda: lists_matrix(idx, weights))

    def score_histories(self, h: Histories) -> tuple[np.ndarray, np.ndarray | None]:
        """``x B`` of each history row (x: its positives); -inf for items without a training
        positive and for rows without a positive."""
        self._check_fitted()
        x = self._positives(h.values)
        if self.B_ is not None:  # x in B's precision: no float64 copy of a float32 B
            scores = np.asarray(x.astype(self.B_.dtype) @ self.B_, dtype=np.float64)
        else:
            scores = (x @ self._sparse_B()).toarray()
        scores[:, ~self.item_known_] = -np.inf
        scores[np.diff(x.indptr) == 0] = -np.inf
        return scores, None

    def _item_neighbors(self, item_idx: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The items j with the largest positive ``B[item_idx, j]`` (what item_idx suggests)."""
        if self.B_ is not None:
            row = self.B_[item_idx].copy()
        else:
            row = self._sparse_B()[item_idx].toarray().ravel()
        row[item_idx] = -np.inf
        row[~self.item_known_ | ~(row > 0)] = -np.inf
        idx, vals = top_n_rows(row[None, :], n)
        keep = idx[0] >= 0
        return idx[0][keep], vals[0][keep]

    # ------------------------------------------------------------------ predict
    def predict_detailed(
        self, user_idx: np.ndarray, item_idx: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(mu for every pair, all True)``: EASE predicts no ratings, every pair is a fallback."""
        self._check_fitted()
        u = np.asarray(user_idx, dtype=np.int64).ravel()
        i = np.asarray(item_idx, dtype=np.int64).ravel()
        if u.shape != i.shape:
            raise ConfigError(f"users and items differ in length: {u.shape[0]} vs {i.shape[0]}")
        est = self._clip(np.full(u.shape, float(self.mu_ or 0.0), dtype=np.float64))
        return est, np.ones(u.shape, dtype=bool)

    # ------------------------------------------------------------------ persistence
    def _state(self) -> dict[str, Any]:
        return {
            **super()._state(),
            "lam": self.lam_,
            "threshold": self.threshold_,
            "tune_results": self.tune_results_,
        }

    def _arrays(self) -> dict[str, np.ndarray]:
        arrays = {**super()._arrays(), "item_known": self.item_known_}
        if self.B_ is not None:
            arrays["B"] = self.B_
        else:
            assert self.nbr_idx_ is not None and self.nbr_weight_ is not None
            arrays["nbr_idx"] = self.nbr_idx_
            arrays["nbr_weight"] = self.nbr_weight_
        return arrays

    def _restore(self, arrays: dict[str, np.ndarray], state: dict[str, Any]) -> None:
        self._restore_common(state)
        self.user_idx_ = arrays["user_idx"]
        self.item_idx_ = arrays["item_idx"]
        self.rating_ = arrays["rating"]
        self.item_known_ = arrays["item_known"]
        self.B_ = arrays.get("B")
        self.nbr_idx_ = arrays.get("nbr_idx")
        self.nbr_weight_ = arrays.get("nbr_weight")
        self.lam_ = float(state["lam"])
        threshold = state.get("threshold")
        self.threshold_ = None if threshold is None else float(threshold)
        self.tune_results_ = [dict(row) for row in state.get("tune_results") or []]
        self._check_restored()

    def _check_restored(self) -> None:
        super()._check_restored()
        n = len(self.items_)
        if self.item_known_.shape != (n,) or self.item_known_.dtype != bool:
            raise ValueError(f"item_known must be bool ({n},), got {self.item_known_.shape}")
        if not (self.lam_ is not None and self.lam_ > 0):
            raise ValueError(f"lam must be > 0, got {self.lam_}")
        if self.B_ is not None:
            if self.nbr_idx_ is not None or self.nbr_weight_ is not None:
                raise ValueError("both a dense B and neighbour lists")
            if self.B_.shape != (n, n) or self.B_.dtype not in (np.float64, np.float32):
                raise ValueError(
                    f"B has shape {self.B_.shape} and type {self.B_.dtype}, expected "
                    f"({n}, {n}) float64 or float32"
                )
        elif self.nbr_idx_ is None or self.nbr_weight_ is None:
            raise ValueError("neither B nor nbr_idx/nbr_weight")
        else:
            idx, w = self.nbr_idx_, self.nbr_weight_
            if idx.ndim != 2 or idx.shape[0] != n or idx.shape != w.shape:
                raise ValueError(f"neighbour lists of shape {idx.shape}/{w.shape} for {n} items")
            if idx.size and (idx.min() < -1 or idx.max() >= n):
                raise ValueError("neighbour indices out of range")
