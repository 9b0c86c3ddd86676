"""Second-stage re-rankers over CF candidates, score fusion and the safety net around them.

A re-ranker (:class:`Reranker`, a Protocol) maps a user's history and M candidate items to M
scores. :func:`rerank` turns them into the final order, which is **always a permutation of the
given candidates**:

1. the re-ranker's raw output is validated (:func:`validate_scores`: a finite float per
   candidate; listwise outputs go through :func:`scores_from_ranked_ids`, which drops invented
   ids, keeps the first of duplicates and puts missing ids last in CF order);
2. scores are fused with the CF scores, both standardised within the list::

       z(x) = (x - mean(x)) / std(x)   (0 when std(x) == 0)
       final = (1 - w) * z(cf) + w * z(rerank),   w in [0, 1]

   with w chosen on validation data (:func:`choose_weight`; w = 0 is the CF order itself, so a
   weak re-ranker is down-weighted rather than trusted);
3. the final order sorts by ``final`` descending, ties by CF position.

Any exception, timeout, wrong-length or non-finite output falls back to the CF order with
``was_fallback=True`` and a ``reason``. Scores are cached under a hash of
(re-ranker name, prompt version, history texts, candidate texts) (:class:`RerankCache`).

This module holds :func:`rerank` (the safety net) and re-exports the rest, which lives in:

* :mod:`llmcf.rerank.base` -- the :class:`Reranker` protocol, :class:`RerankResult`,
  :class:`LatencyLog`;
* :mod:`llmcf.rerank.fusion` -- :func:`validate_scores`, :func:`scores_from_ranked_ids`,
  :func:`fuse_scores` (standardise, fuse, order);
* :mod:`llmcf.rerank.cache` -- :class:`RerankCache`;
* :mod:`llmcf.rerank.weights` -- :func:`choose_weight` (NDCG from :mod:`llmcf.eval.metrics`);
* :mod:`llmcf.rerank.embedding_reranker` -- :class:`EmbeddingReranker`;
* :mod:`llmcf.rerank.llm_reranker` -- :class:`LLMReranker`.

Re-rankers:

``EmbeddingReranker``
    ``score(c) = <e_c, p> / ||p||``, ``p = sum_h e_h / |H|`` over the history items' unit text
    embeddings (the default MiniLM embedder): cosine to the user's mean history vector.
``LLMReranker``
    ``mode="pointwise"`` (default): ``logit(Yes) - logit(No)`` per candidate (prompt
    ``pointwise-v3``; a local model scores all candidates in one batched decode over the
    shared prompt, the fixed instructions kept in the KV cache); ``mode="choice"``:
    ``log p(label)`` of every candidate from one forward pass over the labelled list (prompt
    ``choice-v2``, optionally averaged with the reversed list).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

import numpy as np

from llmcf.errors import ConfigError
from llmcf.rerank.base import LatencyLog, Reranker, RerankResult
from llmcf.rerank.cache import RerankCache
from llmcf.rerank.embedding_reranker import EmbeddingReranker
from llmcf.rerank.fusion import (
    RerankOutputError,
    fuse_scores,
    order,
    scores_from_ranked_ids,
    standardise,
    validate_scores,
)
from llmcf.rerank.llm_reranker import LLMReranker
from llmcf.rerank.weights import choose_weight

__all__ = [
    "EmbeddingReranker",
    "LLMReranker",
    "LatencyLog",
    "RerankCache",
    "RerankOutputError",
    "RerankResult",
    "Reranker",
    "RerankerFactory",
    "choose_weight",
    "fuse_scores",
    "rerank",
    "scores_from_ranked_ids",
    "validate_scores",
]

RerankerFactory = Callable[[Sequence[str]], Reranker]


_EXECUTOR: ThreadPoolExecutor | None = None


def _executor() -> ThreadPoolExecutor:
    global _EXECUTOR
    if _EXECUTOR is None:
        _EXECUTOR = ThreadPoolExecutor(max_workers=2, thread_name_prefix="llmcf-rerank")
    return _EXECUTOR


def rerank(
    reranker: Reranker,
    history: np.ndarray,
    candidates: np.ndarray,
    cf_scores: np.ndarray,
    weight: float,
    *,
    cache: RerankCache | None = None,
    timeout: float | None = None,
) -> RerankResult:
    """The fused order of ``candidates`` (int item indices, CF order) for one user.

    Never raises for the re-ranker's failures: they give the CF order with ``was_fallback``.
    ``timeout`` (seconds) bounds the scoring call.
    """
    cands = np.asarray(candidates, dtype=np.int64).ravel()
    cf = np.asarray(cf_scores, dtype=np.float64).ravel()
    if cf.shape != cands.shape:
        raise ConfigError(f"{len(cands)} candidates but {len(cf)} CF scores")
    if len(set(cands.tolist())) != len(cands):
        raise ConfigError("candidates must be distinct item indices")
    if not 0.0 <= weight <= 1.0:
        raise ConfigError(f"fusion weight must be in [0, 1], got {weight}")
    n = len(cands)
    t0 = time.perf_counter()

    def fallback(reason: str) -> RerankResult:
        perm = order(standardise(np.where(np.isfinite(cf), cf, -1e300)))
        return RerankResult(
            cands[perm],
            cf[perm],
            cf[perm],
            np.full(n, np.nan),
            0.0,
            True,
            reason,
            seconds=time.perf_counter() - t0,
        )

    if n == 0:
        return RerankResult(cands, cf, cf, cf.copy(), weight)
    if weight == 0.0:
        perm = order(fuse_scores(cf, np.zeros(n), 0.0))
        return RerankResult(cands[perm], cf[perm], cf[perm], np.zeros(n), 0.0)
    key = None
    cached = False
    scores: np.ndarray | None = None
    try:
        if cache is not None:
            key = RerankCache.key(
                reranker.name,
                reranker.version,
                [reranker.item_text(int(i)) for i in np.asarray(history).ravel()],
                [reranker.item_text(int(i)) for i in cands],
            )
            hit = cache.get(key)
            if hit is not None and len(hit) == n:
                scores, cached = np.asarray(hit), True
        if scores is None:
            if timeout is None:
                raw = reranker.score(np.asarray(history), cands.copy())
            else:
                future = _executor().submit(reranker.score, np.asarray(history), cands.copy())
                raw = future.result(timeout=timeout)
            scores = validate_scores(raw, n)
            if cache is not None and key is not None:
                cache.put(key, scores)
    except FutureTimeout:
        return fallback(f"re-ranker {reranker.name} timed out after {timeout:g} s: CF order kept")
    except Exception as exc:  # the re-ranker is fallible by contract: keep the CF order
        return fallback(
            f"re-ranker {reranker.name} failed ({type(exc).__name__}: {exc}): CF order kept"
        )
    final = fuse_scores(cf, scores, weight)
    perm = order(final)
    return RerankResult(
        cands[perm],
        final[perm],
        cf[perm],
        scores[perm],
        weight,
        False,
        None,
        cached,
        time.perf_counter() - t0,
    )
