"""``llmcf evaluate`` / ``fit`` / ``predict`` with the text-fused models on a tiny synthetic set."""

from __future__ import annotations

import json

import pytest
from tests.conftest import movielens_folder

from llmcf.cli import main


@pytest.fixture(scope="module")
def synth_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    return movielens_folder(tmp_path_factory.mktemp("ml-synth"), 60, 40, 900, seed=3)


def test_evaluate_fit_predict_end_to_end(synth_path: str, tmp_path, capsys) -> None:
    report = tmp_path / "r.json"
    plot = tmp_path / "mae.png"
    code = main(
        [
            "evaluate", "--data", synth_path, "--split", "kfold:2",
            "--model", "item-knn,t-item-knn,user-knn,t-user-knn", "--k", "5,10",
            "--embedder", "tfidf", "--alpha", "0.7", "--report", str(report),
            "--plot", str(plot), "--quiet",
        ]
    )  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "t-item-knn" in out and "t-user-knn" in out
    rows = json.loads(report.read_text())
    text = json.dumps(rows)
    assert "t-item-knn" in text and plot.stat().st_size > 0

    model_dir = tmp_path / "model"
    fit = ["fit", "--data", synth_path, "--model", "t-item-knn", "--k", "5", "--embedder", "tfidf"]
    assert (
        main([*fit, "--fusion", "support", "--beta", "5", "--out", str(model_dir), "--quiet"]) == 0
    )
    manifest = json.loads((model_dir / "manifest.json").read_text())
    assert manifest["class"] == "TItemKNN"
    assert manifest["config"]["fusion"] == "support" and manifest["config"]["beta"] == 5.0
    capsys.readouterr()
    assert (
        main(["predict", "--model-dir", str(model_dir), "--user", "0", "--item", "1", "--json"])
        == 0
    )
    line = json.loads(capsys.readouterr().out.strip())
    assert 1.0 <= line["prediction"] <= 5.0


def test_evaluate_tune_and_bad_option(synth_path: str, capsys) -> None:
    base = ["evaluate", "--data", synth_path, "--split", "random:0.2", "--k", "5", "--quiet"]
    assert main([*base, "--model", "t-item-knn", "--embedder", "tfidf", "--tune"]) == 0
    assert "t-item-knn" in capsys.readouterr().out
    assert main([*base, "--model", "t-item-knn", "--embedder", "nope"]) == 2
    assert "unknown embedder" in capsys.readouterr().err
