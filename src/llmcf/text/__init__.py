"""Item texts and their embeddings: rendering, embedders, and an on-disk embedding cache.

Typical use::

    from llmcf.text import embed_with_cache, make_embedder, render_item_texts, template_version

    texts = render_item_texts(dataset)                      # one string per item index
    embedder = make_embedder("minilm")                      # default: MiniLM int8 ONNX, no torch
    vectors = embed_with_cache(
        embedder, texts, template_version=template_version(dataset.item_catalog.fields)
    )                                                       # float32 (n_items, 384), unit rows
"""

from typing import TYPE_CHECKING, Any

#: public names -> the module that defines them; imported on first use, so that importing a
#: text model does not load every embedder backend (and scipy) up front
_LAZY = {
    "EMBEDDER_SPECS": "llmcf.text.embedders",
    "Embedder": "llmcf.text.embedders",
    "EmbeddingCacheWarning": "llmcf.text.cache",
    "EmbeddingServiceError": "llmcf.text.embedders",
    "MiniLML3Embedder": "llmcf.text.onnx",
    "MissingDependencyError": "llmcf.text.embedders",
    "OnnxEmbedder": "llmcf.text.onnx",
    "OnnxMiniLMEmbedder": "llmcf.text.onnx",
    "OpenAIEmbedder": "llmcf.text.embedders",
    "SentenceTransformerEmbedder": "llmcf.text.embedders",
    "TEMPLATE_VERSIONS": "llmcf.text.render",
    "TfidfEmbedder": "llmcf.text.embedders",
    "clean_text": "llmcf.text.render",
    "embed_with_cache": "llmcf.text.cache",
    "l2_normalize": "llmcf.text.embedders",
    "make_embedder": "llmcf.text.embedders",
    "render_item_texts": "llmcf.text.render",
    "resolve_template": "llmcf.text.render",
    "template_version": "llmcf.text.render",
    "text_key": "llmcf.text.cache",
    "truncate_at_word": "llmcf.text.render",
}

if TYPE_CHECKING:
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


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'llmcf.text' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


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
