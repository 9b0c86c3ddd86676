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
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from llmcf.backends.artifact import (
    Kind,
    NeighborArtifact,
    _guess,
    canonical_vocabulary,
    check_params,
)
from llmcf.data.dataset import Dataset
from llmcf.data.vocab import Vocabulary
from llmcf.errors import ConfigError, DataError, LlmcfError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

PathLike = str | os.PathLike[str]

#: Defaults for a session this module starts (a session that already exists is used as is).
DEFAULT_CONF = {
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.adaptive.enabled": "true",
}


def _require_pyspark() -> None:
    try:
        import pyspark  # noqa: F401
    except ImportError:
        raise LlmcfError(
            "the Spark backend needs pyspark: pip install 'llmcf[spark]' (and Java 17)"
        ) from None


def get_spark(
    master: str | None = None,
    *,
    app_name: str = "llmcf",
    shuffle_partitions: int | None = None,
    driver_memory: str | None = None,
    conf: dict[str, str] | None = None,
) -> SparkSession:
    """The active SparkSession, or a new one.

    ``master``: ``local[2]``, ``spark://host:7077``, ``yarn``, ``k8s://...``; ``None`` keeps
    what spark-submit set (or ``local[*]``). ``driver_memory`` only applies when this call
    starts the JVM (local mode: it is all the memory Spark has).
    """
    _require_pyspark()
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        if shuffle_partitions is not None:
            active.conf.set("spark.sql.shuffle.partitions", str(shuffle_partitions))
        return active
    builder = SparkSession.builder.appName(app_name)
    if master is not None:
        builder = builder.master(master)
    elif "SPARK_MASTER" not in os.environ and not os.environ.get("SPARK_ENV_LOADED"):
        builder = builder.master("local[*]")
    settings = dict(DEFAULT_CONF)
    if shuffle_partitions is not None:
        settings["spark.sql.shuffle.partitions"] = str(shuffle_partitions)
    if driver_memory is not None:
        settings["spark.driver.memory"] = driver_memory
    settings.update(conf or {})
    for key, value in settings.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


# ---------------------------------------------------------------------------- reading


def read_interactions(
    spark: SparkSession,
    source: PathLike | Dataset,
    *,
    columns: dict[str, str] | None = None,
    check_duplicates: bool = True,
) -> DataFrame:
    """``(user_id, item_id, rating double)`` from Parquet/CSV/TSV (a file or a folder of parts).

    Columns are guessed as by :func:`llmcf.data.loaders.load_table` (or given as role ->
    name) and ids typed as it types them: integer (and whole-number float) Parquet columns are
    numbers, everything else, CSV included, is trimmed text. Without a rating column the weight is 1. A named data set (``ml-100k``) or a
    Dataset is loaded on the driver and parallelised (small data only).

    Raises:
        DataError: naming the file, column and value: missing column, empty id, rating that
            is not a finite number, duplicate (user, item) pair.
    """
    from pyspark.sql import functions as F

    if isinstance(source, Dataset) or not _is_table_path(source):
        return _from_local(spark, source, columns)
    path = Path(source)
    label = str(path)
    if not path.exists():
        raise DataError("file not found", path=label)
    name = path.name.lower()
    parts = sorted(path.glob("*")) if path.is_dir() else [path]
    if any(p.name.endswith(".parquet") for p in parts) or name.endswith(".parquet"):
        df = spark.read.parquet(str(path))
    else:
        sep = "\t" if name.endswith((".tsv", ".tsv.gz", ".tab")) else ","
        df = spark.read.option("header", "true").option("sep", sep).csv(str(path))
    mapping = _guess(list(df.columns), columns, label)
    out: dict[str, Any] = {}
    for role in ("user", "item"):
        col = mapping[role]
        field = df.schema[col].dataType.typeName()
        if field in ("long", "integer", "short", "byte", "double", "float"):
            missing = F.col(f"`{col}`").isNull()
            if field in ("double", "float"):
                missing = missing | F.isnan(F.col(f"`{col}`"))
            if df.where(missing).limit(1).count():
                raise DataError(f"empty {role} id", path=label, column=col)
        if field in ("long", "integer", "short", "byte"):
            out[role] = F.col(f"`{col}`").cast("long")
            continue
        if field in ("double", "float"):
            # whole-number floats are numbers, as load_table reads them
            fractional = df.where(F.col(f"`{col}`") != F.floor(F.col(f"`{col}`"))).limit(1).count()
            if not fractional:
                out[role] = F.col(f"`{col}`").cast("long")
                continue
        # text (every CSV column, as load_table reads CSV ids): trimmed
        text = F.trim(F.col(f"`{col}`").cast("string"))
        empty = df.where(text.isNull() | (text == "")).limit(1).count()
        if empty:
            raise DataError(f"empty {role} id", path=label, column=col)
        out[role] = text
    if "rating" in mapping:
        col = mapping["rating"]
        rating = F.expr(f"try_cast(`{col}` AS DOUBLE)")
        bad = (
            df.where(rating.isNull() | F.isnan(rating) | (F.abs(rating) == float("inf")))
            .select(F.col(f"`{col}`").cast("string").alias("v"))
            .limit(1)
            .collect()
        )
        if bad:
            raise DataError(
                "rating is not a finite number", path=label, column=col, value=bad[0]["v"]
            )
    else:
        rating = F.lit(1.0)
    result = df.select(
        out["user"].alias("user_id"), out["item"].alias("item_id"), rating.alias("rating")
    )
    if check_duplicates:
        dup = (
            result.groupBy("user_id", "item_id")
            .count()
            .where(F.col("count") > 1)
            .limit(1)
            .collect()
        )
        if dup:
            raise DataError(
                "duplicate (user, item) pair; deduplicate the table first",
                path=label,
                value=(dup[0]["user_id"], dup[0]["item_id"]),
            )
    return result


def _is_table_path(source: PathLike) -> bool:
    path = Path(source)
    if path.is_dir():
        return any(p.suffix in (".parquet", ".csv", ".tsv") for p in path.iterdir())
    return path.is_file() and path.name.lower().endswith(
        (".parquet", ".csv", ".tsv", ".csv.gz", ".tsv.gz")
    )


def _from_local(
    spark: SparkSession, source: PathLike | Dataset, columns: dict[str, str] | None
) -> DataFrame:
    import pandas as pd

    from llmcf.backends.local import load_interactions

    data = load_interactions(source, columns=columns)
    frame = pd.DataFrame(
        {
            "user_id": data.users.external(data.user_idx),
            "item_id": data.items.external(data.item_idx),
            "rating": data.rating,
        }
    )
    return spark.createDataFrame(frame)


def _vocabulary(
    spark: SparkSession, df: DataFrame, column: str, name: str
) -> tuple[Vocabulary, DataFrame]:
    """Sorted distinct ids (collected) and a DataFrame ``(column, idx)`` to join on."""
    import pandas as pd

    table: Any = df.select(column).distinct().toPandas()
    ids = table[column].to_numpy()
    vocab = canonical_vocabulary(ids, name)
    values = vocab.ids.tolist() if vocab.ids.dtype.kind in "US" else vocab.ids
    frame = pd.DataFrame({column: values, "idx": np.arange(len(vocab), dtype=np.int64)})
    return vocab, spark.createDataFrame(frame)


BROADCAST_MAX = 2_000_000  # vocabularies up to this size are broadcast to every task


def _maybe_broadcast(frame: DataFrame, size: int) -> DataFrame:
    from pyspark.sql import functions as F

    return F.broadcast(frame) if size <= BROADCAST_MAX else frame


def index_interactions(
    spark: SparkSession, df: DataFrame
) -> tuple[Vocabulary, Vocabulary, DataFrame, DataFrame, DataFrame]:
    """Canonical vocabularies, ``(u, i, r)`` with int indices, and the id -> idx maps
    ``(user_id, idx)``, ``(item_id, idx)``."""
    from pyspark.sql import functions as F

    users, user_map = _vocabulary(spark, df, "user_id", "user")
    items, item_map = _vocabulary(spark, df, "item_id", "item")
    indexed = (
        df.join(_maybe_broadcast(user_map.withColumnRenamed("idx", "u"), len(users)), "user_id")
        .join(_maybe_broadcast(item_map.withColumnRenamed("idx", "i"), len(items)), "item_id")
        .select("u", "i", F.col("rating").cast("double").alias("r"))
    )
    return users, items, indexed, user_map, item_map


# ---------------------------------------------------------------------------- similarity
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
    :func:`llmcf.backends.local.build_neighbors` (plan in the module docstring). Options as
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


# ---------------------------------------------------------------------------- top-N
_MODELS: dict[str, Any] = {}  # per Python worker: loaded model folders


def _rank_blocks(model_dir: str, n: int, starts: Any, step: int) -> Any:
    """Rows of the lists of the user blocks starting at ``starts`` (runs on the executors)."""
    from llmcf.backends.local import recommendations_frame
    from llmcf.models import load_model
    from llmcf.ranking.path import rank

    model = _MODELS.get(model_dir)
    if model is None:
        model = _MODELS[model_dir] = load_model(model_dir)
    n_users = len(model.users_)
    for start in starts:
        users = np.arange(start, min(start + step, n_users), dtype=np.int64)
        frame = recommendations_frame(model, rank(model, n, users=users), users)
        for row in frame.itertuples(index=False):
            yield (
                str(row.user_id),
                int(row.rank),
                str(row.item_id),
                float(row.score),
                str(row.source),
                bool(row.was_fallback),
            )


def recommend_all(
    model_dir: PathLike,
    out: PathLike,
    n: int = 10,
    *,
    spark: SparkSession | None = None,
    master: str | None = None,
    block_size: int = 256,
) -> Path:
    """Write top-``n`` of every user of the saved model in ``model_dir`` to the Parquet folder
    ``out``, computed on the executors; returns ``out``.

    Each task loads the model folder (it must be readable by the executors: a local path with
    a ``local[*]`` master, shared storage on a cluster) and ranks blocks of ``block_size``
    users through the one ranking path (:func:`llmcf.ranking.path.rank`), so the lists are
    those of ``model.recommend`` and of the service. Columns as
    :func:`llmcf.backends.local.recommendations_frame`; ``user_id`` and ``item_id`` as text.
    """
    from pyspark.sql import types as T

    from llmcf.models import load_model
    from llmcf.ranking.path import check_n

    n = check_n(n)
    folder = str(Path(model_dir).resolve())
    n_users = len(load_model(folder).users_)
    spark = spark or get_spark(master)
    starts = list(range(0, n_users, block_size))
    slices = max(1, min(len(starts), spark.sparkContext.defaultParallelism * 4))
    rdd = spark.sparkContext.parallelize(starts, slices).mapPartitions(
        lambda part: _rank_blocks(folder, n, part, block_size)
    )
    schema = T.StructType(
        [
            T.StructField("user_id", T.StringType(), False),
            T.StructField("rank", T.IntegerType(), False),
            T.StructField("item_id", T.StringType(), False),
            T.StructField("score", T.DoubleType(), False),
            T.StructField("source", T.StringType(), False),
            T.StructField("was_fallback", T.BooleanType(), False),
        ]
    )
    spark.createDataFrame(rdd, schema).write.mode("overwrite").parquet(str(out))
    return Path(out)
