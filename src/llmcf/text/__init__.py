"""Item texts and their embeddings: rendering, embedders, and an on-disk embedding cache.

Typical use::

    from llmcf.text import embed_with_cache, make_embedder, render_item_texts, template_version

    texts = render_item_texts(dataset)                      # one string per item index
    embedder = make_embedder("minilm")                      # default: MiniLM int8 ONNX, no torch
    vectors = embed_with_cache(
        embedder, texts, template_version=template_version(dataset.item_catalog.fields)
    )                                                       # float32 (n_items, 384), unit rows
"""

from llmcf.text.cache import EmbeddingCacheWarning, embed_with_cache, text_key
from llmcf.text.embedders import (
    EMBEDDER_SPECS,
    Embedder,
    EmbeddingServiceError,
    MissingDependencyError,
    OpenAIEmbedder,
    SentenceTransformerEmbedder,
    TfidfEmbedder,
    l2_normalize,
    make_embedder,
)
from llmcf.text.onnx import MiniLML3Embedder, OnnxEmbedder, OnnxMiniLMEmbedder
from llmcf.text.render import (
    TEMPLATE_VERSIONS,
    clean_text,
    render_item_texts,
    resolve_template,
    template_version,
    truncate_at_word,
)

__all__ = [
    "EMBEDDER_SPECS",
    "TEMPLATE_VERSIONS",
    "Embedder",
    "EmbeddingCacheWarning",
    "EmbeddingServiceError",
    "MiniLML3Embedder",
    "MissingDependencyError",
    "OnnxEmbedder",
    "OnnxMiniLMEmbedder",
    "OpenAIEmbedder",
    "SentenceTransformerEmbedder",
    "TfidfEmbedder",
    "clean_text",
    "embed_with_cache",
    "l2_normalize",
    "make_embedder",
    "render_item_texts",
    "resolve_template",
    "template_version",
    "text_key",
    "truncate_at_word",
]
