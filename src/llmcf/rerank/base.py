"""What the re-ranking modules share: the :class:`Reranker` protocol, :class:`RerankResult`,
per-item texts and a latency log.

A leaf of :mod:`llmcf.rerank` (it imports no other re-rank module).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from llmcf.errors import ConfigError

__all__ = ["ItemTexts", "LatencyLog", "RerankResult", "Reranker"]


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


@dataclass
class ItemTexts:
    """One text per item index; :meth:`item_text` checks the index."""

    texts: Sequence[str]

    def item_text(self, item_idx: int) -> str:
        if not 0 <= item_idx < len(self.texts):
            raise ConfigError(f"item index {item_idx} has no text (0..{len(self.texts) - 1})")
        return str(self.texts[item_idx] or "")


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
