"""Compiled kernels for the kNN hot loops: a C extension (:mod:`llmcf.cf._ckernels`).

Each kernel has a slow, obvious reference implementation in :mod:`llmcf.testing.reference` that
the tests use as an oracle. Kernels take plain arrays (CSR pieces) and integers so that they
stay independent of the model classes. The C code is plain CPython C API (arrays through the
buffer protocol), compiled with ``-O3 -ffp-contract=off`` and without ``-ffast-math``, and
keeps the loop and summation order of the formulas below, so its results are bit for bit those
of the Python and Spark versions. It checks dtypes, shapes and every index it follows and
raises ``TypeError``/``ValueError`` rather than reading out of bounds.

Similarity codes (``kind``): 0 cosine, 1 msd, 2 pearson, 3 pearson_baseline (cosine of
baseline residuals with (n-1)/(n-1+shrinkage)), 4 adjusted_cosine (cosine of centred values).
For a pair of rows with co-rated values a, b (n of them), :func:`_finalise`::

    msd      1 / (sum (a - b)^2 / n + 1)
    pearson  (n sum ab - sum a sum b) / sqrt((n sum a^2 - (sum a)^2) (n sum b^2 - (sum b)^2))
    others   sum ab / sqrt(sum a^2 sum b^2)
    then     * (n - 1) / (n - 1 + shrinkage)  when shrinkage > 0;  0 when n < min_support,
             n = 0 or a denominator is 0

The sums of row x run over its entries in x-major order, then over each column's entries in
y-major order (Gustavson's row-by-row sparse product, one O(n_x) accumulator per thread).

Predictions (:func:`predict_pairs`), over the first k kept candidates::

    est = offset[p] + sum(sim * dev) / sum(sim) * scale[p]

Threads: the parallel kernels split their rows (or pairs) into ``chunks`` interleaved ranges
that up to :func:`get_threads` POSIX threads, started for the call with the GIL released, take
one by one; results do not depend on the number of threads or chunks. No OpenMP (its thread
pool does not survive ``fork``, which the service and Spark use).
"""

from __future__ import annotations

import math
import os

import numpy as np

from llmcf.errors import ConfigError

try:
    from llmcf.cf import _ckernels
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError(
        "llmcf's C kernels (llmcf.cf._ckernels) are not built for this Python; "
        'reinstall the package (pip install -e ".[dev]" in a checkout) to compile them'
    ) from exc

COSINE, MSD, PEARSON, PEARSON_BASELINE, ADJUSTED_COSINE = 0, 1, 2, 3, 4


def _sqrt(value: float) -> float:
    """C's sqrt: NaN (not an exception) for a negative argument."""
    return math.sqrt(value) if value >= 0.0 else math.nan


def _finalise(
    kind: int,
    n: int,
    sab: float,
    saa: float,
    sbb: float,
    sa: float,
    sb: float,
    sdd: float,
    min_support: int,
    shrinkage: float,
) -> float:
    """Similarity of one pair from its co-rated sums (see the module docstring for ``kind``).

    The C kernels compute exactly this, operation by operation (``_ckernels.finalise``); the
    Spark backend mirrors it too. A negative square root argument (rounding in ``pearson``)
    gives NaN, as in C.
    """
    if n < min_support or n == 0:
        return 0.0
    dn = float(n)
    if kind == MSD:
        sim = 1.0 / (sdd / dn + 1.0)
    elif kind == PEARSON:
        num = dn * sab - sa * sb
        den = _sqrt((dn * saa - sa * sa) * (dn * sbb - sb * sb))
        if den == 0.0:
            return 0.0
        sim = num / den
    else:  # cosine family: cosine, pearson_baseline, adjusted_cosine
        den = _sqrt(saa * sbb)
        if den == 0.0:
            return 0.0
        sim = sab / den
    if shrinkage > 0.0:
        sim *= (dn - 1.0) / (dn - 1.0 + shrinkage)
    return sim


def dense_similarity(
    n_x: int,
    x_indptr: np.ndarray,
    x_indices: np.ndarray,
    x_values: np.ndarray,
    y_indptr: np.ndarray,
    y_indices: np.ndarray,
    y_values: np.ndarray,
    kind: int,
    min_support: int,
    shrinkage: float,
    out: np.ndarray,
    chunks: int,
) -> None:
    """Fill the symmetric (n_x, n_x) matrix ``out`` (zeroed) with all similarities, diagonal 1.

    Each pair is computed once (x < x') and mirrored. ``y_indices`` rows must be sorted by x.
    Arrays: int64 indptr/indices, float64 values and ``out``, all C-contiguous.
    """
    _ckernels.dense_similarity(
        n_x,
        x_indptr,
        x_indices,
        x_values,
        y_indptr,
        y_indices,
        y_values,
        kind,
        min_support,
        shrinkage,
        out,
        chunks,
        get_threads(),
    )


def topk_similarity(
    rows: np.ndarray,
    n_x: int,
    x_indptr: np.ndarray,
    x_indices: np.ndarray,
    x_values: np.ndarray,
    y_indptr: np.ndarray,
    y_indices: np.ndarray,
    y_values: np.ndarray,
    kind: int,
    min_support: int,
    shrinkage: float,
    k: int,
    min_sim: float,
    out_idx: np.ndarray,
    out_sim: np.ndarray,
    chunks: int,
) -> None:
    """Keep, for each of ``rows``, its ``k`` most similar other rows with similarity > min_sim.

    ``out_idx[r]`` (int32, -1 padded) and ``out_sim[r]`` are sorted by decreasing similarity,
    ties broken by lower index. The k best are kept in a bounded insertion list, so a row
    costs O(touched + insertions * k) rather than a sort of everything it touched.
    Memory: O(n_x) per thread plus the (len(rows), k) outputs.
    """
    _ckernels.topk_similarity(
        rows,
        n_x,
        x_indptr,
        x_indices,
        x_values,
        y_indptr,
        y_indices,
        y_values,
        kind,
        min_support,
        shrinkage,
        k,
        min_sim,
        out_idx,
        out_sim,
        chunks,
        get_threads(),
    )


def predict_pairs(
    px: np.ndarray,
    py: np.ndarray,
    y_indptr: np.ndarray,
    y_indices: np.ndarray,
    y_dev: np.ndarray,
    dense_sim: np.ndarray,
    nbr_idx: np.ndarray,
    nbr_sim: np.ndarray,
    use_dense: bool,
    n_x: int,
    ks: np.ndarray,
    min_k: int,
    offset: np.ndarray,
    scale: np.ndarray,
    out_est: np.ndarray,
    out_k: np.ndarray,
    chunks: int,
) -> None:
    """Neighbourhood estimates for pairs (px[p], py[p]) at several neighbour counts at once.

    For pair p the candidates are the entries of row ``py[p]`` of the y-major matrix (in input
    order); their similarity to ``px[p]`` comes from ``dense_sim`` or from the top-k lists
    (``nbr_idx`` int32, ``nbr_sim``); the unused one is ignored. Only candidates with
    similarity > 0 are used. The ``max(ks)`` most similar are kept in a bounded insertion list
    where a newcomer goes after equal similarities, so the selection and its order equal a
    stable ``heapq.nlargest`` over the candidates in input order. For each k in ``ks``
    (ascending)::

        est = offset[p] + sum(sim * dev) / sum(sim) * scale[p]   over the first k kept

    ``out_k[p, j]`` is the number of neighbours used; when it is below ``min_k`` (or zero),
    ``out_est[p, j]`` is NaN and the caller applies the fallback. Pairs with ``px < 0`` or
    ``py < 0`` get NaN and 0.
    """
    _ckernels.predict_pairs(
        px,
        py,
        y_indptr,
        y_indices,
        y_dev,
        dense_sim,
        nbr_idx,
        nbr_sim,
        use_dense,
        n_x,
        ks,
        min_k,
        offset,
        scale,
        out_est,
        out_k,
        chunks,
        get_threads(),
    )


def als_epochs(
    users: np.ndarray,
    items: np.ndarray,
    ratings: np.ndarray,
    mu: float,
    bu: np.ndarray,
    bi: np.ndarray,
    den_i: np.ndarray,
    den_u: np.ndarray,
    n_epochs: int,
) -> None:
    """ALS sweeps of the baselines (``bu``, ``bi`` updated in place), sums in input order::

    b_i = sum_{u in U_i} (r_ui - mu - b_u) / den_i,  then  b_u = sum_{i in I_u} (r_ui - mu - b_i) / den_u
    """
    _ckernels.als_epochs(users, items, ratings, mu, bu, bi, den_i, den_u, n_epochs)


def sgd_epochs(
    users: np.ndarray,
    items: np.ndarray,
    ratings: np.ndarray,
    mu: float,
    bu: np.ndarray,
    bi: np.ndarray,
    n_epochs: int,
    reg: float,
    lr: float,
) -> None:
    """SGD passes over the ratings in input order (``bu``, ``bi`` updated in place)::

    e = r_ui - (mu + b_u + b_i);  b_u += lr (e - reg b_u);  b_i += lr (e - reg b_i)
    """
    _ckernels.sgd_epochs(users, items, ratings, mu, bu, bi, n_epochs, reg, lr)


# ---------------------------------------------------------------------- threads

_threads: int | None = None  # set by set_threads; None: the default


def max_threads() -> int:
    """The default and largest thread count: ``$LLMCF_THREADS``, else the usable cores."""
    env = os.environ.get("LLMCF_THREADS", "").strip()
    if env:
        try:
            value = int(env)
        except ValueError:
            raise ConfigError(f"LLMCF_THREADS must be an integer, got {env!r}") from None
        return max(1, value)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


def get_threads() -> int:
    """Threads the parallel kernels use: the last :func:`set_threads`, else :func:`max_threads`."""
    return _threads if _threads is not None else max_threads()


def set_threads(n: int | None) -> None:
    """Cap the kernels' worker threads at ``n`` (at most :func:`max_threads`).

    ``None`` keeps the current setting (initially the default, one per core or
    ``$LLMCF_THREADS``).
    """
    global _threads
    if n is not None:
        _threads = max(1, min(int(n), max_threads()))


def n_chunks(per_thread: int = 4) -> int:
    """Work chunks for a parallel kernel: a few per thread, so that uneven rows balance out."""
    return max(1, per_thread * get_threads())
