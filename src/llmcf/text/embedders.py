"""Text embedders: texts in, L2-normalised float32 vectors out.

Every embedder follows :class:`Embedder`: ``embed(texts)`` returns a float32 array of shape
``(len(texts), dim)`` whose rows have unit L2 norm, except that an empty (or all-blank) text
gives a zero row. ``name`` and ``version`` identify the vectors (they key the embedding
cache), so two embedders with the same name and version must give the same vectors.

Implementations:

* :class:`~llmcf.text.onnx.OnnxMiniLMEmbedder` -- the default; all-MiniLM-L6-v2 int8 ONNX
  on onnxruntime, no torch (module :mod:`llmcf.text.onnx`, with the general
  :class:`~llmcf.text.onnx.OnnxEmbedder`).
* :class:`TfidfEmbedder` -- the non-LLM ablation (TF-IDF, optionally reduced by SVD).
* :class:`SentenceTransformerEmbedder` -- any sentence-transformers model (needs torch).
* :class:`OpenAIEmbedder` -- any OpenAI-compatible ``/v1/embeddings`` endpoint.

:func:`make_embedder` builds one from a short spec string (CLI and config files).

The protocol, the errors and the helpers every embedder uses (:func:`l2_normalize`,
:func:`num_threads`, the progress bar) live in the leaf module
:mod:`llmcf.text.embedding_base` and are re-exported here; :mod:`llmcf.text.onnx` imports them
from there, and this module imports :mod:`llmcf.text.onnx` (lazily, in :func:`make_embedder`),
never the other way round.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from llmcf.errors import ConfigError, NotFittedError
from llmcf.llm.http import EndpointClient, EndpointError
from llmcf.text.embedding_base import (
    Embedder,
    EmbeddingServiceError,
    MissingDependencyError,
    embedder_key,
    is_blank,
    l2_normalize,
    num_threads,
    progress_bar,
)

__all__ = [
    "EMBEDDER_SPECS",
    "Embedder",
    "EmbeddingServiceError",
    "MissingDependencyError",
    "OpenAIEmbedder",
    "SentenceTransformerEmbedder",
    "TfidfEmbedder",
    "embedder_key",
    "l2_normalize",
    "make_embedder",
    "num_threads",
    "progress_bar",
]

#: The spec forms :func:`make_embedder` accepts (shown in its error message).
EMBEDDER_SPECS = (
    "minilm (default: all-MiniLM-L6-v2 int8 ONNX)",
    "minilm-l3 (paraphrase-MiniLM-L3-v2 ONNX)",
    "tfidf",
    "st:<name-or-path>",
    "onnx:<model.onnx>[,<tokenizer.json>]",
    "openai:<base_url>#<model>",
)


# ---------------------------------------------------------------------------- TF-IDF
_TOKEN_RE = re.compile(r"(?u)\b\w\w+\b")
_GRAM_SVD_SIZE = 5000


def _top_right_singular_vectors(matrix: sp.csr_matrix, k: int) -> np.ndarray:
    """The top ``k`` right singular vectors ``(k, n_cols)`` from the smaller Gram matrix.

    ``X X^T = U S^2 U^T`` (or ``X^T X = V S^2 V^T``), so ``V = X^T U / S``; a partial
    symmetric eigensolve of a matrix of side ``min(X.shape)`` is much faster than ARPACK or
    a full SVD for catalogs of a few thousand texts. Directions with ``S ~ 0`` are zero.
    """
    import scipy.linalg

    wide = matrix.shape[0] <= matrix.shape[1]
    gram = (matrix @ matrix.T if wide else matrix.T @ matrix).toarray()
    side = gram.shape[0]
    values, vectors = scipy.linalg.eigh(gram, subset_by_index=[side - k, side - 1])
    values, vectors = values[::-1], vectors[:, ::-1]
    singular = np.sqrt(np.clip(values, 0.0, None))
    if not wide:
        return np.ascontiguousarray(vectors.T)
    scale = np.divide(1.0, singular, out=np.zeros_like(singular), where=singular > 1e-10)
    return np.asarray((matrix.T @ vectors) * scale[None, :]).T


class TfidfEmbedder:
    """TF-IDF vectors (the non-language-model ablation), optionally reduced by truncated SVD.

    Per text ``d`` and term ``t`` (tokens: lower-cased runs of 2+ word characters)::

        tf(t, d)  = 1 + log(count(t, d))                      (sublinear; 0 when absent)
        idf(t)    = log((1 + n_docs) / (1 + df(t))) + 1       (smoothed)
        x(d)      = tf(., d) * idf / || tf(., d) * idf ||_2

    With ``dim`` set, ``x`` is projected on the top ``dim`` right singular vectors of the
    fitted TF-IDF matrix (eigenvectors of its smaller Gram matrix up to 5000 texts or terms,
    else ``scipy.sparse.linalg.svds`` with a fixed start vector; signs fixed so
    each component's largest entry is positive) and L2-normalised again; when the corpus has
    fewer than ``dim + 1`` texts or terms, the missing components are zero.

    Args:
        dim: output dimension after SVD; ``None`` keeps the sparse vocabulary space
            (``dim`` is then the vocabulary size, known after :meth:`fit`).
        min_df: drop terms that occur in fewer texts than this.
        max_features: keep only the most frequent terms (by document frequency).

    ``embed`` on an unfitted embedder fits it on the texts it is given (the catalog), so
    ``TfidfEmbedder().embed(catalog_texts)`` is the usual call. Fitted state: ``vocabulary_``,
    ``idf_``, ``components_`` (``(dim, n_terms)`` or ``None``).
    """

    #: fitted on its input: the embedding cache does not store its vectors.
    cacheable = False

    def __init__(
        self, dim: int | None = 256, min_df: int = 1, max_features: int | None = None
    ) -> None:
        if dim is not None and dim < 1:
            raise ConfigError(f"TfidfEmbedder dim must be positive or None, got {dim}")
        if min_df < 1:
            raise ConfigError(f"TfidfEmbedder min_df must be at least 1, got {min_df}")
        self.dim_setting = dim
        self.min_df = min_df
        self.max_features = max_features
        self.vocabulary_: dict[str, int] | None = None
        self.idf_: np.ndarray | None = None
        self.components_: np.ndarray | None = None

    @property
    def name(self) -> str:
        return f"tfidf-svd{self.dim_setting}" if self.dim_setting else "tfidf"

    @property
    def version(self) -> str:
        """A digest of the fitted vocabulary and idf (``"unfitted"`` before :meth:`fit`)."""
        if self.vocabulary_ is None or self.idf_ is None:
            return "unfitted"
        digest = hashlib.sha256(json.dumps(sorted(self.vocabulary_.items())).encode())
        digest.update(self.idf_.tobytes())
        return digest.hexdigest()[:16]

    @property
    def dim(self) -> int:
        if self.dim_setting is not None:
            return self.dim_setting
        if self.vocabulary_ is None:
            raise NotFittedError("TfidfEmbedder without dim has no dimension before fit")
        return len(self.vocabulary_)

    @staticmethod
    def _tokens(text: str) -> list[str]:
        return _TOKEN_RE.findall(text.lower())

    def _counts(self, texts: Sequence[str], vocabulary: dict[str, int]) -> sp.csr_matrix:
        rows, cols, vals = [], [], []
        for row, text in enumerate(texts):
            for term, count in Counter(self._tokens(text)).items():
                col = vocabulary.get(term)
                if col is not None:
                    rows.append(row)
                    cols.append(col)
                    vals.append(count)
        return sp.csr_matrix(
            (np.asarray(vals, dtype=np.float64), (rows, cols)),
            shape=(len(texts), len(vocabulary)),
        )

    def _tfidf(self, counts: sp.csr_matrix) -> sp.csr_matrix:
        assert self.idf_ is not None
        tf = counts.copy()
        tf.data = 1.0 + np.log(tf.data)
        weighted = sp.csr_matrix(tf.multiply(self.idf_[None, :]))
        norms = np.sqrt(np.asarray(weighted.multiply(weighted).sum(axis=1)).ravel())
        scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
        return sp.csr_matrix(sp.diags(scale) @ weighted)

    def fit(self, texts: Sequence[str]) -> TfidfEmbedder:
        """Learn the vocabulary, idf and (with ``dim``) the SVD components from ``texts``."""
        doc_freq: Counter[str] = Counter()
        for text in texts:
            doc_freq.update(set(self._tokens(text)))
        terms = [t for t, df in doc_freq.items() if df >= self.min_df]
        terms.sort(key=lambda t: (-doc_freq[t], t))
        if self.max_features is not None:
            terms = terms[: self.max_features]
        terms.sort()
        vocabulary = {t: i for i, t in enumerate(terms)}
        n_docs = len(texts)
        df = np.array([doc_freq[t] for t in terms], dtype=np.float64)
        self.vocabulary_ = vocabulary
        self.idf_ = np.log((1.0 + n_docs) / (1.0 + df)) + 1.0
        self.components_ = None
        if self.dim_setting is not None:
            matrix = self._tfidf(self._counts(texts, vocabulary))
            k = min(self.dim_setting, min(matrix.shape) - 1)
            components = np.zeros((self.dim_setting, len(vocabulary)), dtype=np.float64)
            if k >= 1:
                if min(matrix.shape) <= _GRAM_SVD_SIZE:
                    vt = _top_right_singular_vectors(matrix, k)
                else:
                    from scipy.sparse.linalg import svds

                    start = np.random.default_rng(0).standard_normal(min(matrix.shape))
                    _, singular, vt = svds(matrix, k=k, v0=start, solver="arpack")
                    vt = vt[np.argsort(-singular)]
                signs = np.sign(vt[np.arange(k), np.abs(vt).argmax(axis=1)])
                components[:k] = vt * signs[:, None]
            self.components_ = components
        return self

    def embed(
        self, texts: Sequence[str], batch_size: int = 32, progress: bool | None = False
    ) -> np.ndarray:
        """TF-IDF (or its SVD projection) of ``texts``: float32 ``(n, dim)``, unit rows."""
        if self.vocabulary_ is None:
            self.fit(texts)
        assert self.vocabulary_ is not None
        matrix = self._tfidf(self._counts(texts, self.vocabulary_))
        if self.components_ is None:
            return l2_normalize(matrix.toarray())
        return l2_normalize(np.asarray(matrix @ self.components_.T))


# ---------------------------------------------------------------------------- sentence-transformers
ST_INSTALL_HINT = "pip install torch==2.13.0 sentence-transformers"


class SentenceTransformerEmbedder:
    """Any sentence-transformers model, by hub name or local path, on the CPU by default.

    sentence-transformers and torch are not llmcf dependencies: they are imported here, on
    construction, and a :class:`MissingDependencyError` says how to install them
    (``pip install torch==2.13.0 sentence-transformers``; install torch first or pip pulls
    a CUDA build). Offline, pass a local path (or set ``HF_HUB_OFFLINE=1``).
    """

    def __init__(self, name_or_path: str, device: str = "cpu", threads: int | None = None) -> None:
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise MissingDependencyError(
                f"SentenceTransformerEmbedder({name_or_path!r}) needs sentence-transformers "
                f"and torch, which are not installed: {ST_INSTALL_HINT}"
            ) from exc
        import torch

        torch.set_num_threads(num_threads(threads))
        self.name = f"st:{name_or_path}"
        self.version = "0"
        self.model = SentenceTransformer(name_or_path, device=device)
        self._dim = int(self.model.get_sentence_embedding_dimension() or 0)

    @property
    def dim(self) -> int:
        return self._dim

    def embed(
        self, texts: Sequence[str], batch_size: int = 32, progress: bool | None = False
    ) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        keep = [i for i, t in enumerate(texts) if not is_blank(t)]
        if keep:
            vectors = self.model.encode(
                [texts[i] for i in keep],
                batch_size=batch_size,
                show_progress_bar=bool(progress),
                convert_to_numpy=True,
                normalize_embeddings=True,
            )
            out[keep] = l2_normalize(vectors)
        return out


# ---------------------------------------------------------------------------- OpenAI-compatible
class OpenAIEmbedder:
    """Embeddings from any OpenAI-compatible ``POST <base>/embeddings`` endpoint.

    The HTTP side is :class:`~llmcf.llm.http.EndpointClient` (shared with the chat client):
    ``base_url`` (None: ``$LLMCF_OPENAI_BASE_URL``, else ``$OPENAI_BASE_URL``) may end in
    ``/v1`` (``https://api.openai.com/v1``) or have no path (``http://127.0.0.1:8080``, which
    means ``/v1``); the request goes to ``<base>/embeddings``.

    Texts are sent ``batch_size`` at a time; each response is put back in input order by
    its ``index`` field and the vectors are L2-normalised here (servers differ on that).
    Empty texts are not sent (zero rows). A 429, a 5xx, a timeout or a connection error is
    retried up to ``max_retries`` times with exponential backoff (``backoff * 2**attempt``
    seconds, at least the server's ``Retry-After``, at most 60 s); any other HTTP error
    raises :class:`EmbeddingServiceError` at once with the URL, the status and the server's
    message.

    Args:
        api_key: sent as ``Authorization: Bearer``; default ``$LLMCF_OPENAI_API_KEY``, else
            ``$OPENAI_API_KEY``.
        dim: the vector dimension when known; otherwise one probe request finds it.
        transport: an httpx transport (tests).
    """

    def __init__(
        self,
        base_url: str | None,
        model: str,
        api_key: str | None = None,
        timeout: float = 30.0,
        max_retries: int = 3,
        batch_size: int = 64,
        *,
        dim: int | None = None,
        backoff: float = 0.5,
        transport: Any = None,
    ) -> None:
        if max_retries < 0 or batch_size < 1 or timeout <= 0:
            raise ConfigError(
                "OpenAIEmbedder needs max_retries >= 0, batch_size >= 1 and timeout > 0 "
                f"(got {max_retries}, {batch_size}, {timeout})"
            )
        try:
            self.http = EndpointClient(
                base_url,
                api_key=api_key,
                timeout=timeout,
                max_retries=max_retries,
                backoff=backoff,
                transport=transport,
            )
        except ImportError as exc:
            raise MissingDependencyError("OpenAIEmbedder needs httpx: pip install httpx") from exc
        self.url = self.http.url("embeddings")
        self.model = model
        # the name keys the embedding cache: the base URL as given (as before the shared client)
        self.name = f"openai:{model}@{(base_url or self.http.base_url).rstrip('/')}"
        self.version = "0"
        self.max_retries = max_retries
        self.batch_size = batch_size
        self.backoff = backoff
        self._dim = dim

    def close(self) -> None:
        self.http.close()

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._dim = int(self._request(["dimension probe"]).shape[1])
        return self._dim

    def _request(self, batch: list[str]) -> np.ndarray:
        payload = {"model": self.model, "input": batch, "encoding_format": "float"}
        try:
            data = self.http.post_json("embeddings", payload)
        except EndpointError as exc:
            raise EmbeddingServiceError(
                str(exc),
                url=exc.url,
                status=exc.status,
                server_message=exc.server_message,
                attempts=exc.attempts,
            ) from exc
        return self._parse(data, len(batch))

    def _parse(self, body: dict[str, Any], n: int) -> np.ndarray:
        try:
            rows = sorted(body["data"], key=lambda item: int(item["index"]))
            vectors = np.asarray([row["embedding"] for row in rows], dtype=np.float32)
            indices = [int(row["index"]) for row in rows]
        except (ValueError, KeyError, TypeError) as exc:
            raise EmbeddingServiceError(
                f"{self.url} sent a response that is not an embeddings list: {str(body)[:200]!r}",
                url=self.url,
            ) from exc
        if indices != list(range(n)) or vectors.ndim != 2:
            raise EmbeddingServiceError(
                f"{self.url} returned vectors for indices {indices[:10]} for {n} inputs",
                url=self.url,
            )
        return vectors

    def embed(
        self, texts: Sequence[str], batch_size: int | None = None, progress: bool | None = False
    ) -> np.ndarray:
        """Vectors for ``texts`` (float32, unit rows; zero rows for empty texts)."""
        size = batch_size or self.batch_size
        keep = [i for i, t in enumerate(texts) if not is_blank(t)]
        parts: list[np.ndarray] = []
        with progress_bar(len(keep), progress, f"embedding ({self.model})") as bar:
            for start in range(0, len(keep), size):
                batch = [texts[i] for i in keep[start : start + size]]
                parts.append(self._request(batch))
                bar.update(len(batch))
        if parts:
            self._dim = self._dim or parts[0].shape[1]
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if parts:
            out[keep] = l2_normalize(np.concatenate(parts))
        return out


# ---------------------------------------------------------------------------- factory
def make_embedder(spec: str = "minilm", **kwargs: Any) -> Embedder:
    """An embedder from a spec string; ``kwargs`` go to its constructor.

    Specs: ``minilm`` (the default, all-MiniLM-L6-v2 int8 ONNX), ``minilm-l3``,
    ``tfidf``, ``st:<name-or-path>``, ``onnx:<model.onnx>[,<tokenizer.json>]`` (default
    tokenizer: the MiniLM one) and ``openai:<base_url>#<model>``. Anything else raises
    :class:`ConfigError` listing these forms.
    """
    from llmcf.text import onnx

    text = spec.strip()
    kind, _, rest = text.partition(":")
    if text in ("", "minilm"):
        return onnx.OnnxMiniLMEmbedder(**kwargs)
    if text == "minilm-l3":
        return onnx.MiniLML3Embedder(**kwargs)
    if text == "tfidf":
        return TfidfEmbedder(**kwargs)
    if kind == "st" and rest:
        return SentenceTransformerEmbedder(rest, **kwargs)
    if kind == "onnx" and rest:
        model_path, _, tokenizer_path = rest.partition(",")
        return onnx.OnnxEmbedder(model_path, tokenizer_path or None, **kwargs)
    if kind == "openai":
        base_url, _, model = rest.rpartition("#")
        if base_url and model:
            return OpenAIEmbedder(base_url, model, **kwargs)
    raise ConfigError(f"unknown embedder spec {spec!r}; valid forms: " + ", ".join(EMBEDDER_SPECS))
