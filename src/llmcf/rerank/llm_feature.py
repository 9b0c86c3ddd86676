"""The language model's judgement as a feature of the learned second stage (family ``llm``).

For each user the top ``n_candidates`` (default 20) of the retriever's candidates are put to
the language model with the user's liked items (:class:`~llmcf.rerank.llm_reranker.LLMReranker`):
``mode="pointwise"`` (default) asks "would the user like this?" once per candidate and reads
``logit(Yes) - logit(No)``; every candidate is judged in its own branch after the shared
history, so no candidate sees another and there is no list position to bias (the position
bias of zero-shot LLM rankers, Hou et al. 2023, is a bias of list prompts).
``mode="choice"`` lists the candidates and reads ``log p(label)``, averaged over the list and
its reverse (``orders=2``) to cancel the position bias. Candidates below the top
``n_candidates``, and users without history, get NaN (LightGBM's missing value).

The history shown is the user's ``history_size`` highest-valued items (ties: the higher item
index), best last. Judgements are cached (:class:`~llmcf.rerank.cache.RerankCache`, keyed by
the model, the prompt version, the history texts and the candidate texts; a JSON-lines file
when ``cache_path`` is given), so a repeated request or a refit over the same queries costs
nothing.

``background=True`` (the service): a judgement not in the cache is computed on one
background thread and the request is answered at once with NaN for it (the ranker's
missing-value branch); the next request of that user reads the cache. This keeps the
language model off the request path where it is too slow (0.5-1 s per user on two cores).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np

from llmcf.errors import ConfigError
from llmcf.rerank.cache import RerankCache

if TYPE_CHECKING:
    from llmcf.ranking.path import Histories

__all__ = ["LLM_COLUMNS", "MAX_TEXT_CHARS", "LLMFeature"]

#: the feature columns of the family
LLM_COLUMNS = ("llm_yes_no", "llm_z")
#: item texts are kept (and saved) cut to this many characters; prompts use at most 100
MAX_TEXT_CHARS = 300


class LLMFeature:
    """Language-model scores of (user, candidate) pairs (module docstring).

    Args:
        client: an :class:`~llmcf.rerank.clients.LLMClient` (local llama.cpp, an
            OpenAI-compatible endpoint, or a fake in tests).
        item_texts: one text per item index.
        n_candidates: how many of the retriever's top candidates are judged.
        history_size: liked history items shown.
        mode: ``"pointwise"`` or ``"choice"`` (averaged over two orders).
        cache_path: a JSON-lines file of judgements (None: in memory only).
        background: compute cache misses off the caller's thread (NaN meanwhile).
    """

    def __init__(
        self,
        client: Any,
        item_texts: Sequence[str],
        *,
        n_candidates: int = 20,
        history_size: int = 5,
        mode: str = "pointwise",
        cache_path: str | None = None,
        background: bool = False,
    ) -> None:
        from llmcf.rerank.llm_reranker import LLMReranker

        if n_candidates < 1:
            raise ConfigError(f"llm_candidates must be >= 1, got {n_candidates}")
        if history_size < 1:
            raise ConfigError(f"llm_history must be >= 1, got {history_size}")
        self.texts = [str(t)[:MAX_TEXT_CHARS] for t in item_texts]
        self.scorer = LLMReranker(
            client,
            self.texts,
            mode=mode,
            history_size=history_size,
            orders=2 if mode == "choice" else 1,
        )
        self.n_candidates = n_candidates
        self.history_size = history_size
        self.cache = RerankCache(cache_path)
        self.background = background
        self._pending: set[str] = set()
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self.computed = 0  # judgements computed (not from the cache), for reports

    def history_items(self, h: Histories, t: int) -> np.ndarray:
        """Row ``t``'s ``history_size`` highest-valued items, best last."""
        vals = h.values
        lo, hi = vals.indptr[t], vals.indptr[t + 1]
        items = np.asarray(vals.indices[lo:hi], dtype=np.int64)
        values = np.asarray(vals.data[lo:hi], dtype=np.float64)
        order = np.lexsort((items, values))  # ascending value, then index: best last
        return items[order][-self.history_size :]

    def _key(self, hist: np.ndarray, cands: np.ndarray) -> str:
        s = self.scorer
        return RerankCache.key(
            s.name,
            s.version,
            [s.item_text(int(i)) for i in hist],
            [s.item_text(int(i)) for i in cands],
        )

    def _compute(self, key: str, hist: np.ndarray, cands: np.ndarray) -> list[float]:
        from llmcf.rerank.clients import LLMError
        from llmcf.rerank.fusion import RerankOutputError, validate_scores

        try:
            raw = validate_scores(self.scorer.score(hist, cands), len(cands))
        except (LLMError, RerankOutputError):
            raw = np.full(len(cands), np.nan)  # an answer the feature cannot use: missing
        values = [float(v) for v in raw]
        if np.isfinite(raw).all():
            self.cache.put(key, raw)
        self.computed += 1
        return values

    def _later(self, key: str, hist: np.ndarray, cands: np.ndarray) -> None:
        with self._lock:
            if key in self._pending:
                return
            self._pending.add(key)
            if self._pool is None:
                self._pool = ThreadPoolExecutor(1, thread_name_prefix="llmcf-llm-feature")

        def run() -> None:
            try:
                self._compute(key, hist, cands)
            finally:
                with self._lock:
                    self._pending.discard(key)

        self._pool.submit(run)

    def scores(self, h: Histories, items: np.ndarray) -> np.ndarray:
        """float64 (b, M): the judgement of each row's first ``n_candidates`` candidates
        (``items``, -1 padded), NaN elsewhere."""
        b, m = items.shape
        out = np.full((b, m), np.nan)
        k = min(m, self.n_candidates)
        for t in range(b):
            cands = items[t, :k]
            cands = cands[cands >= 0]
            if not len(cands):
                continue
            hist = self.history_items(h, t)
            if not len(hist):
                continue
            key = self._key(hist, cands)
            cached = self.cache.get(key)
            if cached is None:
                if self.background:
                    self._later(key, hist, cands)
                    continue
                cached = self._compute(key, hist, cands)
            out[t, : len(cands)] = cached
        return out

    def wait(self) -> None:
        """Block until every background judgement is done (tests, benchmarks)."""
        pool = self._pool
        if pool is not None:
            pool.submit(lambda: None).result()

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
        close = getattr(self.scorer.client, "close", None)
        if close is not None:
            close()
