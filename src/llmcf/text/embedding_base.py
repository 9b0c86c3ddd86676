"""What every embedder shares: the :class:`Embedder` protocol, its errors and small helpers.

A leaf module (it imports nothing of :mod:`llmcf.text`): :mod:`llmcf.text.embedders`,
:mod:`llmcf.text.onnx` and the rest of :mod:`llmcf.text` build on it, so none of them has to
import another embedder module for these pieces. All names are re-exported by
:mod:`llmcf.text.embedders`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
from tqdm.auto import tqdm

from llmcf.errors import ConfigError, LlmcfError
from llmcf.llm.http import EndpointError

__all__ = [
    "Embedder",
    "EmbeddingServiceError",
    "MissingDependencyError",
    "embedder_key",
    "is_blank",
    "l2_normalize",
    "num_threads",
    "progress_bar",
]


class MissingDependencyError(LlmcfError, ImportError):
    """An optional package an embedder needs is not installed; the message says what to install."""


class EmbeddingServiceError(EndpointError):
    """An embedding endpoint refused a request or kept failing; the message has its status.

    An :class:`~llmcf.llm.http.EndpointError` (so also an ``LlmcfError`` and a
    ``RuntimeError``), with its ``url``, ``status`` and ``server_message``.
    """


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into unit-norm float32 vectors of a fixed dimension.

    Attributes:
        name: identifies the model (and its settings that change the vectors).
        dim: the vector dimension.
    """

    @property
    def name(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def embed(
        self, texts: Sequence[str], batch_size: int = 32, progress: bool | None = False
    ) -> np.ndarray:
        """float32 array (len(texts), dim); unit-norm rows, a zero row for an empty text.

        ``progress``: show a tqdm bar; ``None`` shows it only when stderr is a terminal.
        """
        ...


def embedder_key(embedder: Embedder) -> str:
    """``name@version`` of an embedder: what its vectors are cached under."""
    return f"{embedder.name}@{getattr(embedder, 'version', '0')}"


def num_threads(threads: int | None = None) -> int:
    """Thread count for model inference: ``threads``, else ``$LLMCF_THREADS``, else 2."""
    if threads is None:
        env = os.environ.get("LLMCF_THREADS", "").strip()
        try:
            threads = int(env) if env else 2
        except ValueError as exc:
            raise ConfigError(f"LLMCF_THREADS must be an integer, got {env!r}") from exc
    if threads < 1:
        raise ConfigError(f"thread count must be at least 1, got {threads}")
    return threads


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows divided by their L2 norm, as float32; zero rows stay zero."""
    out = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return np.divide(out, norms, out=np.zeros_like(out), where=norms > 0)


def progress_bar(total: int, progress: bool | None, desc: str) -> tqdm:
    """A tqdm bar over ``total`` texts; ``progress=None`` shows it only on a terminal."""
    disable = None if progress is None else not progress
    return tqdm(total=total, disable=disable, desc=desc, unit="text", leave=False)


def is_blank(text: str) -> bool:
    """An empty or whitespace-only text (embedded as a zero row, never sent to a model)."""
    return not text or text.isspace()
