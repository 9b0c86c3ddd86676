"""Top-N (ranking) experiments: models x folds, each optionally followed by re-rankers.

Protocol (per fold):

* **relevant** items of a user are their test interactions with ``rating >= relevance``
  (explicit feedback), or all their test interactions (implicit feedback or
  ``relevance=None``); users without a relevant test item are not evaluated.
* **full ranking** (default): every item the user did not interact with in train is a
  candidate; the metrics (:func:`llmcf.eval.metrics.ranking_report`) are Precision, Recall,
  NDCG, HitRate and MRR at N, plus catalog coverage of the top N of all evaluated users.
* **candidates** (``candidates=``, rows record it in ``candidates``): ``"all"`` (default)
  ranks every item the user did not interact with in train (full ranking above); ``"cold"``
  ranks only the fold's **cold items**, :func:`cold_items`: the items with an interaction in
  the fold's data set but none in its training part (for ``--split coldstart-items:F``
  exactly the moved items; catalog-only items without any interaction are not cold
  candidates). In ``"cold"`` mode a user's relevant items are their relevant test items that
  are cold (for ``coldstart-items`` all of them), so only users with one are evaluated;
  rows add ``n_cold_items``. Both modes pass the candidate set to ``model.recommend_many``
  (:func:`llmcf.ranking.path.rank`), nothing is re-ranked here. A fold without cold items
  raises :class:`~llmcf.errors.ConfigError`. ``"cold"`` combines with neither ``sampled``
  nor the embedding/LLM re-rankers; the learned stage (``learned``) draws its retriever's
  top M from the cold items (``Histories.allowed``).
* **random baseline** (``baselines=("random",)``; ``llmcf evaluate`` adds it by default
  with ``--candidates cold``): a row ``random`` per fold whose lists are a seeded uniformly
  random order of the same candidate set (the same users, exclusions and candidates, through
  the same ranking path: :class:`RandomOrder` scores each (user, item) with a uniform
  random number from ``default_rng([seed, user + 1])``). The row also holds the analytic
  expectation over random orders, ``expected_ndcg@N`` and ``expected_recall@N``
  (:func:`expected_random_metrics`), so the empirical row's sampling noise can be judged.
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
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from llmcf.base import Model
from llmcf.data.dataset import Dataset
from llmcf.errors import ConfigError
from llmcf.eval.metrics import per_user_metrics, ranking_report, relevance_matrix
from llmcf.ranking.lists import SOURCE_MODEL
from llmcf.rerank.reranker import RerankCache

if TYPE_CHECKING:
    from llmcf.ranking.path import Histories

__all__ = [
    "BASELINES",
    "CANDIDATE_MODES",
    "RandomOrder",
    "RerankerFactory",
    "cold_items",
    "evaluate_topn",
    "expected_random_metrics",
    "make_reranker_factory",
    "relevant_pairs",
]

#: the values of ``evaluate_topn(candidates=...)`` and ``llmcf evaluate --candidates``
CANDIDATE_MODES = ("all", "cold")
#: the baselines ``evaluate_topn(baselines=...)`` can add
BASELINES = ("random",)

#: builds a re-ranker for a fold from (training data, item texts)
RerankerFactory = Callable[[Dataset, list[str]], Any]


def relevant_pairs(test: Dataset, relevance: float | None) -> tuple[np.ndarray, np.ndarray]:
    """``(user_idx, item_idx)`` of the relevant test interactions (see the module docstring)."""
    keep = np.ones(len(test), dtype=bool)
    if relevance is not None and test.feedback == "explicit":
        keep = test.rating >= relevance
    return test.user_idx[keep], test.item_idx[keep]


def cold_items(dataset: Dataset, train: Dataset) -> np.ndarray:
    """Sorted int64 indices of the cold items of a fold: an interaction in ``dataset`` (the
    fold's whole data set) but none in ``train``."""
    counts = dataset.item_counts()
    trained = np.bincount(train.item_idx, minlength=len(counts))[: len(counts)]
    return np.flatnonzero((counts > 0) & (trained == 0)).astype(np.int64)


class RandomOrder(Model):
    """The random-order baseline of top-N evaluation (not a registered model).

    ``score_histories`` gives user ``u`` the scores ``default_rng([seed, u + 1]).random(n_items)``
    (every item scored, so no fallback), i.e. through :func:`llmcf.ranking.path.rank` a
    uniformly random order of the user's candidates that is the same in every block and
    every run for a given seed.
    """

    name = "random"

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        self.seed = int(seed)
        self.mu_ = None

    def fit(self, dataset: Dataset) -> RandomOrder:
        self._begin_fit(dataset)
        self.mu_ = dataset.global_mean()
        return self

    def ranking_source(self) -> str:
        return SOURCE_MODEL

    def score_histories(self, h: Histories) -> tuple[np.ndarray, None]:
        n_items = len(self.items_)
        out = np.empty((len(h), n_items))
        for row, u in enumerate(h.users.tolist()):
            out[row] = np.random.default_rng([self.seed, int(u) + 1]).random(n_items)
        return out, None

    def predict_detailed(
        self, user_idx: np.ndarray, item_idx: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """The training mean for every pair, all flagged as fallbacks (no rating model)."""
        self._check_fitted()
        u = np.asarray(user_idx).ravel()
        return np.full(len(u), self.mu_, dtype=np.float64), np.ones(len(u), dtype=bool)


def expected_random_metrics(
    seen: sp.csr_matrix | sp.csr_array,
    relevant: sp.csr_matrix | sp.csr_array,
    allowed: np.ndarray,
    n: int,
) -> dict[str, float]:
    """Expected NDCG@n and Recall@n of a uniformly random order of each user's candidates.

    ``seen``, ``relevant``: (users, n_items) structures (training items, relevant items);
    ``allowed``: bool (n_items,), the candidate set before exclusions. User u has
    ``C`` candidates (allowed, not seen) of which ``R`` are relevant; every position of a
    random order holds a relevant item with probability ``R / C``, so with
    ``k = min(n, C)``: ``E[DCG] = R / C * sum_{r<=k} 1 / log2(r + 1)``, ``E[NDCG] = E[DCG] /
    IDCG(|relevant(u)|)`` and ``E[Recall] = R / |relevant(u)| * k / C``; the means are over the
    users with a relevant item (as :func:`~llmcf.eval.metrics.ranking_report`). Keys
    ``expected_ndcg@n``, ``expected_recall@n`` (NaN without users).
    """
    cols = np.flatnonzero(np.asarray(allowed, dtype=bool))
    rel_c = sp.csr_array(relevant, dtype=bool)[:, cols]
    seen_c = sp.csr_array(seen, dtype=bool)[:, cols]
    n_rel = _row_nnz(relevant)
    n_cand = len(cols) - _row_nnz(seen_c)
    r_cand = _row_nnz(rel_c) - _row_nnz(rel_c.multiply(seen_c))
    discount = np.concatenate(([0.0], np.cumsum(1.0 / np.log2(np.arange(2, n + 2)))))
    k = np.minimum(n, n_cand)
    share = np.divide(r_cand, n_cand, out=np.zeros(len(n_cand)), where=n_cand > 0)
    ok = n_rel > 0
    if not ok.any():
        return {f"expected_ndcg@{n}": float("nan"), f"expected_recall@{n}": float("nan")}
    ndcg = share[ok] * discount[k[ok]] / discount[np.minimum(n_rel[ok], n)]
    recall = np.divide(r_cand[ok] * k[ok], n_rel[ok] * np.maximum(n_cand[ok], 1))
    return {f"expected_ndcg@{n}": float(ndcg.mean()), f"expected_recall@{n}": float(recall.mean())}


def _row_nnz(m: Any) -> np.ndarray:
    """Stored non-zero entries per row of a sparse matrix (duplicates summed, zeros dropped)."""
    csr = sp.csr_array(m, dtype=bool, copy=True)
    csr.sum_duplicates()
    csr.eliminate_zeros()
    return np.diff(csr.indptr).astype(np.int64)


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
    candidates: str = "all",
    baselines: Sequence[str] = (),
    learned: dict[str, Any] | None = None,
    per_user: dict[tuple[str, str], dict[str, np.ndarray]] | None = None,
) -> list[dict[str, Any]]:
    """Run the protocol of the module docstring; one row per (method, fold).

    ``folds`` yield objects with ``name``, ``dataset``, ``train``, ``test`` (as
    :func:`llmcf.eval.runner.iter_folds`). A model name that cannot be built (e.g. ``t-item-knn``
    when the text layer is absent) is skipped with a message to ``on_skip``. ``candidates``:
    ``"all"`` or ``"cold"``; ``baselines``: names from :data:`BASELINES`, one row each per fold
    after the models' rows. ``learned`` (options of
    :class:`~llmcf.rerank.learned.LearnedConfig`, ``{}`` for its defaults): after each model's
    row a row ``<model>+learned``, the learned second stage with that model as retriever,
    fitted on the fold's training data and ranked through the one ranking path.
    ``per_user`` (a dict to fill): ``(method, fold) -> {"users": user indices, "ndcg@N": ...}``
    with the per-user metrics of each model and baseline row (:func:`per_user_metrics`), for
    paired tests (:func:`llmcf.eval.stats.paired_test`).
    """
    from tqdm.auto import tqdm

    from llmcf.models import make_model
    from llmcf.pipeline.core import Pipeline, tune_weight

    if n < 1 or n_candidates < 1:
        raise ConfigError(f"n and n_candidates must be >= 1, got {n}, {n_candidates}")
    if max_users is not None and max_users < 1:
        raise ConfigError(f"max_users (--max-users) must be >= 1, got {max_users}")
    if sampled is not None and sampled < 1:
        raise ConfigError(f"sampled must be >= 1, got {sampled}")
    if candidates not in CANDIDATE_MODES:
        raise ConfigError(
            f"candidates must be one of {', '.join(CANDIDATE_MODES)}, got {candidates!r}"
        )
    baselines = list(dict.fromkeys(baselines))
    unknown = [b for b in baselines if b not in BASELINES]
    if unknown:
        raise ConfigError(
            f"unknown baseline {unknown[0]!r}; valid baselines: {', '.join(BASELINES)}"
        )
    options = {k: v for k, v in (options or {}).items() if v is not None}
    rerankers = dict(rerankers or {})
    if sampled is not None and (candidates != "all" or baselines):
        raise ConfigError(
            "sampled metrics combine with neither candidates='cold' nor baselines; "
            "use the full-ranking protocol (no sampled) for cold-start and random rows"
        )
    if sampled is not None and learned is not None:
        raise ConfigError(
            "the learned second stage is evaluated with full ranking only; drop sampled"
        )
    if candidates == "cold" and rerankers:
        raise ConfigError(
            "candidates='cold' does not combine with re-rankers: the re-ranking pipeline "
            "ranks all unseen items"
        )
    rows: list[dict[str, Any]] = []
    skipped: set[str] = set()
    fold_list = list(folds)
    bar = tqdm(
        total=len(fold_list) * (len(models) + len(baselines)),
        disable=not progress,
        desc="top-N",
        unit="fit",
    )
    for fold in fold_list:
        train = fold.dataset.subset(fold.train)
        test = fold.dataset.subset(fold.test)
        rel_u, rel_i = relevant_pairs(test, relevance)
        cand: np.ndarray | None = None
        allowed = np.ones(train.n_items, dtype=bool)
        if candidates == "cold":
            cand = cold_items(fold.dataset, train)
            if not len(cand):
                raise ConfigError(
                    f"candidates='cold': fold {fold.name!r} has no cold items (every item with "
                    "an interaction has one in its training data); use a cold-item split such "
                    "as --split coldstart-items:0.2"
                )
            allowed = np.zeros(train.n_items, dtype=bool)
            allowed[cand] = True
            keep = allowed[rel_i]
            rel_u, rel_i = rel_u[keep], rel_i[keep]
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
                "chosen": model.chosen_settings() if hasattr(model, "chosen_settings") else {},
                "fit_seconds": fit_s,
                "protocol": "full" if sampled is None else f"sampled-{sampled}",
                "candidates": candidates,
            }
            if cand is not None:
                base["n_cold_items"] = len(cand)
            if sampled is not None:
                recs_items = _sampled_lists(model, train, users, rel_rows, sampled, n, seed)
                rows.append({"model": name, **base, **ranking_report(recs_items, rel_rows, n)})
                bar.update(1)
                continue
            t0 = time.perf_counter()
            m = max(n, n_candidates)
            recs = model.recommend_many(users, m, candidates=cand)
            rec_s = time.perf_counter() - t0
            report = ranking_report(recs.items[:, :n], rel_rows, n)
            retr = ranking_report(recs.items, rel_rows, m)
            if per_user is not None:
                per_user[(name, fold.name)] = {
                    "users": users,
                    **per_user_metrics(recs.items[:, :n], rel_rows, n),
                }
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
            if learned is not None:
                row, items = _learned_row(
                    name, learned, options, train, users, rel_rows, n, base, cand
                )
                rows.append(row)
                if per_user is not None:
                    per_user[(row["model"], fold.name)] = {
                        "users": users,
                        **per_user_metrics(items, rel_rows, n),
                    }
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
                if per_user is not None:
                    per_user[(f"{name}+{rname}", fold.name)] = {
                        "users": users,
                        **per_user_metrics(items, rel_rows, n),
                    }
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
        for bname in baselines:
            bar.set_postfix_str(f"{bname} {fold.name}")
            keep = None
            if per_user is not None:
                keep = per_user.setdefault((bname, fold.name), {"users": users})
            rows.append(
                _random_row(
                    train, users, rel_rows, n, max(n, n_candidates), cand, allowed, seed, keep
                )
                | {"fold": fold.name, "candidates": candidates}
                | ({} if cand is None else {"n_cold_items": len(cand)})
            )
            bar.update(1)
    bar.close()
    return rows


def _learned_row(
    name: str,
    learned: dict[str, Any],
    options: dict[str, Any],
    train: Dataset,
    users: np.ndarray,
    rel_rows: Any,
    n: int,
    base: dict[str, Any],
    cand: np.ndarray | None = None,
) -> tuple[dict[str, Any], np.ndarray]:
    """The ``<name>+learned`` row of one fold (see :func:`evaluate_topn`) and its lists
    (``cand``: the candidate items, None: all; the retriever's top M come from them)."""
    from llmcf.models import make_model

    # the stage's own options win over the shared ones (LearnedRanker.from_options)
    own = {**(options.get("learned_options") or {}), **learned, "retriever": name}
    model = make_model("learned", **{**options, "learned_options": own})
    t0 = time.perf_counter()
    model.fit(train)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    recs = model.recommend_many(users, n, candidates=cand)
    rec_s = time.perf_counter() - t0
    m = model.config.n_candidates
    retr_items = model.stage_.retriever.recommend_many(users, m, candidates=cand).items
    retr = ranking_report(retr_items, rel_rows, m)
    row = {
        "model": f"{name}+learned",
        **base,
        "chosen": model.chosen_settings(),
        "fit_seconds": fit_s,
        **ranking_report(recs.items, rel_rows, n),
        f"retriever_recall@{m}": retr[f"recall@{m}"],
        "recommend_seconds": rec_s,
        "n_cf_fallbacks": int(recs.was_fallback.sum()),
        "n_candidates": m,
        "learned_validation_ndcg@10": model.fit_info_.get("validation_ndcg@10"),
    }
    return row, recs.items


def _random_row(
    train: Dataset,
    users: np.ndarray,
    rel_rows: Any,
    n: int,
    m: int,
    cand: np.ndarray | None,
    allowed: np.ndarray,
    seed: int,
    per_user: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``random`` baseline row of one fold (see the module docstring); its per-user
    metrics go into ``per_user`` when given."""
    t0 = time.perf_counter()
    model = RandomOrder(seed).fit(train)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    recs = model.recommend_many(users, m, candidates=cand)
    rec_s = time.perf_counter() - t0
    retr = ranking_report(recs.items, rel_rows, m)
    if per_user is not None:
        per_user.update(per_user_metrics(recs.items[:, :n], rel_rows, n))
    seen = model.train_matrix()[users]
    return {
        "model": "random",
        "k": None,
        "fit_seconds": fit_s,
        "protocol": "full",
        **ranking_report(recs.items[:, :n], rel_rows, n),
        **expected_random_metrics(seen, rel_rows, allowed, n),
        f"retriever_recall@{m}": retr[f"recall@{m}"],
        "recommend_seconds": rec_s,
        "n_cf_fallbacks": int(recs.was_fallback.sum()),
    }


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
