"""The embedding re-ranker: cosine between candidate and mean-history text embeddings.

``score(c) = <e_c, p> / ||p||``, ``p = sum_h e_h / |H|`` over the history items' unit text
embeddings (the default MiniLM embedder): cosine to the user's mean history vector.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from llmcf.errors import ConfigError
from llmcf.rerank.base import ItemTexts

__all__ = ["EmbeddingReranker"]


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
        self._texts = ItemTexts(item_texts)
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
