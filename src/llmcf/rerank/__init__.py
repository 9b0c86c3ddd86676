"""Second stage: language-model and embedding re-rankers over CF candidates, explanations.

Typical use::

    from llmcf.rerank import EmbeddingReranker, LLMReranker, LlamaCppClient, rerank

    reranker = EmbeddingReranker(item_texts)                     # or LLMReranker(client, texts)
    result = rerank(reranker, history, candidates, cf_scores, weight=0.3)
    result.items              # always a permutation of ``candidates``
"""

from llmcf.rerank.clients import (
    LlamaCppClient,
    LLMClient,
    LLMError,
    OpenAIChatClient,
    make_llm_client,
)
from llmcf.rerank.explain import Explainer, clean_explanation
from llmcf.rerank.prompts import PROMPT_VERSIONS, sanitize_item_text
from llmcf.rerank.reranker import (
    EmbeddingReranker,
    LatencyLog,
    LLMReranker,
    RerankCache,
    Reranker,
    RerankOutputError,
    RerankResult,
    choose_weight,
    fuse_scores,
    rerank,
    scores_from_ranked_ids,
    validate_scores,
)

__all__ = [
    "PROMPT_VERSIONS",
    "EmbeddingReranker",
    "Explainer",
    "LLMClient",
    "LLMError",
    "LLMReranker",
    "LatencyLog",
    "LlamaCppClient",
    "OpenAIChatClient",
    "RerankCache",
    "RerankOutputError",
    "RerankResult",
    "Reranker",
    "choose_weight",
    "clean_explanation",
    "fuse_scores",
    "make_llm_client",
    "rerank",
    "sanitize_item_text",
    "scores_from_ranked_ids",
    "validate_scores",
]
