"""The two-stage pipeline with fake and embedding re-rankers (no language model needed)."""

from __future__ import annotations

import numpy as np
import pytest
from tests.conftest import random_dataset
from tests.rerank.fakes import FakeLLM, keyword_yes_no

from llmcf.cf.knn import ItemKNN
from llmcf.data.dataset import Dataset
from llmcf.errors import ConfigError
from llmcf.pipeline import Pipeline, tune_weight, user_histories
from llmcf.pipeline.build import build_pipeline, format_result
from llmcf.pipeline.core import item_texts
from llmcf.rerank.explain import Explainer
from llmcf.rerank.reranker import EmbeddingReranker, LLMReranker


def _data() -> Dataset:
    ds = random_dataset(11, n_users=30, n_items=20, density=0.35)
    ds.item_catalog.fields["title"] = [
        f"{'Space' if i % 4 == 0 else 'Love'} film {i}" for i in range(ds.n_items)
    ]
    return ds


def test_histories_are_recent_liked_items() -> None:
    ds = Dataset.from_arrays(
        ["a", "a", "a", "a", "b"],
        ["x", "y", "z", "w", "x"],
        [5.0, 1.0, 4.0, 5.0, 2.0],
        timestamp=[4, 3, 2, 1, 9],
        rating_scale=(1, 5),
    )
    hist = user_histories(ds, history_size=2)
    a, b = ds.users.lookup(np.array(["a", "b"]))
    # a's mean is 3.75: liked x (t=4), z (t=2), w (t=1) -> last two by time: z, x
    assert ds.items.external(hist[a]).tolist() == ["z", "x"]
    assert ds.items.external(hist[b]).tolist() == ["x"]


def test_pipeline_cf_only_equals_model() -> None:
    ds = _data()
    model = ItemKNN().fit(ds)
    pipe = Pipeline(model, ds)
    items, results = pipe.recommend_many(np.arange(ds.n_users), 5)
    np.testing.assert_array_equal(items, model.recommend_many(np.arange(ds.n_users), 5).items)
    assert results[0].rerank_scores is None


def test_pipeline_reranks_within_candidates_and_explains() -> None:
    ds = _data()
    texts = item_texts(ds)
    model = ItemKNN().fit(ds)
    llm = FakeLLM(yes_no=keyword_yes_no("Space"), complete=lambda s, u: "You like space. Extra.")
    pipe = Pipeline(
        model,
        ds,
        reranker=LLMReranker(llm, texts),
        weight=1.0,
        n_candidates=10,
        explainer=Explainer(llm, texts),
    )
    for user in range(ds.n_users):
        result = pipe.recommend(user, 4, explain=user == 0)
        cf_top = model.recommend(user, 10).item_idx
        assert set(result.items.tolist()) <= set(cf_top.tolist())
        assert len(set(result.items.tolist())) == len(result.items)
        space = [i for i in cf_top.tolist() if i % 4 == 0]
        assert result.items[: min(4, len(space))].tolist() == space[:4]
    first = pipe.recommend(0, 4, explain=True)
    assert first.explanations == ["You like space."] * 4
    text = format_result(first, [f"title {i}" for i in range(ds.n_items)])
    assert "why: You like space." in text and "rerank" in text
    unknown = pipe.recommend(-1, 3)
    assert unknown.was_fallback and "unknown user" in unknown.reasons[0]
    with pytest.raises(ConfigError, match="explainer"):
        Pipeline(model, ds).recommend(0, 3, explain=True)


def test_pipeline_reports_reranker_failure() -> None:
    ds = _data()
    model = ItemKNN().fit(ds)
    llm = FakeLLM(yes_no=lambda p: [1.0])  # wrong length
    pipe = Pipeline(model, ds, reranker=LLMReranker(llm, item_texts(ds)), weight=0.5)
    result = pipe.recommend(0, 5)
    np.testing.assert_array_equal(result.items, model.recommend(0, 5).item_idx)
    assert any("CF order kept" in r for r in result.reasons)


def test_tune_weight_finds_an_oracle_and_ignores_noise() -> None:
    ds = random_dataset(12, n_users=60, n_items=30, density=0.4)
    texts = [f"item {i}" for i in range(ds.n_items)]
    # an oracle embedding: item vectors aligned with the items every user rated highly later
    rng = np.random.default_rng(0)
    noise = rng.normal(size=(ds.n_items, 4)).astype(np.float32)
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    w, table = tune_weight(
        lambda: ItemKNN(),
        ds,
        EmbeddingReranker(texts, None, vectors=noise),
        relevance=4.0,
        n=5,
        n_candidates=10,
        max_users=None,
    )
    assert 0.0 in table and table[w] >= table[0.0]


def test_build_pipeline_choices() -> None:
    ds = _data()
    model = ItemKNN().fit(ds)
    assert build_pipeline(model, ds).reranker is None
    assert isinstance(build_pipeline(model, ds, rerank="embedding").reranker, EmbeddingReranker)
    with pytest.raises(ConfigError, match="valid"):
        build_pipeline(model, ds, rerank="oracle")
    with pytest.raises(ConfigError):
        Pipeline(model, ds, weight=2.0)
