"""Top-N (ranking) experiments: models x folds, each optionally followed by re-rankers.

Protocol (per fold):

* **relevant** items of a user are their test interactions with ``rating >= relevance``
  (explicit feedback), or all their test interactions (implicit feedback or
  ``relevance=None``); users without a relevant test item are not evaluated.
* **full ranking** (default): every item the user did not interact with in train is a
  candidate; the metrics (:func:`llmcf.eval.metrics.ranking_report`) are Precision, Recall,
  NDCG, HitRate and MRR at N, plus catalog coverage of the top N of all evaluated users.
* ``sampled=K`` (an option, rows labelled ``protocol = "sampled-K"``): each user's relevant
  items are ranked among K random unseen items instead (Krichene & Rendle 2020 show that
  sampled metrics can disagree with full ranking: use only for comparison with papers).
* **retriever recall@M**: the share of a user's relevant items among the CF model's top M
  (M = ``n_candidates``), the ceiling any re-ranker of those candidates can reach.
* **re-rankers**: each ``(model, re-ranker)`` pair tunes its fusion weight on a validation
  split of the fold's training data (:func:`llmcf.pipeline.tune_weight`), then re-ranks the
  top M of every evaluated test user; latency per user (p50/p95, scoring only, cache off)
  and the number of fallbacks are reported.

``max_users`` evaluates a seeded sample of users (the same for every method), for slow
re-rankers; rows record ``n_users_evaluated``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from llmcf.data.dataset import Dataset
from llmcf.errors import ConfigError
from llmcf.eval.metrics import ranking_report, relevance_matrix
from llmcf.rerank.reranker import RerankCache

__all__ = ["RerankerFactory", "evaluate_topn", "make_reranker_factory", "relevant_pairs"]

#: builds a re-ranker for a fold from (training data, item texts)
RerankerFactory = Callable[[Dataset, list[str]], Any]


def relevant_pairs(test: Dataset, relevance: float | None) -> tuple[np.ndarray, np.ndarray]:
    """``(user_idx, item_idx)`` of the relevant test interactions (see the module docstring)."""
    keep = np.ones(len(test), dtype=bool)
    if relevance is not None and test.feedback == "explicit":
        keep = test.rating >= relevance
    return test.user_idx[keep], test.item_idx[keep]


def make_reranker_factory(
    spec: str, *, n_threads: int = 1, mode: str = "pointwise"
) -> RerankerFactory:
    """A factory for ``"embedding"`` (MiniLM), ``"embedding:<embedder spec>"``, ``"local"``,
    ``"local:<model>"``, ``"endpoint"`` or ``"openai:<url>#<model>"``; LLM clients are built
    once and shared by every fold."""
    from llmcf.rerank.reranker import EmbeddingReranker, LLMReranker

    if spec == "embedding" or spec.startswith("embedding:"):
        embedder = spec.partition(":")[2] or "minilm"

        def build_embedding(train: Dataset, texts: list[str]) -> Any:
            from llmcf.text.render import template_version

            try:
                version = template_version(train.item_catalog.fields)
            except ConfigError:
                version = "unknown"
            return EmbeddingReranker(texts, embedder, cache_version=version).prepare()

        return build_embedding
    from llmcf.rerank.clients import make_llm_client

    client_box: list[Any] = []

    def build_llm(train: Dataset, texts: list[str]) -> Any:
        if not client_box:
            client_box.append(make_llm_client(spec, n_threads=n_threads))
        return LLMReranker(client_box[0], texts, mode=mode)

    return build_llm


def _item_texts(dataset: Dataset) -> list[str]:
    from llmcf.pipeline.core import item_texts

    return item_texts(dataset)


def evaluate_topn(
    folds: Iterable[Any],
    models: Sequence[str],
    *,
    n: int = 10,
    relevance: float | None = 4.0,
    options: dict[str, Any] | None = None,
    rerankers: dict[str, RerankerFactory] | None = None,
    n_candidates: int = 20,
    max_users: int | None = None,
    sampled: int | None = None,
    tune_users: int = 200,
    timeout: float | None = None,
    seed: int = 0,
    progress: bool = True,
    on_skip: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Run the protocol of the module docstring; one row per (method, fold).

    ``folds`` yield objects with ``name``, ``dataset``, ``train``, ``test`` (as
    :func:`llmcf.eval.runner.iter_folds`). A model name that cannot be built (e.g. ``t-item-knn``
    when the text layer is absent) is skipped with a message to ``on_skip``.
    """
    from tqdm.auto import tqdm

    from llmcf.models import make_model
    from llmcf.pipeline.core import Pipeline, tune_weight

    if n < 1 or n_candidates < 1:
        raise ConfigError(f"n and n_candidates must be >= 1, got {n}, {n_candidates}")
    if sampled is not None and sampled < 1:
        raise ConfigError(f"sampled must be >= 1, got {sampled}")
    options = {k: v for k, v in (options or {}).items() if v is not None}
    rerankers = dict(rerankers or {})
    rows: list[dict[str, Any]] = []
    skipped: set[str] = set()
    fold_list = list(folds)
    bar = tqdm(total=len(fold_list) * len(models), disable=not progress, desc="top-N", unit="fit")
    for fold in fold_list:
        train = fold.dataset.subset(fold.train)
        test = fold.dataset.subset(fold.test)
        rel_u, rel_i = relevant_pairs(test, relevance)
        relevant = relevance_matrix(rel_u, rel_i, train.n_users, train.n_items)
        users = np.unique(rel_u)
        if max_users is not None and len(users) > max_users:
            users = np.sort(np.random.default_rng(seed).choice(users, max_users, replace=False))
        rel_rows = relevant[users]
        texts: list[str] | None = None
        built: dict[str, Any] = {}
        for name in models:
            bar.set_postfix_str(f"{name} {fold.name}")
            try:
                model = make_model(name, **options)
            except ConfigError as exc:
                if name not in skipped and on_skip is not None:
                    on_skip(f"model {name!r} skipped: {exc}")
                skipped.add(name)
                bar.update(1)
                continue
            t0 = time.perf_counter()
            model.fit(train)
            fit_s = time.perf_counter() - t0
            base = {
                "k": None,
                "fold": fold.name,
                "fit_seconds": fit_s,
                "protocol": "full" if sampled is None else f"sampled-{sampled}",
            }
            if sampled is not None:
                recs_items = _sampled_lists(model, train, users, rel_rows, sampled, n, seed)
                rows.append({"model": name, **base, **ranking_report(recs_items, rel_rows, n)})
                bar.update(1)
                continue
            t0 = time.perf_counter()
            m = max(n, n_candidates)
            recs = model.recommend_many(users, m)
            rec_s = time.perf_counter() - t0
            report = ranking_report(recs.items[:, :n], rel_rows, n)
            retr = ranking_report(recs.items, rel_rows, m)
            rows.append(
                {
                    "model": name,
                    **base,
                    **report,
                    f"retriever_recall@{m}": retr[f"recall@{m}"],
                    "recommend_seconds": rec_s,
                    "n_cf_fallbacks": int(recs.was_fallback.sum()),
                }
            )
            for rname, factory in rerankers.items():
                if texts is None:
                    texts = _item_texts(fold.dataset)
                if rname not in built:
                    built[rname] = factory(train, texts)
                reranker = built[rname]
                t0 = time.perf_counter()
                weight, table = tune_weight(
                    _model_factory(make_model, name, options),
                    train,
                    reranker,
                    relevance=relevance,
                    n=n,
                    n_candidates=n_candidates,
                    max_users=tune_users,
                    seed=seed,
                    timeout=timeout,
                )
                tune_s = time.perf_counter() - t0
                pipe = Pipeline(
                    model,
                    train,
                    reranker=reranker,
                    weight=weight,
                    n_candidates=n_candidates,
                    timeout=timeout,
                )
                pipe.cache = _NoCache()
                items, results = pipe.recommend_many(users, n)
                lat = pipe.latency.percentiles()
                rows.append(
                    {
                        "model": f"{name}+{rname}",
                        **base,
                        **ranking_report(items, rel_rows, n),
                        f"retriever_recall@{m}": retr[f"recall@{m}"],
                        "weight": weight,
                        "ndcg_validation_w0": table.get(0.0),
                        "ndcg_validation_best": table.get(weight),
                        "tune_seconds": tune_s,
                        "rerank_p50_seconds": lat["p50"],
                        "rerank_p95_seconds": lat["p95"],
                        "n_rerank_fallbacks": sum(
                            1 for r in results if any("re-ranker" in s for s in r.reasons)
                        ),
                    }
                )
            bar.update(1)
    bar.close()
    return rows


def _model_factory(
    make: Callable[..., Any], name: str, options: dict[str, Any]
) -> Callable[[], Any]:
    def build() -> Any:
        return make(name, **options)

    return build


class _NoCache(RerankCache):
    """Latency runs must score every user: a cache that never hits."""

    def __init__(self) -> None:
        super().__init__(None, max_entries=0)

    def get(self, key: str) -> None:
        return None

    def put(self, key: str, scores: np.ndarray) -> None:
        return None


def _sampled_lists(
    model: Any,
    train: Dataset,
    users: np.ndarray,
    rel_rows: Any,
    n_negatives: int,
    n: int,
    seed: int,
) -> np.ndarray:
    """Top-``n`` of each user's relevant items ranked among ``n_negatives`` random unseen ones."""
    rng = np.random.default_rng(seed)
    scores = model.score_all(users)
    seen = train.matrix()
    out = np.full((len(users), n), -1, dtype=np.int32)
    n_items = train.n_items
    for row, u in enumerate(users.tolist()):
        rel = np.asarray(rel_rows[[row]].nonzero()[1])
        banned = np.zeros(n_items, dtype=bool)
        banned[seen[u].indices] = True
        banned[rel] = True
        pool = np.flatnonzero(~banned)
        neg = rng.choice(pool, min(n_negatives, len(pool)), replace=False)
        cands = np.concatenate([rel, neg])
        s = scores[row, cands]
        order = np.lexsort((cands, -s))[:n]
        out[row, : len(order)] = cands[order]
    return out
