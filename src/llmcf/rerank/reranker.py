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

import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from llmcf.errors import ConfigError, LlmcfError
from llmcf.rerank.prompts import PROMPT_VERSIONS, choice_prompt, pointwise_prompt

__all__ = [
    "EmbeddingReranker",
    "LLMReranker",
    "RerankCache",
    "RerankOutputError",
    "RerankResult",
    "Reranker",
    "choose_weight",
    "fuse_scores",
    "rerank",
    "scores_from_ranked_ids",
    "validate_scores",
]


class RerankOutputError(LlmcfError, ValueError):
    """A re-ranker returned something that is not one finite score per candidate."""


@runtime_checkable
class Reranker(Protocol):
    """Scores candidate items (int item indices) for a user with history ``history``."""

    @property
    def name(self) -> str: ...

    @property
    def version(self) -> str: ...

    def item_text(self, item_idx: int) -> str: ...

    def score(self, history: np.ndarray, candidates: np.ndarray) -> Any: ...


@dataclass
class RerankResult:
    """The final order of one candidate list.

    ``items``: the candidates reordered (a permutation of the input); ``scores``: the fused
    scores in that order; ``cf_scores`` / ``rerank_scores``: the inputs in that order
    (``rerank_scores`` NaN on fallback); ``weight``: w used; ``was_fallback``/``reason``: set
    when the CF order was kept because the re-ranker failed; ``cached``: scores from the cache;
    ``seconds``: time spent scoring.
    """

    items: np.ndarray
    scores: np.ndarray
    cf_scores: np.ndarray
    rerank_scores: np.ndarray
    weight: float
    was_fallback: bool = False
    reason: str | None = None
    cached: bool = False
    seconds: float = 0.0


def validate_scores(raw: Any, n: int) -> np.ndarray:
    """``raw`` as a float64 array of ``n`` finite scores, or :class:`RerankOutputError`."""
    try:
        arr = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise RerankOutputError(f"re-ranker output is not numeric: {str(raw)[:80]!r}") from exc
    if arr.ndim != 1 or arr.shape[0] != n:
        raise RerankOutputError(f"re-ranker returned shape {arr.shape}, expected ({n},)")
    if not np.isfinite(arr).all():
        raise RerankOutputError("re-ranker returned non-finite scores")
    return arr


def scores_from_ranked_ids(ranked: Sequence[Any], candidates: np.ndarray) -> np.ndarray:
    """Scores from a listwise answer (ids best first): ``score = n - position``.

    Ids not among ``candidates`` (invented) are dropped, duplicates count at their first
    position, candidates the answer left out score below every named one, in CF order
    (``-position_in_candidates / n``). Always one finite score per candidate.
    """
    cands = [int(c) for c in np.asarray(candidates).ravel()]
    n = len(cands)
    position = {c: j for j, c in enumerate(cands)}
    scores = np.array([-(j + 1) / (n + 1) for j in range(n)], dtype=np.float64)
    seen: set[int] = set()
    rank = 0
    for value in ranked:
        try:
            item = int(value)
        except (TypeError, ValueError, OverflowError):
            continue
        if item in position and item not in seen:
            seen.add(item)
            scores[position[item]] = float(n - rank)
            rank += 1
    return scores


def _standardise(x: np.ndarray) -> np.ndarray:
    sd = float(np.std(x))
    if not np.isfinite(sd) or sd == 0.0:
        return np.zeros_like(x)
    return (x - float(np.mean(x))) / sd


def fuse_scores(cf_scores: np.ndarray, rerank_scores: np.ndarray, weight: float) -> np.ndarray:
    """``(1 - w) z(cf) + w z(rerank)`` (z: standardise within the list; formula above)."""
    if not 0.0 <= weight <= 1.0:
        raise ConfigError(f"fusion weight must be in [0, 1], got {weight}")
    cf = np.asarray(cf_scores, dtype=np.float64)
    cf = np.where(
        np.isfinite(cf),
        cf,
        np.nanmin(np.where(np.isfinite(cf), cf, np.nan)) if np.isfinite(cf).any() else 0.0,
    )
    return (1.0 - weight) * _standardise(cf) + weight * _standardise(
        np.asarray(rerank_scores, dtype=np.float64)
    )


def _order(final: np.ndarray) -> np.ndarray:
    """Positions sorted by ``final`` descending, ties by position (CF order)."""
    return np.lexsort((np.arange(len(final)), -final))


class RerankCache:
    """Re-ranker scores keyed by sha256 of (name, version, history texts, candidate texts).

    In memory (LRU, ``max_entries``), and appended to a JSON-lines file when ``path`` is given
    (read back on start; a corrupt line is skipped).
    """

    def __init__(self, path: str | Path | None = None, max_entries: int = 100_000) -> None:
        self.path = Path(path) if path is not None else None
        self.max_entries = max_entries
        self._data: OrderedDict[str, list[float]] = OrderedDict()
        self._lock = threading.Lock()
        if self.path is not None and self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    entry = json.loads(line)
                    self._data[str(entry["key"])] = [float(v) for v in entry["scores"]]
                except (ValueError, KeyError, TypeError):
                    continue

    @staticmethod
    def key(name: str, version: str, history: Sequence[str], candidates: Sequence[str]) -> str:
        blob = json.dumps([name, version, list(history), list(candidates)], ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def get(self, key: str) -> list[float] | None:
        with self._lock:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            return value

    def put(self, key: str, scores: np.ndarray) -> None:
        values = [float(v) for v in scores]
        with self._lock:
            self._data[key] = values
            while len(self._data) > self.max_entries:
                self._data.popitem(last=False)
            if self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with open(self.path, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps({"key": key, "scores": values}) + "\n")

    def __len__(self) -> int:
        return len(self._data)


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
        order = _order(_standardise(np.where(np.isfinite(cf), cf, -1e300)))
        return RerankResult(
            cands[order],
            cf[order],
            cf[order],
            np.full(n, np.nan),
            0.0,
            True,
            reason,
            seconds=time.perf_counter() - t0,
        )

    if n == 0:
        return RerankResult(cands, cf, cf, cf.copy(), weight)
    if weight == 0.0:
        order = _order(fuse_scores(cf, np.zeros(n), 0.0))
        return RerankResult(cands[order], cf[order], cf[order], np.zeros(n), 0.0)
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
    order = _order(final)
    return RerankResult(
        cands[order],
        final[order],
        cf[order],
        scores[order],
        weight,
        False,
        None,
        cached,
        time.perf_counter() - t0,
    )


def choose_weight(
    cf_scores: Sequence[np.ndarray],
    rerank_scores: Sequence[np.ndarray | None],
    relevant: Sequence[np.ndarray],
    n: int = 10,
    grid: Sequence[float] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
) -> tuple[float, dict[float, float]]:
    """The fusion weight maximising mean NDCG@n over validation users.

    Per user: CF scores of the candidates, re-ranker scores (None = failed: CF order), and a
    boolean array marking the relevant candidates. Returns ``(best_w, {w: mean NDCG@n})``; ties
    go to the smaller w (closer to CF), and w = 0 is always in the grid.
    """
    weights = sorted({0.0, *(float(w) for w in grid)})
    discounts = 1.0 / np.log2(np.arange(2, n + 2))
    table: dict[float, float] = {}
    for w in weights:
        values = []
        for cf, rr, rel in zip(cf_scores, rerank_scores, relevant, strict=True):
            rel = np.asarray(rel, dtype=bool)
            n_rel = int(rel.sum())
            if n_rel == 0:
                continue
            final = fuse_scores(cf, rr if rr is not None else np.zeros(len(cf)), w)
            top = _order(final)[:n]
            dcg = float(rel[top] @ discounts[: len(top)])
            idcg = float(discounts[: min(n_rel, n)].sum())
            values.append(dcg / idcg)
        table[w] = float(np.mean(values)) if values else 0.0
    best = max(weights, key=lambda w: (table[w], -w))
    return best, table


# ---------------------------------------------------------------------- re-rankers
@dataclass
class _TextSource:
    texts: Sequence[str]

    def item_text(self, item_idx: int) -> str:
        if not 0 <= item_idx < len(self.texts):
            raise ConfigError(f"item index {item_idx} has no text (0..{len(self.texts) - 1})")
        return str(self.texts[item_idx] or "")


class EmbeddingReranker:
    """Cosine between each candidate's text embedding and the user's mean history embedding.

    Args:
        item_texts: one text per item index.
        embedder: an :class:`~llmcf.text.embedders.Embedder` or a spec for
            :func:`~llmcf.text.embedders.make_embedder` (default ``"minilm"``).
        vectors: precomputed unit vectors (n_items, dim) instead of embedding lazily.
        cache_version: template version for the on-disk embedding cache when
            :meth:`prepare` embeds every item.
    """

    version = "embedding-v1"

    def __init__(
        self,
        item_texts: Sequence[str],
        embedder: Any = "minilm",
        *,
        vectors: np.ndarray | None = None,
        cache_version: str = "unknown",
    ) -> None:
        self._texts = _TextSource(item_texts)
        self._embedder_spec = embedder
        self._embedder: Any = None if isinstance(embedder, str) else embedder
        self._cache_version = cache_version
        self._vectors: dict[int, np.ndarray] = {}
        self._all: np.ndarray | None = None
        if vectors is not None:
            if vectors.shape[0] != len(item_texts):
                raise ConfigError(f"{vectors.shape[0]} vectors for {len(item_texts)} item texts")
            self._all = np.asarray(vectors, dtype=np.float32)

    @property
    def name(self) -> str:
        emb = self._embedder
        return f"embedding:{getattr(emb, 'name', self._embedder_spec)}"

    def item_text(self, item_idx: int) -> str:
        return self._texts.item_text(item_idx)

    def _get_embedder(self) -> Any:
        if self._embedder is None:
            from llmcf.text.embedders import make_embedder

            self._embedder = make_embedder(str(self._embedder_spec))
        return self._embedder

    def prepare(self, progress: bool = False) -> EmbeddingReranker:
        """Embed every item once (through the on-disk embedding cache)."""
        if self._all is None:
            from llmcf.text.cache import embed_with_cache

            self._all = embed_with_cache(
                self._get_embedder(),
                list(self._texts.texts),
                template_version=self._cache_version,
                progress=progress,
            )
        return self

    def vectors(self, items: np.ndarray) -> np.ndarray:
        """Unit text vectors of ``items`` (float32, (len(items), dim)); embedded on demand."""
        items = np.asarray(items, dtype=np.int64)
        if self._all is not None:
            return self._all[items]
        missing = [int(i) for i in dict.fromkeys(items.tolist()) if int(i) not in self._vectors]
        if missing:
            vecs = self._get_embedder().embed([self.item_text(i) for i in missing])
            for i, v in zip(missing, vecs, strict=True):
                self._vectors[i] = np.asarray(v, dtype=np.float32)
        return np.stack([self._vectors[int(i)] for i in items]) if len(items) else np.zeros((0, 1))

    def score(self, history: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        history = np.asarray(history, dtype=np.int64)
        if len(history) == 0:
            return np.zeros(len(candidates))
        profile = self.vectors(history).astype(np.float64).mean(axis=0)
        norm = float(np.linalg.norm(profile))
        if norm == 0.0:
            return np.zeros(len(candidates))
        return self.vectors(np.asarray(candidates)).astype(np.float64) @ (profile / norm)


class LLMReranker:
    """Language-model scores through an :class:`~llmcf.rerank.clients.LLMClient`.

    Args:
        client: the model (local llama.cpp, OpenAI-compatible endpoint, or a fake in tests).
        item_texts: one text per item index.
        mode: ``"pointwise"`` (default: ``logit(Yes) - logit(No)`` per candidate, prompt
            ``pointwise-v3``; locally all candidates in one batched decode, no position bias)
            or ``"choice"`` (``log p(label)`` of every candidate from one forward pass over
            the labelled list, prompt ``choice-v2``).
        history_size: the most recent history items shown in the prompt.
        item_words: item names are cut to this many words (None: the whole sanitised text,
            at most ``max_chars`` characters; for strong endpoint models).
        orders: choice mode only: 2 also scores the reversed list and averages the two
            log-probabilities per candidate (against position bias; twice the candidate
            tokens).
    """

    def __init__(
        self,
        client: Any,
        item_texts: Sequence[str],
        *,
        mode: str = "pointwise",
        history_size: int = 5,
        item_words: int | None = 5,
        max_chars: int = 100,
        orders: int = 1,
    ) -> None:
        if mode not in ("pointwise", "choice"):
            raise ConfigError(f"unknown LLM re-rank mode {mode!r}; valid: pointwise, choice")
        if orders not in (1, 2):
            raise ConfigError(f"orders must be 1 or 2, got {orders}")
        if history_size < 0:
            raise ConfigError(f"history_size must be >= 0, got {history_size}")
        self.client = client
        self.mode = mode
        self.history_size = history_size
        self.item_words = item_words
        self.max_chars = max_chars
        self.orders = orders
        self._texts = _TextSource(item_texts)

    @property
    def name(self) -> str:
        return f"llm:{self.client.name}:{self.mode}"

    @property
    def version(self) -> str:
        words = "all" if self.item_words is None else str(self.item_words)
        version = f"{PROMPT_VERSIONS[self.mode]}:h{self.history_size}:w{words}:c{self.max_chars}"
        return version + (f":o{self.orders}" if self.mode == "choice" else "")

    def item_text(self, item_idx: int) -> str:
        return self._texts.item_text(item_idx)

    def score(self, history: np.ndarray, candidates: np.ndarray) -> Any:
        recent = np.asarray(history).ravel()
        recent = recent[len(recent) - self.history_size :] if self.history_size else recent[:0]
        hist = [self.item_text(int(i)) for i in recent]
        cands = [self.item_text(int(i)) for i in np.asarray(candidates).ravel()]
        if self.mode == "pointwise":
            return self.client.yes_no(
                pointwise_prompt(hist, cands, self.item_words, self.max_chars)
            )
        n = len(cands)
        orders = [list(range(n)), list(range(n))[::-1]][: self.orders]
        total = np.zeros(n)
        for order in orders:
            prompt = choice_prompt(hist, cands, self.item_words, self.max_chars, order=order)
            raw = np.asarray(self.client.choice(prompt), dtype=np.float64)
            if raw.shape != (n,):
                return raw  # malformed: validate_scores rejects it
            # labels the model gave no probability rank below every named one
            finite = np.isfinite(raw)
            floor = float(raw[finite].min()) - 1.0 if finite.any() else 0.0
            by_label = np.where(np.isnan(raw) | (raw == -np.inf), floor, raw)
            total[list(prompt.order)] += by_label
        return total / len(orders)


@dataclass
class LatencyLog:
    """Per-call seconds, for p50/p95 reports."""

    seconds: list[float] = field(default_factory=list)

    def add(self, value: float) -> None:
        self.seconds.append(float(value))

    def percentiles(self) -> dict[str, float]:
        if not self.seconds:
            return {"p50": float("nan"), "p95": float("nan"), "n": 0}
        arr = np.asarray(self.seconds)
        return {
            "p50": float(np.percentile(arr, 50)),
            "p95": float(np.percentile(arr, 95)),
            "n": len(arr),
        }


RerankerFactory = Callable[[Sequence[str]], Reranker]
