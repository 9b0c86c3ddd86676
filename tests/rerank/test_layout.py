"""The split of llmcf.rerank.reranker and llmcf.text.embedders: old import paths keep working,
each new module imports on its own, and choose_weight's NDCG is the evaluation metric's."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import llmcf.rerank.reranker as reranker
import llmcf.text.embedders as embedders
import llmcf.text.onnx as onnx
from llmcf.rerank import base, cache, embedding_reranker, fusion, llm_reranker, weights
from llmcf.rerank.fusion import fuse_scores, order
from llmcf.text import embedding_base


def test_reranker_module_reexports_the_split_modules() -> None:
    homes = {
        "Reranker": base,
        "RerankResult": base,
        "LatencyLog": base,
        "RerankOutputError": fusion,
        "validate_scores": fusion,
        "scores_from_ranked_ids": fusion,
        "fuse_scores": fusion,
        "RerankCache": cache,
        "choose_weight": weights,
        "EmbeddingReranker": embedding_reranker,
        "LLMReranker": llm_reranker,
    }
    for name, module in homes.items():
        assert getattr(reranker, name) is getattr(module, name), name
    assert set(reranker.__all__) >= set(homes) | {"rerank"}
    for name in reranker.__all__:
        assert hasattr(reranker, name), name


def test_embedder_modules_keep_their_public_names() -> None:
    for name in embedders.__all__:
        assert hasattr(embedders, name), name
    for name in onnx.__all__:
        assert hasattr(onnx, name), name
    for name in embedding_base.__all__:
        assert getattr(embedders, name) is getattr(embedding_base, name), name
    assert embedders.MissingDependencyError is onnx.MissingDependencyError


@pytest.mark.parametrize(
    "module",
    [
        "llmcf.llm.http",
        "llmcf.text.embedding_base",
        "llmcf.text.onnx",
        "llmcf.text.embedders",
        "llmcf.rerank.fusion",
        "llmcf.rerank.weights",
        "llmcf.rerank.embedding_reranker",
        "llmcf.rerank.llm_reranker",
        "llmcf.rerank.reranker",
    ],
)
def test_each_module_imports_first_in_a_fresh_interpreter(module: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", f"import {module}"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]


def _reference_choose_weight(cf_scores, rerank_scores, relevant, n, grid):  # type: ignore[no-untyped-def]
    """The hand-rolled NDCG loop choose_weight had before it used llmcf.eval.metrics."""
    weights_ = sorted({0.0, *(float(w) for w in grid)})
    discounts = 1.0 / np.log2(np.arange(2, n + 2))
    table = {}
    for w in weights_:
        values = []
        for cf, rr, rel in zip(cf_scores, rerank_scores, relevant, strict=True):
            rel = np.asarray(rel, dtype=bool)
            n_rel = int(rel.sum())
            if n_rel == 0:
                continue
            final = fuse_scores(cf, rr if rr is not None else np.zeros(len(cf)), w)
            top = order(final)[:n]
            values.append(
                float(rel[top] @ discounts[: len(top)]) / discounts[: min(n_rel, n)].sum()
            )
        table[w] = float(np.mean(values)) if values else 0.0
    return max(weights_, key=lambda w: (table[w], -w)), table


@pytest.mark.parametrize("seed", range(5))
def test_choose_weight_matches_the_previous_ndcg(seed: int) -> None:
    rng = np.random.default_rng(seed)
    cf, rr, rel = [], [], []
    for _ in range(40):
        m = int(rng.integers(1, 25))  # lists shorter and longer than n
        cf.append(rng.normal(size=m))
        rr.append(None if rng.random() < 0.1 else cf[-1] * 0.3 + rng.normal(size=m))
        rel.append(rng.random(m) < 0.2)
    grid = (0.0, 0.25, 0.5, 0.75, 1.0)
    best, table = weights.choose_weight(cf, rr, rel, n=10, grid=grid)
    ref_best, ref_table = _reference_choose_weight(cf, rr, rel, 10, grid)
    assert best == ref_best
    assert table.keys() == ref_table.keys()
    for w in table:
        assert table[w] == pytest.approx(ref_table[w], abs=1e-12)


def test_choose_weight_without_relevant_users() -> None:
    best, table = weights.choose_weight([np.ones(3)], [np.ones(3)], [np.zeros(3, bool)], n=2)
    assert best == 0.0 and set(table.values()) == {0.0}
