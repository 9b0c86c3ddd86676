"""Spark sessions: :func:`get_spark` and the defaults of a session this package starts.

pyspark is imported only inside the functions, so importing this module never needs it.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from llmcf.errors import LlmcfError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

PathLike = str | os.PathLike[str]

#: Defaults for a session this package starts (a session that already exists is used as is).
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
