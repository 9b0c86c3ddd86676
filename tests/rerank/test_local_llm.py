"""The real packaged Qwen2.5 model through llama-cpp-python (1 thread)."""

from __future__ import annotations

import time

import numpy as np
import pytest
from tests.rerank.llm_fixtures import MOVIES, require_local_model

from llmcf.rerank.clients import LlamaCppClient, LLMError
from llmcf.rerank.engine import LlamaScorer
from llmcf.rerank.explain import Explainer
from llmcf.rerank.gguf import assemble_gguf, requantize_gguf
from llmcf.rerank.prompts import VERDICT_INSTRUCTION, choice_prompt, pointwise_prompt
from llmcf.rerank.reranker import LLMReranker, rerank

# the batch composition changes llama.cpp's matrix kernels: logits agree to ~0.1, not exactly
BATCH_TOLERANCE = 0.15


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


def test_batched_branches_equal_separate_prompts(client: LlamaCppClient) -> None:
    prompt = pointwise_prompt(MOVIES["history"], MOVIES["candidates"])
    together = client.yes_no(prompt)
    assert together.shape == (4,) and np.isfinite(together).all()
    assert client.stats["decodes"] == 1  # all candidates in one decode
    for j, cand in enumerate(MOVIES["candidates"]):
        alone = client.yes_no(pointwise_prompt(MOVIES["history"], [cand]))
        assert alone[0] == pytest.approx(together[j], abs=BATCH_TOLERANCE)


def test_fixed_prefix_is_evaluated_once(client: LlamaCppClient) -> None:
    client.yes_no(pointwise_prompt(MOVIES["history"], MOVIES["candidates"]))
    # another user: only the history and the candidates are evaluated
    other = pointwise_prompt(["Emma (1996)", "Heat (1995)"], MOVIES["candidates"])
    client.yes_no(other)
    fixed = len(client._tokens(VERDICT_INSTRUCTION))
    assert client.stats["reused"] > fixed
    branch_tokens = sum(len(client._tokens(other.verdict_prefix(j))) for j in range(4))
    assert client.stats["evaluated"] < branch_tokens + 25
    # the same user again: nothing but the branches
    client.yes_no(other)
    assert client.stats["evaluated"] == branch_tokens


def test_more_branches_than_sequences_run_in_groups() -> None:
    require_local_model()
    scorer = LlamaScorer(assemble_gguf("qwen2.5-0.5b"), n_threads=1, n_ctx=512, n_seq_max=2)
    try:
        shared = scorer.tokenize("The user liked: Alien. Next movie:")
        branches = [scorer.tokenize(f" {name}:") for name in ("Aliens", "Emma", "Heat")]
        ids = scorer.tokenize(" Yes") + scorer.tokenize(" No")
        grouped = scorer.branch_logits(shared, branches, ids)
        assert scorer.last.decodes == 2  # two sequences per group
        for j, branch in enumerate(branches):
            alone = scorer.branch_logits(shared, [branch], ids)
            np.testing.assert_allclose(alone[0], grouped[j], atol=BATCH_TOLERANCE)
        logp = scorer.branch_logits(shared, branches[:1], ids, log_softmax=True)
        assert (logp < 0).all() and np.exp(logp).sum() <= 1.0
    finally:
        scorer.close()


def test_timeout_aborts_the_decode_and_the_client_recovers() -> None:
    require_local_model()
    quick = LlamaCppClient("qwen2.5-0.5b", n_threads=1, timeout=0.001)
    prompt = pointwise_prompt(MOVIES["history"], MOVIES["candidates"])
    t0 = time.perf_counter()
    with pytest.raises(LLMError, match="deadline"):
        quick.yes_no(prompt)
    assert time.perf_counter() - t0 < 5
    quick.timeout = None
    assert np.isfinite(quick.yes_no(prompt)).all()
    quick.close()


def test_choice_gives_label_log_probabilities(client: LlamaCppClient) -> None:
    scores = client.choice(choice_prompt(MOVIES["history"], MOVIES["candidates"]))
    assert scores.shape == (4,) and np.isfinite(scores).all() and (scores <= 0).all()
    assert np.exp(scores).sum() <= 1.0 + 1e-6


def test_rerank_twenty_candidates_end_to_end(client: LlamaCppClient) -> None:
    texts = MOVIES["history"] + [f"{c} Copy {i}." for i in range(5) for c in MOVIES["candidates"]]
    for mode in ("pointwise", "choice"):
        reranker = LLMReranker(client, texts, mode=mode)
        cands = np.arange(4, 24)
        result = rerank(reranker, np.arange(4), cands, np.linspace(1, 0, 20), 0.5)
        assert not result.was_fallback, result.reason
        assert sorted(result.items.tolist()) == cands.tolist()
        assert client.stats["decodes"] == 1
        # compact prompt: ~5 tokens per candidate beyond the cached instructions
        assert client.stats["evaluated"] < 200
    # a timeout on the local client falls back to the CF order with the reason
    slow = LLMReranker(LlamaCppClient("qwen2.5-0.5b", n_threads=1, timeout=0.001), texts)
    res = rerank(slow, np.arange(4), np.arange(4, 24), np.linspace(1, 0, 20), 0.5)
    assert res.was_fallback and "deadline" in (res.reason or "")
    assert res.items.tolist() == list(range(4, 24))


def test_requantized_copy_is_reused_and_agrees() -> None:
    require_local_model()
    source = assemble_gguf("qwen2.5-0.5b")
    first = requantize_gguf(source, "q8_0")
    mtime = first.stat().st_mtime
    assert requantize_gguf(source, "q8_0") == first and first.stat().st_mtime == mtime
    q8 = LlamaCppClient("qwen2.5-0.5b@q8_0", n_threads=1)
    assert q8.name == "llama.cpp:qwen2.5-0.5b@q8_0"
    prompt = pointwise_prompt(MOVIES["history"], MOVIES["candidates"])
    base = LlamaCppClient("qwen2.5-0.5b", n_threads=1).yes_no(prompt)
    np.testing.assert_allclose(q8.yes_no(prompt), base, atol=0.5)
    with pytest.raises(LLMError, match="quantisation"):
        LlamaCppClient("qwen2.5-0.5b@q3_x")


def test_explanation_is_one_sentence(client: LlamaCppClient) -> None:
    texts = MOVIES["history"] + MOVIES["candidates"]
    out = Explainer(client, texts).explain(np.arange(4), np.array([5]))
    assert out[0] is not None and 3 <= len(out[0]) <= 201
