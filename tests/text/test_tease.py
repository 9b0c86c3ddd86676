"""T-EASE (EASE with item-text rows): the closed form against an independent stacked ridge
reference, beta = 0 is EASE bit for bit, cold items scored from text, the weights chosen on
carves of the training data, the no-text fallback, the bounded variant and persistence."""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Sequence

import numpy as np
import pytest
from tests.conftest import movielens_folder
from tests.text.test_fused import TITLES, FakeEmbedder, make_dataset

from llmcf.cf.ease import EASE
from llmcf.data.dataset import Catalog, Dataset
from llmcf.data.vocab import Vocabulary
from llmcf.errors import ConfigError
from llmcf.models import load_model, make_model
from llmcf.persist import save_model
from llmcf.ranking.lists import SOURCE_TEXT
from llmcf.text.tease import (
    BETA_GRID,
    TEASE,
    TEASEConfig,
    cold_validation_ndcg,
    text_gram_lists,
)


class ArrayEmbedder:
    """Embeds the text ``"t<k>"`` as row k of a fixed matrix (L2-normalised)."""

    name = "array"
    version = "1"
    cacheable = False

    def __init__(self, vectors: np.ndarray) -> None:
        v = np.asarray(vectors, dtype=np.float64)
        norms = np.linalg.norm(v, axis=1, keepdims=True)
        self.vectors = np.divide(v, norms, out=np.zeros_like(v), where=norms > 0).astype(np.float32)
        self.dim = v.shape[1]

    def embed(
        self, texts: Sequence[str], batch_size: int = 32, progress: bool | None = False
    ) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            key = text.rstrip(".")
            if key.startswith("t"):
                out[row] = self.vectors[int(key[1:])]
        return out


def clustered(
    seed: int = 0, n_users: int = 80, n_items: int = 40, n_cold: int = 8, clusters: int = 4
) -> tuple[Dataset, np.ndarray, np.ndarray]:
    """Users like the items of one text cluster; the first ``n_cold`` items have text and no
    interactions. Returns (dataset, item vectors, cluster of each item)."""
    rng = np.random.default_rng(seed)
    cluster = np.arange(n_items) % clusters
    vectors = np.eye(clusters)[cluster] + 0.25 * rng.random((n_items, clusters))
    rows = []
    for u in range(n_users):
        c = u % clusters
        liked = np.flatnonzero((cluster == c) & (np.arange(n_items) >= n_cold))
        for i in rng.choice(liked, size=min(5, len(liked)), replace=False):
            rows.append((u, int(i), 5.0))
        other = np.flatnonzero((cluster != c) & (np.arange(n_items) >= n_cold))
        rows.append((u, int(rng.choice(other)), 5.0))
    u = np.array([r[0] for r in rows])
    i = np.array([r[1] for r in rows])
    ds = Dataset.from_arrays(
        u,
        i,
        np.array([r[2] for r in rows]),
        users=Vocabulary(np.arange(n_users), name="user"),
        items=Vocabulary(np.arange(n_items), name="item"),
        rating_scale=(1.0, 5.0),
        item_catalog=Catalog({"title": [f"t{k}" for k in range(n_items)]}),
        name="clustered",
    )
    return ds, vectors, cluster


def unit(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    n = np.linalg.norm(a, axis=1, keepdims=True)
    return np.divide(a, n, out=np.zeros_like(a), where=n > 0)


def stacked_reference(X: np.ndarray, E: np.ndarray, weight: float, lam: float) -> np.ndarray:
    """Independent reference: column j of B is the ridge regression of column j of the
    stacked matrix Y = [X; sqrt(weight) E^T] on its other columns (no inverse of G)."""
    Y = np.vstack([X, np.sqrt(weight) * E.T])
    n = Y.shape[1]
    B = np.zeros((n, n))
    for j in range(n):
        o = [i for i in range(n) if i != j]
        A = Y[:, o]
        B[o, j] = np.linalg.solve(A.T @ A + lam * np.eye(n - 1), A.T @ Y[:, j])
    return B


def positives_of(ds: Dataset) -> np.ndarray:
    return (ds.matrix().toarray() >= 4).astype(float)


# ---------------------------------------------------------------------------- closed form
def test_closed_form_equals_the_stacked_ridge_reference() -> None:
    ds = make_dataset()
    model = TEASE(lam=3.0, text_beta=0.7, cold_text_beta=0.7, embedder=FakeEmbedder()).fit(ds)
    X = positives_of(ds)
    E = unit(np.array(FakeEmbedder().embed(TITLES), dtype=np.float64))
    scale = X.sum() / (E**2).sum()  # mean diag of X^T X / mean diag of E E^T
    assert model.text_scale_ == pytest.approx(scale, rel=1e-12)
    ref = stacked_reference(X, E, 0.7 * scale, 3.0)
    assert model.B_ is not None
    np.testing.assert_allclose(model.B_, ref, rtol=0, atol=1e-9)


def test_cold_columns_use_their_own_weight() -> None:
    ds = make_dataset()  # item 5 has text and no ratings
    model = TEASE(lam=2.0, text_beta=0.5, cold_text_beta=4.0, embedder=FakeEmbedder()).fit(ds)
    X = positives_of(ds)
    E = unit(np.array(FakeEmbedder().embed(TITLES), dtype=np.float64))
    s = float(model.text_scale_ or 0.0)
    warm_ref = stacked_reference(X, E, 0.5 * s, 2.0)
    cold_ref = stacked_reference(X, E, 4.0 * s, 2.0)
    assert model.B_ is not None
    np.testing.assert_allclose(model.B_[:, :5], warm_ref[:, :5], rtol=0, atol=1e-9)
    np.testing.assert_allclose(model.B_[:, 5], cold_ref[:, 5], rtol=0, atol=1e-9)


def test_beta_zero_is_exactly_ease() -> None:
    ds = make_dataset()
    plain = EASE(lam=4.0).fit(ds)
    model = TEASE(lam=4.0, text_beta=0.0, cold_text_beta=0.0, embedder=FakeEmbedder()).fit(ds)
    assert model.B_ is not None and plain.B_ is not None
    assert np.array_equal(model.B_, plain.B_)  # bit for bit
    np.testing.assert_array_equal(model.item_known_, plain.item_known_)
    a = model.recommend_many(np.arange(6), 6)
    b = plain.recommend_many(np.arange(6), 6)
    np.testing.assert_array_equal(a.items, b.items)
    np.testing.assert_array_equal(a.scores, b.scores)
    assert not model.item_known_[5]  # the cold item gets no score without text weight


def test_validation_fits_through_woodbury_equal_direct_fits() -> None:
    ds, vectors, _ = clustered(n_users=50, n_items=20, n_cold=3)
    embedder = ArrayEmbedder(vectors)
    model = TEASE(lam=10.0, embedder=embedder)
    given = embedder.embed([f"t{k}" for k in range(20)])
    seen = []
    for w, probe in model._probes(ds, 10.0, given):
        direct = TEASE(lam=10.0, text_beta=w, cold_text_beta=w, embedder=embedder).fit(ds)
        assert probe.B_ is not None and direct.B_ is not None
        np.testing.assert_allclose(probe.B_, direct.B_, rtol=0, atol=1e-10)
        if w == 0.0:  # plain EASE, bit for bit
            assert np.array_equal(probe.B_, EASE(lam=10.0).fit(ds).B_)  # type: ignore[arg-type]
        np.testing.assert_array_equal(probe.item_known_, direct.item_known_)
        np.testing.assert_array_equal(probe.text_items_, direct.text_items_)
        a, b = probe.recommend_many(np.arange(50), 20), direct.recommend_many(np.arange(50), 20)
        np.testing.assert_array_equal(a.items, b.items)
        seen.append(w)
    assert seen == list(BETA_GRID)


def test_zero_is_always_a_candidate_and_the_best_is_chosen() -> None:
    ds = make_dataset()
    model = TEASE(lam=5.0, embedder=FakeEmbedder()).fit(ds)
    assert [row["text_beta"] for row in model.beta_results_] == list(BETA_GRID)
    assert BETA_GRID[0] == 0.0
    scores = [row["ndcg@10"] for row in model.beta_results_]
    assert model.text_beta_ == BETA_GRID[int(np.argmax(scores))]


# ---------------------------------------------------------------------------- cold items
def test_cold_items_are_scored_from_text() -> None:
    ds = make_dataset()
    model = TEASE(lam=2.0, text_beta=1.0, cold_text_beta=1.0, embedder=FakeEmbedder()).fit(ds)
    assert model.item_known_[5] and model.text_items_[5] and not model.text_items_[:5].any()
    # user 5 liked "Aliens" only: "Alien 2" (cold, reads like it) is scored, through text
    recs = model.recommend(5, 5)
    assert 5 in recs.item_idx
    assert recs.sources is not None
    assert recs.sources[list(recs.item_idx).index(5)] == SOURCE_TEXT
    # ranking only the cold items among themselves, it is not a popularity fallback
    ranked = model.recommend_many(np.array([5]), 1, candidates=np.array([5]))
    assert not ranked.was_fallback[0] and ranked.items[0, 0] == 5
    # no cold weight: no score for the cold item (EASE's rule)
    off = TEASE(lam=2.0, text_beta=1.0, cold_text_beta=0.0, embedder=FakeEmbedder()).fit(ds)
    assert not off.item_known_[5] and off.B_ is not None and (off.B_[:, 5] == 0).all()


def test_cold_weight_is_chosen_on_a_cold_item_carve() -> None:
    ds, vectors, cluster = clustered()
    model = TEASE(lam=10.0, text_beta=0.0, embedder=ArrayEmbedder(vectors)).fit(ds)
    table = model.cold_beta_results_
    assert [row["cold_text_beta"] for row in table] == list(BETA_GRID)
    scores = np.array([row["ndcg@10"] for row in table])
    assert model.cold_text_beta_ == BETA_GRID[int(np.argmax(scores))]
    assert model.cold_text_beta_ > 0 and scores.max() > scores[0]
    # on the real cold items (0..7): each user's list of cold items starts with its cluster
    recs = model.recommend_many(np.arange(8), 2, candidates=np.arange(8))
    for u in range(8):
        assert (cluster[recs.items[u]] == u % 4).all(), (u, recs.items[u])
    assert model.B_ is not None
    np.testing.assert_array_equal(
        model.B_[:, 8:],
        EASE(lam=10.0).fit(ds).B_[:, 8:],  # type: ignore[index]
    )


def test_cold_validation_ndcg_by_hand() -> None:
    ds, vectors, _ = clustered()
    from llmcf.eval.select import cold_carve

    rest, held = cold_carve(ds, cold_items=0.25, fraction=0.1, seed=3)
    cold = (np.bincount(held.item_idx, minlength=ds.n_items) > 0) & (
        np.bincount(rest.item_idx, minlength=ds.n_items) == 0
    )
    model = TEASE(lam=10.0, text_beta=0.0, cold_text_beta=1.0, embedder=ArrayEmbedder(vectors))
    model.fit(rest)
    got = cold_validation_ndcg(model, rest, held, n=3)
    # by hand: DCG of each user's 3 best cold items over their held-out cold positives
    values = []
    for u in np.unique(held.user_idx[cold[held.item_idx]]):
        relevant = set(held.item_idx[(held.user_idx == u) & cold[held.item_idx]].tolist())
        scores = model.score_all(np.array([u]))[0]
        cand = np.flatnonzero(cold)
        order = cand[np.lexsort((cand, -scores[cand]))][:3]
        dcg = sum(1 / np.log2(r + 2) for r, i in enumerate(order) if i in relevant)
        ideal = sum(1 / np.log2(r + 2) for r in range(min(3, len(relevant))))
        values.append(dcg / ideal)
    assert got == pytest.approx(float(np.mean(values)), abs=1e-12)


# ---------------------------------------------------------------------------- no text
def test_no_item_text_warns_and_is_exactly_ease() -> None:
    ds = make_dataset()
    bare = Dataset.from_arrays(
        ds.users.ids[ds.user_idx],
        ds.items.ids[ds.item_idx],
        ds.rating,
        users=ds.users,
        items=ds.items,
        rating_scale=(1.0, 5.0),
    )
    empty = Dataset.from_arrays(
        ds.users.ids[ds.user_idx],
        ds.items.ids[ds.item_idx],
        ds.rating,
        users=ds.users,
        items=ds.items,
        rating_scale=(1.0, 5.0),
        item_catalog=Catalog({"title": [""] * 6}),
    )
    for data in (bare, empty):
        plain = EASE(lam=3.0).fit(data)
        with pytest.warns(UserWarning, match="no item has text"):
            model = TEASE(lam=3.0, embedder=FakeEmbedder()).fit(data)
        assert model.text_beta_ == 0.0 and model.cold_text_beta_ == 0.0
        assert model.B_ is not None and plain.B_ is not None
        assert np.array_equal(model.B_, plain.B_)
        a, b = model.recommend_many(np.arange(6), 6), plain.recommend_many(np.arange(6), 6)
        np.testing.assert_array_equal(a.items, b.items)
        np.testing.assert_array_equal(a.scores, b.scores)
    with pytest.raises(ConfigError, match="template"):
        TEASE(template="nope", embedder=FakeEmbedder()).fit(bare)


# ---------------------------------------------------------------------------- bounded
def test_text_gram_lists_is_diagonally_dominant() -> None:
    rng = np.random.default_rng(2)
    E = unit(rng.normal(size=(30, 4)))
    E[3] = 0.0  # an item without text
    T = text_gram_lists(E, 5, "exact").toarray()
    assert np.array_equal(T, T.T)
    off = T - np.diag(np.diag(T))
    assert (off >= 0).all() and (off[3] == 0).all() and T[3, 3] == 0.0
    assert (np.diag(T) >= off.sum(axis=1) - 1e-12).all()  # diagonally dominant
    assert np.linalg.eigvalsh(T).min() > -1e-12  # so positive semi-definite
    has = np.linalg.norm(E, axis=1) > 0
    cos = E @ E.T
    for i in range(30):  # each item keeps its 5 nearest text neighbours (positive cosines)
        if not has[i]:
            continue
        c = np.where(np.arange(30) == i, -np.inf, cos[i])
        top = np.argsort(-c, kind="stable")[:5]
        top = top[c[top] > 0]
        assert (off[i, top] > 0).all()
    nz = off > 0
    ratio = off[nz] / cos[nz]
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-12)  # one normalisation
    mean_sum = off.sum(axis=1)[has].mean() * ratio[0] ** -1
    assert ratio[0] == pytest.approx(1 / mean_sum)


def test_bounded_equals_the_dense_closed_form_when_every_pair_is_kept() -> None:
    """The bounded model with every pair kept is the exact closed form of its Gram matrix
    ``X^T X + beta' T`` (T: :func:`text_gram_lists`), column by column."""
    rng = np.random.default_rng(1)
    ds, _, _ = clustered(n_users=30, n_items=12, n_cold=2, clusters=3)
    vectors = 0.2 + rng.random((12, 3))  # every cosine > 0: the text term keeps every pair
    bounded = TEASE(
        lam=4.0, text_beta=0.5, cold_text_beta=2.0, dense_max=0, n_neighbors=11,
        gram_neighbors=11, n_text_neighbors=11, ann="exact", embedder=ArrayEmbedder(vectors),
    ).fit(ds)  # fmt: skip
    assert bounded.B_ is None
    X = positives_of(ds)
    E = unit(ArrayEmbedder(vectors).embed([f"t{k}" for k in range(12)]))  # what the model saw
    T = text_gram_lists(E, 11, "exact").toarray()
    s = float(bounded.text_scale_ or 0.0)
    assert s == pytest.approx(X.sum() / 12, rel=1e-12)
    B = bounded._sparse_B().toarray()
    for weight, cols in ((0.5, slice(2, 12)), (2.0, slice(0, 2))):  # warm, cold columns
        P = np.linalg.inv(X.T @ X + weight * s * T + 4.0 * np.eye(12))
        ref = -P / np.diag(P)
        np.fill_diagonal(ref, 0.0)
        np.testing.assert_allclose(B[:, cols], ref[:, cols], rtol=0, atol=1e-9)
    assert bounded.item_known_.all() and bounded.text_items_[:2].all()


def test_bounded_keeps_a_sparse_text_term() -> None:
    ds, vectors, _ = clustered(n_users=40, n_items=30, n_cold=4)
    model = TEASE(
        lam=5.0, text_beta=1.0, cold_text_beta=1.0, dense_max=0, n_neighbors=5,
        n_text_neighbors=3, ann="exact", embedder=ArrayEmbedder(vectors),
    ).fit(ds)  # fmt: skip
    assert model.nbr_idx_ is not None and model.nbr_idx_.shape == (30, 5)
    assert model.item_known_[:4].all() and (model.nbr_idx_[:4] >= 0).any()
    off = TEASE(
        lam=5.0, text_beta=1.0, cold_text_beta=0.0, dense_max=0, n_neighbors=5,
        n_text_neighbors=3, ann="exact", embedder=ArrayEmbedder(vectors),
    ).fit(ds)  # fmt: skip
    assert off.nbr_idx_ is not None and (off.nbr_idx_[:4] == -1).all()
    assert not off.item_known_[:4].any()


# ---------------------------------------------------------------------------- persistence
@pytest.mark.parametrize(
    "options",
    [
        {"lam": 3.0},
        {"lam": 3.0, "text_beta": 1.0, "cold_text_beta": 3.0},
        {"lam": 3.0, "text_beta": 1.0, "dense_max": 0, "n_neighbors": 4, "ann": "exact"},
    ],
)
def test_save_load_round_trip(options: dict[str, float]) -> None:
    ds = make_dataset()
    model = TEASE(**options, embedder=FakeEmbedder()).fit(ds)
    with tempfile.TemporaryDirectory() as tmp:
        save_model(model, tmp)
        loaded = load_model(tmp)
    assert isinstance(loaded, TEASE)
    for name in ("lam_", "text_beta_", "cold_text_beta_", "text_scale_"):
        assert getattr(loaded, name) == getattr(model, name), name
    assert loaded.beta_results_ == model.beta_results_
    assert loaded.cold_beta_results_ == model.cold_beta_results_
    np.testing.assert_array_equal(loaded.text_items_, model.text_items_)
    a, b = loaded.recommend_many(np.arange(6), 6), model.recommend_many(np.arange(6), 6)
    np.testing.assert_array_equal(a.items, b.items)
    np.testing.assert_array_equal(a.scores, b.scores)
    assert a.sources is not None and b.sources is not None
    np.testing.assert_array_equal(a.sources, b.sources)


# ---------------------------------------------------------------------------- options
def test_options_and_config_errors() -> None:
    model = make_model("t-ease", k=40, similarity="cosine", alpha=0.3, embedder="tfidf")
    assert isinstance(model, TEASE) and model.config.embedder == "tfidf"
    assert make_model("t-ease", ease_lambda=250.0).config.lam == 250.0
    assert TEASE(text_beta=2).config.text_beta == 2.0
    with pytest.raises(ConfigError, match="text_beta"):
        TEASE(text_beta=-1.0)
    with pytest.raises(ConfigError, match="cold_text_beta"):
        TEASE(cold_text_beta=float("nan"))
    with pytest.raises(ConfigError, match="beta_grid"):
        TEASE(beta_grid=())
    with pytest.raises(ConfigError, match="n_text_neighbors"):
        TEASE(n_text_neighbors=0)
    with pytest.raises(ConfigError, match="unknown T-EASE option"):
        TEASEConfig.from_dict({"bogus": 1})
    with pytest.raises(ConfigError, match="either"):
        TEASE(TEASEConfig(), lam=3.0)


# ---------------------------------------------------------------------------- real data
def test_ml100k_cold_items_beat_random(ml100k: object) -> None:
    """The real MiniLM embedder on ml-100k: cold items ranked from text at >= 2x random."""
    from llmcf.eval.runner import iter_folds
    from llmcf.eval.topn import evaluate_topn

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rows = evaluate_topn(
            list(iter_folds(str(ml100k), "coldstart-items:0.2")),
            ["t-ease"],
            n=10,
            relevance=4.0,
            candidates="cold",
            baselines=("random",),
            progress=False,
        )
    by_model = {row["model"]: row for row in rows}
    assert by_model["t-ease"]["ndcg@10"] >= 2 * by_model["random"]["expected_ndcg@10"], rows


# ---------------------------------------------------------------------------- CLI
@pytest.fixture(scope="module")
def synth_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    return movielens_folder(tmp_path_factory.mktemp("ml-synth-tease"), 60, 40, 900, seed=5)


def test_cli_evaluate_fit_recommend(synth_path: str, tmp_path, capsys) -> None:
    import json

    from llmcf.cli import main

    report = tmp_path / "r.json"
    args = [
        "evaluate", "--task", "topn", "--data", synth_path, "--split", "coldstart-items:0.2",
        "--candidates", "cold", "--model", "ease,t-ease", "--embedder", "tfidf",
        "--report", str(report), "--quiet",
    ]  # fmt: skip
    assert main(args) == 0
    rows = {row["model"]: row for row in json.loads(report.read_text())["rows"]}
    assert {"ease", "t-ease", "random"} <= set(rows)
    # ease cannot score cold items; t-ease scores them from text (for every user with a
    # training positive)
    assert rows["t-ease"]["n_cf_fallbacks"] < rows["ease"]["n_cf_fallbacks"]

    model_dir = tmp_path / "model"
    fit = ["fit", "--data", synth_path, "--model", "t-ease", "--embedder", "tfidf"]
    assert main([*fit, "--out", str(model_dir), "--quiet"]) == 0
    manifest = json.loads((model_dir / "manifest.json").read_text())
    assert manifest["class"] == "TEASE" and manifest["config"]["embedder"] == "tfidf"
    assert manifest["state"]["text_beta"] in BETA_GRID
    capsys.readouterr()
    assert main(["recommend", "--model-dir", str(model_dir), "--user", "1", "--n", "5",
                 "--format", "json"]) == 0  # fmt: skip
    out = json.loads(capsys.readouterr().out)
    model = load_model(model_dir)
    expected = model.recommend(int(model.users_.lookup(["1"])[0]), 5)
    assert [item["item_id"] for item in out["items"]] == [str(i) for i in expected.item_ids]
