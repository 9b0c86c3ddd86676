"""Compiled kernels (numba) for the kNN hot loops.

Each kernel has a slow, obvious reference implementation in :mod:`llmcf.cf.reference` that the
tests use as an oracle. Kernels take plain arrays (CSR pieces) and integers so that they stay
independent of the model classes.

Similarity codes (``kind``): 0 cosine, 1 msd, 2 pearson, 3 pearson_baseline (cosine of
baseline residuals with (n-1)/(n-1+shrinkage)), 4 adjusted_cosine (cosine of centred values).
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

COSINE, MSD, PEARSON, PEARSON_BASELINE, ADJUSTED_COSINE = 0, 1, 2, 3, 4


@njit(cache=True, inline="always")
def _finalise(kind, n, sab, saa, sbb, sa, sb, sdd, min_support, shrinkage):  # type: ignore[no-untyped-def]
    """Similarity of one pair from its co-rated sums (see module docstring for ``kind``)."""
    if n < min_support or n == 0:
        return 0.0
    if kind == MSD:
        sim = 1.0 / (sdd / n + 1.0)
    elif kind == PEARSON:
        num = n * sab - sa * sb
        den = np.sqrt((n * saa - sa * sa) * (n * sbb - sb * sb))
        if den == 0.0:
            return 0.0
        sim = num / den
    else:  # cosine family: cosine, pearson_baseline, adjusted_cosine
        den = np.sqrt(saa * sbb)
        if den == 0.0:
            return 0.0
        sim = sab / den
    if shrinkage > 0.0:
        sim *= (n - 1.0) / (n - 1.0 + shrinkage)
    return sim


@njit(cache=True)
def _accumulate_row(
    x,
    first_after,
    x_indptr,
    x_indices,
    x_values,
    y_indptr,
    y_indices,
    y_values,
    kind,
    n_acc,
    s_ab,
    s_aa,
    s_bb,
    s_a,
    s_b,
    s_dd,
    touched,
):  # type: ignore[no-untyped-def]
    """Add the co-rated sums of row ``x`` against the other rows into the accumulators.

    ``y_indices`` rows must be sorted by x. With ``first_after`` only rows x' > x are visited
    (the upper triangle of a symmetric matrix). Returns the number of touched rows, whose ids
    are in ``touched[:count]``.
    """
    count = 0
    for e in range(x_indptr[x], x_indptr[x + 1]):
        y = x_indices[e]
        a = x_values[e]
        start = y_indptr[y]
        end = y_indptr[y + 1]
        if first_after:
            start += np.searchsorted(y_indices[start:end], x, side="right")
        for f in range(start, end):
            x2 = y_indices[f]
            if x2 == x:
                continue
            b = y_values[f]
            if n_acc[x2] == 0:
                touched[count] = x2
                count += 1
            n_acc[x2] += 1
            if kind == MSD:
                d = a - b
                s_dd[x2] += d * d
            else:
                s_ab[x2] += a * b
                s_aa[x2] += a * a
                s_bb[x2] += b * b
                if kind == PEARSON:
                    s_a[x2] += a
                    s_b[x2] += b
    return count


@njit(cache=True, parallel=True)
def dense_similarity(
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
):  # type: ignore[no-untyped-def]
    """Fill the symmetric (n_x, n_x) matrix ``out`` with all similarities (diagonal = 1).

    Each pair is computed once (x < x') and mirrored. ``y_indices`` rows must be sorted by x.
    """
    n_chunks = min(n_x, chunks)
    for c in prange(n_chunks):
        n_acc = np.zeros(n_x, np.int64)
        s_ab = np.zeros(n_x)
        s_aa = np.zeros(n_x)
        s_bb = np.zeros(n_x)
        s_a = np.zeros(n_x)
        s_b = np.zeros(n_x)
        s_dd = np.zeros(n_x)
        touched = np.empty(n_x, np.int64)
        for x in range(c, n_x, n_chunks):
            count = _accumulate_row(
                x,
                True,
                x_indptr,
                x_indices,
                x_values,
                y_indptr,
                y_indices,
                y_values,
                kind,
                n_acc,
                s_ab,
                s_aa,
                s_bb,
                s_a,
                s_b,
                s_dd,
                touched,
            )
            for t in range(count):
                x2 = touched[t]
                s = _finalise(
                    kind,
                    n_acc[x2],
                    s_ab[x2],
                    s_aa[x2],
                    s_bb[x2],
                    s_a[x2],
                    s_b[x2],
                    s_dd[x2],
                    min_support,
                    shrinkage,
                )
                out[x, x2] = s
                out[x2, x] = s
                n_acc[x2] = 0
                s_ab[x2] = 0.0
                s_aa[x2] = 0.0
                s_bb[x2] = 0.0
                s_a[x2] = 0.0
                s_b[x2] = 0.0
                s_dd[x2] = 0.0
            out[x, x] = 1.0


@njit(cache=True, parallel=True)
def topk_similarity(
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
):  # type: ignore[no-untyped-def]
    """Keep, for each of ``rows``, its ``k`` most similar other rows with similarity > min_sim.

    ``out_idx[r]`` (int32, -1 padded) and ``out_sim[r]`` are sorted by decreasing similarity,
    ties broken by lower index. The k best are kept in a bounded insertion list, so a row
    costs O(touched + insertions * k) rather than a sort of everything it touched.
    Memory: O(n_x) per thread plus the (len(rows), k) outputs.
    """
    n_rows = rows.shape[0]
    n_chunks = min(n_rows, chunks)
    for c in prange(n_chunks):
        n_acc = np.zeros(n_x, np.int64)
        s_ab = np.zeros(n_x)
        s_aa = np.zeros(n_x)
        s_bb = np.zeros(n_x)
        s_a = np.zeros(n_x)
        s_b = np.zeros(n_x)
        s_dd = np.zeros(n_x)
        touched = np.empty(n_x, np.int64)
        top_idx = np.empty(k, np.int64)
        top_sim = np.empty(k)
        for r in range(c, n_rows, n_chunks):
            x = rows[r]
            count = _accumulate_row(
                x,
                False,
                x_indptr,
                x_indices,
                x_values,
                y_indptr,
                y_indices,
                y_values,
                kind,
                n_acc,
                s_ab,
                s_aa,
                s_bb,
                s_a,
                s_b,
                s_dd,
                touched,
            )
            m = 0
            for t in range(count):
                x2 = touched[t]
                s = _finalise(
                    kind,
                    n_acc[x2],
                    s_ab[x2],
                    s_aa[x2],
                    s_bb[x2],
                    s_a[x2],
                    s_b[x2],
                    s_dd[x2],
                    min_support,
                    shrinkage,
                )
                n_acc[x2] = 0
                s_ab[x2] = 0.0
                s_aa[x2] = 0.0
                s_bb[x2] = 0.0
                s_a[x2] = 0.0
                s_b[x2] = 0.0
                s_dd[x2] = 0.0
                if s <= min_sim:
                    continue
                if m == k and (s < top_sim[k - 1] or (s == top_sim[k - 1] and x2 > top_idx[k - 1])):
                    continue
                pos = m if m < k else k - 1
                while pos > 0 and (
                    top_sim[pos - 1] < s or (top_sim[pos - 1] == s and top_idx[pos - 1] > x2)
                ):
                    top_sim[pos] = top_sim[pos - 1]
                    top_idx[pos] = top_idx[pos - 1]
                    pos -= 1
                top_sim[pos] = s
                top_idx[pos] = x2
                if m < k:
                    m += 1
            for j in range(m):
                out_idx[r, j] = top_idx[j]
                out_sim[r, j] = top_sim[j]
            for j in range(m, k):
                out_idx[r, j] = -1
                out_sim[r, j] = 0.0


@njit(cache=True, parallel=True)
def predict_pairs(
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
):  # type: ignore[no-untyped-def]
    """Neighbourhood estimates for pairs (px[p], py[p]) at several neighbour counts at once.

    For pair p the candidates are the entries of row ``py[p]`` of the y-major matrix (in input
    order); their similarity to ``px[p]`` comes from ``dense_sim`` or from the top-k lists.
    Only candidates with similarity > 0 are used. The ``max(ks)`` most similar are kept in a
    bounded insertion list where a newcomer goes after equal similarities, so the selection
    and its order equal a stable ``heapq.nlargest`` over the candidates in input order.
    For each k in ``ks`` (ascending)::

        est = offset[p] + sum(sim * dev) / sum(sim) * scale[p]   over the first k kept

    ``out_k[p, j]`` is the number of neighbours used; when it is below ``min_k`` (or zero),
    ``out_est[p, j]`` is NaN and the caller applies the fallback.
    """
    n_pairs = px.shape[0]
    n_ks = ks.shape[0]
    k_max = ks[n_ks - 1]
    n_chunks = min(n_pairs, chunks)
    for c in prange(n_chunks):
        lookup = np.zeros(n_x if not use_dense else 1)
        top_sim = np.empty(k_max)
        top_dev = np.empty(k_max)
        for p in range(c, n_pairs, n_chunks):
            x = px[p]
            y = py[p]
            if x < 0 or y < 0:
                for j in range(n_ks):
                    out_est[p, j] = np.nan
                    out_k[p, j] = 0
                continue
            if not use_dense:
                for j in range(nbr_idx.shape[1]):
                    nb = nbr_idx[x, j]
                    if nb < 0:
                        break
                    lookup[nb] = nbr_sim[x, j]
            m = 0
            for e in range(y_indptr[y], y_indptr[y + 1]):
                x2 = y_indices[e]
                if use_dense:
                    s = dense_sim[x, x2]
                elif x2 == x:
                    s = 1.0  # self-similarity, as on the diagonal of the dense matrix
                else:
                    s = lookup[x2]
                if s <= 0.0 or (m == k_max and s <= top_sim[m - 1]):
                    continue
                pos = m if m < k_max else k_max - 1
                while pos > 0 and top_sim[pos - 1] < s:
                    top_sim[pos] = top_sim[pos - 1]
                    top_dev[pos] = top_dev[pos - 1]
                    pos -= 1
                top_sim[pos] = s
                top_dev[pos] = y_dev[e]
                if m < k_max:
                    m += 1
            if not use_dense:
                for j in range(nbr_idx.shape[1]):
                    nb = nbr_idx[x, j]
                    if nb < 0:
                        break
                    lookup[nb] = 0.0
            sum_sim = 0.0
            sum_dev = 0.0
            j = 0
            for t in range(m + 1):
                # emit the estimates of every k reached before adding neighbour t
                while j < n_ks and (ks[j] == t or t == m):
                    if t >= min_k and t > 0:
                        out_est[p, j] = offset[p] + sum_dev / sum_sim * scale[p]
                    else:
                        out_est[p, j] = np.nan
                    out_k[p, j] = t
                    j += 1
                if t == m:
                    break
                sum_sim += top_sim[t]
                sum_dev += top_sim[t] * top_dev[t]


def n_chunks(per_thread: int = 4) -> int:
    """Work chunks for a parallel kernel: a few per thread (each chunk allocates O(n) buffers).

    Computed outside the kernels: calling numba.get_num_threads() inside a jitted function
    would make it uncacheable.
    """
    return max(1, per_thread * numba.get_num_threads())


def set_threads(n: int | None) -> None:
    """Cap numba's worker threads (``None`` keeps the default, one per core)."""
    if n is not None:
        numba.set_num_threads(max(1, min(int(n), numba.config.NUMBA_NUM_THREADS)))  # type: ignore[attr-defined]
