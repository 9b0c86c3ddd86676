"""Item cold start: ``--split coldstart-items:F``, ``--candidates cold`` and the random row.

The hand-checked case: 4 users, 3 warm items (w0..w2, train only) and 3 cold items (c0..c2,
test only). Every cold item has popularity 0 in train, so global-mean (popularity scores) and
item-knn (no score for a cold item: popularity padding) both list the cold items in the
padding's tie order, the fixed permutation of ``TIE_SEED`` (on this catalog: c2, c1, c0; the
three warm items also tie, as w2, w0, w1) -- never by index, which would leak the data file's
id order.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from tests.conftest import random_dataset

from llmcf.cli import main
from llmcf.data.dataset import Dataset
from llmcf.errors import ConfigError
from llmcf.eval.split import parse_split
from llmcf.eval.topn import cold_items, evaluate_topn
from llmcf.ranking.path import TIE_SEED

LOG3 = float(np.log2(3))

# (user, item, rating, in test)
ROWS = [
    ("u0", "w0", 5, False),
    ("u0", "w1", 4, False),
    ("u1", "w2", 5, False),
    ("u2", "c0", 4, True),
    ("u0", "c1", 5, True),
    ("u0", "c2", 4, True),
    ("u1", "w0", 3, False),
    ("u1", "c0", 2, True),
    ("u1", "c2", 5, True),
    ("u2", "w1", 2, False),
    ("u2", "w2", 4, False),
    ("u3", "w0", 5, False),
    ("u3", "w1", 5, False),
    ("u3", "w2", 1, False),
    ("u3", "c1", 3, True),
]


@dataclass
class _Fold:
    name: str
    dataset: Dataset
    train: np.ndarray
    test: np.ndarray


def _tiny() -> tuple[Dataset, _Fold]:
    users, items, ratings, in_test = zip(*ROWS, strict=True)
    ds = Dataset.from_arrays(
        list(users), list(items), np.array(ratings, float), rating_scale=(1, 5), name="cold"
    )
    assert ds.items.lookup(["w0", "w1", "w2", "c0", "c1", "c2"]).tolist() == list(range(6))
    assert ds.users.lookup(["u0", "u1", "u2", "u3"]).tolist() == list(range(4))
    test = np.array(in_test)
    return ds, _Fold("hand", ds, np.flatnonzero(~test), np.flatnonzero(test))


def test_padding_tie_order_of_the_hand_catalog() -> None:
    tie = np.random.default_rng(TIE_SEED).permutation(6)
    assert sorted(range(3), key=lambda i: tie[i]) == [2, 0, 1]  # w2, w0, w1
    assert sorted(range(3, 6), key=lambda i: tie[i]) == [5, 4, 3]  # c2, c1, c0


def test_cold_items_of_the_hand_fold() -> None:
    ds, fold = _tiny()
    np.testing.assert_array_equal(cold_items(ds, ds.subset(fold.train)), [3, 4, 5])


@pytest.mark.parametrize("model", ["global-mean", "item-knn"])
def test_cold_candidates_ndcg_by_hand(model: str) -> None:
    _, fold = _tiny()
    rows = evaluate_topn(
        [fold],
        [model],
        n=2,
        relevance=4.0,
        candidates="cold",
        baselines=["random"],
        progress=False,
    )
    assert [r["model"] for r in rows] == [model, "random"]
    row, rnd = rows
    # lists: [c2, c1] for everyone (the padding's tie order). Relevant (rating >= 4):
    # u0 {c1, c2} -> both: 1; u1 {c2} -> rank 1: 1; u2 {c0} -> 0;
    # u3 has no relevant item and is not evaluated
    assert row["n_users_evaluated"] == 3
    assert row["ndcg@2"] == pytest.approx((1 + 1 + 0) / 3)
    assert row["recall@2"] == pytest.approx((1 + 1 + 0) / 3)
    assert row["precision@2"] == pytest.approx((1 + 0.5 + 0) / 3)
    assert row["coverage@2"] == pytest.approx(2 / 6)
    assert row["candidates"] == "cold" and row["n_cold_items"] == 3
    if model == "item-knn":  # no neighbour reaches a cold item: popularity padding only
        assert row["n_cf_fallbacks"] == 3
    # random: 3 candidates for everyone; E[NDCG] u0 = 2/3, u1 = u2 = (1 + 1/log2 3) / 3
    assert rnd["expected_ndcg@2"] == pytest.approx((2 / 3 + 2 * (1 + 1 / LOG3) / 3) / 3)
    assert rnd["expected_recall@2"] == pytest.approx(2 / 3)
    assert rnd["n_users_evaluated"] == 3 and rnd["candidates"] == "cold"
    assert 0.0 <= rnd["ndcg@2"] <= 1.0 and rnd["n_cf_fallbacks"] == 0
    # the same fold with every unseen item as a candidate: warm popular items come first
    (full,) = evaluate_topn([fold], [model], n=2, relevance=4.0, progress=False)
    assert full["candidates"] == "all" and "n_cold_items" not in full
    # u0 [w2, c2] -> c2 at rank 2 of {c1, c2}; u1 [w1, c2] -> c2 at rank 2; u2 [w0, c2] -> 0
    ndcg_u0 = (1 / LOG3) / (1 + 1 / LOG3)
    assert full["ndcg@2"] == pytest.approx((ndcg_u0 + 1 / LOG3 + 0) / 3)


def test_cold_mode_lists_only_cold_items_and_keeps_cold_relevant_items(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import llmcf.models

    seen: list[tuple[np.ndarray | None, np.ndarray]] = []
    make = llmcf.models.make_model

    def spy(name: str, **options: object) -> object:
        model = make(name, **options)
        inner = model.recommend_many

        def recommend_many(users, n, **kw):  # type: ignore[no-untyped-def]
            recs = inner(users, n, **kw)
            seen.append((kw.get("candidates"), recs.items))
            return recs

        model.recommend_many = recommend_many  # type: ignore[method-assign]
        return model

    monkeypatch.setattr(llmcf.models, "make_model", spy)
    ds = random_dataset(11, n_users=50, n_items=30, density=0.3)
    (split,) = parse_split("coldstart-items:0.2", seed=5)(ds)
    fold = _Fold("coldstart-items", ds, split.train, split.test)
    cold = np.unique(ds.item_idx[split.test])
    assert len(cold) == 6
    rows = evaluate_topn(
        [fold],
        ["global-mean", "item-knn", "baseline"],
        n=5,
        relevance=None,
        candidates="cold",
        progress=False,
    )
    assert [r["model"] for r in rows] == ["global-mean", "item-knn", "baseline"]
    assert len(seen) == 3
    for cand, items in seen:
        np.testing.assert_array_equal(cand, cold)  # passed to the one ranking path
        listed = items[items >= 0]
        assert listed.size and set(listed.tolist()) <= set(cold.tolist())
    # relevance=None: every test interaction is relevant, and all of them are cold here
    test_users = np.unique(ds.user_idx[split.test])
    assert all(r["n_users_evaluated"] == len(test_users) for r in rows)


def test_cold_mode_on_another_split_uses_items_absent_from_training() -> None:
    ds = random_dataset(12, n_users=30, n_items=40, density=0.08)
    (split,) = parse_split("random:0.3", seed=1)(ds)
    train = ds.subset(split.train)
    cold = cold_items(ds, train)
    assert len(cold) and (train.item_counts()[cold] == 0).all()
    assert (ds.item_counts()[cold] > 0).all()
    (row,) = evaluate_topn(
        [_Fold("random", ds, split.train, split.test)],
        ["item-knn"],
        n=3,
        relevance=None,
        candidates="cold",
        progress=False,
    )
    # only users with a relevant *cold* test item are evaluated
    test = ds.subset(split.test)
    has_cold = np.unique(test.user_idx[np.isin(test.item_idx, cold)])
    assert row["n_users_evaluated"] == len(has_cold) and row["n_cold_items"] == len(cold)


def test_no_cold_items_is_a_clear_error() -> None:
    ds, fold = _tiny()
    everything = _Fold("all-train", ds, np.arange(len(ds)), fold.test)
    with pytest.raises(ConfigError, match=r"has no cold items.*coldstart-items"):
        evaluate_topn([everything], ["global-mean"], candidates="cold", progress=False)


# ---------------------------------------------------------------------- CLI
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


def _evaluate(csv_path: Path, *argv: str) -> int:
    return main(["evaluate", "--task", "topn", "--data", str(csv_path), "--quiet", *argv])


def test_cli_coldstart_items_cold_candidates(ratings_csv: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    report = tmp_path / "r.json"
    args = ["--split", "coldstart-items:0.25", "--candidates", "cold", "--relevance", "4"]
    rc = _evaluate(
        ratings_csv, *args, "--model", "global-mean,item-knn", "--n", "3", "--report", str(report)
    )
    assert rc == 0
    out = capsys.readouterr().out
    assert "random" in out and "expected_ndcg@3" in out and "cold items (5 item(s)" in out
    data = json.loads(report.read_text())
    assert [r["model"] for r in data["rows"]] == ["global-mean", "item-knn", "random"]
    assert {r["candidates"] for r in data["rows"]} == {"cold"}
    assert {r["n_cold_items"] for r in data["rows"]} == {5}  # round(0.25 * 20)
    assert data["meta"]["candidates"] == "cold" and data["meta"]["baselines"] == ["random"]
    # --seed picks the cold items; the same seed, the same table
    assert _evaluate(ratings_csv, *args, "--model", "global-mean", "--seed", "3") == 0
    first = capsys.readouterr().out.splitlines()[:4]
    assert _evaluate(ratings_csv, *args, "--model", "global-mean", "--seed", "3") == 0
    assert capsys.readouterr().out.splitlines()[:4] == first
    # --baselines none drops the random row; --baselines random adds it with --candidates all
    assert _evaluate(ratings_csv, *args, "--model", "global-mean", "--baselines", "none") == 0
    assert "random" not in capsys.readouterr().out.split("\n\n")[0]
    rc = _evaluate(
        ratings_csv,
        "--split",
        "random:0.2",
        "--model",
        "item-knn",
        "--baselines",
        "random",
        "--report",
        str(report),
    )
    assert rc == 0
    rows = json.loads(report.read_text())["rows"]
    assert [r["model"] for r in rows] == ["item-knn", "random"]
    assert {r["candidates"] for r in rows} == {"all"}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--split", "coldstart-items:0"], "cold-item fraction F must be in (0, 1)"),
        (["--split", "coldstart-items:1.5"], "cold-item fraction F must be in (0, 1)"),
        (["--split", "kfold:2", "--candidates", "cold"], "has no cold items"),
        (
            ["--candidates", "cold", "--split", "coldstart-items:0.2", "--sampled", "5"],
            "sampled metrics combine with neither",
        ),
        (["--split", "random:0.2", "--baselines", "random,popular"], "unknown baseline"),
        (["--split", "random:0.2", "--baselines", "none,random"], "cannot be combined"),
    ],
)
def test_cli_errors(ratings_csv: Path, argv: list[str], message: str, capsys) -> None:  # type: ignore[no-untyped-def]
    assert _evaluate(ratings_csv, "--model", "item-knn", *argv) == 2
    assert message in capsys.readouterr().err


def test_cli_candidates_need_topn_and_a_valid_choice(ratings_csv: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    rc = main(
        [
            "evaluate",
            "--data",
            str(ratings_csv),
            "--split",
            "coldstart-items:0.2",
            "--candidates",
            "cold",
            "--quiet",
        ]
    )
    assert rc == 2 and "--task topn only" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _evaluate(ratings_csv, "--candidates", "warm")
    assert "invalid choice: 'warm'" in capsys.readouterr().err
    # the ratings task runs on the cold-item split too (every test item is unknown to train)
    rc = main(
        [
            "evaluate",
            "--data",
            str(ratings_csv),
            "--split",
            "coldstart-items:0.2",
            "--model",
            "baseline",
            "--quiet",
        ]
    )
    assert rc == 0
