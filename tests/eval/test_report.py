"""Reports: fold means, the text table, the JSON file and the metric-vs-K plot."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from llmcf.eval.report import format_table, plot_metric_vs_k, summarize, write_json


def row(model: str, k: int | None, fold: str, mae: float, rmse: float, **extra: Any) -> dict:
    return {
        "model": model,
        "k": k,
        "fold": fold,
        "mae": mae,
        "rmse": rmse,
        "fit_seconds": 1.0,
        "predict_seconds": 0.5,
        "n_predictions": 100,
        "n_fallbacks": 2,
        **extra,
    }


ROWS = [
    row("user_knn", 20, "fold1", 0.70, 0.90, **{"ndcg@10": 0.3}),
    row("user_knn", 20, "fold2", 0.80, 1.00, **{"ndcg@10": 0.5}),
    row("user_knn", 10, "fold1", 0.75, 0.95),
    row("user_knn", 10, "fold2", 0.85, 1.05),
    row("baseline", None, "fold1", 0.90, 1.10),
    row("baseline", None, "fold2", 0.92, 1.12),
    row("item_knn", 10, "fold1", 0.72, 0.91, note="text is dropped"),
    row("item_knn", 10, "fold2", 0.74, 0.93),
]


def test_summarize_means_over_folds() -> None:
    summary = summarize(ROWS)
    assert [(r["model"], r["k"]) for r in summary] == [
        ("user_knn", 20),
        ("user_knn", 10),
        ("baseline", None),
        ("item_knn", 10),
    ]
    first = summary[0]
    assert first["fold"] == "mean" and first["n_folds"] == 2
    assert first["mae"] == pytest.approx(0.75)
    assert first["rmse"] == pytest.approx(0.95)
    assert first["ndcg@10"] == pytest.approx(0.4)
    assert first["n_predictions"] == pytest.approx(100)
    assert "ndcg@10" not in summary[1]
    assert "note" not in summary[3]


def test_summarize_is_idempotent_and_propagates_nan() -> None:
    summary = summarize(ROWS)
    assert summarize(summary) == summary
    nan_rows = [row("m", 1, "fold1", math.nan, 1.0), row("m", 1, "fold2", 1.0, 2.0)]
    (out,) = summarize(nan_rows)
    assert math.isnan(out["mae"]) and out["rmse"] == pytest.approx(1.5)


def test_format_table_groups_models_and_aligns_columns() -> None:
    table = format_table(ROWS, metrics=("mae", "rmse", "ndcg@10"))
    lines = table.rstrip("\n").split("\n")
    assert lines[0].split() == ["model", "k", "folds", "mae", "rmse", "ndcg@10"]
    assert set(lines[1]) <= {"-", " "}
    body = [line.split() for line in lines[2:]]
    assert [(b[0], b[1]) for b in body] == [
        ("user_knn", "10"),
        ("user_knn", "20"),
        ("baseline", "-"),
        ("item_knn", "10"),
    ]
    assert body[1][3:] == ["0.7500", "0.9500", "0.4000"]
    assert body[0][5] == "-"  # no ndcg for k=10
    # numeric columns are right-aligned: each value ends where its header ends
    mae_end = lines[0].index("mae") + len("mae")
    for line, cells in zip(lines[2:], body, strict=True):
        assert line[:mae_end].endswith(cells[3])


def test_write_json_round_trip(tmp_path: Path) -> None:
    rows = [*ROWS, row("nanmodel", 5, "fold1", math.nan, np.float64(1.0))]
    meta = {"dataset": "ml-100k", "split": "kfold:2", "seed": np.int64(0)}
    path = write_json(tmp_path / "out" / "results.json", rows, meta)
    text = path.read_text()
    assert "NaN" not in text and "null" in text
    data = json.loads(text)
    assert list(data) == ["meta", "rows", "summary"]
    assert data["meta"] == {"dataset": "ml-100k", "seed": 0, "split": "kfold:2"}
    assert len(data["rows"]) == len(rows)
    assert data["rows"][0] == json.loads(json.dumps(ROWS[0]))
    assert data["rows"][-1]["mae"] is None
    assert data["summary"][0]["mae"] == pytest.approx(0.75)
    assert list(data["rows"][0]) == sorted(data["rows"][0])
    assert text.startswith('{\n  "meta"')


def test_plot_metric_vs_k(tmp_path: Path) -> None:
    path = tmp_path / "plots" / "mae.png"
    fig = plot_metric_vs_k(ROWS, path, metric="mae", title="MAE on ml-100k")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (ax,) = fig.axes
    lines = ax.get_lines()
    assert len(lines) == 3  # user_knn, baseline (horizontal), item_knn
    assert [line.get_label() for line in lines] == ["user_knn", "baseline", "item_knn"]
    user_knn = lines[0]
    assert list(user_knn.get_xdata()) == [10, 20]
    assert list(user_knn.get_ydata()) == pytest.approx([0.80, 0.75])
    assert user_knn.get_marker() == "o"
    assert ax.get_xlabel() and ax.get_ylabel() == "mae"
    assert ax.get_title() == "MAE on ml-100k"
    assert ax.get_legend() is not None


def test_plot_saves_at_120_dpi(tmp_path: Path) -> None:
    path = tmp_path / "ndcg.png"
    fig = plot_metric_vs_k(ROWS, path, metric="ndcg@10")
    width, height = fig.get_size_inches()
    data = path.read_bytes()
    # the IHDR chunk holds the pixel size right after the signature and chunk header
    png_width = int.from_bytes(data[16:20], "big")
    png_height = int.from_bytes(data[20:24], "big")
    assert (png_width, png_height) == (round(width * 120), round(height * 120))
    assert len(fig.axes[0].get_lines()) == 1


def test_plot_unknown_metric_raises(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'recall@5'"):
        plot_metric_vs_k(ROWS, tmp_path / "x.png", metric="recall@5")


def test_format_chosen_names_model_fold_and_values() -> None:
    from llmcf.eval.report import format_chosen

    rows = [
        {"model": "item-knn", "fold": "u1", "k": 10, "chosen": {"reg_u": 5.0, "reg_i": 2.0}},
        {"model": "item-knn", "fold": "u1", "k": 40, "chosen": {"reg_u": 5.0, "reg_i": 2.0}},
        {"model": "baseline", "fold": "u1", "k": None, "chosen": {}},
    ]
    assert format_chosen(rows) == "chosen on the training carve: item-knn u1: reg_u=5, reg_i=2"
    assert format_chosen(rows[2:]) == ""


def test_cli_tune_reports_what_it_chose(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    import json

    from tests.conftest import random_dataset

    from llmcf.cli import main

    ds = random_dataset(5, n_users=30, n_items=15, density=0.5)
    path = tmp_path / "r.csv"
    lines = [
        f"{ds.users.ids[u]},{ds.items.ids[i]},{r:g}"
        for u, i, r in zip(ds.user_idx, ds.item_idx, ds.rating, strict=True)
    ]
    path.write_text("user,item,rating\n" + "\n".join(lines) + "\n")
    report = tmp_path / "rep.json"
    args = ["evaluate", "--data", str(path), "--split", "kfold:2", "--model", "item-knn"]
    assert main([*args, "--k", "5", "--tune", "--quiet", "--report", str(report)]) == 0
    out = capsys.readouterr().out
    assert out.count("chosen on the training carve: item-knn") == 2  # one line per fold
    rows = json.loads(report.read_text())["rows"]
    fit_settings = {"reg_u", "reg_i", "correction_shrinkage"}
    ranking = {"ranking_alpha", "ranking_shrinkage", "ranking_n_neighbors"}
    assert all(set(r["chosen"]) == fit_settings | ranking for r in rows)
