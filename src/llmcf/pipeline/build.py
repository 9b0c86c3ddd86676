"""Assembling a pipeline from names (the CLI's ``recommend`` and ``demo``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from llmcf.data.dataset import Dataset
from llmcf.errors import ConfigError, LlmcfError
from llmcf.pipeline.core import Pipeline, PipelineResult

__all__ = ["RERANK_CHOICES", "build_pipeline", "format_result", "llm_available"]

RERANK_CHOICES = ("none", "embedding", "local", "endpoint", "learned")

#: fusion weight used when none was tuned (validation on ml-100k chose 0.2-0.4 for embeddings)
DEFAULT_WEIGHT = 0.3


def llm_available(model: str = "qwen2.5-0.5b") -> bool:
    """True when llama-cpp-python and the packaged model's parts are installed."""
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        return False
    from llmcf.rerank.gguf import model_installed

    return model_installed(model)


def build_pipeline(
    model: Any,
    train: Dataset,
    *,
    rerank: str = "none",
    explain: bool = False,
    weight: float | None = None,
    n_candidates: int = 20,
    llm_model: str | None = None,
    n_threads: int = 1,
    timeout: float | None = None,
    llm_mode: str = "pointwise",
    learned_options: dict[str, Any] | None = None,
) -> Pipeline:
    """A :class:`Pipeline` over a fitted ``model`` with the named re-ranker and explainer.

    ``rerank``: ``none``, ``embedding`` (MiniLM), ``local`` (llama.cpp, ``llm_model`` default
    qwen2.5-0.5b@q8_0; explanations default to qwen2.5-1.5b when installed) or ``endpoint``
    (``$LLMCF_OPENAI_BASE_URL``/``$LLMCF_LLM_MODEL``); ``llm_mode``: ``pointwise`` or ``choice``
    (:class:`~llmcf.rerank.reranker.LLMReranker`). ``timeout`` bounds every re-rank call (and
    aborts the local model's decode when it passes). ``learned``: the learned second stage
    over ``model`` (``learned_options``: :class:`~llmcf.rerank.learned.LearnedConfig` fields).
    """
    from llmcf.pipeline.core import item_texts
    from llmcf.rerank.clients import DEFAULT_LOCAL_MODEL, make_llm_client
    from llmcf.rerank.explain import Explainer
    from llmcf.rerank.reranker import EmbeddingReranker, LLMReranker

    if rerank not in RERANK_CHOICES:
        raise ConfigError(f"unknown re-ranker {rerank!r}; valid: {', '.join(RERANK_CHOICES)}")
    if rerank == "learned":
        return _learned_pipeline(model, train, explain=explain, options=learned_options)
    texts = item_texts(train) if (rerank != "none" or explain) else []
    reranker: Any = None
    client: Any = None
    if rerank == "embedding":
        reranker = EmbeddingReranker(texts)
    elif rerank == "local":
        client = make_llm_client(
            f"local:{llm_model or DEFAULT_LOCAL_MODEL}", n_threads=n_threads, local_timeout=timeout
        )
        reranker = LLMReranker(client, texts, mode=llm_mode)
    elif rerank == "endpoint":
        client = make_llm_client("endpoint", timeout=timeout or 30.0)
        reranker = LLMReranker(client, texts, mode=llm_mode)
    explainer = None
    if explain:
        if rerank == "endpoint":
            explain_client = client
        else:
            name = llm_model or (
                "qwen2.5-1.5b" if llm_available("qwen2.5-1.5b") else "qwen2.5-0.5b"
            )
            if (
                client is not None
                and llm_model in (None, name)
                and getattr(client, "name", "").split("@")[0].endswith(name.split("@")[0])
            ):
                explain_client = client
            else:
                try:
                    explain_client = make_llm_client(f"local:{name}", n_threads=n_threads)
                except LlmcfError as exc:
                    raise LlmcfError(f"--explain needs a language model: {exc}") from exc
        explainer = Explainer(explain_client, texts)
    return Pipeline(
        model,
        train,
        reranker=reranker,
        weight=DEFAULT_WEIGHT if weight is None else weight,
        n_candidates=n_candidates,
        explainer=explainer,
        timeout=timeout,
    )


def _learned_pipeline(
    model: Any, train: Dataset, *, explain: bool, options: dict[str, Any] | None = None
) -> Pipeline:
    """The learned second stage over ``model`` (a fitted retriever, refitted inside the
    stage, or a fitted :class:`~llmcf.rerank.learned.LearnedRanker`); its lists come from
    the one ranking path, explanations from the ranker's features (no language model)."""
    from llmcf.rerank.learned import LearnedExplainer, LearnedRanker

    if not isinstance(model, LearnedRanker):
        model = LearnedRanker(**{**(options or {}), "retriever": model.name}).fit(train)
    fields = train.item_catalog.fields
    if "title" in fields:
        titles = [str(v) if v is not None else "" for v in fields["title"]]
    else:
        from llmcf.pipeline.core import item_texts

        titles = item_texts(train)
    explainer = LearnedExplainer(model, titles) if explain else None
    return Pipeline(model, train, n_candidates=model.config.n_candidates, explainer=explainer)


def format_result(result: PipelineResult, titles: list[str] | None = None) -> str:
    """A numbered text list: rank, item id, title, final / CF / re-rank scores, reason."""
    lines = []
    for rank, (idx, item_id) in enumerate(
        zip(result.items.tolist(), result.item_ids.tolist(), strict=True)
    ):
        title = titles[idx] if titles is not None and idx < len(titles) else ""
        score = f"score {result.scores[rank]:+.3f}"
        if result.rerank_scores is not None and np.isfinite(result.rerank_scores[rank]):
            score += f" (cf {result.cf_scores[rank]:.3f}, rerank {result.rerank_scores[rank]:+.3f})"
        lines.append(f"{rank + 1:3d}. [{item_id}] {title}  {score}")
        if result.explanations is not None and result.explanations[rank]:
            lines.append(f"      why: {result.explanations[rank]}")
    for reason in result.reasons:
        lines.append(f"note: {reason}")
    return "\n".join(lines)
