"""Batch top-N of a saved model on the executors, through :func:`llmcf.ranking.path.rank`.

pyspark is imported only inside the functions. :func:`_rank_blocks` runs on the executors
(shipped by reference from a pickled lambda): it stays a module-level function here.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from llmcf.backends.spark.session import PathLike, get_spark

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

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
