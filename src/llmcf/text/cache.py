"""On-disk cache of text embeddings, so a catalog is embedded once per model and template.

Layout under ``<cache_dir>/embeddings/<slug>-<key digest>/`` (``cache_dir`` defaults to
:func:`llmcf.settings.cache_dir`), where the key is (embedder ``name@version``, template
version)::

    index.json                   {"format": 1, "embedder": ..., "template_version": ...,
                                  "dim": 384, "shards": {"<shard>": <rows>, ...}}
    <shard>.vectors.npy          float32 (rows, dim)
    <shard>.keys.npy             bytes  (rows,)  sha256 hex of each text (dtype S64)

Each call appends one shard holding the texts it had to embed. Everything is read with
``allow_pickle=False``. A shard that cannot be read or does not match the index (truncated,
wrong shape, non-finite values) is dropped with a :class:`EmbeddingCacheWarning`, and its
texts are embedded again. Files are written to a temporary name and renamed, so a crash
never leaves a half-written shard under a listed name.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from llmcf.settings import cache_dir as default_cache_dir
from llmcf.text.embedders import Embedder, embedder_key

__all__ = ["EmbeddingCacheWarning", "embed_with_cache", "text_key"]

_FORMAT = 1


class EmbeddingCacheWarning(UserWarning):
    """A cache shard or index was unreadable and has been dropped; its texts are recomputed."""


def text_key(text: str) -> str:
    """sha256 hex digest of the UTF-8 text: the per-text cache key."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _folder(root: Path, key: str, template_version: str) -> Path:
    digest = hashlib.sha256(f"{key}\x00{template_version}".encode()).hexdigest()[:16]
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", key.split("@", 1)[0])[:48]
    return root / "embeddings" / f"{slug}-{digest}"


def _save_npy(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with tmp.open("wb") as handle:
        np.save(handle, array, allow_pickle=False)
    os.replace(tmp, path)


def _save_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.replace(tmp, path)


def _read_index(folder: Path, key: str, template_version: str) -> dict[str, Any]:
    fresh = {
        "format": _FORMAT,
        "embedder": key,
        "template_version": template_version,
        "dim": None,
        "shards": {},
    }
    path = folder / "index.json"
    if not path.exists():
        return fresh
    try:
        index = json.loads(path.read_text())
        valid = (
            isinstance(index, dict)
            and index.get("format") == _FORMAT
            and index.get("embedder") == key
            and index.get("template_version") == template_version
            and isinstance(index.get("shards"), dict)
        )
    except (OSError, ValueError):
        valid = False
    if not valid:
        warnings.warn(
            f"embedding cache index {path} is unreadable or belongs to another model; "
            "starting it afresh",
            EmbeddingCacheWarning,
            stacklevel=3,
        )
        return fresh
    return dict(index)


def _read_shard(folder: Path, shard: str, rows: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(keys (rows,) S64, vectors (rows, dim) float32) of a shard; ValueError if it is bad."""
    try:
        keys = np.load(folder / f"{shard}.keys.npy", allow_pickle=False)
        vectors = np.load(folder / f"{shard}.vectors.npy", allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise ValueError(f"unreadable: {exc}") from exc
    if keys.shape != (rows,) or keys.dtype != np.dtype("S64"):
        raise ValueError(f"keys have shape {keys.shape} and dtype {keys.dtype}")
    if vectors.shape != (rows, dim) or vectors.dtype != np.float32:
        raise ValueError(f"vectors have shape {vectors.shape} and dtype {vectors.dtype}")
    if not np.isfinite(vectors).all():
        raise ValueError("vectors hold non-finite values")
    return keys, vectors


def embed_with_cache(
    embedder: Embedder,
    texts: Sequence[str],
    cache_dir: str | Path | None = None,
    *,
    template_version: str = "none",
    batch_size: int = 32,
    progress: bool | None = False,
) -> np.ndarray:
    """``embedder.embed(texts)``, embedding only the texts not cached before.

    Args:
        embedder: any :class:`~llmcf.text.embedders.Embedder`; one with
            ``cacheable = False`` (e.g. TF-IDF, fitted on its input) is called directly.
        texts: the texts; duplicates are embedded once.
        cache_dir: cache root; default :func:`llmcf.settings.cache_dir` (``$LLMCF_CACHE_DIR``).
        template_version: the version of the template that rendered ``texts``
            (:data:`llmcf.text.render.TEMPLATE_VERSIONS`); part of the cache key.

    Returns:
        float32 ``(len(texts), embedder.dim)``, rows as the embedder gives them.
    """
    if not getattr(embedder, "cacheable", True):
        return embedder.embed(texts, batch_size=batch_size, progress=progress)
    key = embedder_key(embedder)
    folder = _folder(Path(cache_dir) if cache_dir else default_cache_dir(), key, template_version)
    index = _read_index(folder, key, template_version)
    dim = index["dim"]
    text_keys = [text_key(t) for t in texts]
    wanted = set(text_keys)
    found: dict[str, np.ndarray] = {}
    dropped = []
    if dim is not None:
        for shard, rows in index["shards"].items():
            try:
                keys, vectors = _read_shard(folder, shard, int(rows), int(dim))
            except ValueError as exc:
                warnings.warn(
                    f"embedding cache shard {folder / shard} is corrupt ({exc}); "
                    "dropping it and embedding its texts again",
                    EmbeddingCacheWarning,
                    stacklevel=2,
                )
                dropped.append(shard)
                continue
            for row, k in enumerate(keys.astype(str)):
                if k in wanted:
                    found[k] = vectors[row]

    missing = list(dict.fromkeys(k for k in text_keys if k not in found))
    if missing or dropped:
        first_text = dict(zip(text_keys, texts, strict=True))
        new_vectors = np.asarray(
            embedder.embed(
                [first_text[k] for k in missing], batch_size=batch_size, progress=progress
            ),
            dtype=np.float32,
        )
        dim = int(new_vectors.shape[1]) if missing else dim
        if dim is None or (index["dim"] is not None and index["dim"] != dim):
            index["shards"] = {}
        for shard in dropped:
            index["shards"].pop(shard, None)
            for suffix in (".keys.npy", ".vectors.npy"):
                (folder / f"{shard}{suffix}").unlink(missing_ok=True)
        if missing:
            folder.mkdir(parents=True, exist_ok=True)
            shard = f"shard-{uuid.uuid4().hex[:12]}"
            _save_npy(folder / f"{shard}.vectors.npy", new_vectors)
            _save_npy(folder / f"{shard}.keys.npy", np.asarray(missing, dtype="S64"))
            # re-read the index so shards written meanwhile by another process are kept
            latest = _read_index(folder, key, template_version)
            if latest["dim"] == dim:
                index["shards"] = {**latest["shards"], **index["shards"]}
                for gone in dropped:
                    index["shards"].pop(gone, None)
            index["shards"][shard] = len(missing)
            found.update(zip(missing, new_vectors, strict=True))
        index["dim"] = dim
        if folder.exists():
            _save_json(folder / "index.json", index)

    if not texts:
        return np.zeros((0, int(dim) if dim is not None else embedder.dim), dtype=np.float32)
    return np.stack([found[k] for k in text_keys]).astype(np.float32, copy=False)
