"""The real packaged Qwen2.5 model through llama-cpp-python (1 thread)."""

from __future__ import annotations

import time

import numpy as np
import pytest
from tests.rerank.llm_fixtures import MOVIES, require_local_model

from llmcf.rerank.clients import LlamaCppClient
from llmcf.rerank.explain import Explainer
from llmcf.rerank.gguf import assemble_gguf
from llmcf.rerank.prompts import choice_prompt, pointwise_prompt
from llmcf.rerank.reranker import LLMReranker, rerank


@pytest.fixture(scope="module")
def client() -> LlamaCppClient:
    require_local_model()
    return LlamaCppClient("qwen2.5-0.5b", n_threads=1)


def test_assembled_gguf_is_reused() -> None:
    require_local_model()
    first = assemble_gguf("qwen2.5-0.5b")
    mtime = first.stat().st_mtime
    assert assemble_gguf("qwen2.5-0.5b") == first and first.stat().st_mtime == mtime
    with open(first, "rb") as fh:
        assert fh.read(4) == b"GGUF"


def test_prefix_cache_gives_the_same_scores_as_separate_prompts(client: LlamaCppClient) -> None:
    prompt = pointwise_prompt(MOVIES["history"], MOVIES["candidates"])
    together = client.yes_no(prompt)
    assert together.shape == (4,) and np.isfinite(together).all()
    for j, cand in enumerate(MOVIES["candidates"]):
        alone = client.yes_no(pointwise_prompt(MOVIES["history"], [cand]))
        assert alone[0] == pytest.approx(together[j], abs=0.05)


def test_pointwise_prefers_the_sci_fi_sequels(client: LlamaCppClient) -> None:
    scores = client.yes_no(pointwise_prompt(MOVIES["history"], MOVIES["candidates"]))
    # candidates 1 and 3 are sci-fi sequels of the history, 0 and 2 romances
    assert min(scores[1], scores[3]) > max(scores[0], scores[2])


def test_choice_gives_label_log_probabilities(client: LlamaCppClient) -> None:
    scores = client.choice(choice_prompt(MOVIES["history"], MOVIES["candidates"]))
    assert scores.shape == (4,) and np.isfinite(scores).all() and (scores <= 0).all()
    assert np.exp(scores).sum() <= 1.0 + 1e-6


def test_rerank_twenty_candidates_is_a_permutation_and_fast_enough(client: LlamaCppClient) -> None:
    texts = MOVIES["history"] + [f"{c} Copy {i}." for i in range(5) for c in MOVIES["candidates"]]
    reranker = LLMReranker(client, texts)
    cands = np.arange(4, 24)
    t0 = time.perf_counter()
    result = rerank(reranker, np.arange(4), cands, np.linspace(1, 0, 20), 0.5)
    seconds = time.perf_counter() - t0
    assert not result.was_fallback, result.reason
    assert sorted(result.items.tolist()) == cands.tolist()
    assert seconds < 90  # a sanity bound only: the latency is measured in docs/experiments.md


def test_explanation_is_one_sentence(client: LlamaCppClient) -> None:
    texts = MOVIES["history"] + MOVIES["candidates"]
    out = Explainer(client, texts).explain(np.arange(4), np.array([5]))
    assert out[0] is not None and 3 <= len(out[0]) <= 201
