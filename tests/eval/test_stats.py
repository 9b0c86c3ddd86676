"""Paired tests between methods (llmcf.eval.stats) and ``llmcf evaluate --paired``."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats
from tests.conftest import random_dataset

from llmcf.errors import ConfigError
from llmcf.eval.metrics import per_user_metrics, ranking_report, relevance_matrix
from llmcf.eval.stats import align, paired_test


def test_paired_test_matches_scipy_and_the_t_interval_by_hand() -> None:
    rng = np.random.default_rng(0)
    a = rng.random(200)
    b = a + 0.05 + 0.1 * rng.standard_normal(200)
    a[3] = np.nan  # undefined pairs are dropped on both sides
    t = paired_test(a, b)
    ok = np.isfinite(a)
    d = b[ok] - a[ok]
    assert t["n"] == 199 and t["diff"] == pytest.approx(d.mean())
    half = stats.t.ppf(0.975, 198) * d.std(ddof=1) / np.sqrt(199)
    assert t["ci95_low"] == pytest.approx(d.mean() - half)
    assert t["ci95_high"] == pytest.approx(d.mean() + half)
    assert t["p_ttest"] == pytest.approx(stats.ttest_rel(b[ok], a[ok]).pvalue)
    assert t["p_wilcoxon"] == pytest.approx(stats.wilcoxon(d).pvalue)
    assert t["p_ttest"] < 1e-6  # a real difference is found
    same = paired_test(a, a)
    assert same["diff"] == 0 and same["p_ttest"] == 1.0 and same["p_wilcoxon"] == 1.0
    with pytest.raises(ConfigError, match="length"):
        paired_test(a, b[:5])


def test_per_user_metrics_average_to_the_report() -> None:
    rel = relevance_matrix(np.array([0, 0, 1, 3]), np.array([1, 2, 0, 4]), 4, 6)
    recs = np.array([[1, 0, 5], [3, 4, 0], [0, 1, 2], [4, 5, 1]])
    per = per_user_metrics(recs, rel, 3)
    report = ranking_report(recs, rel, 3)
    assert np.isnan(per["ndcg@3"][2])  # user 2 has no relevant item
    for key in ("ndcg@3", "recall@3", "precision@3", "mrr@3"):
        assert np.nanmean(per[key]) == pytest.approx(report[key])


def test_align_pairs_by_fold_and_user() -> None:
    per_user = {
        ("a", "f1"): {"users": np.array([1, 2]), "ndcg@10": np.array([0.1, 0.2])},
        ("b", "f1"): {"users": np.array([2, 5]), "ndcg@10": np.array([0.4, 0.9])},
    }
    va, vb = align(per_user, "a", "b", "ndcg@10")
    assert va.tolist() == [0.2] and vb.tolist() == [0.4]
    with pytest.raises(ConfigError, match="no per-user"):
        align(per_user, "a", "c", "ndcg@10")


def test_cli_paired_prints_and_reports(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    from llmcf.cli import main

    ds = random_dataset(3, n_users=30, n_items=20, density=0.4)
    path = tmp_path / "r.csv"
    path.write_text(
        "user,item,rating\n"
        + "".join(
            f"{u},{i},{r:g}\n"
            for u, i, r in zip(
                ds.users.ids[ds.user_idx], ds.items.ids[ds.item_idx], ds.rating, strict=True
            )
        )
    )
    report = tmp_path / "rep.json"
    args = ["evaluate", "--task", "topn", "--data", str(path), "--split", "kfold:2"]
    args += ["--model", "global-mean,item-knn", "--relevance", "4", "--quiet"]
    assert main([*args, "--paired", "global-mean:item-knn", "--report", str(report)]) == 0
    out = capsys.readouterr().out
    assert "paired item-knn - global-mean ndcg@10" in out and "Wilcoxon" in out
    tests = json.loads(report.read_text())["meta"]["paired"]
    assert [t["metric"] for t in tests] == ["ndcg@10", "recall@10"]
    assert all(t["a"] == "global-mean" and t["b"] == "item-knn" for t in tests)
    assert main([*args, "--paired", "global-mean:ease"]) == 2
    assert "not a model or baseline" in capsys.readouterr().err
    assert main([*args, "--paired", "global-mean"]) == 2
