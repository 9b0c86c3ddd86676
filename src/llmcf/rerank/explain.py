"""One-sentence reasons for recommended items, generated off the ranking path.

The ranking is final before any explanation is written: :class:`Explainer` only adds text.
The model's reply is cut to its first sentence (at most ``max_chars`` characters), chat control
tokens are removed, and a failure gives ``None`` for that item (with the error kept in
``errors``) instead of failing the recommendation.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from llmcf.rerank.prompts import PROMPT_VERSIONS, explain_prompt

__all__ = ["Explainer", "clean_explanation"]

_CONTROL = re.compile(r"<\|[^|>]*\|>")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s")


def clean_explanation(text: str, max_chars: int = 200) -> str | None:
    """The first sentence of ``text``, control tokens stripped, cut to ``max_chars``; None if
    nothing is left."""
    cleaned = re.sub(r"\s+", " ", _CONTROL.sub(" ", str(text))).strip().strip('"').strip()
    if not cleaned:
        return None
    first = _SENTENCE_END.split(cleaned, maxsplit=1)[0]
    if len(first) > max_chars:
        cut = first[:max_chars]
        first = (cut[: cut.rfind(" ")] if " " in cut else cut).rstrip(",;:") + "…"
    return first


class Explainer:
    """Writes one sentence per item with an :class:`~llmcf.rerank.clients.LLMClient`."""

    version = PROMPT_VERSIONS["explain"]

    def __init__(
        self,
        client: Any,
        item_texts: Sequence[str],
        *,
        history_size: int = 5,
        max_tokens: int = 48,
        max_chars: int = 200,
    ) -> None:
        self.client = client
        self.item_texts = item_texts
        self.history_size = history_size
        self.max_tokens = max_tokens
        self.max_chars = max_chars
        self.errors: list[str] = []
        self._cache: dict[tuple[tuple[int, ...], int], str | None] = {}

    def explain(self, history: np.ndarray, items: np.ndarray) -> list[str | None]:
        """One reason (or None) per item in ``items`` for a user with ``history``."""
        hist_idx = tuple(int(i) for i in np.asarray(history).ravel()[-self.history_size :])
        hist = [str(self.item_texts[i]) for i in hist_idx]
        out: list[str | None] = []
        for item in np.asarray(items).ravel():
            key = (hist_idx, int(item))
            if key not in self._cache:
                system, user = explain_prompt(hist, str(self.item_texts[int(item)]))
                try:
                    reply = self.client.complete(system, user, max_tokens=self.max_tokens)
                    self._cache[key] = clean_explanation(reply, self.max_chars)
                except Exception as exc:  # explanations are optional: record and go on
                    self.errors.append(f"item {int(item)}: {type(exc).__name__}: {exc}")
                    self._cache[key] = None
            out.append(self._cache[key])
        return out
