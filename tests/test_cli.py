"""The command line, end to end on a hand-made CSV and (when present) on MovieLens 100K."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from tests.conftest import real_data_dir

from llmcf.cli import main
from llmcf.persist import arrays_path


@pytest.fixture
def ratings_csv(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path / "ratings.csv"
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["user", "item", "rating", "timestamp"])
        for u in range(30):
            for i in rng.choice(20, size=8, replace=False):
                writer.writerow(
                    [f"user{u}", f"sku{i}", int(rng.integers(1, 6)), 1_000_000 + u * 100 + i]
                )
    return path


def test_evaluate_writes_table_report_plot(ratings_csv: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    report, plot = tmp_path / "r.json", tmp_path / "p.png"
    rc = main(
        [
            "evaluate",
            "--data",
            str(ratings_csv),
            "--split",
            "kfold:3",
            "--model",
            "user-knn,item-knn,baseline",
            "--similarity",
            "pearson",
            "--prediction",
            "mean",
            "--k",
            "2,5",
            "--report",
            str(report),
            "--plot",
            str(plot),
            "--quiet",
        ]
    )
    assert rc == 0
    out = capsys.readouterr().out
    assert "item-knn" in out and "baseline" in out and "mae" in out
    data = json.loads(report.read_text())
    rows = data["rows"]
    assert len(rows) == 3 * (2 + 2 + 1)  # folds x (two K for each kNN model + baseline)
    for row in rows:
        assert {
            "model",
            "k",
            "fold",
            "mae",
            "rmse",
            "fit_seconds",
            "predict_seconds",
            "n_predictions",
            "n_fallbacks",
        } <= set(row)
    assert any(r["fold"] == "mean" for r in data["summary"])
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_predictions_csv_for_one_fold(ratings_csv: Path, tmp_path: Path) -> None:
    out = tmp_path / "preds.csv"
    rc = main(
        [
            "evaluate",
            "--data",
            str(ratings_csv),
            "--split",
            "random:0.25",
            "--model",
            "item-knn",
            "--k",
            "3",
            "--predictions",
            str(out),
            "--quiet",
        ]
    )
    assert rc == 0
    rows = list(csv.DictReader(open(out)))
    assert rows and set(rows[0]) == {"user_id", "item_id", "rating", "prediction"}
    assert len(rows) == 60  # 25% of 240 ratings
    assert all(1.0 <= float(r["prediction"]) <= 5.0 for r in rows)


def test_predictions_need_one_fold_and_one_k(ratings_csv: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    rc = main(
        [
            "evaluate",
            "--data",
            str(ratings_csv),
            "--split",
            "kfold:2",
            "--k",
            "3",
            "--predictions",
            str(tmp_path / "x.csv"),
            "--quiet",
        ]
    )
    assert rc == 2
    assert "one fold and one K" in capsys.readouterr().err


def test_fit_then_predict(ratings_csv: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    model_dir = tmp_path / "model"
    assert (
        main(
            [
                "fit",
                "--data",
                str(ratings_csv),
                "--model",
                "user-knn",
                "--k",
                "5",
                "--out",
                str(model_dir),
            ]
        )
        == 0
    )
    assert (model_dir / "manifest.json").exists() and arrays_path(model_dir).exists()
    capsys.readouterr()
    assert (
        main(
            [
                "predict",
                "--model-dir",
                str(model_dir),
                "--user",
                "user3",
                "--item",
                "sku1,sku2",
                "--json",
            ]
        )
        == 0
    )
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["item_id"] for x in lines] == ["sku1", "sku2"]
    assert (
        main(["predict", "--model-dir", str(model_dir), "--user", "nobody", "--item", "sku1"]) == 0
    )
    assert "fallback: unknown user" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--model", "deep-magic"], "unknown model 'deep-magic'"),
        (["--split", "weird:3"], "weird:3"),
        (["--similarity", "jaccard"], "unknown similarity 'jaccard'"),
    ],
)
def test_bad_options_give_clear_errors(
    ratings_csv: Path, capsys, argv: list[str], message: str
) -> None:  # type: ignore[no-untyped-def]
    rc = main(["evaluate", "--data", str(ratings_csv), "--split", "kfold:2", "--quiet", *argv])
    assert rc == 2
    assert message in capsys.readouterr().err


def test_bad_k_list_is_rejected_by_the_parser(ratings_csv: Path) -> None:
    with pytest.raises(SystemExit):
        main(["evaluate", "--data", str(ratings_csv), "--k", "5,ten"])


def test_missing_data_names_the_search_folder(tmp_path: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("LLMCF_DATA_DIR", str(tmp_path))
    assert main(["evaluate", "--data", "ml-100k", "--quiet"]) == 2
    assert str(tmp_path) in capsys.readouterr().err


@pytest.mark.realdata
def test_evaluate_contract_command_on_ml100k(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    real_data_dir("ml-100k")
    report, plot = tmp_path / "results.json", tmp_path / "mae_vs_k.png"
    rc = main(
        [
            "evaluate",
            "--data",
            "ml-100k",
            "--split",
            "u1-u5",
            "--model",
            "item-knn",
            "--similarity",
            "pearson_baseline",
            "--prediction",
            "baseline",
            "--k",
            "5,10,15,20,40",
            "--report",
            str(report),
            "--plot",
            str(plot),
            "--quiet",
        ]
    )
    assert rc == 0
    summary = {r["k"]: r for r in json.loads(report.read_text())["summary"]}
    assert summary[40]["mae"] == pytest.approx(0.7214, abs=5e-5)
    assert summary[40]["n_folds"] == 5
    assert plot.exists()


@pytest.mark.realdata
def test_demo_runs(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    real_data_dir("ml-100k")
    assert main(["demo", "--out", str(tmp_path / "demo"), "--quiet"]) == 0
    assert (tmp_path / "demo" / "mae_vs_k.png").exists()
    out = capsys.readouterr().out
    assert "t-item-knn" in out and "t-user-knn" in out  # the paper's experiment
    assert "ndcg@10" in out and "t-ease" in out  # top-N, EASE with item text
    assert "POST /v1/events" in out and "GET /v1/users/196/recommendations" in out  # service


def test_rating_evaluation_of_implicit_data_is_refused(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    """A table with no rating column is implicit feedback: MAE/RMSE would be 0.0000 against
    all-1 "ratings", so the command refuses with a clear message instead."""
    table = tmp_path / "clicks.csv"
    rows = [f"u{u},i{(u * 7 + k) % 13}" for u in range(20) for k in range(6)]
    table.write_text("user_id,item_id\n" + "\n".join(rows) + "\n")
    code = main(
        [
            "evaluate",
            "--data",
            str(table),
            "--split",
            "random:0.2",
            "--model",
            "item-knn",
            "--k",
            "5",
        ]
    )
    assert code == 2
    assert "need explicit ratings" in capsys.readouterr().err
    assert main(["evaluate", "--task", "topn", "--data", str(table), "--split", "random:0.2",
                 "--model", "item-knn", "--n", "5", "--quiet"]) == 0  # fmt: skip


def test_table_options_feedback_scale_duplicates_encoding(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    """The contract forms --feedback, --rating-scale, --duplicates and --encoding."""
    from llmcf.models import load_model

    table = tmp_path / "r.csv"
    table.write_text("user_id,item_id,rating\nu1,i1,4\nu1,i2,7\nu2,i1,3\nu2,i2,2\nu3,i1,5\n")
    args = ["evaluate", "--data", str(table), "--split", "random:0.3", "--model", "global-mean"]
    assert main([*args, "--rating-scale", "1,5"]) == 2
    assert "line 3, column 'rating'" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse refuses it before anything runs
        main([*args, "--rating-scale", "5,1"])
    assert "LO must be below HI" in capsys.readouterr().err
    out = tmp_path / "m"
    assert main(["fit", "--data", str(table), "--feedback", "implicit", "--model", "item-knn",
                 "--out", str(out), "--quiet"]) == 0  # fmt: skip
    assert load_model(out).rating_scale_ is None
    dup = tmp_path / "d.csv"
    dup.write_text("user_id,item_id,rating\nu1,i1,4\nu1,i1,2\nu2,i1,3\nu2,i2,5\n")
    assert main(["fit", "--data", str(dup), "--out", str(out), "--quiet"]) == 2
    assert main(["fit", "--data", str(dup), "--duplicates", "mean", "--model", "baseline",
                 "--out", str(out), "--quiet"]) == 0  # fmt: skip
    latin = tmp_path / "l.csv"
    latin.write_bytes("user_id,item_id,rating\nJos\xe9,i1,4\nu2,i1,3\n".encode("latin-1"))
    assert main(["fit", "--data", str(latin), "--out", str(out), "--quiet"]) == 2
    assert main(["fit", "--data", str(latin), "--encoding", "latin-1", "--model", "baseline",
                 "--out", str(out), "--quiet"]) == 0  # fmt: skip
    assert "José" in load_model(out).users_.ids.tolist()
