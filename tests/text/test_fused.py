"""Text-fused kNN (T-ItemCF / T-UserCF) on a tiny hand-made catalog with a fake embedder."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from llmcf.cf.knn import ItemKNN, UserKNN
from llmcf.data.dataset import Catalog, Dataset
from llmcf.data.vocab import Vocabulary
from llmcf.errors import ConfigError
from llmcf.models import load_model, make_model
from llmcf.persist import save_model
from llmcf.text.ann import text_top_k
from llmcf.text.fused import TItemKNN, TUserKNN, fuse_similarity, rescale_text
from llmcf.text.users import user_vectors

# items 0-5; item 5 ("Alien 2") has text but no ratings
TITLES = ["Alien", "Aliens", "Heat", "Ronin", "Amelie", "Alien 2"]
# hand-made 3-d "embeddings": sci-fi, crime, romance
VECTORS = {
    "Alien": [1.0, 0.0, 0.0],
    "Aliens": [0.9, 0.1, 0.0],
    "Heat": [0.0, 1.0, 0.0],
    "Ronin": [0.1, 0.9, 0.0],
    "Amelie": [0.0, 0.0, 1.0],
    "Alien 2": [0.95, 0.05, 0.0],
}
RATINGS = [  # user, item, rating
    (0, 0, 5), (0, 1, 4), (0, 2, 2), (0, 4, 3),
    (1, 0, 4), (1, 1, 5), (1, 3, 1),
    (2, 2, 5), (2, 3, 4), (2, 4, 2), (2, 0, 1),
    (3, 2, 4), (3, 3, 5), (3, 1, 2),
    (4, 4, 5), (4, 0, 3), (4, 2, 3),
    (5, 1, 5),
]  # fmt: skip


class FakeEmbedder:
    """Looks the title up in VECTORS; counts the texts it embeds."""

    name = "fake"
    version = "1"
    dim = 3
    cacheable = False

    def __init__(self) -> None:
        self.calls = 0

    def embed(
        self, texts: Sequence[str], batch_size: int = 32, progress: bool | None = False
    ) -> np.ndarray:
        self.calls += len(texts)
        out = np.zeros((len(texts), 3), dtype=np.float32)
        for row, text in enumerate(texts):
            key = text.rstrip(".")
            if key in VECTORS:
                out[row] = VECTORS[key]
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return np.divide(out, norms, out=np.zeros_like(out), where=norms > 0)


def make_dataset(ratings: list[tuple[int, int, int]] = RATINGS) -> Dataset:
    u = np.array([r[0] for r in ratings])
    i = np.array([r[1] for r in ratings])
    return Dataset.from_arrays(
        [f"u{x}" for x in u],
        [f"m{x}" for x in i],
        np.array([r[2] for r in ratings], dtype=float),
        users=Vocabulary([f"u{x}" for x in range(6)], name="user"),
        items=Vocabulary([f"m{x}" for x in range(6)], name="item"),
        rating_scale=(1.0, 5.0),
        item_catalog=Catalog({"title": list(TITLES)}),
        name="fused-tiny",
    )


def unit(rows: list[list[float]]) -> np.ndarray:
    a = np.array(rows, dtype=np.float64)
    return a / np.linalg.norm(a, axis=1, keepdims=True)


# ---------------------------------------------------------------------------- formulas
def test_rescale_and_blend_by_hand() -> None:
    cos = np.array([0.9, 0.4, 0.2, -0.5])
    assert np.allclose(rescale_text(cos, 0.4), [0.5 / 0.6, 0.0, 0.0, 0.0])
    assert np.allclose(rescale_text(cos, 0.0, 2.0), [0.81, 0.16, 0.04, 0.0])
    cf = np.array([0.3, 0.1, -0.2, 0.0])
    n = np.array([10.0, 0.0, 5.0, 1.0])
    fixed = fuse_similarity(cf, cos, n, fusion="fixed", alpha=0.7, beta=1.0)
    assert np.allclose(fixed, [0.7 * 0.3 + 0.3 * 0.9, 0.07 + 0.3 * 0.4, -0.14 + 0.06, 0.0])
    support = fuse_similarity(cf, cos, n, fusion="support", alpha=0.0, beta=5.0)
    w = n / (n + 5.0)
    assert np.allclose(support, w * cf + (1 - w) * np.maximum(cos, 0))
    assert support[1] == pytest.approx(0.4)  # no co-ratings: text only
    with pytest.raises(ConfigError, match="fusion"):
        fuse_similarity(cf, cos, n, fusion="max", alpha=0.5, beta=1.0)


def test_dense_fused_matrix_equals_the_formula() -> None:
    ds = make_dataset()
    model = TItemKNN(
        k=3, embedder=FakeEmbedder(), fusion="support", beta=2.0, shift=0.2, amplify=1.0,
        bias_prior=0.0,
    ).fit(ds)  # fmt: skip
    cf_model = ItemKNN(model.config).fit(ds)  # same kNN options (the T defaults)
    v = unit([VECTORS[t] for t in TITLES])
    binary = np.zeros((6, 6))
    for u, i, _ in RATINGS:
        binary[i, u] = 1
    support = binary @ binary.T
    w = support / (support + 2.0)
    text = np.maximum((v @ v.T - 0.2) / 0.8, 0)
    expected = w * cf_model.sim_ + (1 - w) * text
    np.fill_diagonal(expected, 1.0)
    assert model.sim_ is not None
    assert np.allclose(model.sim_, expected)
    # item 5 has no co-raters: its similarities are pure rescaled text
    assert np.allclose(model.sim_[5, :5], text[5, :5])


def test_user_vectors_by_hand() -> None:
    items = unit([[1, 0], [0, 1], [1, 1]]).astype(np.float32)
    # user 0 rates item0 5 and item1 1 -> mean 3, weights +2, -2; user 1 one rating -> plain mean
    vec = user_vectors(np.array([0, 0, 1]), np.array([0, 1, 2]), np.array([5.0, 1, 4]), 3, items)
    assert np.allclose(vec[0], unit([[2, -2]])[0], atol=1e-6)
    assert np.allclose(vec[1], items[2], atol=1e-6)
    assert np.allclose(vec[2], 0.0)  # no ratings
    mean = user_vectors(np.array([0, 0]), np.array([0, 1]), np.array([5.0, 1]), 1, items, "mean")
    assert np.allclose(mean[0], unit([[1, 1]])[0], atol=1e-6)
    with pytest.raises(ConfigError, match="residual"):
        user_vectors(np.array([0]), np.array([0]), np.array([5.0]), 1, items, "residual")


# ---------------------------------------------------------------------------- neighbours
def test_text_top_k_exact() -> None:
    v = unit([VECTORS[t] for t in TITLES]).astype(np.float32)
    v = np.vstack([v, np.zeros((1, 3), np.float32)])
    idx, sim = text_top_k(v, 2, "exact")
    assert list(idx[0]) == [5, 1]  # Alien -> Alien 2, Aliens
    assert sim[0, 0] == pytest.approx(float(v[0] @ v[5]))
    assert list(idx[6]) == [-1, -1]  # zero vector: no neighbours
    assert 6 not in idx


def test_text_top_k_faiss_matches_exact_when_installed() -> None:
    pytest.importorskip("faiss", reason="faiss-cpu (the 'ann' extra) is not installed")
    rng = np.random.default_rng(0)
    v = rng.standard_normal((300, 16)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    exact, _ = text_top_k(v, 5, "exact")
    approx, _ = text_top_k(v, 5, "faiss")
    overlap = np.mean([len(set(a) & set(b)) / 5 for a, b in zip(exact, approx, strict=True)])
    assert overlap > 0.9


def test_sparse_mode_merges_cf_and_text_neighbours() -> None:
    ds = make_dataset()
    opts = dict(
        k=3, embedder=FakeEmbedder(), fusion="fixed", alpha=0.6, shift=0.0, amplify=1.0,
        bias_prior=0.0,
    )  # fmt: skip
    dense = TItemKNN(**opts).fit(ds)
    sparse = TItemKNN(**opts, dense_max=1, n_neighbors=5, n_text_neighbors=5).fit(ds)
    assert not sparse.dense_ and sparse.nbr_idx_ is not None and sparse.nbr_sim_ is not None
    # the cold item 5 has no CF neighbours but gets text ones: Alien first
    assert sparse.nbr_idx_[5, 0] == 0
    # lists long enough to hold every pair: the dense fused matrix, except that a pair missing
    # from the CF top list (negative CF similarity) counts as CF 0
    cf = ItemKNN(dense.config).fit(ds).sim_
    assert cf is not None and dense.sim_ is not None
    v = unit([VECTORS[t] for t in TITLES])
    expected = 0.6 * np.maximum(cf, 0) + 0.4 * np.maximum(v @ v.T, 0)
    for x in range(6):
        keep = sparse.nbr_idx_[x] >= 0
        cols = sparse.nbr_idx_[x][keep]
        assert np.allclose(sparse.nbr_sim_[x][keep], expected[x, cols])
        assert set(cols) == {j for j in range(6) if j != x and expected[x, j] > 0}
        same = cf[x, cols] >= 0
        assert np.allclose(sparse.nbr_sim_[x][keep][same], dense.sim_[x, cols][same])


def test_sparse_union_keeps_text_only_neighbours() -> None:
    ds = make_dataset()
    # one stored CF neighbour, one text neighbour: the union has up to 2 candidates per row
    model = TItemKNN(
        k=2, embedder=FakeEmbedder(), dense_max=1, n_neighbors=2, n_text_neighbors=1, alpha=0.9
    ).fit(ds)
    plain = ItemKNN(k=2, dense_max=1, n_neighbors=2).fit(ds)
    assert model.nbr_idx_ is not None and plain.nbr_idx_ is not None
    v = unit([VECTORS[t] for t in TITLES])
    for x in range(5):
        best_text = int(np.argsort(-(v @ v[x]) + 2 * (np.arange(6) == x))[0])
        union = {int(j) for j in plain.nbr_idx_[x] if j >= 0} | {best_text}
        assert set(model.nbr_idx_[x][model.nbr_idx_[x] >= 0]) <= union


# ---------------------------------------------------------------------------- cold start
def test_cold_item_gets_predictions_and_recommendations() -> None:
    ds = make_dataset()
    plain = ItemKNN(k=3).fit(ds)
    model = TItemKNN(k=3, embedder=FakeEmbedder(), rank_weight=0.3).fit(ds)
    _, fb_plain = plain.predict_detailed(np.array([0]), np.array([5]))
    est, fb = model.predict_detailed(np.array([0, 2]), np.array([5, 5]))
    assert fb_plain[0] and not fb.any()
    # user 0 loves the Alien films, user 2 dislikes Alien: the cold sequel follows
    assert est[0] > est[1]
    recs = model.recommend(5, n=3)
    assert 5 in recs.item_idx.tolist()
    assert 5 not in plain.recommend(5, n=3).item_idx.tolist()


def test_user_with_one_rating_gets_text_neighbours() -> None:
    ds = make_dataset()
    plain = UserKNN(k=3).fit(ds)
    model = TUserKNN(k=3, embedder=FakeEmbedder(), user_repr="centered").fit(ds)
    # user 5 rated only item 1 (Aliens): no CF neighbour, but sci-fi raters by text
    assert plain.sim_ is not None and model.sim_ is not None
    assert not (np.delete(plain.sim_[5], 5) > 0).any()
    nbrs, _ = model.neighbors(5, 3)
    assert len(nbrs) > 0
    _, fb = model.predict_detailed(np.array([5]), np.array([0]))
    assert not fb[0]


# ---------------------------------------------------------------------------- api
def test_make_model_persist_round_trip(tmp_path) -> None:
    ds = make_dataset()
    for name in ("t-item-knn", "t-user-knn"):
        model = make_model(name, k=3, shrinkage=10.0, embedder=FakeEmbedder(), alpha=0.7)
        model.fit(ds)
        save_model(model, tmp_path / name)
        same = load_model(tmp_path / name)
        assert type(same) is type(model)
        assert same.text_config == model.text_config and same.config == model.config
        users = np.repeat(np.arange(6), 6)
        items = np.tile(np.arange(6), 6)
        assert np.array_equal(same.predict(users, items), model.predict(users, items))
        assert same.recommend(0, 3).item_idx.tolist() == model.recommend(0, 3).item_idx.tolist()
        assert same.params_ == model.params_
    # plain kNN ignores the text options in a comparison
    assert isinstance(make_model("item-knn", alpha=0.3, embedder="tfidf"), ItemKNN)
    with pytest.raises(ConfigError, match="fusion"):
        make_model("t-item-knn", fusion="product")
    with pytest.raises(ConfigError, match="unknown"):
        make_model("t-item-knn", alhpa=0.3)


def test_defaults_differ_per_model_and_explicit_options_win() -> None:
    item, user = TItemKNN(), TUserKNN()
    assert (item.text_config.alpha, item.text_config.shift, item.text_config.amplify) == (
        0.75,
        0.2,
        4.0,
    )
    assert item.text_config.bias_prior == 1.0 and user.text_config.bias_prior == 1.0
    assert user.text_config.user_repr == "residual" and user.text_config.amplify == 1.0
    assert user.text_config.alpha == 0.85
    for model in (item, user):
        assert (model.config.reg_u, model.config.reg_i) == (5.0, 2.0)
        assert model.config.correction_shrinkage == 8.0
    assert TItemKNN(alpha=0.3).text_config.alpha == 0.3
    assert TItemKNN(reg_u=15.0, correction_shrinkage=0.0).config.reg_u == 15.0
    # a whole KNNConfig is used as is: the library's kNN defaults, not the T ones
    from llmcf.cf.knn import KNNConfig

    assert TItemKNN(KNNConfig(k=5)).config.correction_shrinkage == 0.0


@pytest.mark.parametrize(("cls", "plain_cls"), [(TItemKNN, ItemKNN), (TUserKNN, UserKNN)])
def test_no_item_text_warns_and_fits_exactly_the_plain_model(cls: type, plain_cls: type) -> None:
    """A data set without item text: a warning, then the plain model with the plain model's
    own non-text defaults -- the same predictions and the same lists, bit for bit."""
    ds = make_dataset()
    bare = Dataset(ds.users, ds.items, ds.user_idx, ds.item_idx, ds.rating, None, name="bare")
    with pytest.warns(
        UserWarning, match="no item has text \\(data set 'bare'\\); fitting the plain"
    ):
        model = cls(k=3, embedder=FakeEmbedder()).fit(bare)
    plain = plain_cls(k=3).fit(bare)
    users, items = np.repeat(np.arange(6), 6), np.tile(np.arange(6), 6)
    np.testing.assert_array_equal(model.predict(users, items), plain.predict(users, items))
    a, b = model.recommend_many(np.arange(6), 6), plain.recommend_many(np.arange(6), 6)
    np.testing.assert_array_equal(a.items, b.items)
    np.testing.assert_array_equal(a.scores, b.scores)
    # an explicit non-text option is kept (only the model's own defaults fall back)
    with pytest.warns(UserWarning):
        tuned = cls(k=3, reg_u=5.0, embedder=FakeEmbedder()).fit(bare)
    assert tuned.fit_config_.reg_u == 5.0 and tuned.fit_config_.reg_i == 10.0
    # --tune: the plain model's own tune, the same choice and the same predictions
    with pytest.warns(UserWarning):
        t_tuned = cls(k=3, tune=True, tune_fraction=0.3, embedder=FakeEmbedder()).fit(bare)
    p_tuned = plain_cls(k=3, tune=True, tune_fraction=0.3).fit(bare)
    assert t_tuned.fit_config_ == p_tuned.fit_config_
    np.testing.assert_array_equal(t_tuned.predict(users, items), p_tuned.predict(users, items))
    # a profile mode without profiles is still an error, not a silent fallback
    with pytest.raises(ConfigError):
        cls(k=3, embedder=FakeEmbedder(), item_text="profile").fit(bare)


# ---------------------------------------------------------------------------- tuning
def test_tune_uses_only_a_carve_of_the_training_data() -> None:
    rng = np.random.default_rng(1)
    ratings = [
        (u, i, int(rng.integers(1, 6))) for u in range(6) for i in range(5) if rng.random() < 0.8
    ]
    ds = make_dataset(ratings)
    train_idx = np.arange(0, len(ds) - 4)
    test_idx = np.arange(len(ds) - 4, len(ds))
    train = ds.subset(train_idx)
    model = TItemKNN(k=3, embedder=FakeEmbedder(), tune=True, tune_fraction=0.3).fit(train)
    assert model.tune_validation_.max() < len(train)
    assert len(model.tune_results_) > 1
    best = min(model.tune_results_, key=lambda r: r["mae"])
    assert model.params_ is not None and model.params_["alpha"] == best["alpha"]
    # changing the test ratings changes nothing the tuner saw
    altered = ds.subset(np.concatenate([train_idx, test_idx]))
    altered.rating[len(train_idx) :] = 6.0 - altered.rating[len(train_idx) :]
    again = TItemKNN(k=3, embedder=FakeEmbedder(), tune=True, tune_fraction=0.3).fit(
        altered.subset(np.arange(len(train_idx)))
    )
    assert again.tune_results_ == model.tune_results_


# ---------------------------------------------------------------------------- real model
def test_default_minilm_on_a_few_texts_and_the_cache(tmp_path, monkeypatch) -> None:
    """The real default embedder once: sensible neighbours, and a warm cache embeds nothing."""
    pytest.importorskip("onnxruntime")
    from llmcf.text.embedders import MissingDependencyError, make_embedder

    monkeypatch.setenv("LLMCF_CACHE_DIR", str(tmp_path))
    try:
        embedder = make_embedder("minilm")
    except MissingDependencyError as exc:  # pragma: no cover - depends on the install
        pytest.skip(str(exc))
    titles = ["Alien (1979). Genres: Horror, Sci-Fi.", "Aliens (1986). Genres: Action, Sci-Fi.",
              "Heat (1995). Genres: Action, Crime.", "Ronin (1998). Genres: Action, Crime.",
              "Amelie (2001). Genres: Comedy, Romance.", "Alien 3 (1992). Genres: Horror, Sci-Fi."]  # fmt: skip
    ds = make_dataset()
    ds.item_catalog.fields["title"] = titles
    calls: list[int] = []
    original = embedder.embed

    def counting(texts: Sequence[str], *args: object, **kwargs: object) -> np.ndarray:
        calls.append(len(texts))
        return original(texts, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(embedder, "embed", counting)
    model = TItemKNN(k=3, embedder=embedder).fit(ds)
    assert sum(calls) == 6
    nbrs, _ = model.neighbors(5, 1)
    assert nbrs[0] == 0  # Alien 3 -> Alien
    TItemKNN(k=3, embedder=embedder).fit(ds)
    assert sum(calls) == 6  # second fit: everything from the cache


@pytest.mark.parametrize("cls", [TItemKNN, TUserKNN])
def test_shipped_model_contract(cls: type) -> None:
    from llmcf.testing.contracts import check_model_contract

    check_model_contract(lambda: cls(k=3, embedder=FakeEmbedder()), make_dataset())


# ---------------------------------------------------------------------------- T-ranking
def test_t_ranking_weight_zero_is_exactly_the_plain_ranking() -> None:
    ds = make_dataset()
    plain = ItemKNN(k=3).fit(ds)
    model = TItemKNN(k=3, embedder=FakeEmbedder(), rank_weight=0.0).fit(ds)
    users = np.arange(ds.n_users)
    a, b = model.recommend_many(users, 6), plain.recommend_many(users, 6)
    np.testing.assert_array_equal(a.items, b.items)
    np.testing.assert_array_equal(a.scores, b.scores)


def test_t_ranking_blends_text_into_the_ranking_similarity() -> None:
    ds = make_dataset()
    plain = ItemKNN(k=3).fit(ds)
    w = 0.4
    model = TItemKNN(k=3, embedder=FakeEmbedder(), rank_weight=w).fit(ds)
    S = plain.ranking_neighbors().toarray()
    v = unit([VECTORS[t] for t in TITLES]).astype(np.float64)
    cos = np.maximum(v @ v.T, 0.0)
    np.fill_diagonal(cos, 0.0)
    expected = (1 - w) * S + w * cos  # every pair is a neighbour on 6 items
    np.testing.assert_allclose(model.ranking_neighbors().toarray(), expected, atol=1e-12)


def test_t_ranking_weight_is_chosen_on_training_data_only() -> None:
    """The weight comes from a carve of the data given to fit: whatever test data an
    experiment holds, refitting on the same training data chooses the same weight, and the
    grid includes 0 (the plain model)."""
    from llmcf.text.fused import RANK_WEIGHT_GRID

    ds = make_dataset()
    first = TItemKNN(k=3, embedder=FakeEmbedder()).fit(ds)
    again = TItemKNN(k=3, embedder=FakeEmbedder()).fit(ds)
    assert first.rank_weight_ == again.rank_weight_ and first.rank_weight_ in RANK_WEIGHT_GRID
    assert [row["rank_weight"] for row in first.rank_results_] == list(RANK_WEIGHT_GRID)
    assert 0.0 in RANK_WEIGHT_GRID


def test_no_item_text_gives_the_plain_ranking() -> None:
    class Blank(FakeEmbedder):
        def embed(self, texts, batch_size=32, progress=False):  # type: ignore[no-untyped-def]
            return np.zeros((len(texts), 3), dtype=np.float32)

    ds = make_dataset()
    with pytest.warns(UserWarning, match="no item has text"):
        model = TItemKNN(k=3, embedder=Blank()).fit(ds)
    assert model.rank_weight_ == 0.0
    plain = ItemKNN(k=3).fit(ds)
    users = np.arange(ds.n_users)
    np.testing.assert_array_equal(
        model.recommend_many(users, 6).items, plain.recommend_many(users, 6).items
    )


def _clustered(seed: int = 0) -> tuple[Dataset, np.ndarray]:
    """40 users who each like one of two text clusters of 24 items; items 20-23 of each
    cluster have text but no interactions. Returns (dataset, item cluster)."""
    rng = np.random.default_rng(seed)
    cluster = np.repeat([0, 1], 24)
    warm = np.flatnonzero(np.tile(np.arange(24) < 20, 2))
    rows = []
    for u in range(40):
        liked = u % 2
        for j in rng.choice(warm, size=12, replace=False):
            rows.append((u, int(j), 5 if cluster[j] == liked else 1))
    ds = Dataset.from_arrays(
        [f"u{r[0]}" for r in rows],
        [f"i{r[1]}" for r in rows],
        np.array([r[2] for r in rows], dtype=float),
        users=Vocabulary([f"u{x}" for x in range(40)], name="user"),
        items=Vocabulary([f"i{x}" for x in range(48)], name="item"),
        rating_scale=(1.0, 5.0),
        item_catalog=Catalog({"title": [f"c{c}-{j}" for j, c in enumerate(cluster)]}),
        name="clustered",
    )
    return ds, cluster


class ClusterEmbedder(FakeEmbedder):
    """Texts "c<k>-<j>": a unit vector near axis k (a little per-item noise)."""

    def embed(self, texts, batch_size=32, progress=False):  # type: ignore[no-untyped-def]
        out = np.zeros((len(texts), 3), dtype=np.float32)
        for row, text in enumerate(texts):
            k, j = text.rstrip(".").lstrip("c").split("-")
            out[row, int(k)] = 1.0
            out[row, 2] = 0.1 * (int(j) % 5)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def test_cold_carve_holds_out_every_interaction_of_the_cold_items() -> None:
    from llmcf.eval.select import cold_carve

    ds, _ = _clustered()
    rest, held = cold_carve(ds, cold_items=0.25, fraction=0.1, seed=3)
    assert len(rest) + len(held) == len(ds)
    in_rest = set(rest.item_idx.tolist())
    gone = set(held.item_idx.tolist()) - in_rest
    assert len(gone) == round(0.25 * 40)  # 40 items have interactions
    assert not gone & in_rest
    again, _ = cold_carve(ds, cold_items=0.25, fraction=0.1, seed=3)
    np.testing.assert_array_equal(rest.item_idx, again.item_idx)
    with pytest.raises(ConfigError, match="cold item fraction"):
        cold_carve(ds, cold_items=0.0)


def test_cold_items_rank_by_text_with_the_warm_weight_or_the_floor() -> None:
    """Items without interactions are scored by text with the chosen warm weight (at least
    COLD_TEXT_FLOOR, so with a warm weight of 0 they are still ordered by their text, below
    every CF-scored item): the cold items of a user's liked cluster come first."""
    from llmcf.text.fused import COLD_TEXT_FLOOR

    ds, cluster = _clustered()
    fixed = TItemKNN(k=5, embedder=ClusterEmbedder(), rank_weight=0.0).fit(ds)
    # an explicit rank_weight fixes both weights unless cold_rank_weight is given
    assert fixed.cold_rank_weight_ == 0.0 and fixed.cold_rank_results_ == []
    model = TItemKNN(k=5, embedder=ClusterEmbedder()).fit(ds)
    assert model.cold_rank_weight_ == max(model.rank_weight_, COLD_TEXT_FLOOR)
    cold = np.flatnonzero(model.popularity() == 0)
    assert len(cold) == 8
    recs = model.recommend_many(np.arange(40), 4, candidates=cold)
    liked = np.arange(40) % 2
    assert (cluster[recs.items] == liked[:, None]).all()
    assert not recs.was_fallback.any()
    # with the floor, cold items come after every item the CF similarity scores
    floor = TItemKNN(
        k=5, embedder=ClusterEmbedder(), rank_weight=0.0, cold_rank_weight=COLD_TEXT_FLOOR
    ).fit(ds)
    full = floor.recommend_many(np.arange(40), 48)
    for row in range(40):
        listed = full.items[row][full.items[row] >= 0]
        is_cold = np.isin(listed, cold)
        assert is_cold.sum() == 8 and is_cold[-8:].all()  # the cold items close every list
    # the plain model cannot tell the cold items apart
    plain = ItemKNN(k=5).fit(ds)
    assert plain.recommend_many(np.arange(40), 4, candidates=cold).was_fallback.all()


def test_ranking_probe_lists_equal_a_full_fit() -> None:
    """The light probe the text weights are chosen with ranks exactly as a full fit."""
    ds, _ = _clustered()
    model = TItemKNN(k=5, embedder=ClusterEmbedder(), rank_weight=0.2, cold_rank_weight=0.5)
    model.fit(ds)
    probe = model._ranking_probe(ds, 0.2, 0.5)
    users = np.arange(40)
    a, b = probe.recommend_many(users, 10), model.recommend_many(users, 10)
    np.testing.assert_array_equal(a.items, b.items)
    np.testing.assert_array_equal(a.scores, b.scores)
