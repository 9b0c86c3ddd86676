"""The learned second stage (llmcf.rerank.learned) on small hand-made data."""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.conftest import random_dataset

from llmcf.data.dataset import Catalog, Dataset
from llmcf.data.vocab import Vocabulary
from llmcf.errors import ConfigError
from llmcf.models import load_model, make_model
from llmcf.ranking.path import training_histories
from llmcf.rerank.features import FAMILIES, family_columns, feature_names
from llmcf.rerank.learned import LearnedConfig, LearnedExplainer, LearnedRanker

pytest.importorskip("lightgbm")

GENRES = ["space", "crime", "love"]


class WordEmbedder:
    """Bag of words hashed into 16 dimensions (deterministic, no model files)."""

    name = "words"
    version = "1"
    dim = 16
    cacheable = False

    def embed(
        self, texts: Sequence[str], batch_size: int = 32, progress: bool | None = False
    ) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.lower().replace(".", " ").split():
                out[row, zlib.crc32(word.encode()) % self.dim] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return np.divide(out, norms, out=np.zeros_like(out), where=norms > 0)


def grouped_dataset(n_users: int = 60, n_items: int = 48, seed: int = 0) -> Dataset:
    """Users of genre g (u % 3) pick mostly items of it (i % 3 == g) and rate them high, the
    others low; with timestamps."""
    rng = np.random.default_rng(seed)
    users, items, ratings, stamps = [], [], [], []
    for u in range(n_users):
        genre = u % 3
        mine = np.arange(genre, n_items, 3)
        own = rng.choice(mine, min(8, len(mine) - 1), replace=False)
        rest = rng.choice(np.setdiff1d(np.arange(n_items), own), 4, replace=False)
        chosen = np.concatenate([own, rest])
        for i in chosen.tolist():
            users.append(u)
            items.append(i)
            ratings.append(float(rng.integers(4, 6) if i % 3 == genre else rng.integers(1, 3)))
            stamps.append(int(1_000_000 + 3600 * rng.integers(0, 1000)))
    titles = [f"Movie {i} {GENRES[i % 3]}" for i in range(n_items)]
    return Dataset.from_arrays(
        np.array(users),
        np.array(items),
        np.array(ratings),
        timestamp=np.array(stamps, dtype=np.int64),
        users=Vocabulary(np.arange(n_users), name="user"),
        items=Vocabulary(np.arange(n_items), name="item"),
        rating_scale=(1.0, 5.0),
        item_catalog=Catalog({"title": titles}),
        name="grouped",
    )


SMALL = {
    "n_candidates": 12,
    "n_estimators": 30,
    "early_stopping": 10,
    "min_child_samples": 5,
    "num_leaves": 7,
    "gate": False,  # these tests check the ranker itself; the gate has its own test
}


def small_ranker(**options: object) -> LearnedRanker:
    return LearnedRanker(LearnedConfig(**{**SMALL, **options}), embedder=WordEmbedder())  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def fitted() -> tuple[LearnedRanker, Dataset]:
    data = grouped_dataset()
    return small_ranker().fit(data), data


def test_feature_columns_cover_every_family() -> None:
    models = ["item-knn", "ease"]
    cols = family_columns(models)
    assert set(cols) == set(FAMILIES)
    flat = sorted(c for f in FAMILIES for c in cols[f])
    assert flat == list(range(len(feature_names(models))))


def test_config_rejects_bad_options() -> None:
    with pytest.raises(ConfigError, match="family"):
        LearnedConfig(families=("cf", "nope"))
    with pytest.raises(ConfigError, match="unknown model"):
        LearnedConfig(retriever="no-such-model")
    with pytest.raises(ConfigError, match="option"):
        LearnedConfig.from_dict({"bogus": 1})
    with pytest.raises(ConfigError, match="itself"):
        LearnedConfig(retriever="learned")
    assert LearnedConfig(families=("text",)).families == ("retriever", "text")
    # the default: the four families validation chose, and profile when profiles exist
    assert LearnedConfig().families == ("retriever", "cf", "text", "popularity")
    assert LearnedConfig(profiles="p").families[-1] == "profile"


def test_fit_trains_a_ranker_and_lists_come_from_the_candidates(fitted) -> None:
    model, data = fitted
    assert model.ranker_text_.startswith("tree")
    assert model.fit_info_["n_queries"] >= 10
    users = np.arange(data.n_users)
    recs = model.recommend_many(users, 8)
    h = training_histories(model, users)
    cands, _ = model.stage_.candidates(h, model.config.n_candidates)
    R = data.matrix()
    for row in range(len(users)):
        listed = recs.items[row]
        assert len(set(listed.tolist())) == len(listed)
        assert not set(listed.tolist()) & set(R[row].indices.tolist())
        assert set(listed.tolist()) <= set(cands[row].tolist())
    # the features see the text: user 0 (space) is closer in text to the space candidates
    items, X = model.stage_.features(h.block(0, 1), 12)
    names = feature_names(model.config.feature_models)
    assert X.shape == (1, 12, len(names))
    cos = X[0, :, names.index("text_mean_cos")]
    space = items[0] % 3 == 0
    assert space.any() and (~space).any()
    assert cos[space].mean() > cos[~space].mean()


def test_the_ranker_learns_the_genre_signal(fitted) -> None:
    model, data = fitted
    users = np.arange(data.n_users)
    top = model.recommend_many(users, 3).items
    genre_of_item = model.items_.ids.astype(np.int64) % 3
    genre_of_user = model.users_.ids.astype(np.int64) % 3
    liked = genre_of_item[top] == genre_of_user[users][:, None]
    assert liked.mean() > 0.6


def test_save_load_round_trip(fitted, tmp_path) -> None:
    model, data = fitted
    model.save(str(tmp_path / "m"))
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert manifest["class"] == "LearnedRanker" and "ranker" in manifest["arrays"]
    back = load_model(tmp_path / "m")
    assert isinstance(back, LearnedRanker)
    users = np.arange(-1, data.n_users)
    a, b = model.recommend_many(users, 10), back.recommend_many(users, 10)
    np.testing.assert_array_equal(a.items, b.items)
    np.testing.assert_allclose(a.scores, b.scores)
    assert back.get_config() == model.get_config()


def test_tiny_data_keeps_the_retriever_order() -> None:
    data = random_dataset(1, n_users=6, n_items=8)
    model = small_ranker().fit(data)
    assert model.ranker_text_ == "" and "no ranker" in (model.fit_note_ or "")
    users = np.arange(data.n_users)
    np.testing.assert_array_equal(
        model.recommend_many(users, 5).items, model.stage_.retriever.recommend_many(users, 5).items
    )


def test_families_choose_the_columns() -> None:
    m = small_ranker(families=("popularity",))
    cols = family_columns(m.config.feature_models)
    assert m.columns == sorted(cols["retriever"] + cols["popularity"])


def test_make_model_and_options() -> None:
    model = make_model("learned", retriever="item-knn", k=20, n_candidates=7)
    assert isinstance(model, LearnedRanker)
    assert model.config.retriever == "item-knn" and model.config.n_candidates == 7


def test_explanations_cite_a_history_item(fitted) -> None:
    model, data = fitted
    titles = list(data.item_catalog.fields["title"])
    explainer = LearnedExplainer(model, titles)
    items = model.recommend(0, 4).item_idx
    reasons = explainer.explain_user(0, items)
    assert len(reasons) == len(items)
    history = {titles[i] for i in data.matrix()[0].indices}
    for reason in reasons:
        assert reason is not None and reason.count(".") >= 1
        assert reason.startswith("Because")
        cited = reason.split("*")[1]
        assert cited in history or cited in {titles[i] for i in items}
    # a title with its own full stop does not end the sentence
    dotted = list(titles)
    dotted[int(items[0])] = "Dr. Strangelove"
    whole = LearnedExplainer(model, dotted).explain_user(-1, items[:1])
    assert whole == ["*Dr. Strangelove* is popular with other users."]
    unknown = explainer.explain_user(-1, items[:1])
    assert unknown[0] is not None and "popular" in unknown[0]


def test_pipeline_and_evaluate_rows(fitted) -> None:
    from llmcf.eval.split import holdout_split
    from llmcf.eval.topn import evaluate_topn
    from llmcf.pipeline.build import build_pipeline

    model, data = fitted
    pipe = build_pipeline(model, data, rerank="learned", explain=True)
    result = pipe.recommend(0, 5, explain=True)
    np.testing.assert_array_equal(result.items, model.recommend(0, 5).item_idx)
    assert result.explanations is not None and all(result.explanations)
    fold = holdout_split(data, 0.2, 1)[0]
    folds = [SimpleNamespace(name="h", dataset=data, train=fold.train, test=fold.test)]
    rows = evaluate_topn(folds, ["ease"], n=5, learned=dict(SMALL), progress=False)
    assert [r["model"] for r in rows] == ["ease", "ease+learned"]
    assert 0.0 <= rows[1]["ndcg@5"] <= 1.0 and rows[1]["n_candidates"] == 12


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(1, 14),
    m=st.integers(1, 12),
    retriever=st.sampled_from(["ease", "item-knn", "user-knn"]),
    with_llm=st.booleans(),
)
def test_no_invented_duplicated_or_missing_item(
    seed: int, n: int, m: int, retriever: str, with_llm: bool
) -> None:
    data = grouped_dataset(n_users=30, n_items=15, seed=seed)
    extra = {"families": ALL_FAMILIES, "llm_candidates": 3} if with_llm else {}
    model = small_ranker(n_candidates=m, retriever=retriever, **extra)
    if with_llm:  # a scripted judge that also answers garbage for some users
        model._llm_client = genre_llm(garbage_every=4)
    model.fit(data)
    users = np.arange(-1, data.n_users)
    recs = model.recommend_many(users, n)
    h = training_histories(model, users)
    cands, _ = model.stage_.candidates(h, m)
    retr = model.stage_.retriever.recommend_many(users, n)
    R = data.matrix()
    for row, u in enumerate(users.tolist()):
        listed = recs.items[row]
        valid = listed[listed >= 0]
        assert len(valid) == len(listed) or (listed[len(valid) :] == -1).all()
        assert len(set(valid.tolist())) == len(valid), "duplicated item"
        assert ((valid >= 0) & (valid < data.n_items)).all(), "invented item"
        seen = set(R[u].indices.tolist()) if u >= 0 else set()
        assert not set(valid.tolist()) & seen
        # as long as the retriever's list: nothing missing
        assert len(valid) == int((retr.items[row] >= 0).sum())
        c = cands[row][cands[row] >= 0]
        k = min(n, len(c))
        assert (
            set(valid[:k].tolist()) == set(c.tolist())
            if n >= len(c)
            else set(valid[:k].tolist()) <= set(c.tolist())
        )


def test_evaluate_rejects_learned_with_sampled(fitted) -> None:
    from llmcf.eval.split import holdout_split
    from llmcf.eval.topn import evaluate_topn

    _, data = fitted
    fold = holdout_split(data, 0.2, 1)[0]
    folds = [SimpleNamespace(name="h", dataset=data, train=fold.train, test=fold.test)]
    with pytest.raises(ConfigError, match="full ranking"):
        evaluate_topn(folds, ["ease"], sampled=5, learned={}, progress=False)


def test_candidate_sets_reach_the_retriever_top_m(fitted) -> None:
    """With a candidate set (cold items) the stage re-ranks the retriever's top M of those
    items, not its top M overall cut to them."""
    model, data = fitted
    users = np.arange(data.n_users)
    allowed = np.arange(0, data.n_items, 4)
    recs = model.recommend_many(users, 5, candidates=allowed)
    assert np.isin(recs.items, allowed).all()
    h = training_histories(model, users)
    h.allowed = np.isin(np.arange(data.n_items), allowed)
    cands, _ = model.stage_.candidates(h, model.config.n_candidates)
    assert np.isin(cands[cands >= 0], allowed).all()
    # every listed item was scored by the ranker (none is padding), as far as candidates go
    unseen = [len(set(allowed.tolist()) - set(data.matrix()[u].indices.tolist())) for u in users]
    assert (recs.n_scored == np.minimum(5, unseen)).all()


def test_evaluate_learned_on_cold_candidates() -> None:
    from llmcf.eval.split import coldstart_items_split
    from llmcf.eval.topn import evaluate_topn

    data = grouped_dataset(n_users=60, n_items=48)
    fold = coldstart_items_split(data, 0.25, seed=0)[0]
    folds = [SimpleNamespace(name="c", dataset=data, train=fold.train, test=fold.test)]
    rows = evaluate_topn(
        folds, ["ease"], n=5, candidates="cold", learned=dict(SMALL), progress=False
    )
    assert [r["model"] for r in rows] == ["ease", "ease+learned"]
    assert all(r["candidates"] == "cold" for r in rows)


def _ts(X: np.ndarray, y: np.ndarray, groups: int, names: list[str]) -> object:
    from llmcf.rerank.learned import TrainingSet

    g = len(y) // groups
    users = np.arange(groups)
    return TrainingSet(X, y, np.full(groups, g, np.int64), users, names)


def test_the_gate_keeps_the_retriever_order_when_the_ranker_is_not_better() -> None:
    from llmcf.rerank.learned import train_ranker

    rng = np.random.default_rng(0)
    q, m = 120, 10
    y = np.zeros((q, m))
    y[np.arange(q), rng.integers(0, m, q)] = 1.0
    noise = rng.normal(size=(q, m))
    names = ["retriever_score", "retriever_z", "retriever_rank", "signal"]
    # the retriever's rank is perfect: nothing can beat it, the gate keeps its order
    perfect_rank = np.where(y > 0, 0.0, 1.0 + np.arange(m)[None, :])
    X = np.stack([noise, noise, perfect_rank, noise], axis=2).reshape(q * m, 4)
    cfg = LearnedConfig(**{**SMALL, "gate": True})  # type: ignore[arg-type]
    text, info = train_ranker(_ts(X, y.ravel(), q, names), [0, 1, 2, 3], cfg)  # type: ignore[arg-type]
    assert text == "" and info["validation_retriever_ndcg@10"] == pytest.approx(1.0)
    # a random retriever order and a perfect other feature: the ranker is kept
    X2 = np.stack([noise, noise, np.tile(np.arange(m, dtype=float), (q, 1)), y], axis=2)
    text, info = train_ranker(_ts(X2.reshape(q * m, 4), y.ravel(), q, names), [0, 1, 2, 3], cfg)  # type: ignore[arg-type]
    assert text.startswith("tree")
    assert info["validation_ndcg@10"] > info["validation_retriever_ndcg@10"]
    off = LearnedConfig(**{**SMALL, "gate": False})  # type: ignore[arg-type]
    text, _ = train_ranker(_ts(X, y.ravel(), q, names), [0, 1, 2, 3], off)  # type: ignore[arg-type]
    assert text.startswith("tree")


def test_a_gated_fit_serves_the_retriever_order_and_says_why() -> None:
    data = random_dataset(3, n_users=80, n_items=30, density=0.3)
    model = small_ranker(gate=True).fit(data)
    info = model.fit_info_
    users = np.arange(data.n_users)
    if model.ranker_text_:
        assert info["validation_ndcg@10"] > info["validation_retriever_ndcg@10"]
        assert model.chosen_settings()["stage"] == "ranker"
    else:
        assert "is not above" in (model.fit_note_ or "")
        assert model.chosen_settings()["stage"] == "retriever order"
        np.testing.assert_array_equal(
            model.recommend_many(users, 5).items,
            model.stage_.retriever.recommend_many(users, 5).items,
        )


def test_last_carves_hold_out_each_users_latest_interactions() -> None:
    data = grouped_dataset()
    model = small_ranker(carve="last", n_carves=2)
    ts = model.training_data(data, model.item_vectors(data))
    assert ts is not None and set(ts.carves().tolist()) == {0, 1}
    # one query per user and carve at most; the labels are single held-out items
    for k in (0, 1):
        users = ts.users[ts.carves() == k]
        assert len(users) == len(np.unique(users))
    assert model.fit(data).ranker_text_
    with pytest.raises(ConfigError, match="carve"):
        LearnedConfig(carve="newest")


def test_real_minilm_text_features(tmp_path, monkeypatch) -> None:
    """The default embedder once: the text family sees the genre words of the titles."""
    pytest.importorskip("onnxruntime")
    from llmcf.text.embedders import MissingDependencyError, make_embedder

    monkeypatch.setenv("LLMCF_CACHE_DIR", str(tmp_path))
    try:
        make_embedder("minilm")
    except MissingDependencyError as exc:  # pragma: no cover - depends on the install
        pytest.skip(str(exc))
    data = grouped_dataset()
    model = LearnedRanker(LearnedConfig(**SMALL)).fit(data)  # type: ignore[arg-type]
    assert model.stage_.vectors.shape == (data.n_items, 384)
    h = training_histories(model, np.array([0]))
    items, X = model.stage_.features(h, 12)
    cos = X[0, :, feature_names(model.config.feature_models).index("text_mean_cos")]
    space = items[0] % 3 == 0
    assert cos[space].mean() > cos[~space].mean()


# ---------------------------------------------------------------------- the llm family
def genre_llm(garbage_every: int = 0) -> object:
    """A scripted model that says yes to candidates of the genre most of the history shows
    (``garbage_every``: every k-th call answers the wrong number of scores)."""
    from tests.rerank.fakes import FakeLLM

    calls = [0]

    def yes_no(prompt: object) -> np.ndarray:
        calls[0] += 1
        if garbage_every and calls[0] % garbage_every == 0:
            return np.zeros(len(prompt.candidates) + 1)  # type: ignore[attr-defined]
        liked = prompt.history  # type: ignore[attr-defined]
        genre = max(GENRES, key=liked.count)
        return np.array([3.0 if genre in c else -3.0 for c in prompt.candidates])  # type: ignore[attr-defined]

    return FakeLLM(yes_no=yes_no)


ALL_FAMILIES = ("retriever", "cf", "text", "popularity", "llm")


def test_llm_columns_judge_the_top_candidates_only() -> None:
    data = grouped_dataset()
    llm = genre_llm()
    model = small_ranker(families=ALL_FAMILIES, llm_candidates=5, llm_history=3)
    model._llm_client = llm
    stage = model.build_stage(data, model.item_vectors(data))
    users = np.arange(6)
    h = training_histories(stage.retriever, users)
    items, X = stage.features(h, 12)
    names = feature_names(model.config.feature_models)
    raw = X[:, :, names.index("llm_yes_no")]
    z = X[:, :, names.index("llm_z")]
    assert np.isfinite(raw[:, :5]).all() and np.isnan(raw[:, 5:]).all()
    assert np.isnan(z[:, 5:]).all() and np.allclose(np.nanmean(z, axis=1), 0.0, atol=1e-6)
    genre_of_user = users % 3
    same = items[:, :5] % 3 == genre_of_user[:, None]
    assert (raw[:, :5][same] > 0).all() and (raw[:, :5][~same] < 0).all()
    # the prompt shows the user's three best-rated items, best last
    prompt = llm.calls[0][1]  # type: ignore[attr-defined]
    R = data.matrix()
    best = R[0].indices[np.argsort(R[0].data, kind="stable")][-3:]
    assert all(f"Movie {i} " in prompt.history for i in best.tolist())
    # a second pass reads the cache: no new call
    n_calls = len(llm.calls)  # type: ignore[attr-defined]
    stage.features(h, 12)
    assert len(llm.calls) == n_calls  # type: ignore[attr-defined]
    # without the family the columns are missing values
    plain = small_ranker().build_stage(data, model.item_vectors(data))
    _, X0 = plain.features(h, 12)
    assert np.isnan(X0[:, :, names.index("llm_yes_no")]).all()


def test_llm_failures_are_missing_values_not_errors() -> None:
    from tests.rerank.fakes import FakeLLM

    data = grouped_dataset(n_users=12, n_items=15)
    bad = FakeLLM(yes_no=lambda p: np.array([np.nan] * len(p.candidates)))
    model = small_ranker(families=ALL_FAMILIES, llm_candidates=4)
    model._llm_client = bad
    stage = model.build_stage(data, model.item_vectors(data))
    h = training_histories(stage.retriever, np.arange(3))
    _, X = stage.features(h, 6)
    names = feature_names(model.config.feature_models)
    assert np.isnan(X[:, :, names.index("llm_yes_no")]).all()
    assert len(stage.llm.cache) == 0  # an unusable answer is not cached


def test_fit_with_the_llm_family_caps_queries_saves_and_loads(tmp_path) -> None:
    data = grouped_dataset()
    model = small_ranker(families=ALL_FAMILIES, llm_train_users=15, n_carves=2)
    model._llm_client = genre_llm()
    model.fit(data)
    assert model.ranker_text_.startswith("tree")
    assert model.fit_info_["n_queries"] <= 2 * 15
    users = np.arange(data.n_users)
    before = model.recommend_many(users, 6)
    model.save(str(tmp_path / "m"))
    back = load_model(tmp_path / "m")
    assert back.llm_texts_ == model.llm_texts_ and len(back.llm_texts_) == data.n_items
    back._llm_client = genre_llm()  # a loaded stage builds its language model on first use
    after = back.recommend_many(users, 6)
    np.testing.assert_array_equal(before.items, after.items)
    # the judgement carries weight: beside the retriever alone the ranker uses it
    import lightgbm as lgb

    only = small_ranker(families=("llm",), llm_train_users=40)
    only._llm_client = genre_llm()
    only.fit(data)
    gains = lgb.Booster(model_str=only.ranker_text_).feature_importance("gain")
    names = [feature_names(only.config.feature_models)[c] for c in only.columns]
    assert gains[names.index("llm_yes_no")] + gains[names.index("llm_z")] > 0


def test_background_judgements_answer_at_once_then_from_the_cache() -> None:
    import threading

    from tests.rerank.fakes import FakeLLM

    from llmcf.rerank.llm_feature import LLMFeature

    data = grouped_dataset(n_users=12, n_items=15)
    gate = threading.Event()

    def slow(prompt: object) -> np.ndarray:
        gate.wait(10)
        return np.arange(len(prompt.candidates), dtype=float)  # type: ignore[attr-defined]

    texts = list(data.item_catalog.fields["title"])
    feat = LLMFeature(FakeLLM(yes_no=slow), texts, n_candidates=3, background=True)
    model = small_ranker()
    stage = model.build_stage(data, model.item_vectors(data))
    h = training_histories(stage.retriever, np.arange(2))
    items, _ = stage.candidates(h, 5)
    first = feat.scores(h, items)
    assert np.isnan(first).all()  # answered without waiting for the model
    gate.set()
    feat.wait()
    second = feat.scores(h, items)
    np.testing.assert_array_equal(second[:, :3], np.tile([0.0, 1.0, 2.0], (2, 1)))
    assert np.isnan(second[:, 3:]).all()
    feat.close()


def test_learned_option_pairs_parse_to_typed_fields() -> None:
    from llmcf.options import parse_option_pairs

    got = parse_option_pairs(
        LearnedConfig,
        ["carve=last", "n-candidates=30", "gate=false", "families=cf,llm", "profiles=none"],
        "--learned-option",
    )
    assert got == {
        "carve": "last",
        "n_candidates": 30,
        "gate": False,
        "families": ("cf", "llm"),
        "profiles": None,
    }
    for bad, match in (
        ("carve", "KEY=VALUE"),
        ("nope=1", "unknown option 'nope'"),
        ("n_candidates=many", "n_candidates='many': expected int"),
        ("gate=maybe", "expected bool"),
    ):
        with pytest.raises(ConfigError, match=match):
            parse_option_pairs(LearnedConfig, [bad], "--learned-option")
    model = make_model("learned", learned_options=got | {"families": ("cf",)})
    assert model.config.carve == "last" and model.config.families == ("retriever", "cf")


def test_real_local_model_judges_candidates() -> None:
    """The packaged 0.5B model once: its judgements fill the llm columns of real features."""
    from tests.rerank.llm_fixtures import require_local_model

    require_local_model()
    data = grouped_dataset(n_users=24, n_items=24)
    model = small_ranker(families=ALL_FAMILIES, llm_candidates=4, llm_train_users=12)
    model.fit(data)
    feat = model.stage_.llm
    assert feat is not None and feat.computed > 0
    assert feat.scorer.client.name == "llama.cpp:qwen2.5-0.5b"
    h = training_histories(model, np.arange(3))
    _, X = model.stage_.features(h, 8)
    names = feature_names(model.config.feature_models)
    raw = X[:, :4, names.index("llm_yes_no")]
    assert np.isfinite(raw).all() and np.abs(raw).max() < 50
    assert len(set(np.round(raw.ravel(), 4).tolist())) > 1  # judgements differ by candidate
    recs = model.recommend_many(np.arange(data.n_users), 5)
    assert (recs.items >= 0).all()
    feat.close()


def test_equal_ranker_scores_keep_the_retriever_order() -> None:
    from llmcf.rerank.learned import break_ties_by_position

    scores = np.array([[0.5, 0.2, 0.5, 0.2, -np.inf], [1.0, 1.0, 1.0, 1.0, 1.0]])
    out = break_ties_by_position(scores)
    assert np.isneginf(out[0, 4])
    assert list(np.argsort(-out[0, :4], kind="stable")) == [0, 2, 1, 3]
    assert list(np.argsort(-out[1], kind="stable")) == [0, 1, 2, 3, 4]
    assert (np.diff(out[1]) < 0).all() and np.allclose(out[1], 1.0, atol=1e-6)
    assert (np.abs(out[0, :4] - scores[0, :4]) < 0.3 / 2).all()  # under half the 0.3 gap
    # distinct scores keep their order, however close
    close = np.array([[1.0, 1.0 + 1e-12, 0.0]])
    assert list(np.argsort(-break_ties_by_position(close)[0])) == [1, 0, 2]


def test_a_one_tree_ranker_orders_its_ties_by_the_retriever() -> None:
    """One round of boosting scores the candidates by a few leaves; inside a leaf the list
    keeps the retriever's order (not the item index)."""
    data = grouped_dataset()
    model = small_ranker(n_estimators=1, num_leaves=2, min_child_samples=40).fit(data)
    users = np.arange(data.n_users)
    items, _, _ = model.candidate_scores(training_histories(model, users))
    recs = model.recommend_many(users, model.config.n_candidates)
    _, X = model.stage_.features(training_histories(model, users), model.config.n_candidates)
    booster = model._booster()
    for row in range(len(users)):
        valid = items[row] >= 0
        raw = np.asarray(booster.predict(X[row][valid][:, model.columns]))
        expected = items[row][valid][np.lexsort((np.arange(valid.sum()), -raw))]
        np.testing.assert_array_equal(recs.items[row][: len(expected)], expected)


# ---------------------------------------------------------------------- the command line
@pytest.fixture(scope="module")
def synth_folder(tmp_path_factory: pytest.TempPathFactory) -> str:
    from tests.conftest import movielens_folder

    return movielens_folder(tmp_path_factory.mktemp("ml-synth-learned"), 80, 40, 1400, seed=7)


def test_cli_contract_rows_and_learned_options(synth_folder, tmp_path, capsys) -> None:
    """``llmcf evaluate --task topn ... --model ease,item-knn --rerank learned`` reports a row
    per retriever and one ``<retriever>+learned``; ``--learned-option`` reaches the stage."""
    from llmcf.cli import main

    report = tmp_path / "r.json"
    base = ["evaluate", "--task", "topn", "--data", synth_folder, "--split", "kfold:2",
            "--relevance", "4", "--model", "ease,item-knn", "--rerank", "learned",
            "--embedder", "tfidf", "--quiet"]  # fmt: skip
    opts = ["--learned-option", "n_candidates=15", "--learned-option", "gate=false",
            "--learned-option", "n_estimators=20"]  # fmt: skip
    assert main([*base, *opts, "--paired", "ease:ease+learned", "--report", str(report)]) == 0
    out = capsys.readouterr().out
    rows = json.loads(report.read_text())["rows"]
    assert [r["model"] for r in rows if r["fold"] == rows[0]["fold"]] == [
        "ease", "ease+learned", "item-knn", "item-knn+learned"
    ]  # fmt: skip
    assert {r["n_candidates"] for r in rows if r["model"].endswith("+learned")} == {15}
    assert "paired ease+learned - ease ndcg@10" in out
    assert "chosen on the training carve: ease+learned" in out
    # a bad option names itself; an option without the learned stage is refused
    assert main([*base, "--learned-option", "carve=newest"]) == 2
    assert "carve must be 'random' or 'last'" in capsys.readouterr().err
    assert main([*base, "--learned-option", "n_candidates=lots"]) == 2
    assert "n_candidates='lots': expected int" in capsys.readouterr().err
    plain = ["evaluate", "--task", "topn", "--data", synth_folder, "--split", "kfold:2",
             "--model", "ease", "--learned-option", "carve=last", "--quiet"]  # fmt: skip
    assert main(plain) == 2
    assert "--learned-option needs --rerank learned" in capsys.readouterr().err
    # fit and recommend take the options too
    model_dir = tmp_path / "m"
    fit = ["fit", "--data", synth_folder, "--model", "learned", "--embedder", "tfidf",
           "--learned-option", "retriever=item-knn", "--learned-option", "n_candidates=9",
           "--out", str(model_dir), "--quiet"]  # fmt: skip
    assert main(fit) == 0
    manifest = json.loads((model_dir / "manifest.json").read_text())
    assert manifest["config"]["retriever"] == "item-knn"
    assert manifest["config"]["n_candidates"] == 9
    capsys.readouterr()
    rec = ["recommend", "--data", synth_folder, "--model", "ease", "--user", "1", "--n", "3",
           "--rerank", "learned", "--embedder", "tfidf", "--learned-option", "n_candidates=7"]  # fmt: skip
    assert main(rec) == 0
    assert "CF top-7 re-ranked by the learned stage" in capsys.readouterr().out


# ---------------------------------------------------------------------- the profile family
def test_profile_family_reads_the_profiles_saves_and_needs_them(tmp_path) -> None:
    from tests.text.test_profiles import write_profiles

    from llmcf.errors import ModelLoadError

    data = grouped_dataset()
    folder = tmp_path / "profiles"
    write_profiles(folder, data)
    model = small_ranker(families=("profile",), profiles=str(folder)).fit(data)
    names = feature_names(model.config.feature_models)
    assert [names[c] for c in model.columns] == [
        "retriever_score", "retriever_z", "retriever_rank", "profile_mean_cos", "profile_max_cos"
    ]  # fmt: skip
    h = training_histories(model, np.arange(4))
    items, X = model.stage_.features(h, 12)
    assert np.isfinite(X[:, :, names.index("profile_mean_cos")][items >= 0]).all()
    # the profiles ("About Movie 3 space.") share the genre words: space users are closer
    cos = X[0, :, names.index("profile_mean_cos")]
    space = items[0] % 3 == 0
    assert cos[space].mean() > cos[~space].mean()
    model.save(str(tmp_path / "m"))
    back = load_model(tmp_path / "m")
    np.testing.assert_array_equal(back.stage_.profile_vectors, model.stage_.profile_vectors)
    users = np.arange(data.n_users)
    np.testing.assert_array_equal(
        back.recommend_many(users, 5).items, model.recommend_many(users, 5).items
    )
    with pytest.raises(ConfigError, match="needs the item profiles"):
        small_ranker(families=("profile",)).fit(data)
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert "profile_vectors" in manifest["arrays"]
    # a folder that lost its profile vectors does not load
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tmp_path / "m", broken)
    m2 = json.loads((broken / "manifest.json").read_text())
    m2["arrays"].pop("profile_vectors")
    (broken / "manifest.json").write_text(json.dumps(m2))
    with pytest.raises(ModelLoadError):
        load_model(broken)
