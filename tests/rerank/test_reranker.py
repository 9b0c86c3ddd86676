"""Re-ranker logic with a fake LLM: fusion, fallbacks, cache, permutation invariant."""

from __future__ import annotations

import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.rerank.fakes import FakeLLM, keyword_yes_no

from llmcf.errors import ConfigError
from llmcf.rerank.prompts import CHOICE_LABELS
from llmcf.rerank.reranker import (
    EmbeddingReranker,
    LLMReranker,
    RerankCache,
    RerankOutputError,
    choose_weight,
    fuse_scores,
    rerank,
    scores_from_ranked_ids,
    validate_scores,
)

TEXTS = [f"item {i} " + ("space opera" if i % 3 == 0 else "romantic comedy") for i in range(30)]


def test_fuse_scores_formula() -> None:
    cf = np.array([3.0, 2.0, 1.0])
    rr = np.array([0.0, 0.0, 6.0])
    z_cf = (cf - cf.mean()) / cf.std()
    z_rr = (rr - rr.mean()) / rr.std()
    np.testing.assert_allclose(fuse_scores(cf, rr, 0.25), 0.75 * z_cf + 0.25 * z_rr)
    np.testing.assert_allclose(fuse_scores(cf, np.ones(3), 0.5), 0.5 * z_cf)  # constant: 0
    with pytest.raises(ConfigError, match="weight"):
        fuse_scores(cf, rr, 1.5)


def test_weight_zero_is_cf_order_and_one_is_reranker_order() -> None:
    llm = FakeLLM(yes_no=keyword_yes_no("space"))
    rr = LLMReranker(llm, TEXTS)
    cands = np.array([1, 2, 3, 4, 6])  # 3 and 6 are "space opera"
    cf = np.array([5.0, 4.0, 3.0, 2.0, 1.0])
    res0 = rerank(rr, np.array([0, 9]), cands, cf, 0.0)
    assert res0.items.tolist() == [1, 2, 3, 4, 6] and not llm.calls
    res1 = rerank(rr, np.array([0, 9]), cands, cf, 1.0)
    assert res1.items[:2].tolist() == [3, 6]  # ties broken by CF order
    assert sorted(res1.items.tolist()) == sorted(cands.tolist())
    assert not res1.was_fallback and res1.reason is None


@pytest.mark.parametrize(
    "output",
    [
        np.array([1.0, 2.0]),  # too short
        np.array([1.0, np.nan, 0.0, 1.0, 2.0]),  # NaN
        np.array([1e308, -1e308, 0.0, 1.0, 2.0]),  # overflows standardisation
        np.array([[1.0] * 5]),  # wrong shape
        "Yes yes no",  # text
        None,
    ],
)
def test_malformed_output_falls_back_to_cf(output: object) -> None:
    llm = FakeLLM(yes_no=lambda prompt: output)
    cands = np.array([7, 3, 9, 1, 4])
    res = rerank(LLMReranker(llm, TEXTS), np.array([0]), cands, np.arange(5.0)[::-1], 0.5)
    assert res.was_fallback and "CF order kept" in (res.reason or "")
    assert res.items.tolist() == cands.tolist()
    assert np.isnan(res.rerank_scores).all()


def test_exceptions_and_timeouts_fall_back() -> None:
    def boom(prompt: object) -> np.ndarray:
        raise RuntimeError("model crashed")

    cands = np.array([5, 6, 7])
    res = rerank(
        LLMReranker(FakeLLM(yes_no=boom), TEXTS), np.array([0]), cands, np.array([3.0, 2, 1]), 0.7
    )
    assert res.was_fallback and "model crashed" in (res.reason or "")

    def slow(prompt: object) -> np.ndarray:
        time.sleep(0.5)
        return np.zeros(3)

    res = rerank(
        LLMReranker(FakeLLM(yes_no=slow), TEXTS),
        np.array([0]),
        cands,
        np.array([3.0, 2, 1]),
        0.7,
        timeout=0.05,
    )
    assert res.was_fallback and "timed out" in (res.reason or "")
    assert res.items.tolist() == [5, 6, 7]


def test_rerank_rejects_caller_mistakes() -> None:
    rr = LLMReranker(FakeLLM(yes_no=keyword_yes_no("x")), TEXTS)
    with pytest.raises(ConfigError, match="distinct"):
        rerank(rr, np.array([0]), np.array([1, 1]), np.array([1.0, 2.0]), 0.5)
    with pytest.raises(ConfigError, match="CF scores"):
        rerank(rr, np.array([0]), np.array([1, 2]), np.array([1.0]), 0.5)


def test_cache_hits_skip_the_model(tmp_path) -> None:
    llm = FakeLLM(yes_no=keyword_yes_no("space"))
    rr = LLMReranker(llm, TEXTS)
    cache = RerankCache(tmp_path / "cache.jsonl")
    args = (np.array([0, 3]), np.array([1, 3, 4]), np.array([3.0, 2.0, 1.0]), 0.5)
    first = rerank(rr, *args, cache=cache)
    second = rerank(rr, *args, cache=cache)
    assert len(llm.calls) == 1 and second.cached and not first.cached
    assert first.items.tolist() == second.items.tolist()
    # persisted: a new cache object reads it back
    again = rerank(rr, *args, cache=RerankCache(tmp_path / "cache.jsonl"))
    assert again.cached and len(llm.calls) == 1
    # a different history is a different key
    rerank(rr, np.array([0, 6]), *args[1:], cache=cache)
    assert len(llm.calls) == 2
    key_a = RerankCache.key("m", "v1", ["a"], ["b"])
    assert key_a != RerankCache.key("m", "v2", ["a"], ["b"])


def test_choice_mode_uses_label_logprobs() -> None:
    def choice(prompt):  # the model likes the candidate labelled C, knows nothing of the rest
        out = np.full(len(prompt.labels), -np.inf)
        out[prompt.labels.index("C")] = -0.1
        return out

    llm = FakeLLM(choice=choice)
    res = rerank(
        LLMReranker(llm, TEXTS, mode="choice"),
        np.array([0]),
        np.array([4, 5, 6, 7]),
        np.array([4.0, 3, 2, 1]),
        1.0,
    )
    assert res.items.tolist() == [6, 4, 5, 7]
    assert llm.calls[0][1].labels == CHOICE_LABELS[:4]


def test_choice_with_two_orders_cancels_position_bias() -> None:
    def biased(prompt):  # prefers early labels strongly, "space" items a little
        pos = -2.0 * np.arange(len(prompt.labels))
        names = prompt.listing.strip().split("\n")
        return pos + np.array([0.5 if "space" in line else 0.0 for line in names])

    cands = np.array([1, 2, 3, 4, 6])  # 3 and 6 are "space opera"
    cf = np.array([5.0, 4, 3, 2, 1])
    one = LLMReranker(FakeLLM(choice=biased), TEXTS, mode="choice")
    assert rerank(one, np.array([0]), cands, cf, 1.0).items.tolist() == [1, 2, 3, 4, 6]
    llm = FakeLLM(choice=biased)
    two = LLMReranker(llm, TEXTS, mode="choice", orders=2)
    res = rerank(two, np.array([0]), cands, cf, 1.0)
    assert res.items.tolist() == [3, 6, 1, 2, 4]  # position terms cancel; ties by CF
    first, second = (call[1] for call in llm.calls)
    assert second.order == first.order[::-1] and second.shared == first.shared
    assert two.version != one.version and two.version.startswith("choice-v2")


def test_reranker_options_change_the_cache_version() -> None:
    llm = FakeLLM(yes_no=keyword_yes_no("space"))
    base = LLMReranker(llm, TEXTS)
    assert base.version.startswith("pointwise-v3:")
    versions = {
        base.version,
        LLMReranker(llm, TEXTS, history_size=3).version,
        LLMReranker(llm, TEXTS, item_words=3).version,
        LLMReranker(llm, TEXTS, item_words=None).version,
    }
    assert len(versions) == 4
    with pytest.raises(ConfigError, match="orders"):
        LLMReranker(llm, TEXTS, orders=3)
    with pytest.raises(ConfigError, match="mode"):
        LLMReranker(llm, TEXTS, mode="listwise")


def test_history_size_limits_the_prompt() -> None:
    llm = FakeLLM(yes_no=keyword_yes_no("space"))
    rerank(LLMReranker(llm, TEXTS, history_size=2), np.arange(8), np.array([9, 10]), np.ones(2), 1)
    assert llm.calls[-1][1].history == "The user liked: item 6 space opera; item 7 romantic comedy."
    rerank(LLMReranker(llm, TEXTS, history_size=0), np.arange(8), np.array([9, 10]), np.ones(2), 1)
    assert "no recorded history" in llm.calls[-1][1].history


def test_scores_from_ranked_ids_drops_invented_and_duplicates() -> None:
    cands = np.array([10, 20, 30, 40])
    scores = scores_from_ranked_ids([30, 999, 30, "x", 10], cands)
    order = np.argsort(-scores, kind="stable")
    assert cands[order].tolist() == [30, 10, 20, 40]
    assert np.isfinite(scores).all()


def test_validate_scores() -> None:
    np.testing.assert_array_equal(validate_scores([1, 2], 2), [1.0, 2.0])
    with pytest.raises(RerankOutputError, match="shape"):
        validate_scores([1, 2, 3], 2)
    with pytest.raises(RerankOutputError, match="non-finite"):
        validate_scores([1, np.inf], 2)
    with pytest.raises(RerankOutputError, match="magnitude"):
        validate_scores([1e308, -1e308], 2)


def test_choose_weight_prefers_cf_unless_reranker_helps() -> None:
    cf = [np.array([3.0, 2.0, 1.0])] * 4
    good = [np.array([0.0, 0.0, 5.0])] * 4  # knows that the last item is relevant
    rel = [np.array([False, False, True])] * 4
    w, table = choose_weight(cf, good, rel, n=1)
    assert w > 0 and table[w] == 1.0 and table[0.0] == 0.0
    useless = [np.array([0.0, 5.0, 0.0])] * 4
    w, _ = choose_weight(cf, useless, [np.array([True, False, False])] * 4, n=1)
    assert w == 0.0
    w, _ = choose_weight(cf, [None] * 4, rel, n=1)  # failed re-ranks: CF
    assert w == 0.0


def test_embedding_reranker_scores_cosine_to_mean_history() -> None:
    vectors = np.array([[1, 0], [0, 1], [1, 0], [0.6, 0.8]], dtype=np.float32)
    rr = EmbeddingReranker(["a", "b", "c", "d"], embedder=None, vectors=vectors)
    scores = rr.score(np.array([0, 2]), np.array([1, 3]))
    np.testing.assert_allclose(scores, [0.0, 0.6], atol=1e-6)
    assert rr.score(np.array([], dtype=np.int64), np.array([1, 3])).tolist() == [0.0, 0.0]
    with pytest.raises(ConfigError, match="vectors"):
        EmbeddingReranker(["a"], embedder=None, vectors=vectors)


class _CountingEmbedder:
    name = "count"
    dim = 2

    def __init__(self) -> None:
        self.seen: list[str] = []

    def embed(self, texts, **kwargs):  # type: ignore[no-untyped-def]
        self.seen.extend(texts)
        return np.array(
            [[1.0, 0.0] if "space" in t else [0.0, 1.0] for t in texts], dtype=np.float32
        )


def test_embedding_reranker_embeds_lazily_once() -> None:
    emb = _CountingEmbedder()
    rr = EmbeddingReranker(TEXTS, emb)
    res = rerank(rr, np.array([0, 3]), np.array([1, 6, 2, 9]), np.array([4.0, 3, 2, 1]), 1.0)
    assert res.items[:2].tolist() == [6, 9]
    rr.score(np.array([0, 3]), np.array([1, 6]))
    assert len(emb.seen) == 6  # each item text embedded once


adversarial = st.one_of(
    st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=25),
    st.lists(st.integers(min_value=-(10**6), max_value=10**6), max_size=25),
    st.text(max_size=40),
    st.none(),
    st.lists(st.lists(st.floats(), max_size=3), max_size=5),
    st.dictionaries(st.text(max_size=3), st.floats(), max_size=4),
)


@settings(max_examples=100, deadline=None)
@given(
    output=adversarial,
    n_cands=st.integers(min_value=1, max_value=20),
    weight=st.floats(min_value=0.0, max_value=1.0),
    mode=st.sampled_from(["pointwise", "choice"]),
    seed=st.integers(0, 1000),
)
def test_output_is_always_a_permutation_of_the_candidates(
    output, n_cands, weight, mode, seed
) -> None:
    rng = np.random.default_rng(seed)
    cands = rng.choice(30, n_cands, replace=False)
    cf = np.sort(rng.random(n_cands))[::-1]
    llm = FakeLLM(yes_no=lambda p: output, choice=lambda p: output)
    res = rerank(LLMReranker(llm, TEXTS, mode=mode), np.array([0, 1]), cands, cf, weight)
    assert sorted(res.items.tolist()) == sorted(cands.tolist())
    assert len(res.items) == n_cands
    assert np.isfinite(res.scores).all()
    if res.was_fallback:
        assert res.items.tolist() == cands.tolist() and res.reason


@settings(max_examples=100, deadline=None)
@given(
    answer=st.lists(st.one_of(st.integers(-5, 60), st.text(max_size=4), st.none()), max_size=40),
    n_cands=st.integers(min_value=1, max_value=20),
)
def test_listwise_answers_never_invent_items(answer, n_cands) -> None:
    cands = np.arange(n_cands) * 3
    scores = scores_from_ranked_ids(answer, cands)
    assert scores.shape == (n_cands,) and np.isfinite(scores).all()
    res = rerank(_Listwise(answer), np.array([0]), cands, np.linspace(1, 0, n_cands), 1.0)
    assert sorted(res.items.tolist()) == cands.tolist()


class _Listwise:
    """A re-ranker whose model answers with a (possibly garbage) list of ids."""

    name = "listwise"
    version = "v1"

    def __init__(self, answer: list) -> None:
        self.answer = answer

    def item_text(self, item_idx: int) -> str:
        return str(item_idx)

    def score(self, history, candidates):  # type: ignore[no-untyped-def]
        return scores_from_ranked_ids(self.answer, candidates)
