"""Reading interactions into Spark and indexing them with the canonical vocabularies.

pyspark is imported only inside the functions.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from llmcf.backends.artifact import _guess, canonical_vocabulary
from llmcf.backends.spark.session import PathLike
from llmcf.data.dataset import Dataset
from llmcf.data.vocab import Vocabulary
from llmcf.errors import DataError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


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
