"""Fixtures of the backend tests: a tiny hand-made ratings table and one shared SparkSession."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

# (user, item, rating) in a deliberately unsorted order; string ids; non-integer ratings so
# that sums are not all exact; "zed" rates only "i5", which nobody else rates (no neighbours:
# a fallback user); "erin" rates one item; pairs with one co-rating make pearson's
# denominator 0
TINY_ROWS = [
    ("carol", "i3", 5.0),
    ("alice", "i1", 5.0),
    ("bob", "i2", 1.0),
    ("alice", "i2", 3.0),
    ("carol", "i1", 4.0),
    ("bob", "i1", 3.0),
    ("dave", "i3", 1.5),
    ("alice", "i3", 4.0),
    ("bob", "i4", 2.5),
    ("carol", "i4", 4.5),
    ("dave", "i2", 2.0),
    ("erin", "i4", 5.0),
    ("zed", "i5", 4.0),
    ("frank", "i1", 2.0),
    ("frank", "i2", 4.5),
    ("frank", "i4", 1.0),
]


@pytest.fixture(scope="session")
def tiny_frame() -> pd.DataFrame:
    return pd.DataFrame(TINY_ROWS, columns=["user_id", "item_id", "rating"])


@pytest.fixture(scope="session")
def tiny_csv(tmp_path_factory: pytest.TempPathFactory, tiny_frame: pd.DataFrame) -> Path:
    path = tmp_path_factory.mktemp("tiny") / "tiny.csv"
    tiny_frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def tiny_parquet(tmp_path_factory: pytest.TempPathFactory, tiny_frame: pd.DataFrame) -> Path:
    path = tmp_path_factory.mktemp("tiny") / "tiny.parquet"
    tiny_frame.to_parquet(path, index=False)
    return path


@pytest.fixture(scope="session")
def ml100k_parquet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ml-100k u.data as a Parquet table (in a temporary folder, never in the repo)."""
    from llmcf.backends.local import load_interactions
    from llmcf.errors import DataError

    try:
        data = load_interactions("ml-100k")
    except DataError as exc:
        pytest.skip(f"ml-100k not available under $LLMCF_DATA_DIR: {exc}")
    path = tmp_path_factory.mktemp("ml100k") / "ml100k.parquet"
    pd.DataFrame(
        {
            "user_id": data.users.external(data.user_idx),
            "item_id": data.items.external(data.item_idx),
            "rating": data.rating,
        }
    ).to_parquet(path, index=False)
    return path


@pytest.fixture(scope="session")
def spark():  # type: ignore[no-untyped-def]
    """One local[2] SparkSession for the whole test session (skips without pyspark or Java)."""
    pytest.importorskip("pyspark", reason="pyspark not installed (pip install -e '.[spark]')")
    if shutil.which("java") is None:
        pytest.skip("no Java runtime on PATH (Spark needs Java 17)")
    from llmcf.backends.spark import get_spark

    session = get_spark(
        "local[2]",
        app_name="llmcf-tests",
        shuffle_partitions=2,
        driver_memory="1g",
        conf={"spark.sql.adaptive.coalescePartitions.enabled": "true", "spark.ui.enabled": "false"},
    )
    yield session
    session.stop()
