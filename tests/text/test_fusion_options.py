"""The T-model options added for issue 3: amplify, bias_prior (text-informed item biases),
correction_shrinkage (kNN), candidate-restricted text neighbours, and their tuning/CLI paths.

Every expectation is computed by hand (or by the literal formula) on the tiny catalog of
``test_fused.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from tests.text.test_fused import RATINGS, TITLES, VECTORS, FakeEmbedder, make_dataset, unit

from llmcf.cf.baselines import BaselineConfig, fit_baselines
from llmcf.cf.knn import ItemKNN, KNNConfig, UserKNN
from llmcf.errors import ConfigError
from llmcf.models import load_model, make_model
from llmcf.persist import save_model
from llmcf.text.ann import text_top_k
from llmcf.text.fused import AMPLIFY_GRID, TItemKNN, TUserKNN, fuse_similarity
from llmcf.text.priors import text_prior_baselines, text_prior_weights

NO_TEXT_EXTRAS = {"amplify": 1.0, "bias_prior": 0.0}


# ---------------------------------------------------------------------------- amplify
def test_amplify_by_hand() -> None:
    cf = np.array([0.5, 0.2, -0.4, 0.0])
    cos = np.array([1.0, 0.0, 0.0, 0.5])
    # fixed alpha=0.5, shift 0: s = [0.75, 0.1, -0.2, 0.25]
    out = fuse_similarity(cf, cos, np.zeros(4), fusion="fixed", alpha=0.5, beta=1.0, amplify=2.0)
    assert np.allclose(out, [0.5625, 0.01, -0.2, 0.0625])  # negatives are left as they are
    plain = fuse_similarity(cf, cos, np.zeros(4), fusion="fixed", alpha=0.5, beta=1.0)
    assert np.allclose(plain, [0.75, 0.1, -0.2, 0.25])
    with pytest.raises(ConfigError, match="amplify"):
        TItemKNN(amplify=0.0)


def test_amplify_powers_the_fused_matrix_and_keeps_the_neighbour_order() -> None:
    ds = make_dataset()
    opts = dict(k=3, embedder=FakeEmbedder(), alpha=0.6, shift=0.0, bias_prior=0.0)
    one = TItemKNN(**opts, amplify=1.0).fit(ds)
    three = TItemKNN(**opts, amplify=3.0).fit(ds)
    assert one.sim_ is not None and three.sim_ is not None
    expected = np.where(one.sim_ > 0, one.sim_**3, one.sim_)
    assert np.allclose(three.sim_, expected)
    assert three.params_ is not None and three.params_["amplify"] == 3.0
    for x in range(6):
        assert one.neighbors(x, 5)[0].tolist() == three.neighbors(x, 5)[0].tolist()
    # different weights: the prediction of some pair changes
    users, items = np.repeat(np.arange(6), 6), np.tile(np.arange(6), 6)
    assert not np.allclose(one.predict(users, items), three.predict(users, items))


def test_amplify_in_sparse_mode_equals_dense() -> None:
    ds = make_dataset()
    opts = dict(k=3, embedder=FakeEmbedder(), alpha=0.6, shift=0.0, amplify=2.0, bias_prior=0.0)
    dense = TItemKNN(**opts).fit(ds)
    sparse = TItemKNN(**opts, dense_max=1, n_neighbors=5, n_text_neighbors=5).fit(ds)
    assert dense.sim_ is not None and sparse.nbr_idx_ is not None and sparse.nbr_sim_ is not None
    cf = ItemKNN(dense.config).fit(ds).sim_
    assert cf is not None
    checked = 0
    for x in range(6):
        keep = sparse.nbr_idx_[x] >= 0
        cols = sparse.nbr_idx_[x][keep]
        same = cf[x, cols] >= 0  # sparse counts a negative CF pair as CF 0
        assert np.allclose(sparse.nbr_sim_[x][keep][same], dense.sim_[x, cols][same])
        checked += int(same.sum())
    assert checked >= 10


# ---------------------------------------------------------------------------- kNN damping
def _by_hand_shrunk(plain: np.ndarray, base: np.ndarray, n: np.ndarray, gamma: float) -> np.ndarray:
    return np.clip(base + (plain - base) * n / (n + gamma), 1.0, 5.0)


@pytest.mark.parametrize("cls", [ItemKNN, UserKNN])
def test_correction_shrinkage_damps_by_the_other_sides_rating_count(cls: type) -> None:
    ds = make_dataset()
    users, items = np.repeat(np.arange(6), 5), np.tile(np.arange(5), 6)
    gamma = 4.0
    plain = cls(KNNConfig(k=3, reg_u=5.0, reg_i=2.0)).fit(ds)
    damped = cls(KNNConfig(k=3, reg_u=5.0, reg_i=2.0, correction_shrinkage=gamma)).fit(ds)
    est0, fb0, _ = plain.predict_k(users, items, [3])
    est, fb, _ = damped.predict_k(users, items, [3])
    assert np.array_equal(fb, fb0)
    # unclipped plain estimates: the T test data keep every estimate inside [1, 5] except
    # where it is clipped; compare only pairs strictly inside the scale
    inside = (est0[:, 0] > 1.0) & (est0[:, 0] < 5.0) & ~fb0[:, 0]
    assert inside.sum() >= 10
    base = plain.mu_ + plain.bu_[users] + plain.bi_[items]
    counts = np.bincount(ds.item_idx if cls is UserKNN else ds.user_idx, minlength=6)
    n = counts[items] if cls is UserKNN else counts[users]
    expected = _by_hand_shrunk(est0[:, 0], base, n.astype(float), gamma)
    assert np.allclose(est[inside, 0], expected[inside])
    # user 5 has one rating: an item-based correction keeps 1/5 of itself
    if cls is ItemKNN:
        row = (users == 5) & inside
        assert row.any()
        assert np.allclose(est[row, 0] - base[row], (est0[row, 0] - base[row]) / 5.0)


def test_correction_shrinkage_basic_rule_shrinks_towards_the_global_mean() -> None:
    ds = make_dataset()
    users, items = np.array([5, 5, 0]), np.array([0, 3, 2])
    plain = ItemKNN(k=3, prediction="basic").fit(ds)
    damped = ItemKNN(k=3, prediction="basic", correction_shrinkage=1.0).fit(ds)
    e0, e1 = plain.predict(users, items), damped.predict(users, items)
    mu = float(ds.rating.mean())
    n = np.array([1.0, 1.0, 4.0])  # ratings of users 5, 5, 0
    assert np.allclose(e1, mu + (e0 - mu) * n / (n + 1.0))
    with pytest.raises(ConfigError, match="correction_shrinkage"):
        KNNConfig(correction_shrinkage=-1.0)


def test_correction_shrinkage_zero_is_the_plain_model() -> None:
    ds = make_dataset()
    users, items = np.repeat(np.arange(6), 6), np.tile(np.arange(6), 6)
    a = ItemKNN(k=3).fit(ds).predict(users, items)
    b = ItemKNN(k=3, correction_shrinkage=0.0).fit(ds).predict(users, items)
    assert np.array_equal(a, b)


# ---------------------------------------------------------------------------- text prior
def test_text_top_k_restricted_to_candidates() -> None:
    v = unit([VECTORS[t] for t in TITLES]).astype(np.float32)
    candidates = np.array([False, True, True, True, True, False])  # not Alien, not Alien 2
    idx, sim = text_top_k(v, 2, "exact", candidates=candidates)
    assert list(idx[0]) == [1, 3]  # Alien -> Aliens, then Ronin (0.1 sci-fi)
    assert list(idx[5]) == [1, 3]  # a non-candidate still gets neighbours
    assert sim[0, 0] == pytest.approx(float(v[0] @ v[1]))
    assert not np.isin(idx, [0, 5]).any()  # nobody gets a non-candidate
    assert idx[1, 0] != 1  # self excluded
    few, _ = text_top_k(v, 5, "exact", candidates=np.array([1, 1, 0, 0, 0, 0], dtype=bool))
    assert list(few[0]) == [1, -1, -1, -1, -1] and list(few[1]) == [0, -1, -1, -1, -1]
    with pytest.raises(ConfigError, match="candidates"):
        text_top_k(v, 2, candidates=np.ones(3, dtype=bool))


def test_text_prior_weights_by_hand() -> None:
    v = unit([[1, 0], [1, 1], [0, 1], [-1, 0]]).astype(np.float32)
    v = np.vstack([v, np.zeros((1, 2), np.float32)])  # item 4: no text
    rated = np.array([True, True, True, True, False])
    w = text_prior_weights(v, rated, k=2).toarray()
    # item 0: neighbours 1 (cos .707) and 2 (cos 0); the zero cosine weighs nothing
    assert np.allclose(w[0], [0, 1, 0, 0, 0])
    # item 1: neighbours 0 and 2, both cos .707: half each
    assert np.allclose(w[1], [0.5, 0, 0.5, 0, 0])
    # item 3 (-1, 0): its best neighbours have cos 0 and -.707: no positive weight
    assert np.allclose(w[3], 0.0)
    assert np.allclose(w[4], 0.0)  # no text
    assert np.allclose(w.sum(axis=1), [1, 1, 1, 0, 0])
    assert w[2, 1] == pytest.approx(1.0)
    with pytest.raises(ConfigError, match="bias_prior_k"):
        text_prior_weights(v, rated, k=0)


def test_text_prior_baselines_one_epoch_by_hand() -> None:
    # items 0 and 1 are text neighbours (W = [[0, 1], [1, 0]] plus an unrated item 2 -> 0)
    u = np.array([0, 0, 1])
    i = np.array([0, 1, 0])
    r = np.array([5.0, 3.0, 4.0])
    w = sp.csr_matrix(np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]))
    mu, bu, bi = text_prior_baselines(
        u, i, r, 2, 3, w, strength=1.0, reg_u=1.0, reg_i=2.0, n_epochs=1
    )
    assert mu == pytest.approx(4.0)
    # epoch 1, items first with b = 0: b_0 = (1 + 0) / (2 + 2), b_1 = (-1) / (2 + 1)
    # b_2 (no ratings) = prior = b_0 of the previous sweep = 0
    assert np.allclose(bi, [0.25, -1 / 3, 0.0])
    # users: b_0 = ((1 - .25) + (-1 + 1/3)) / (1 + 2), b_1 = (0 - .25) / (1 + 1)
    assert np.allclose(bu, [(0.75 - 2 / 3) / 3, -0.125])
    # a second epoch uses the priors: b_2 follows b_0 exactly
    _, _, bi2 = text_prior_baselines(
        u, i, r, 2, 3, w, strength=1.0, reg_u=1.0, reg_i=2.0, n_epochs=2
    )
    b0_prev, b1_prev = 0.25, -1 / 3
    assert bi2[2] == pytest.approx(b0_prev)
    bu1 = np.array([(0.75 - 2 / 3) / 3, -0.125])
    assert bi2[0] == pytest.approx(((1 - bu1[0]) + (0 - bu1[1]) + 2 * b1_prev) / 4)
    with pytest.raises(ConfigError, match="bias_prior"):
        text_prior_baselines(u, i, r, 2, 3, w, strength=1.5)


def test_text_prior_strength_zero_is_the_plain_als() -> None:
    ds = make_dataset()
    w = text_prior_weights(unit([VECTORS[t] for t in TITLES]), np.ones(6, dtype=bool), k=2)
    cfg = BaselineConfig(reg_u=5.0, reg_i=2.0)
    mu, bu, bi = fit_baselines(ds.user_idx, ds.item_idx, ds.rating, 6, 6, cfg)
    mu2, bu2, bi2 = text_prior_baselines(
        ds.user_idx, ds.item_idx, ds.rating, 6, 6, w, strength=0.0, reg_u=5.0, reg_i=2.0
    )
    assert mu2 == pytest.approx(mu)
    assert np.allclose(bu2, bu) and np.allclose(bi2, bi)


def test_t_models_use_the_text_prior_baselines() -> None:
    ds = make_dataset()
    for cls in (TItemKNN, TUserKNN):
        model = cls(k=3, embedder=FakeEmbedder(), bias_prior=1.0, bias_prior_k=2).fit(ds)
        rated = np.bincount(ds.item_idx, minlength=6) > 0
        w = text_prior_weights(unit([VECTORS[t] for t in TITLES]), rated, k=2)
        _, bu, bi = text_prior_baselines(
            ds.user_idx, ds.item_idx, ds.rating, 6, 6, w, strength=1.0, reg_u=5.0, reg_i=2.0
        )
        assert np.allclose(model.bi_, bi) and np.allclose(model.bu_, bu)
        # the unrated "Alien 2" gets the weighted bias of its text neighbours (previous sweep)
        _, _, previous = text_prior_baselines(
            ds.user_idx, ds.item_idx, ds.rating, 6, 6, w, reg_u=5.0, reg_i=2.0, n_epochs=9
        )
        assert set(w[5].indices) == {0, 1}  # Alien, Aliens
        assert model.bi_[5] == pytest.approx(float((w[5] @ previous)[0]))
        assert model.bi_[5] != 0.0
        off = cls(k=3, embedder=FakeEmbedder(), bias_prior=0.0).fit(ds)
        _, plain_bu, plain_bi = fit_baselines(
            ds.user_idx, ds.item_idx, ds.rating, 6, 6, BaselineConfig(reg_u=5.0, reg_i=2.0)
        )
        assert np.array_equal(off.bi_, plain_bi) and np.array_equal(off.bu_, plain_bu)
        assert off.bi_[5] == 0.0


def test_cold_item_prediction_uses_its_text_bias() -> None:
    ds = make_dataset()
    model = TItemKNN(k=3, embedder=FakeEmbedder(), bias_prior=1.0).fit(ds)
    no_prior = TItemKNN(k=3, embedder=FakeEmbedder(), bias_prior=0.0).fit(ds)
    # user 1 rated the two Alien films 4 and 5: the cold sequel's baseline moves with b_5
    b = model.mu_ + model.bu_[1] + model.bi_[5]
    b0 = no_prior.mu_ + no_prior.bu_[1] + no_prior.bi_[5]
    assert b != pytest.approx(b0)
    assert model.predict(np.array([1]), np.array([5]))[0] != pytest.approx(
        no_prior.predict(np.array([1]), np.array([5]))[0]
    )


def test_bias_prior_validation() -> None:
    with pytest.raises(ConfigError, match="bias_prior"):
        TItemKNN(bias_prior=1.5)
    with pytest.raises(ConfigError, match="bias_prior_k"):
        TItemKNN(bias_prior_k=0)
    with pytest.raises(ConfigError, match="ALS"):
        TItemKNN(baseline_method="sgd")
    assert TItemKNN(baseline_method="sgd", bias_prior=0.0).config.baseline_method == "sgd"


# ---------------------------------------------------------------------------- tune, persist, CLI
def test_tune_grid_covers_amplify_and_applies_the_best() -> None:
    from llmcf.cf.knn import FIT_GRID

    rng = np.random.default_rng(2)
    ratings = [
        (u, i, int(rng.integers(1, 6))) for u in range(6) for i in range(5) if rng.random() < 0.8
    ]
    ds = make_dataset(ratings)
    model = TItemKNN(k=3, embedder=FakeEmbedder(), tune=True, tune_fraction=0.3).fit(ds)
    assert {row["amplify"] for row in model.tune_results_} == set(AMPLIFY_GRID)
    best = min(model.tune_results_, key=lambda row: row["mae"])
    assert model.params_ is not None
    assert model.params_["amplify"] == best["amplify"] and model.params_["alpha"] == best["alpha"]
    again = TItemKNN(
        k=3,
        embedder=FakeEmbedder(),
        alpha=best["alpha"],
        shift=best["shift"],
        amplify=best["amplify"],
        reg_u=best["reg_u"],
        reg_i=best["reg_i"],
        correction_shrinkage=best["correction_shrinkage"],
        bias_prior=best["bias_prior"],
    ).fit(ds)
    # the non-text fit settings are chosen in the same grid (the plain kNN's tune grid)
    assert {(r["reg_u"], r["reg_i"], r["correction_shrinkage"]) for r in model.tune_results_} == {
        (g["reg_u"], g["reg_i"], g["correction_shrinkage"]) for g in FIT_GRID
    }
    assert model.fit_config_.correction_shrinkage == best["correction_shrinkage"]
    assert again.sim_ is not None and model.sim_ is not None
    assert np.allclose(again.sim_, model.sim_)


def test_new_options_persist_and_pass_through_make_model(tmp_path) -> None:
    ds = make_dataset()
    model = make_model(
        "t-item-knn",
        k=3,
        embedder=FakeEmbedder(),
        amplify=2.0,
        bias_prior=0.5,
        correction_shrinkage=3.0,
        reg_u=7.0,
    )
    assert model.text_config.amplify == 2.0 and model.text_config.bias_prior == 0.5
    assert model.config.correction_shrinkage == 3.0 and model.config.reg_u == 7.0
    assert model.config.reg_i == 2.0  # the T default stays for what is not given
    model.fit(ds)
    save_model(model, tmp_path / "m")
    same = load_model(tmp_path / "m")
    assert same.config == model.config and same.text_config == model.text_config
    users, items = np.repeat(np.arange(6), 6), np.tile(np.arange(6), 6)
    assert np.array_equal(same.predict(users, items), model.predict(users, items))
    plain = make_model("item-knn", amplify=2.0, bias_prior=1.0, correction_shrinkage=3.0)
    assert isinstance(plain, ItemKNN) and plain.config.correction_shrinkage == 3.0


def test_cli_passes_the_new_options() -> None:
    from llmcf.cli import _model_options, build_parser

    args = build_parser().parse_args(
        [
            "evaluate", "--data", "x", "--model", "t-item-knn", "--amplify", "2",
            "--bias-prior", "0", "--correction-shrinkage", "4", "--reg-u", "6", "--reg-i", "3",
        ]
    )  # fmt: skip
    opts = _model_options(args)
    assert opts["amplify"] == 2.0 and opts["bias_prior"] == 0.0
    assert opts["correction_shrinkage"] == 4.0 and (opts["reg_u"], opts["reg_i"]) == (6.0, 3.0)
    model = make_model("t-item-knn", **opts)
    assert model.text_config.bias_prior == 0.0 and model.config.reg_i == 3.0
    bare = _model_options(build_parser().parse_args(["evaluate", "--data", "x"]))
    assert bare["amplify"] is None and bare["correction_shrinkage"] is None


def test_no_text_t_item_knn_equals_item_knn_with_the_same_knn_options() -> None:
    """alpha = 1, no amplification, no prior: the T model is its plain kNN (the ablation)."""
    ds = make_dataset(RATINGS)
    model = TItemKNN(k=3, embedder=FakeEmbedder(), alpha=1.0, **NO_TEXT_EXTRAS).fit(ds)
    plain = ItemKNN(model.config).fit(ds)
    users, items = np.repeat(np.arange(6), 5), np.tile(np.arange(5), 6)
    assert np.allclose(model.predict(users, items), plain.predict(users, items))
