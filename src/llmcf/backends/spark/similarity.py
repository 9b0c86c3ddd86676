"""Pair sums, similarities, top-K and text fusion with Spark SQL; :func:`build_neighbors`
(the plan is in the :mod:`llmcf.backends.spark` docstring).

pyspark is imported only inside the functions.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from llmcf.backends.artifact import Kind, NeighborArtifact, check_params
from llmcf.backends.spark.io import index_interactions, read_interactions
from llmcf.backends.spark.session import PathLike, get_spark
from llmcf.data.dataset import Dataset
from llmcf.errors import ConfigError, DataError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

_SUM_PREFIX = {"adjusted_cosine": "c"}  # adjusted_cosine sums centred values c, others raw v


def _sums_needed(similarities: list[str]) -> list[str]:
    needed: list[str] = []
    for name in similarities:
        p = _SUM_PREFIX.get(name, "s")
        if name == "msd":
            wanted = ["sdd"]
        else:
            wanted = [f"{p}ab", f"{p}aa", f"{p}bb"] + (["sa", "sb"] if name == "pearson" else [])
        needed += [w for w in wanted if w not in needed]
    return needed


def _pair_similarity(similarity: str, support: int, shrinkage: float) -> Any:
    """Spark column with the similarity of each (x, x') row of summed co-ratings.

    Mirrors :func:`llmcf.cf._kernels._finalise` operation by operation (same rounding).
    """
    from pyspark.sql import functions as F

    p = _SUM_PREFIX.get(similarity, "s")
    n = F.col("n").cast("double")
    if similarity == "msd":
        sim = F.lit(1.0) / (F.col("sdd") / n + F.lit(1.0))
    elif similarity == "pearson":
        num = n * F.col("sab") - F.col("sa") * F.col("sb")
        den = F.sqrt(
            (n * F.col("saa") - F.col("sa") * F.col("sa"))
            * (n * F.col("sbb") - F.col("sb") * F.col("sb"))
        )
        sim = F.when(den == 0.0, F.lit(0.0)).otherwise(num / den)
    else:
        den = F.sqrt(F.col(f"{p}aa") * F.col(f"{p}bb"))
        sim = F.when(den == 0.0, F.lit(0.0)).otherwise(F.col(f"{p}ab") / den)
    if shrinkage > 0.0:
        sim = sim * ((n - F.lit(1.0)) / (n - F.lit(1.0) + F.lit(float(shrinkage))))
    return F.when((F.col("n") < support) | (F.col("n") == 0), F.lit(0.0)).otherwise(sim)


def pair_sums(entries: DataFrame, sums: list[str], *, partitions: int | None = None) -> DataFrame:
    """``(x1, x2, n, <sums>)`` over co-rated y for every pair x1 < x2, from entries ``(x, y, v[, c])``.

    Sum names: ``sab`` = sum a b, ``saa``, ``sbb``, ``sa``, ``sb`` over raw values v; ``cab``,
    ``caa``, ``cbb`` over centred values c; ``sdd`` = sum (a - b)^2.
    """
    from pyspark.sql import functions as F

    by_y = entries.repartition(partitions, "y") if partitions else entries.repartition("y")
    centred = any(name.startswith("c") for name in sums)
    left_cols: list[Any] = ["y", F.col("x").alias("x1"), F.col("v").alias("a")]
    right_cols: list[Any] = ["y", F.col("x").alias("x2"), F.col("v").alias("b")]
    if centred:
        left_cols.append(F.col("c").alias("ca"))
        right_cols.append(F.col("c").alias("cb"))
    joined = (
        by_y.select(*left_cols).join(by_y.select(*right_cols), "y").where(F.col("x1") < F.col("x2"))
    )
    a, b = F.col("a"), F.col("b")
    terms = {
        "sab": a * b,
        "saa": a * a,
        "sbb": b * b,
        "sa": a,
        "sb": b,
        "sdd": (a - b) * (a - b),
    }
    if centred:
        ca, cb = F.col("ca"), F.col("cb")
        terms.update({"cab": ca * cb, "caa": ca * ca, "cbb": cb * cb})
    aggs = [F.count(F.lit(1)).alias("n")] + [F.sum(terms[name]).alias(name) for name in sums]
    return joined.groupBy("x1", "x2").agg(*aggs)


def neighbor_pairs(
    sums: DataFrame, similarity: str, *, support: int, shrinkage: float
) -> DataFrame:
    """``(x, nbr, sim)`` for every ordered pair with sim > 0, from :func:`pair_sums` rows."""
    from pyspark.sql import functions as F

    sims = sums.select("x1", "x2", _pair_similarity(similarity, support, shrinkage).alias("sim"))
    # Spark orders NaN above every number, so NaN (sqrt of a rounding-negative variance) is
    # dropped explicitly, as the kernel's `s > 0` drops it
    positive = sims.where((F.col("sim") > 0.0) & ~F.isnan("sim"))
    both = F.explode(
        F.array(
            F.struct(F.col("x1").alias("x"), F.col("x2").alias("nbr")),
            F.struct(F.col("x2").alias("x"), F.col("x1").alias("nbr")),
        )
    ).alias("p")
    return positive.select(both, "sim").select("p.x", "p.nbr", "sim")


def top_k(pairs: DataFrame, k: int) -> DataFrame:
    """``(x, rank, nbr, sim)``: the k best per x by (sim desc, nbr asc), rank 0-based."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    window = Window.partitionBy("x").orderBy(F.col("sim").desc(), F.col("nbr").asc())
    return (
        pairs.withColumn("rank", F.row_number().over(window) - 1)
        .where(F.col("rank") < k)
        .select("x", "rank", "nbr", "sim")
    )


def _collect_lists(frame: DataFrame, n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    table: Any = frame.toPandas()
    idx = np.full((n, k), -1, dtype=np.int32)
    sim = np.zeros((n, k), dtype=np.float64)
    x = table["x"].to_numpy(np.int64)
    r = table["rank"].to_numpy(np.int64)
    idx[x, r] = table["nbr"].to_numpy(np.int64)
    sim[x, r] = table["sim"].to_numpy(np.float64)
    return idx, sim


def _text_pairs(
    spark: SparkSession, source: PathLike | Any, item_map: DataFrame
) -> tuple[DataFrame, int]:
    """Text neighbour rows ``(x, nbr, cos)`` mapped to item indices; rows with unknown items
    are dropped and counted."""
    import pandas as pd
    from pyspark.sql import functions as F

    if isinstance(source, pd.DataFrame):
        raw, label = spark.createDataFrame(source), "<DataFrame>"
    else:
        label = str(source)
        if not Path(source).exists():
            raise DataError("text neighbour file not found", path=label)
        raw = (
            spark.read.parquet(label)
            if label.endswith(".parquet")
            else spark.read.option("header", "true").csv(label)
        )
    for col in ("item_id", "neighbor_id", "similarity"):
        if col not in raw.columns:
            raise DataError(
                f"missing column {col!r} in text neighbours; available: {raw.columns}", path=label
            )
    id_type = item_map.schema["item_id"].dataType.simpleString()
    cos = F.expr("try_cast(similarity AS DOUBLE)")
    bad = raw.where(cos.isNull() | F.isnan(cos)).limit(1).collect()
    if bad:
        raise DataError(
            "similarity is not a finite number",
            path=label,
            column="similarity",
            value=bad[0]["similarity"],
        )
    typed = raw.select(
        F.col("item_id").cast(id_type).alias("item_id"),
        F.col("neighbor_id").cast(id_type).alias("neighbor_id"),
        cos.alias("cos"),
    )
    total = typed.count()
    mapped = typed.join(item_map.withColumnRenamed("idx", "x"), "item_id").join(
        item_map.withColumnRenamed("item_id", "neighbor_id").withColumnRenamed("idx", "nbr"),
        "neighbor_id",
    )
    dup = mapped.groupBy("x", "nbr").count().where(F.col("count") > 1).limit(1).collect()
    if dup:
        raise DataError("repeated (item, neighbour) pair in text neighbours", path=label)
    out = mapped.select("x", "nbr", "cos")
    return out, total - out.count()


def fuse_pairs(
    cf: DataFrame, text: DataFrame, alpha: float, shift: float, power: float
) -> DataFrame:
    """``(x, nbr, sim)`` fused as :func:`llmcf.backends.artifact.fuse_neighbors` (same order of
    operations, so the same doubles)."""
    from pyspark.sql import functions as F

    both = cf.select("x", "nbr", F.col("sim").alias("cf")).join(
        text.select("x", "nbr", "cos"), ["x", "nbr"], "full_outer"
    )
    both = both.where(F.col("x") != F.col("nbr"))
    t = F.greatest(
        (F.coalesce(F.col("cos"), F.lit(0.0)) - F.lit(shift)) / F.lit(1.0 - shift), F.lit(0.0)
    )
    if power != 1.0:
        t = F.pow(t, F.lit(power))
    fused = F.lit(alpha) * F.coalesce(F.col("cf"), F.lit(0.0)) + F.lit(1.0 - alpha) * t
    out = both.select("x", "nbr", fused.alias("sim"))
    return out.where((F.col("sim") > 0.0) & ~F.isnan("sim"))


def build_neighbors(
    source: PathLike | Dataset,
    kind: Kind = "item",
    similarity: str = "cosine",
    **options: Any,
) -> NeighborArtifact:
    """Build the neighbour artifact with Spark: the same result as the local backend's
    :func:`llmcf.backends.local.build_neighbors` (plan in the :mod:`llmcf.backends.spark` docstring). Options as
    :func:`build_neighbors_many`."""
    return build_neighbors_many(source, kind, [similarity], **options)[similarity]


def build_neighbors_many(
    source: PathLike | Dataset,
    kind: Kind = "item",
    similarities: list[str] | tuple[str, ...] = ("cosine",),
    *,
    n_neighbors: int = 50,
    shrinkage: float | None = None,
    min_support: int = 1,
    spark: SparkSession | None = None,
    master: str | None = None,
    partitions: int | None = None,
    text_neighbors: PathLike | Any | None = None,
    alpha: float = 0.5,
    shift: float = 0.0,
    power: float = 1.0,
    columns: dict[str, str] | None = None,
) -> dict[str, NeighborArtifact]:
    """One artifact per similarity from a single self-join and aggregation (the sums every
    requested measure needs are computed together, then each is finalised and ranked).

    ``partitions``: shuffle partitions of the self-join (default
    ``spark.sql.shuffle.partitions``). ``text_neighbors``/``alpha``/``shift``/``power``: fuse
    each CF list with text neighbours (item kind), as the local backend.
    """
    from pyspark.sql import functions as F

    names = list(dict.fromkeys(similarities))
    if not names:
        raise ConfigError("no similarity requested")
    for name in names:
        check_params(kind, name, n_neighbors, min_support, shrinkage, alpha)
    if text_neighbors is not None and kind != "item":
        raise ConfigError("text neighbours fuse item-item similarities; use kind='item'")
    if not 0.0 <= shift < 1.0:
        raise ConfigError(f"shift must be in [0, 1), got {shift}")
    if not power > 0.0:
        raise ConfigError(f"power must be > 0, got {power}")
    t0 = time.perf_counter()
    spark = spark or get_spark(master)
    raw = read_interactions(spark, source, columns=columns)
    users, items, indexed, _, item_map = index_interactions(spark, raw)
    indexed = indexed.persist()  # read once; the count below materialises it
    n_interactions = indexed.count()
    x_col, y_col = ("i", "u") if kind == "item" else ("u", "i")
    entries = indexed.select(
        F.col(x_col).alias("x"), F.col(y_col).alias("y"), F.col("r").alias("v")
    )
    sums_needed = _sums_needed(names)
    if any(s.startswith("c") for s in sums_needed):
        means = entries.groupBy("y").agg(
            (F.sum("v") / F.count(F.lit(1)).cast("double")).alias("mean_y")
        )
        entries = entries.join(means, "y").select(
            "x", "y", "v", (F.col("v") - F.col("mean_y")).alias("c")
        )
    support = max(int(min_support), 1)
    shrink = 0.0 if shrinkage is None else float(shrinkage)
    sums = pair_sums(entries, sums_needed, partitions=partitions)
    if len(names) > 1:
        sums = sums.persist()
    n_x = len(items) if kind == "item" else len(users)
    text = None
    dropped = 0
    if text_neighbors is not None:
        text, dropped = _text_pairs(spark, text_neighbors, item_map)
    out: dict[str, NeighborArtifact] = {}
    for name in names:
        t1 = time.perf_counter()
        best = top_k(neighbor_pairs(sums, name, support=support, shrinkage=shrink), n_neighbors)
        params: dict[str, Any] = {
            "n_neighbors": n_neighbors,
            "shrinkage": shrink,
            "min_support": support,
        }
        info: dict[str, Any] = {
            "backend": "spark",
            "master": spark.sparkContext.master,
            "source": str(source) if not isinstance(source, Dataset) else source.name,
            "n_interactions": n_interactions,
        }
        if text is not None:
            fused = fuse_pairs(best.select("x", "nbr", "sim"), text, alpha, shift, power)
            best = top_k(fused, n_neighbors)
            params.update({"fusion": "fixed", "alpha": alpha, "shift": shift, "power": power})
            info["text_rows_dropped"] = dropped
        nbr_idx, nbr_sim = _collect_lists(best, n_x, n_neighbors)
        info["seconds"] = time.perf_counter() - (t0 if not out else t1)
        out[name] = NeighborArtifact(kind, name, params, users, items, nbr_idx, nbr_sim, info)
    if len(names) > 1:
        sums.unpersist()
    indexed.unpersist()
    return out
