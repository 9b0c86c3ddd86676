"""Spark backend (local[2], one session): the same artifact and top-N as the local backend.

The tiny table covers every code path (all similarities, both kinds, shrinkage and minimum
support, text fusion, fill and fallback recommendations, CSV with text ids, bad input);
ml-100k checks parity at real size (skipped without the data).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from llmcf.backends import local
from llmcf.errors import ConfigError, DataError, ModelLoadError

SIMILARITIES = ["cosine", "adjusted_cosine", "pearson", "msd"]

# pyspark 4.x warns on every pandas conversion that it does not fully support pandas 3
pytestmark = [
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore:The copy keyword is deprecated"),
]


def assert_same_recommendations(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """Same rows; scores within 1e-9 (Spark sums in another order); positions whose scores
    tie within 1e-9 may hold the tied items in either order."""
    a = a.sort_values(["user_id", "rank"]).reset_index(drop=True)
    b = b.sort_values(["user_id", "rank"]).reset_index(drop=True)
    assert len(a) == len(b)
    assert (a.user_id.to_numpy() == b.user_id.to_numpy()).all()
    assert (a["rank"].to_numpy() == b["rank"].to_numpy()).all()
    np.testing.assert_allclose(a.score.to_numpy(), b.score.to_numpy(), rtol=0, atol=1e-9)
    assert (a.from_cf.to_numpy() == b.from_cf.to_numpy()).all()
    assert (a.was_fallback.to_numpy() == b.was_fallback.to_numpy()).all()
    differs = a.item_id.to_numpy() != b.item_id.to_numpy()
    for row in np.flatnonzero(differs):
        same_user = (a.user_id == a.user_id[row]).to_numpy()
        near = same_user & (np.abs(a.score.to_numpy() - a.score[row]) <= 1e-9)
        if a["rank"][near].max() == a["rank"][same_user].max():
            continue  # the tie runs past the cut at n: either backend may keep any of its items
        assert set(a.item_id[near]) == set(b.item_id[near]), (a.user_id[row], a["rank"][row])


@pytest.mark.parametrize("kind", ["item", "user"])
def test_tiny_all_similarities_equal_local(spark, tiny_csv: Path, kind: str) -> None:  # type: ignore[no-untyped-def]
    from llmcf.backends import spark as spark_backend

    got = spark_backend.build_neighbors_many(
        tiny_csv, kind, SIMILARITIES, n_neighbors=3, spark=spark, partitions=2
    )
    for name in SIMILARITIES:
        want = local.build_neighbors(tiny_csv, kind, name, n_neighbors=3)
        diff = want.compare(got[name])
        assert diff.equal and diff.rows_exact == len(want.entities), (name, diff)
        assert got[name].params == want.params and got[name].info["backend"] == "spark"


def test_tiny_support_shrinkage_and_fusion_equal_local(spark, tiny_parquet: Path) -> None:  # type: ignore[no-untyped-def]
    from llmcf.backends import spark as spark_backend

    text = pd.DataFrame(
        {
            "item_id": ["i1", "i1", "i5", "i2", "unknown"],
            "neighbor_id": ["i5", "i3", "i1", "i1", "i1"],
            "similarity": [0.9, 0.2, 0.9, 0.4, 0.5],
        }
    )
    options = {"n_neighbors": 2, "min_support": 2, "shrinkage": 1.5, "alpha": 0.7, "shift": 0.1}
    want = local.build_neighbors(
        tiny_parquet, "item", "pearson", text_neighbors=text, power=2.0, **options
    )
    got = spark_backend.build_neighbors(
        tiny_parquet, "item", "pearson", text_neighbors=text, power=2.0, spark=spark, **options
    )
    assert want.compare(got).equal and got.info["text_rows_dropped"] == 1
    assert got.params == want.params


@pytest.mark.parametrize("name", ["item-knn", "user-knn"])
def test_tiny_recommendations_equal_the_model(
    spark, tmp_path: Path, tiny_csv: Path, name: str
) -> None:  # type: ignore[no-untyped-def]
    from llmcf.backends import spark as spark_backend
    from llmcf.data.loaders import load_table
    from llmcf.models import make_model
    from llmcf.persist import save_model

    model = make_model(name, k=2).fit(load_table(tiny_csv))
    folder = save_model(model, tmp_path / "model")
    want = local.recommend_all(model, 3)
    assert (want.source == "popular").any() and want.was_fallback.any()  # padding, fallback
    out = spark_backend.recommend_all(folder, tmp_path / "recs", 3, spark=spark, block_size=2)
    got = local.read_recommendations(out)
    want = want.assign(user_id=want.user_id.astype(str), item_id=want.item_id.astype(str))
    want = want.sort_values(["user_id", "rank"], kind="stable").reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want, check_dtype=False)


def test_numeric_text_ids_and_errors(spark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from llmcf.backends import spark as spark_backend

    # ids typed as load_table types them: CSV ids are text, integer Parquet columns numbers
    ok = tmp_path / "ids.csv"
    ok.write_text("userId,movieId,rating\n10,7,4\n2,7,5\n2,30,3\n10,30,1\n3,7,2\n")
    got = spark_backend.build_neighbors(ok, "item", "cosine", n_neighbors=2, spark=spark)
    want = local.build_neighbors(ok, "item", "cosine", n_neighbors=2)
    assert want.compare(got).equal
    assert got.items.ids.tolist() == ["30", "7"] and got.users.ids.tolist() == ["10", "2", "3"]
    numeric = tmp_path / "ids.parquet"
    pd.read_csv(ok).assign(movieId=lambda f: f.movieId.astype(float)).to_parquet(numeric)
    got = spark_backend.build_neighbors(numeric, "item", "cosine", n_neighbors=2, spark=spark)
    assert local.build_neighbors(numeric, "item", "cosine", n_neighbors=2).compare(got).equal
    assert got.items.ids.tolist() == [7, 30] and got.users.ids.tolist() == [2, 3, 10]

    bad = tmp_path / "bad.csv"
    bad.write_text("user_id,item_id,rating\na,x,4\nb,y,lots\n")
    with pytest.raises(
        DataError,
        match=r"bad.csv, column 'rating': rating is not a finite number \(value: 'lots'\)",
    ):
        spark_backend.build_neighbors(bad, "item", "cosine", spark=spark)
    dup = tmp_path / "dup.csv"
    dup.write_text("user_id,item_id,rating\na,x,4\na,x,5\n")
    with pytest.raises(DataError, match=r"duplicate \(user, item\) pair.*\('a', 'x'\)"):
        spark_backend.build_neighbors(dup, "item", "cosine", spark=spark)
    nocol = tmp_path / "nocol.csv"
    nocol.write_text("customer,thing\na,x\n")
    with pytest.raises(DataError, match="no item column"):
        spark_backend.build_neighbors(nocol, "item", "cosine", spark=spark)
    empty_id = tmp_path / "empty.csv"
    empty_id.write_text("user_id,item_id\na,x\n ,y\n")
    with pytest.raises(DataError, match="empty user id"):
        spark_backend.build_neighbors(empty_id, "item", "cosine", spark=spark)
    null_id = tmp_path / "null.parquet"
    pd.DataFrame({"user_id": [1.0, None], "item_id": [1, 2]}).to_parquet(null_id)
    with pytest.raises(DataError, match=r"null\.parquet, column 'user_id': empty user id"):
        spark_backend.build_neighbors(null_id, "item", "cosine", spark=spark)
    with pytest.raises(DataError, match="neither a known data set name nor an existing path"):
        spark_backend.build_neighbors(tmp_path / "nope.parquet", "item", "cosine", spark=spark)
    with pytest.raises(ConfigError, match="pearson_baseline"):
        spark_backend.build_neighbors(ok, "item", "pearson_baseline", spark=spark)
    with pytest.raises(ConfigError, match="no similarity"):
        spark_backend.build_neighbors_many(ok, "item", [], spark=spark)
    with pytest.raises(ModelLoadError, match="no manifest"):
        spark_backend.recommend_all(tmp_path / "nothing", tmp_path / "r", spark=spark)


def test_cli_fit_backend_spark(spark, tmp_path: Path, tiny_csv: Path) -> None:  # type: ignore[no-untyped-def]
    from llmcf.cli import main
    from llmcf.models import load_model

    out, recs = tmp_path / "model", tmp_path / "recs"
    code = main([
        "fit", "--backend", "spark", "--spark-master", "local[2]", "--data", str(tiny_csv),
        "--model", "item-knn", "--similarity", "adjusted_cosine", "--k", "3",
        "--out", str(out), "--recommend", "2", "--recs-out", str(recs), "--quiet",
    ])  # fmt: skip
    assert code == 0
    model = load_model(out)  # one artifact format: the model folder, servable
    got = local.read_recommendations(recs)
    assert got["rank"].max() == 2
    for u, uid in enumerate(model.users_.ids):
        rows = got[got.user_id == str(uid)].item_id.tolist()
        assert rows == [str(i) for i in model.recommend(u, 2).item_ids]
    assert (
        main(
            [
                "fit",
                "--backend",
                "spark",
                "--data",
                str(tiny_csv),
                "--out",
                str(out),
                "--spark-conf",
                "novalue",
            ]
        )
        == 2
    )


@pytest.mark.realdata
def test_ml100k_parity(spark, tmp_path: Path, ml100k_parquet: Path) -> None:  # type: ignore[no-untyped-def]
    """ml-100k: item-item cosine, pearson and adjusted cosine in one Spark pass, equal to the
    local artifact (same neighbours, similarities within 1e-9), and the same top-10 lists."""
    from llmcf.backends import spark as spark_backend

    names = ["cosine", "pearson", "adjusted_cosine"]
    got = spark_backend.build_neighbors_many(
        ml100k_parquet, "item", names, n_neighbors=50, spark=spark, partitions=4
    )
    for name in names:
        want = local.build_neighbors(ml100k_parquet, "item", name, n_neighbors=50)
        diff = want.compare(got[name], atol=1e-9)
        assert diff.equal, (name, diff)
        assert diff.rows_exact == len(want.items), (name, diff)  # not even a tie reorder
    from llmcf.data.loaders import load_table
    from llmcf.models import make_model
    from llmcf.persist import save_model

    model = make_model("item-knn").fit(load_table(ml100k_parquet))
    folder = save_model(model, tmp_path / "model")
    want = local.recommend_all(model, 50)
    want = want.assign(user_id=want.user_id.astype(str), item_id=want.item_id.astype(str))
    want = want.sort_values(["user_id", "rank"], kind="stable").reset_index(drop=True)
    out = spark_backend.recommend_all(folder, tmp_path / "recs", 50, spark=spark)
    pd.testing.assert_frame_equal(local.read_recommendations(out), want, check_dtype=False)
