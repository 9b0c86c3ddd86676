"""Talking to language-model services: one HTTP client for OpenAI-compatible endpoints.

:class:`~llmcf.llm.http.EndpointClient` is shared by the chat client
(:class:`~llmcf.rerank.clients.OpenAIChatClient`) and the embedding client
(:class:`~llmcf.text.embedders.OpenAIEmbedder`): one base-URL rule, one environment-variable
scheme (``LLMCF_OPENAI_BASE_URL`` / ``LLMCF_OPENAI_API_KEY``, falling back to
``OPENAI_BASE_URL`` / ``OPENAI_API_KEY``), one retry policy and one error type
(:class:`~llmcf.llm.http.EndpointError`).

This package is a leaf: it imports nothing of llmcf but :mod:`llmcf.errors`, so both
:mod:`llmcf.text` and :mod:`llmcf.rerank` can use it.
"""

from llmcf.llm.http import (
    API_KEY_ENV,
    BASE_URL_ENV,
    EndpointClient,
    EndpointError,
    resolve_api_key,
    resolve_base_url,
)

__all__ = [
    "API_KEY_ENV",
    "BASE_URL_ENV",
    "EndpointClient",
    "EndpointError",
    "resolve_api_key",
    "resolve_base_url",
]
