"""Spark backend: the same :class:`~llmcf.backends.artifact.NeighborArtifact` as the local
backend, computed with Spark SQL on a cluster or in ``local[n]`` mode; batch top-N written to
Parquet by the executors.

Needs the optional extra ``llmcf[spark]`` (pyspark; Java 17). pyspark is imported only inside
these functions, so ``import llmcf`` never needs it.

How the work is partitioned (x = the entities compared, y = the other side; item-item: x =
items, y = users)::

    E(y, x, v)                       entries, v = rating (adjusted_cosine: r - mean_y)
    E  --hash-partition by y-->      P partitions; every y's whole column is in one task
    E |><| E on y, x < x'            per y the deg(y)(deg(y)-1)/2 co-rating pairs, generated
                                     in the task that holds y (no shuffle of the pairs yet)
    partial sums per (x, x')         map-side hash aggregation inside each task
    --hash-partition by (x, x')-->   final sums n, sum ab, sum a^2, sum b^2 (sum a, sum b for
                                     pearson; sum (a - b)^2 for msd) -> similarity (the exact
                                     formulas of llmcf.cf._kernels._finalise) -> keep sim > 0
    both directions, top-K per x     window partitioned by x, ordered by (sim desc, x' asc)
                                     (Spark's window group limit keeps only K rows per x
                                     before the shuffle)

Work is ``sum_y deg(y)^2 / 2`` pair rows (the same sum that drives the local kernel), shuffle
volume is the number of distinct (partition, pair) partial sums. A very heavy y (a user with
100k items) puts deg(y)^2 / 2 pairs in one task: split such columns with sampling (DIMSUM,
see docs/scaling.md) or cap their degree before building. Vocabularies are collected to the
driver (sorted distinct ids), and so is the (n_x, K) artifact.

Floating point: with integer (or half-integer) ratings all sums are exact in float64, so the
similarities are bit-identical to the local kernel whatever order Spark adds them in; with
other values (adjusted_cosine's centred ratings) they differ in the last bits (< 1e-12).

Layout: :mod:`~llmcf.backends.spark.session` (sessions), :mod:`~llmcf.backends.spark.io`
(reading, indexing), :mod:`~llmcf.backends.spark.similarity` (pair sums, similarities, top-K,
fusion, :func:`build_neighbors`), :mod:`~llmcf.backends.spark.recommend` (batch top-N).
"""

from __future__ import annotations

from llmcf.backends.spark.io import BROADCAST_MAX, index_interactions, read_interactions
from llmcf.backends.spark.recommend import recommend_all
from llmcf.backends.spark.session import DEFAULT_CONF, PathLike, get_spark
from llmcf.backends.spark.similarity import (
    build_neighbors,
    build_neighbors_many,
    fuse_pairs,
    neighbor_pairs,
    pair_sums,
    top_k,
)

__all__ = [
    "BROADCAST_MAX",
    "DEFAULT_CONF",
    "PathLike",
    "build_neighbors",
    "build_neighbors_many",
    "fuse_pairs",
    "get_spark",
    "index_interactions",
    "neighbor_pairs",
    "pair_sums",
    "read_interactions",
    "recommend_all",
    "top_k",
]
