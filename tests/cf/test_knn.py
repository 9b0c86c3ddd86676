"""kNN prediction rules against the reference oracle, fallbacks and edge cases."""

from __future__ import annotations

import numpy as np
import pytest
from tests.conftest import dataset_from_dense, random_dataset

from llmcf import BaselineOnly, ItemKNN, UserKNN
from llmcf.cf.baselines import fit_baselines
from llmcf.errors import ConfigError, NotFittedError
from llmcf.testing import reference

RULES = ["basic", "mean", "zscore", "baseline"]


def _reference_predictions(model, ds, users, items, k, min_k=1):  # type: ignore[no-untyped-def]
    """Predict with the literal formulas, reusing the model's similarity matrix."""
    user_based = isinstance(model, UserKNN)
    rule = model.config.prediction
    mu, bu, bi = fit_baselines(ds.user_idx, ds.item_idx, ds.rating, ds.n_users, ds.n_items)
    x_of, y_of = (ds.user_idx, ds.item_idx) if user_based else (ds.item_idx, ds.user_idx)
    n_x = ds.n_users if user_based else ds.n_items
    means = np.zeros(n_x)
    sigmas = np.ones(n_x)
    for x in range(n_x):
        r = ds.rating[x_of == x]
        if len(r):
            means[x] = r.mean()
            sigmas[x] = r.std() if r.std() > 0 else ds.rating.std()
    bx, by = (bu, bi) if user_based else (bi, bu)
    out = []
    for u, i in zip(users, items, strict=True):
        x, y = (u, i) if user_based else (i, u)
        baseline = mu + bu[u] + bi[i]
        cands = []
        for e in np.flatnonzero(y_of == y):  # input order
            x2 = x_of[e]
            r = ds.rating[e]
            dev = {
                "basic": r,
                "mean": r - means[x2],
                "zscore": (r - means[x2]) / sigmas[x2],
                "baseline": r - (mu + bx[x2] + by[y]),
            }[rule]
            cands.append((model.sim_[x, x2], dev))
        got = reference.knn_estimate(cands, k, min_k)
        if got is None:
            est = {"basic": mu, "mean": means[x], "zscore": means[x], "baseline": baseline}[rule]
        else:
            num, den, _ = got
            offset = {"basic": 0.0, "mean": means[x], "zscore": means[x], "baseline": baseline}[
                rule
            ]
            scale = sigmas[x] if rule == "zscore" else 1.0
            est = offset + num / den * scale
        out.append(min(5.0, max(1.0, est)))
    return np.array(out)


@pytest.mark.parametrize("cls", [UserKNN, ItemKNN])
@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("similarity", ["cosine", "msd", "pearson", "pearson_baseline"])
def test_predictions_match_reference(cls: type, rule: str, similarity: str) -> None:
    ds = random_dataset(3, n_users=15, n_items=10, density=0.5)
    model = cls(k=3, similarity=similarity, prediction=rule).fit(ds)
    users, items = np.meshgrid(np.arange(ds.n_users), np.arange(ds.n_items), indexing="ij")
    users, items = users.ravel(), items.ravel()
    got = model.predict(users, items)
    want = _reference_predictions(model, ds, users, items, k=3)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("cls", [UserKNN, ItemKNN])
def test_predict_k_equals_separate_fits(cls: type) -> None:
    ds = random_dataset(11, n_users=25, n_items=14, density=0.5)
    users = np.repeat(np.arange(ds.n_users), ds.n_items)
    items = np.tile(np.arange(ds.n_items), ds.n_users)
    multi = cls(k=40).fit(ds)
    est, fallback, used = multi.predict_k(users, items, [5, 1, 3])
    for j, k in enumerate([5, 1, 3]):
        single = cls(k=k).fit(ds)
        e, fb = single.predict_detailed(users, items)
        np.testing.assert_array_equal(est[:, j], e)
        np.testing.assert_array_equal(fallback[:, j], fb)
        assert (used[:, j] <= k).all()


@pytest.mark.parametrize("cls", [UserKNN, ItemKNN])
@pytest.mark.parametrize("rule", RULES)
def test_sparse_mode_equals_dense_when_all_neighbours_kept(cls: type, rule: str) -> None:
    ds = random_dataset(5, n_users=20, n_items=12, density=0.5)
    users = np.repeat(np.arange(ds.n_users), ds.n_items)
    items = np.tile(np.arange(ds.n_items), ds.n_users)
    dense = cls(k=4, prediction=rule, similarity="cosine").fit(ds)
    sparse = cls(k=4, prediction=rule, similarity="cosine", dense_max=0, n_neighbors=25).fit(ds)
    assert sparse.sim_ is None
    np.testing.assert_array_equal(dense.predict(users, items), sparse.predict(users, items))


def test_ties_broken_by_input_order() -> None:
    # user u3 rated i0, i1, i2 in that order; all three have similarity exactly 1 to i3
    # (support 1, cosine of single positive values), so with k=1 the first-rated one is used
    rows = [
        ("u0", "i0", 2.0),
        ("u0", "i3", 4.0),
        ("u1", "i1", 3.0),
        ("u1", "i3", 5.0),
        ("u2", "i2", 1.0),
        ("u2", "i3", 1.0),
        ("u3", "i2", 5.0),
        ("u3", "i0", 1.0),
        ("u3", "i1", 3.0),
    ]
    from llmcf import Dataset

    ds = Dataset.from_arrays(*zip(*rows, strict=True), rating_scale=(1, 5))
    model = ItemKNN(k=1, similarity="cosine", prediction="basic").fit(ds)
    u3, i3 = ds.users.index("u3"), ds.items.index("i3")
    assert model.predict([u3], [i3])[0] == 5.0  # i2 was rated first by u3, with 5


def test_unknown_and_cold_pairs_are_flagged_fallbacks(tiny) -> None:  # type: ignore[no-untyped-def]
    base = ItemKNN(prediction="baseline").fit(tiny)
    mean = ItemKNN(prediction="mean").fit(tiny)
    basic = ItemKNN(prediction="basic").fit(tiny)
    bsl = BaselineOnly().fit(tiny)
    u, i = np.array([-1, 0, 0]), np.array([0, -1, 2])
    est, fb = base.predict_detailed(u, i)
    assert fb[:2].all()
    np.testing.assert_allclose(est[:2], bsl.predict(u[:2], i[:2]))
    est, fb = mean.predict_detailed(u, i)
    assert fb[:2].all() and np.allclose(est[:2], tiny.global_mean())
    est, fb = basic.predict_detailed(u, i)
    assert fb[:2].all() and np.allclose(est[:2], tiny.global_mean())
    # u0 rated i0, i1, i3; i2 has a single co-rater with them (support < 2) -> fallback
    u0, i2 = tiny.users.index("u0"), tiny.items.index("i2")
    est, fb = base.predict_detailed(np.array([u0]), np.array([i2]))
    assert fb[0]


def test_min_k_forces_fallback(tiny) -> None:  # type: ignore[no-untyped-def]
    loose = ItemKNN(prediction="mean", similarity="cosine", min_k=1).fit(tiny)
    strict = ItemKNN(prediction="mean", similarity="cosine", min_k=10).fit(tiny)
    u, i = np.array([tiny.users.index("u1")]), np.array([tiny.items.index("i1")])
    assert not loose.predict_detailed(u, i)[1][0]
    est, fb = strict.predict_detailed(u, i)
    assert fb[0] and est[0] == pytest.approx(strict.x_means_[i[0]])


def test_predictions_are_clipped_to_scale() -> None:
    ds = dataset_from_dense(np.array([[5, 5, 5], [5, 5, 0], [1, 5, 5]], dtype=float))
    model = UserKNN(prediction="mean", similarity="cosine").fit(ds)
    est = model.predict(np.arange(3).repeat(3), np.tile(np.arange(3), 3))
    assert est.min() >= 1.0 and est.max() <= 5.0


def test_empty_input_and_bad_arguments(tiny) -> None:  # type: ignore[no-untyped-def]
    model = ItemKNN().fit(tiny)
    assert model.predict(np.array([], dtype=int), np.array([], dtype=int)).shape == (0,)
    with pytest.raises(ConfigError, match="differ in length"):
        model.predict(np.array([0, 1]), np.array([0]))
    with pytest.raises(ConfigError, match="positive"):
        model.predict_k(np.array([0]), np.array([0]), [0])
    with pytest.raises(ConfigError, match="k must be"):
        ItemKNN(k=0)
    with pytest.raises(ConfigError, match="unknown kNN option"):
        ItemKNN(neighbours=3)
    with pytest.raises(ConfigError, match="prediction rule"):
        ItemKNN(prediction="median")
    with pytest.raises(NotFittedError):
        UserKNN().predict(np.array([0]), np.array([0]))


def test_stored_neighbour_limit_is_enforced() -> None:
    ds = random_dataset(2, n_users=10, n_items=8)
    model = ItemKNN(k=3, dense_max=0, n_neighbors=4).fit(ds)
    with pytest.raises(ConfigError, match="stored neighbours"):
        model.predict_k(np.array([0]), np.array([0]), [10])


def test_sgd_baselines_are_supported(tiny) -> None:  # type: ignore[no-untyped-def]
    als = BaselineOnly().fit(tiny)
    sgd = BaselineOnly(method="sgd").fit(tiny)
    assert not np.allclose(als.bu_, sgd.bu_)
    model = ItemKNN(baseline_method="sgd").fit(tiny)
    assert np.isfinite(model.predict(np.array([0]), np.array([2]))).all()


def test_tune_chooses_fit_settings_on_a_training_carve_and_saves_them(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from llmcf.cf.knn import FIT_GRID, KNNConfig
    from llmcf.models import load_model, make_model
    from llmcf.persist import save_model

    ds = random_dataset(4, n_users=40, n_items=25, density=0.5)
    tuned = make_model("item-knn", k=5, tune=True).fit(ds)
    table = tuned.fit_results_
    assert [{k: r[k] for k in ("reg_u", "reg_i", "correction_shrinkage")} for r in table] == list(
        FIT_GRID
    )
    best = FIT_GRID[min(range(len(table)), key=lambda j: (table[j]["mae"], j))]
    assert {k: getattr(tuned.fit_config_, k) for k in best} == best
    assert tuned.config.tune  # the config is what the user asked for; fit_config_ what ran
    fixed = ItemKNN(KNNConfig(k=5, **best)).fit(ds)
    users, items = np.repeat(np.arange(40), 25), np.tile(np.arange(25), 40)
    np.testing.assert_array_equal(tuned.predict(users, items), fixed.predict(users, items))
    save_model(tuned, tmp_path / "m")
    again = load_model(tmp_path / "m")
    assert again.fit_config_ == tuned.fit_config_
    np.testing.assert_array_equal(again.predict(users, items), tuned.predict(users, items))
    # the choice depends on the training data only: the same data, the same choice
    assert make_model("item-knn", k=5, tune=True).fit(ds).fit_config_ == tuned.fit_config_


def test_tune_chooses_the_ranking_on_the_training_carve_and_saves_it(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from llmcf.cf.knn import ITEM_NEIGHBOURS_GRID, RANKING_GRID
    from llmcf.models import load_model, make_model
    from llmcf.persist import save_model
    from llmcf.ranking.config import RankingConfig

    ds = random_dataset(6, n_users=60, n_items=30, density=0.3)
    tuned = make_model("item-knn", k=5, tune=True).fit(ds)
    assert len(tuned.ranking_results_) == len(RANKING_GRID) * len(ITEM_NEIGHBOURS_GRID)
    best = max(
        range(len(tuned.ranking_results_)),
        key=lambda j: (tuned.ranking_results_[j]["ndcg@10"], -j),
    )
    row = tuned.ranking_results_[best]
    assert (tuned.ranking.alpha, tuned.ranking.shrinkage, tuned.ranking.n_neighbors) == (
        row["alpha"],
        row["shrinkage"],
        row["n_neighbors"],
    )
    assert tuned.chosen_settings()["ranking_alpha"] == row["alpha"]
    # the lists are those of a plain model set to the chosen ranking
    plain = ItemKNN(k=5).set_ranking(tuned.ranking).fit(ds)
    users = np.arange(60)
    np.testing.assert_array_equal(
        tuned.recommend_many(users, 10).items, plain.recommend_many(users, 10).items
    )
    save_model(tuned, tmp_path / "m")
    again = load_model(tmp_path / "m")
    assert again.ranking == tuned.ranking
    # a ranking the user sets is not overridden, and a set_ranking after fit wins
    fixed = make_model("item-knn", k=5, tune=True).set_ranking(alpha=0.4).fit(ds)
    assert fixed.ranking.alpha == 0.4 and fixed.ranking_results_ == []
    tuned.set_ranking(RankingConfig(alpha=0.45))
    assert tuned.ranking.alpha == 0.45
