"""EASE: the closed form against an independent Lagrange reference, positives, fold-in, tune,
the bounded (pruned-Gram) model, persistence and the ml-100k accuracy floor."""

from __future__ import annotations

import tempfile

import numpy as np
import pytest
import scipy.sparse as sp
from tests.conftest import random_dataset

from llmcf.cf.ease import EASE, EASEConfig, pruned_gram, solve_lists
from llmcf.data.dataset import Dataset
from llmcf.data.vocab import Vocabulary
from llmcf.errors import ConfigError, ModelLoadError, NotFittedError
from llmcf.models import load_model, make_model
from llmcf.persist import save_model
from llmcf.ranking.events import EventRows
from llmcf.ranking.path import Histories, fold_in_histories, rank

# users x items ratings (0: none); positives (>= 4) differ from "rated"
R6x5 = np.array(
    [
        [5, 4, 0, 1, 0],
        [4, 0, 5, 0, 2],
        [0, 5, 4, 4, 0],
        [1, 4, 0, 5, 5],
        [5, 0, 0, 4, 4],
        [0, 3, 5, 0, 4],
    ],
    dtype=float,
)


def dataset_from_dense(
    matrix: np.ndarray, rating_scale: tuple[float, float] | None = (1, 5)
) -> Dataset:
    """Row u / column i of ``matrix`` are user u / item i (0: no interaction)."""
    users, items = np.nonzero(matrix)
    return Dataset.from_arrays(
        users,
        items,
        matrix[users, items],
        users=Vocabulary(np.arange(matrix.shape[0]), name="user"),
        items=Vocabulary(np.arange(matrix.shape[1]), name="item"),
        rating_scale=rating_scale,
    )


def lagrange_reference(X: np.ndarray, lam: float) -> np.ndarray:
    """min ||X - X B||^2 + lam ||B||^2 s.t. diag(B) = 0, column by column through the KKT
    system of its Lagrangian: 2 (G + lam I) b_j - 2 G e_j + mu_j e_j = 0, e_j^T b_j = 0."""
    n = X.shape[1]
    G = X.T @ X
    B = np.zeros((n, n))
    for j in range(n):
        e = np.zeros(n)
        e[j] = 1.0
        kkt = np.zeros((n + 1, n + 1))
        kkt[:n, :n] = 2.0 * (G + lam * np.eye(n))
        kkt[:n, n] = e
        kkt[n, :n] = e
        rhs = np.concatenate([2.0 * G[:, j], [0.0]])
        B[:, j] = np.linalg.solve(kkt, rhs)[:n]
    return B


def test_closed_form_equals_the_lagrange_reference() -> None:
    ds = dataset_from_dense(R6x5)
    X = (R6x5 >= 4).astype(float)
    for lam in (0.5, 3.0, 50.0):
        model = EASE(lam=lam).fit(ds)
        assert model.threshold_ == 4.0 and model.B_ is not None
        ref = lagrange_reference(X, lam)
        np.testing.assert_allclose(model.B_, ref, rtol=0, atol=1e-12)
        # the same column by column as a ridge regression of item j on the others
        for j in range(5):
            o = [i for i in range(5) if i != j]
            beta = np.linalg.solve(X[:, o].T @ X[:, o] + lam * np.eye(4), X[:, o].T @ X[:, j])
            np.testing.assert_allclose(model.B_[o, j], beta, rtol=0, atol=1e-12)


def test_diagonal_is_zero_and_scores_are_x_times_b() -> None:
    ds = dataset_from_dense(R6x5)
    model = EASE(lam=0.5).fit(ds)
    assert model.B_ is not None
    assert (np.diag(model.B_) == 0.0).all()
    h = Histories(np.arange(6), model.train_matrix(), model.train_matrix())
    scores, text_only = model.score_histories(h)
    assert text_only is None
    X = (R6x5 >= 4).astype(float)
    np.testing.assert_allclose(scores, X @ model.B_, rtol=0, atol=1e-12)
    # a negative score is a score: a one-item history whose item predicts j negatively
    i, j = np.argwhere(model.B_ < 0)[0]
    row = sp.csr_matrix(([5.0], ([0], [i])), shape=(1, 5))
    scores, _ = model.score_histories(Histories(np.array([-1]), row, row))
    assert np.isfinite(scores[0, j]) and scores[0, j] == model.B_[i, j] < 0
    recs = rank(model, 4, histories=Histories(np.array([-1]), row, row))
    assert recs.n_scored[0] == 4 and j in recs.items[0]


def test_no_positive_history_gets_no_score_and_a_flagged_fallback() -> None:
    R = R6x5.copy()
    R[0] = [2, 1, 0, 3, 0]  # rated, but nothing >= 4
    ds = dataset_from_dense(R)
    model = EASE(lam=2.0).fit(ds)
    scores = model.score_all(np.array([0]))
    np.testing.assert_array_equal(scores[0], model.popularity())  # the path's fallback
    recs = model.recommend(0, 3)
    assert recs.was_fallback and recs.reason
    assert not model.recommend(1, 3).was_fallback


def test_items_without_a_training_positive_get_no_score() -> None:
    R = R6x5.copy()
    R[:, 2] = np.where(R[:, 2] > 0, 2, 0)  # item 2 rated, never >= 4
    model = EASE(lam=2.0).fit(dataset_from_dense(R))
    assert not model.item_known_[2]
    h = Histories(np.arange(6), model.train_matrix(), model.train_matrix())
    scores, _ = model.score_histories(h)
    assert np.isneginf(scores[:, 2]).all()
    assert np.isfinite(np.delete(scores, 2, axis=1)[1:]).all()


def test_threshold_and_weighting() -> None:
    ds = dataset_from_dense(R6x5)
    assert EASE().fit(ds).threshold_ == 4.0
    low = EASE(lam=2.0, threshold=1.0).fit(ds)
    np.testing.assert_allclose(
        low.B_, lagrange_reference((R6x5 > 0).astype(float), 2.0), atol=1e-12
    )
    valued = EASE(lam=2.0, weighting="value").fit(ds)
    np.testing.assert_allclose(
        valued.B_, lagrange_reference(np.where(R6x5 >= 4, R6x5, 0.0), 2.0), atol=1e-12
    )
    # implicit data: every interaction with a value > 0 is a positive
    counts = np.array([[1, 3, 0], [0, 2, 1], [1, 0, 1], [4, 1, 0]], dtype=float)
    implicit = EASE(lam=1.0).fit(dataset_from_dense(counts, rating_scale=None))
    assert implicit.threshold_ is None
    np.testing.assert_allclose(
        implicit.B_, lagrange_reference((counts > 0).astype(float), 1.0), atol=1e-12
    )
    capped = EASE().fit(dataset_from_dense(np.minimum(R6x5, 3), rating_scale=(1, 3)))
    assert capped.threshold_ == 3.0


def test_fold_in_equals_training_rows() -> None:
    ds = random_dataset(7, n_users=20, n_items=15, density=0.5)
    model = EASE(lam=3.0).fit(ds)
    R = model.train_matrix()
    for u in range(5):
        lo, hi = R.indptr[u], R.indptr[u + 1]
        items, values = R.indices[lo:hi].astype(np.int64), R.data[lo:hi]
        events = EventRows(items, np.array(["rating"] * len(items), dtype=object), values)
        h = fold_in_histories(model, np.array([-1]), [events])
        new = rank(model, 15, histories=h)
        train = model.recommend_many(np.array([u]), 15)
        np.testing.assert_array_equal(new.items, train.items)
        np.testing.assert_allclose(new.scores, train.scores, rtol=0, atol=1e-12)
        np.testing.assert_array_equal(new.was_fallback, train.was_fallback)


def _carve_dataset(seed: int, test_items: np.ndarray) -> tuple[Dataset, np.ndarray]:
    """A data set whose first interactions are one fixed training set (items 0..9 are never
    trained on) and whose last ones, the test set on ``test_items``, depend on ``seed``;
    returns it and the training indices."""
    rng = np.random.default_rng(0)
    n_users, n_items = 60, 40
    mask = rng.random((n_users, n_items)) < 0.3
    mask[:, :10] = False
    users, items = np.nonzero(mask)
    ratings = rng.integers(1, 6, size=len(users)).astype(float)
    t_users = np.arange(n_users)
    t_items = np.resize(test_items, n_users)
    t_ratings = np.random.default_rng(seed).integers(1, 6, size=n_users).astype(float)
    ds = Dataset.from_arrays(
        np.concatenate([users, t_users]),
        np.concatenate([items, t_items]),
        np.concatenate([ratings, t_ratings]),
        users=Vocabulary(np.arange(n_users), name="user"),
        items=Vocabulary(np.arange(n_items), name="item"),
        rating_scale=(1, 5),
    )
    return ds, np.arange(len(users))


def test_tune_picks_lam_from_the_training_data_only() -> None:
    grid = (0.5, 2.0, 8.0, 32.0, 128.0)
    picked = []
    for seed, test_items in ((1, np.array([0, 1])), (2, np.array([5, 7, 9]))):
        ds, train_idx = _carve_dataset(seed, test_items)
        train = ds.subset(train_idx)
        model = EASE(tune=True, lam_grid=grid, tune_fraction=0.2, tune_seed=3).fit(train)
        picked.append((model.lam_, model.tune_results_))
    assert picked[0] == picked[1], "the test data must not change the chosen lam"
    lam, results = picked[0]
    assert [r["lam"] for r in results] == list(grid)
    assert lam == max(results, key=lambda r: r["ndcg@10"])["lam"]
    assert len({r["ndcg@10"] for r in results}) > 1


def test_tune_validation_ndcg_matches_an_independent_computation() -> None:
    from llmcf.eval.metrics import ndcg_at_n

    ds, train_idx = _carve_dataset(1, np.array([0]))
    train = ds.subset(train_idx)
    model = EASE(tune=True, lam_grid=(2.0, 20.0), tune_fraction=0.25, tune_seed=5).fit(train)
    held = np.random.default_rng(5).random(len(train)) < 0.25
    sub = train.subset(np.flatnonzero(~held))
    val = train.subset(np.flatnonzero(held))
    pos = val.rating >= 4
    relevant = sp.csr_matrix(
        (np.ones(pos.sum()), (val.user_idx[pos], val.item_idx[pos])),
        shape=(train.n_users, train.n_items),
    )
    for row in model.tune_results_:
        probe = EASE(lam=row["lam"]).fit(sub)
        users = np.array(
            [
                u
                for u in range(train.n_users)
                if relevant[u].nnz and not probe.recommend(u, 1).was_fallback
            ]
        )
        recs = probe.recommend_many(users, 10)
        expected = float(np.nanmean(ndcg_at_n(recs.items, relevant[users], 10)))
        assert row["ndcg@10"] == pytest.approx(expected, abs=1e-12)
    # the final model is refitted on all the training data with the chosen lam
    refit = EASE(lam=model.lam_).fit(train)
    np.testing.assert_array_equal(model.B_, refit.B_)


def _dense_random(seed: int, n_users: int, n_items: int, density: float) -> Dataset:
    rng = np.random.default_rng(seed)
    R = np.where(rng.random((n_users, n_items)) < density, 5.0, 0.0)
    return dataset_from_dense(R)


def test_bounded_equals_exact_when_every_pair_is_kept() -> None:
    ds = _dense_random(2, 40, 9, 0.6)
    exact = EASE(lam=4.0).fit(ds)
    X = (ds.matrix().toarray() >= 4).astype(float)
    assert ((X.T @ X) > 0).all(), "every pair co-occurs"
    bounded = EASE(lam=4.0, dense_max=0, n_neighbors=8, gram_neighbors=8).fit(ds)
    assert bounded.B_ is None and bounded.nbr_idx_ is not None
    B = bounded._sparse_B().toarray()
    np.testing.assert_allclose(B, exact.B_, rtol=0, atol=1e-12)
    for u in range(ds.n_users):
        np.testing.assert_array_equal(
            bounded.recommend(u, 5).item_idx, exact.recommend(u, 5).item_idx
        )


def test_bounded_is_close_to_exact_on_a_sparse_problem() -> None:
    from llmcf.data.synth import generate

    ds = generate(600, 150, 12000, seed=1)
    users = np.arange(ds.n_users)
    exact = EASE(lam=200.0).fit(ds).recommend_many(users, 10).items
    overlaps = []
    for k in (20, 40):
        bounded = EASE(lam=200.0, dense_max=0, n_neighbors=k).fit(ds)
        assert bounded.nbr_idx_ is not None and bounded.nbr_idx_.shape == (150, k)
        per_column = np.diff(bounded._sparse_B().tocsc().indptr)
        assert (per_column <= k).all(), "at most k non-zeros a column"
        got = bounded.recommend_many(users, 10).items
        overlaps.append(
            np.mean([len(set(x) & set(y)) / 10 for x, y in zip(exact, got, strict=True)])
        )
    assert overlaps[1] >= 0.8 and overlaps[1] > overlaps[0], overlaps


def test_pruned_gram_lists() -> None:
    X = sp.csr_matrix((R6x5 >= 4).astype(float))
    G = (X.T @ X).toarray()
    g = pruned_gram(X, 2, 3)
    np.testing.assert_array_equal(g.diag, np.diag(G))
    assert (g.gram_idx[5] == 5).all() and (g.gram_val[5] == 0).all(), "the dummy item"
    for j in range(5):
        others = [i for i in range(5) if i != j and G[i, j] > 0]
        by_count = sorted(others, key=lambda i: (-G[i, j], i))[:3]
        assert g.gram_idx[j][g.gram_idx[j] < 5].tolist() == by_count
        cos = {i: G[i, j] / np.sqrt(G[i, i] * G[j, j]) for i in others}
        assert (
            g.nbr_idx[j][g.nbr_idx[j] >= 0].tolist()
            == sorted(others, key=lambda i: (-cos[i], i))[:2]
        )
        np.testing.assert_array_equal(
            g.nbr_val[j][g.nbr_idx[j] >= 0], G[g.nbr_idx[j][g.nbr_idx[j] >= 0], j]
        )
    # thread count does not change the solution
    np.testing.assert_array_equal(solve_lists(g, 1.5, threads=1), solve_lists(g, 1.5, threads=2))


def test_predict_is_the_mean_flagged_as_fallback() -> None:
    ds = dataset_from_dense(R6x5)
    model = EASE()
    with pytest.raises(NotFittedError):
        model.predict(np.array([0]), np.array([0]))
    model.fit(ds)
    est, fallback = model.predict_detailed(np.array([0, 1, -1]), np.array([0, 4, 2]))
    np.testing.assert_array_equal(est, np.full(3, ds.global_mean()))
    assert fallback.all()


def test_options_and_config_errors() -> None:
    model = make_model("ease", k=40, similarity="cosine", embedder="tfidf", tune=True, threads=1)
    assert isinstance(model, EASE)
    assert model.config.tune and model.config.threads == 1 and model.config.lam == 500.0
    assert make_model("ease", ease_lambda=20.0).config.lam == 20.0
    with pytest.raises(ConfigError, match="unknown EASE option"):
        EASE(k=3)
    for bad in (
        {"lam": 0.0},
        {"lam": float("nan")},
        {"weighting": "log1p"},
        {"threshold": float("inf")},
        {"dense_max": -1},
        {"n_neighbors": 0},
        {"gram_neighbors": 0},
        {"tune_fraction": 1.0},
        {"lam_grid": []},
        {"lam_grid": [10.0, -1.0]},
        {"threads": 0},
    ):
        with pytest.raises(ConfigError):
            EASEConfig.from_dict(bad)
    assert EASEConfig(lam_grid=[1, 2]).lam_grid == (1.0, 2.0)
    assert EASEConfig(n_neighbors=7).gram_size == 14


def test_float32_exact_model_agrees_with_float64() -> None:
    """dense_dtype float32 (the default above FLOAT32_FROM items): B within float32
    rounding of the float64 model, the same lists, saved and restored as float32."""
    from llmcf.cf.ease import FLOAT32_FROM

    ds = random_dataset(9, n_users=200, n_items=60, density=0.3)
    exact = EASE(lam=20.0, dense_dtype="float64").fit(ds)
    single = EASE(lam=20.0, dense_dtype="float32").fit(ds)
    assert exact.B_ is not None and single.B_ is not None
    assert exact.B_.dtype == np.float64 and single.B_.dtype == np.float32
    np.testing.assert_allclose(single.B_, exact.B_, rtol=0, atol=1e-5 * np.abs(exact.B_).max())
    users = np.arange(ds.n_users)
    a, b = single.recommend_many(users, 10), exact.recommend_many(users, 10)
    assert (a.items == b.items).mean() > 0.99  # only near-ties may swap
    np.testing.assert_allclose(a.scores, b.scores, atol=1e-4)
    with tempfile.TemporaryDirectory() as tmp:
        save_model(single, tmp)
        loaded = load_model(tmp)
        assert loaded.B_.dtype == np.float32
        np.testing.assert_array_equal(loaded.recommend_many(users, 10).items, a.items)
    cfg = EASEConfig()
    assert cfg.dtype_for(FLOAT32_FROM) == np.float64
    assert cfg.dtype_for(FLOAT32_FROM + 1) == np.float32
    assert EASEConfig(dense_dtype="float64").dtype_for(10**5) == np.float64
    with pytest.raises(ConfigError, match="dense_dtype"):
        EASEConfig(dense_dtype="float16")  # type: ignore[arg-type]


@pytest.mark.parametrize("options", [{"lam": 3.0}, {"lam": 3.0, "dense_max": 0, "n_neighbors": 4}])
def test_save_load_round_trip_and_bad_arrays(options: dict[str, float]) -> None:
    ds = random_dataset(5, n_users=15, n_items=10)
    model = EASE(tune=True, lam_grid=(1.0, 10.0), tune_fraction=0.3, **options).fit(ds)
    with tempfile.TemporaryDirectory() as tmp:
        save_model(model, tmp)
        loaded = load_model(tmp)
        assert isinstance(loaded, EASE)
        assert loaded.lam_ == model.lam_ and loaded.tune_results_ == model.tune_results_
        assert loaded.threshold_ == model.threshold_
        users = np.arange(ds.n_users)
        a, b = model.recommend_many(users, 10), loaded.recommend_many(users, 10)
        np.testing.assert_array_equal(a.items, b.items)
        np.testing.assert_array_equal(a.scores, b.scores)
    arrays = model._arrays()
    name = "B" if model.B_ is not None else "nbr_idx"
    broken = {**arrays, name: arrays[name][:-1]}
    fresh = EASE()
    fresh.users_, fresh.items_ = model.users_, model.items_
    fresh._restore(dict(arrays), model._state())  # the intact arrays restore
    with pytest.raises(ValueError):
        fresh._restore(broken, model._state())


def test_a_damaged_folder_is_a_load_error() -> None:
    import json
    from pathlib import Path

    ds = random_dataset(5, n_users=15, n_items=10)
    model = EASE(lam=2.0).fit(ds)
    with tempfile.TemporaryDirectory() as tmp:
        save_model(model, tmp)
        manifest = Path(tmp) / "manifest.json"
        data = json.loads(manifest.read_text())
        data["state"]["lam"] = -1.0
        manifest.write_text(json.dumps(data))
        with pytest.raises(ModelLoadError):
            load_model(tmp)


def test_similar_items_follow_b() -> None:
    ds = random_dataset(3, n_users=30, n_items=12, density=0.5)
    model = EASE(lam=2.0).fit(ds)
    assert model.B_ is not None
    sims = model.similar_items(0, 3)
    row = model.B_[0].copy()
    row[0] = -np.inf
    assert list(sims.item_idx) == list(np.argsort(-row, kind="stable")[: len(sims.item_idx)])
    assert (sims.scores > 0).all()


def test_ml100k_u1_ndcg(ml100k: object) -> None:
    from llmcf.eval.runner import iter_folds
    from llmcf.eval.topn import evaluate_topn

    rows = evaluate_topn(
        list(iter_folds(str(ml100k), "u1")),
        ["ease"],
        n=10,
        relevance=4.0,
        options={"lam": 500.0},
        progress=False,
    )
    assert rows[0]["ndcg@10"] >= 0.39, rows[0]
