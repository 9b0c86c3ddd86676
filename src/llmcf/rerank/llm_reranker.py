"""The language-model re-ranker, over any :class:`~llmcf.rerank.clients.LLMClient`.

``mode="pointwise"`` (default): ``logit(Yes) - logit(No)`` per candidate (prompt
``pointwise-v3``; a local model scores all candidates in one batched decode over the shared
prompt, the fixed instructions kept in the KV cache); ``mode="choice"``: ``log p(label)`` of
every candidate from one forward pass over the labelled list (prompt ``choice-v2``,
optionally averaged with the reversed list).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from llmcf.errors import ConfigError
from llmcf.rerank.base import ItemTexts
from llmcf.rerank.prompts import PROMPT_VERSIONS, choice_prompt, pointwise_prompt

__all__ = ["LLMReranker"]


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
        self._texts = ItemTexts(item_texts)

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
