"""The on-disk embedding cache: hits, misses, corruption, keys."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from llmcf.text.cache import EmbeddingCacheWarning, embed_with_cache
from llmcf.text.embedders import TfidfEmbedder, l2_normalize


class CountingEmbedder:
    """Deterministic 8-d vectors from the text's bytes; counts the texts it embeds."""

    name = "counting"
    version = "1"
    dim = 8

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def embed(
        self, texts: Sequence[str], batch_size: int = 32, progress: bool | None = False
    ) -> np.ndarray:
        self.calls.append(list(texts))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for pos, byte in enumerate(text.encode()):
                out[row, pos % self.dim] += byte
        return l2_normalize(out)

    @property
    def n_embedded(self) -> int:
        return sum(len(c) for c in self.calls)


TEXTS = ["Toy Story (1995).", "Heat (1995).", "", "Toy Story (1995).", "Casino (1995)."]


def test_second_run_embeds_nothing(tmp_path: Path) -> None:
    embedder = CountingEmbedder()
    first = embed_with_cache(embedder, TEXTS, tmp_path, template_version="movielens-v1")
    assert first.shape == (5, 8) and first.dtype == np.float32
    assert embedder.n_embedded == 4  # the duplicate is embedded once
    np.testing.assert_array_equal(first, embedder.embed(TEXTS))
    embedder.calls.clear()
    second = embed_with_cache(embedder, TEXTS, tmp_path, template_version="movielens-v1")
    assert embedder.n_embedded == 0
    np.testing.assert_array_equal(first, second)


def test_partial_hit_embeds_only_new_texts(tmp_path: Path) -> None:
    embedder = CountingEmbedder()
    embed_with_cache(embedder, TEXTS[:2], tmp_path)
    embedder.calls.clear()
    out = embed_with_cache(embedder, ["New one", *TEXTS[:2]], tmp_path)
    assert embedder.calls == [["New one"]]
    np.testing.assert_array_equal(out, embedder.embed(["New one", *TEXTS[:2]]))


def test_key_includes_template_and_embedder_version(tmp_path: Path) -> None:
    embedder = CountingEmbedder()
    embed_with_cache(embedder, TEXTS, tmp_path, template_version="movielens-v1")
    embedder.calls.clear()
    embed_with_cache(embedder, TEXTS, tmp_path, template_version="movielens-v2")
    assert embedder.n_embedded == 4
    embedder.calls.clear()
    embedder.version = "2"
    embed_with_cache(embedder, TEXTS, tmp_path, template_version="movielens-v1")
    assert embedder.n_embedded == 4


def test_corrupted_shard_is_recomputed_with_a_warning(tmp_path: Path) -> None:
    embedder = CountingEmbedder()
    expected = embed_with_cache(embedder, TEXTS, tmp_path)
    shards = list(tmp_path.rglob("*.vectors.npy"))
    assert len(shards) == 1
    shards[0].write_bytes(b"\x93NUMPY garbage")
    embedder.calls.clear()
    with pytest.warns(EmbeddingCacheWarning, match="corrupt"):
        again = embed_with_cache(embedder, TEXTS, tmp_path)
    assert embedder.n_embedded == 4
    np.testing.assert_array_equal(again, expected)
    embedder.calls.clear()
    embed_with_cache(embedder, TEXTS, tmp_path)  # repaired: a clean hit
    assert embedder.n_embedded == 0


def test_corrupted_index_starts_afresh(tmp_path: Path) -> None:
    embedder = CountingEmbedder()
    embed_with_cache(embedder, TEXTS, tmp_path)
    (index,) = tmp_path.rglob("index.json")
    index.write_text("{not json")
    embedder.calls.clear()
    with pytest.warns(EmbeddingCacheWarning):
        embed_with_cache(embedder, TEXTS, tmp_path)
    assert embedder.n_embedded == 4


def test_cache_files_load_without_pickle(tmp_path: Path) -> None:
    embed_with_cache(CountingEmbedder(), TEXTS, tmp_path)
    for path in tmp_path.rglob("*.npy"):
        np.load(path, allow_pickle=False)


def test_default_dir_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMCF_CACHE_DIR", str(tmp_path))
    embed_with_cache(CountingEmbedder(), TEXTS)
    assert list((tmp_path / "embeddings").glob("counting-*/index.json"))


def test_empty_input_and_uncacheable_embedder(tmp_path: Path) -> None:
    assert embed_with_cache(CountingEmbedder(), [], tmp_path).shape == (0, 8)
    out = embed_with_cache(TfidfEmbedder(dim=None), ["red apple", "green apple"], tmp_path)
    assert out.shape == (2, 3)
    assert not list(tmp_path.rglob("*.npy"))
