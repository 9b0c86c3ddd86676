"""Nearest catalog items of a free text (an item new to a model), by embedding cosine."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

import numpy as np


class TextNeighbours:
    """Nearest catalog items of a free text, by cosine of L2-normalised embeddings.

    Args:
        item_embeddings: float32 (n_items, dim), rows L2-normalised, aligned with the model's
            item indices.
        embed: texts -> float32 (n, dim) L2-normalised (an ``Embedder.embed``).
        cache_size: texts whose embedding is kept (an LRU).
    """

    def __init__(
        self,
        item_embeddings: np.ndarray,
        embed: Callable[[list[str]], np.ndarray],
        cache_size: int = 4096,
    ) -> None:
        self.item_embeddings = np.ascontiguousarray(item_embeddings, dtype=np.float32)
        self.embed = embed
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def cosines(self, text: str) -> np.ndarray:
        """float64 (n_items,) cosine of ``text`` to every catalog item."""
        with self._lock:
            hit = self._cache.get(text)
            if hit is not None:
                self._cache.move_to_end(text)
                return hit
        vec = np.asarray(self.embed([text]), dtype=np.float32).reshape(-1)
        sims = (self.item_embeddings @ vec).astype(np.float64)
        with self._lock:
            self._cache[text] = sims
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return sims

    def neighbours(self, text: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(item_idx int32, cosine float64)`` of the ``k`` most similar items with cosine > 0
        (best first, ties by lower index)."""
        return top_positive(self.cosines(text), k)


def top_positive(sims: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` largest positive entries of ``sims`` (value desc, index asc)."""
    cand = np.flatnonzero(sims > 0)
    order = cand[np.lexsort((cand, -sims[cand]))][:k]
    return order.astype(np.int32), sims[order]
