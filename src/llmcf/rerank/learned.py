"""The learned second stage: a LightGBM lambdarank ranker over a retriever's top M.

``LearnedRanker`` (registered as ``learned``) is a model like any other: its
``score_histories`` takes the retriever's top ``n_candidates`` unseen items of each history
row, computes their features (:mod:`llmcf.rerank.features`: the scores and ranks of several
CF models, text similarity to the history, popularity and recency) and scores them with the
learned ranker; every other item gets no score. So its lists come from the one ranking path
(:func:`llmcf.ranking.path.rank`) and are the same from the library, ``llmcf evaluate
--rerank learned``, ``llmcf recommend``, a saved model folder and the service.

**Training** (``fit``) uses the training data only: a per-user holdout
(:func:`~llmcf.eval.split.holdout_split`, ``holdout`` of each user's interactions) gives the
labels, the retriever and the feature models are fitted on the rest, and each user with a
relevant held-out item (value >= :func:`~llmcf.eval.select.positive_threshold`) is one
query whose candidates are labelled 1 when held out and relevant. LightGBM's lambdarank is
trained with the number of rounds chosen by early stopping on held-out users
(:func:`train_ranker`), on ``n_carves`` seeded holdouts (default 3; more queries, chosen on
validation, docs/experiments.md; ``carve="last"`` holds out each user's latest interactions
instead, for next-item protocols). Then the retriever and the feature models are refitted on
the whole training data: at serve time the features come from models fitted on everything
``fit`` saw.

With fewer than :data:`MIN_QUERIES` training queries (tiny data) no ranker is trained and the
stage keeps the retriever's order (``ranker_text_`` empty; ``fit_note_`` says so).

**Saved** with the model: the retriever and feature models' arrays (prefixed) and state in
the one artifact (:mod:`llmcf.persist`), the ranker in LightGBM's own text format as a
uint8 array (checksummed like every array; no pickle).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

import numpy as np

import llmcf.cf.ease
import llmcf.cf.knn  # noqa: F401  (registers the feature models)
from llmcf import registry
from llmcf.base import Model
from llmcf.errors import ConfigError, ModelLoadError
from llmcf.ranking.lists import SOURCE_MODEL
from llmcf.ranking.path import training_histories
from llmcf.registry import register
from llmcf.rerank.features import (
    DEFAULT_FAMILIES,
    FAMILIES,
    FeatureStage,
    family_columns,
    feature_names,
)

if TYPE_CHECKING:
    from llmcf.data.dataset import Dataset
    from llmcf.ranking.path import Histories

__all__ = ["MIN_QUERIES", "LearnedConfig", "LearnedExplainer", "LearnedRanker"]

#: fewer training queries than this: no ranker, the retriever's order is kept
MIN_QUERIES = 10
_INTERACTIONS = ("user_idx", "item_idx", "rating")


@dataclass(frozen=True)
class LearnedConfig:
    """Options of the learned stage.

    retriever: the model whose top ``n_candidates`` are re-ranked; feature_models: the CF
    models whose scores and ranks are features; families: the feature families used
    (:data:`~llmcf.rerank.features.FAMILIES`; ``retriever`` is always used; empty: the
    default, :data:`~llmcf.rerank.features.DEFAULT_FAMILIES` and ``profile`` when
    ``profiles`` is set);
    embedder: the text embedder spec; item_text/profiles: which item text is embedded
    (:func:`~llmcf.rerank.features.item_text_vectors`); holdout: the share of each user's
    training interactions held out as labels (``carve="random"``); carve: ``"random"``
    (seeded per-user holdouts) or ``"last"`` (each user's last interaction, for a
    leave-last-out test; carve k holds out the last interaction before the k later ones,
    which it drops); n_carves: how many carves make training queries (each fits the feature
    models once more); max_train_users: cap on training queries (seeded sample); gate: keep
    the retriever's order when the ranker's NDCG@10 on the held-out users' queries is not
    above the retriever order's on the same queries (the data says the stage does not
    help); llm*: the ``llm`` family (:mod:`llmcf.rerank.llm_feature`): the client spec
    (:func:`~llmcf.rerank.clients.make_llm_client`), how many top candidates are judged, the
    history items shown, ``pointwise`` or ``choice``, the training queries per carve that
    get judgements (the others are left out while the family is on: every query the ranker
    learns from has them), llama.cpp threads and a JSON-lines cache file; the rest are
    LightGBM settings.
    """

    retriever: str = "ease"
    n_candidates: int = 50
    feature_models: tuple[str, ...] = ("item-knn", "user-knn", "ease")
    families: tuple[str, ...] = ()
    embedder: str = "minilm"
    item_text: str = "catalog"
    profiles: str | None = None
    holdout: float = 0.2
    carve: str = "random"
    n_carves: int = 3
    max_train_users: int | None = None
    n_estimators: int = 300
    learning_rate: float = 0.05
    num_leaves: int = 15
    min_child_samples: int = 20
    early_stopping: int = 30
    gate: bool = True
    llm: str = "local:qwen2.5-0.5b"
    llm_candidates: int = 20
    llm_history: int = 5
    llm_mode: str = "pointwise"
    llm_train_users: int = 200
    llm_threads: int = 1
    llm_cache: str | None = None
    seed: int = 0
    threads: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "feature_models", tuple(self.feature_models))
        chosen = self.families
        if not chosen:  # the default: what validation chose (docs/experiments.md)
            chosen = DEFAULT_FAMILIES + (("profile",) if self.profiles else ())
        fams = tuple(dict.fromkeys(("retriever", *chosen)))
        object.__setattr__(self, "families", fams)
        bad = [f for f in fams if f not in FAMILIES]
        if bad:
            raise ConfigError(f"unknown feature family {bad[0]!r}; valid: {', '.join(FAMILIES)}")
        for name in (self.retriever, *self.feature_models):
            registry.by_name(name)  # ConfigError listing the valid names
            if name == "learned":
                raise ConfigError("the learned stage cannot retrieve for itself")
        if self.n_candidates < 1:
            raise ConfigError(f"n_candidates must be >= 1, got {self.n_candidates}")
        if self.carve not in ("random", "last"):
            raise ConfigError(f"carve must be 'random' or 'last', got {self.carve!r}")
        if self.n_carves < 1:
            raise ConfigError(f"n_carves must be >= 1, got {self.n_carves}")
        if not 0.0 < self.holdout < 1.0:
            raise ConfigError(f"holdout must be in (0, 1), got {self.holdout}")
        if self.llm_mode not in ("pointwise", "choice"):
            raise ConfigError(f"llm_mode must be 'pointwise' or 'choice', got {self.llm_mode!r}")
        for name in ("llm_candidates", "llm_history", "llm_train_users", "llm_threads"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.n_estimators < 1 or self.num_leaves < 2 or self.learning_rate <= 0:
            raise ConfigError("n_estimators >= 1, num_leaves >= 2 and learning_rate > 0 needed")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> LearnedConfig:
        from llmcf.options import config_from_dict

        return config_from_dict(cls, values, "learned-stage")


_CONTROLLER: list[Any] = []


def blas_limit(threads: int) -> Any:
    """A context capping numpy's BLAS at ``threads``: the features multiply many small
    matrices, where OpenBLAS's thread start-up costs more than the work (3x on a loaded
    2-core machine). One cached threadpoolctl controller (0.02 ms an entry, not the 0.5 ms of
    a fresh ``threadpool_limits``)."""
    if not _CONTROLLER:
        from threadpoolctl import ThreadpoolController

        _CONTROLLER.append(ThreadpoolController())
    return _CONTROLLER[0].limit(limits=int(threads), user_api="blas")


def _fit_models(names: Sequence[str], dataset: Dataset) -> dict[str, Any]:
    """Fresh models by name (default options), each fitted on ``dataset``."""
    out = {}
    for name in dict.fromkeys(names):
        cls = registry.by_name(name)
        out[name] = cls.from_options({}).fit(dataset)  # type: ignore[attr-defined]
    return out


@dataclass
class TrainingSet:
    """Labelled feature rows of the training queries (one query per user and carve)."""

    X: np.ndarray  # (rows, F)
    y: np.ndarray  # (rows,)
    group: np.ndarray  # (queries,) rows per query
    users: np.ndarray  # (queries,)
    names: list[str] = field(default_factory=list)
    carve: np.ndarray | None = None  # (queries,) the carve of each query (None: all 0)

    def carves(self) -> np.ndarray:
        return np.zeros(len(self.group), np.int64) if self.carve is None else self.carve

    def take(self, queries: np.ndarray) -> TrainingSet:
        """The queries where the bool mask ``queries`` is True."""
        row_q = np.repeat(np.arange(len(self.group)), self.group)
        rows = queries[row_q]
        return TrainingSet(
            self.X[rows],
            self.y[rows],
            self.group[queries],
            self.users[queries],
            self.names,
            self.carves()[queries],
        )


def training_set(
    stage: FeatureStage, inner: Dataset, held: Dataset, m: int, *, max_users: int | None, seed: int
) -> TrainingSet:
    """Features and labels of every user with a relevant held-out item (module docstring)."""
    from llmcf.eval.select import positive_threshold

    thr = positive_threshold(held)
    keep = np.ones(len(held), dtype=bool) if thr is None else held.rating >= thr
    users = np.unique(held.user_idx[keep])
    if max_users is not None and len(users) > max_users:
        users = np.sort(np.random.default_rng(seed).choice(users, max_users, replace=False))
    import scipy.sparse as sp

    rel = sp.csr_matrix(
        (np.ones(int(keep.sum())), (held.user_idx[keep], held.item_idx[keep])),
        shape=(held.n_users, held.n_items),
    )
    h = training_histories(stage.retriever, users)
    with blas_limit(1):
        items, X = stage.features(h, m)
    valid = items >= 0
    labels = np.asarray(rel[users[:, None], np.where(valid, items, 0)].todense()) > 0
    labels &= valid
    has_pos = labels.any(axis=1)
    rows = np.flatnonzero(has_pos)
    group = valid[rows].sum(axis=1)
    Xf = X[rows][valid[rows]]
    yf = labels[rows][valid[rows]].astype(np.float64)
    return TrainingSet(
        Xf, yf, group.astype(np.int64), users[rows], feature_names(stage.model_names)
    )


def validation_queries(users: np.ndarray, seed: int) -> np.ndarray:
    """bool per training query: its user is one of a seeded 20% of the queries' users (the
    queries early stopping scores; split by user, so carves of one user stay together)."""
    unique = np.unique(users)
    rng = np.random.default_rng(seed)
    chosen = rng.choice(unique, max(1, len(unique) // 5), replace=False)
    return np.isin(users, chosen)


def _lgb_params(config: LearnedConfig) -> dict[str, Any]:
    return {
        "objective": "lambdarank",
        "metric": "ndcg",
        "eval_at": [10],
        "learning_rate": config.learning_rate,
        "num_leaves": config.num_leaves,
        "min_child_samples": config.min_child_samples,
        "seed": config.seed,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": config.threads,
        "verbosity": -1,
    }


def train_ranker(
    ts: TrainingSet, columns: Sequence[int], config: LearnedConfig
) -> tuple[str, dict[str, float]]:
    """LightGBM lambdarank on ``columns`` of ``ts``: ``(model text, info)``.

    The number of rounds is chosen by early stopping on the NDCG@10 of the queries of a
    seeded 20% of the users (:func:`validation_queries`), with those users' queries left out
    of training. With several carves the early-stopping queries come from the last carve and
    training uses the others only: queries of one carve share its held-out items, which the
    item features (popularity, ...) can memorise, so scoring a carve that was trained on
    would reward memorising. Then the ranker is retrained on every query for that many
    rounds. Empty text with fewer than MIN_QUERIES queries, and (``config.gate``) when the
    probe's NDCG@10 on every query of the held-out users (all carves) is not above the
    retriever order's there (``info`` has both).
    """
    if len(ts.group) < MIN_QUERIES:
        return "", {"n_queries": float(len(ts.group))}
    try:
        import lightgbm as lgb
    except ImportError:
        raise ConfigError(
            "the learned stage needs LightGBM: pip install 'llmcf[rank]' (or lightgbm)"
        ) from None
    q = len(ts.group)
    is_valid = validation_queries(ts.users, config.seed)
    carve = ts.carves()
    last = int(carve.max())
    stop_q = is_valid & (carve == last) if last > 0 else is_valid
    fit_q = ~is_valid & (carve != last) if last > 0 else ~is_valid
    cols = list(columns)
    names = [ts.names[c] for c in cols]
    params = _lgb_params(config)
    fit, stop = ts.take(fit_q), ts.take(stop_q)
    dtrain = lgb.Dataset(fit.X[:, cols], fit.y, group=fit.group, feature_name=names)
    dvalid = lgb.Dataset(stop.X[:, cols], stop.y, group=stop.group, reference=dtrain)
    probe = lgb.train(
        params,
        dtrain,
        num_boost_round=config.n_estimators,
        valid_sets=[dvalid],
        callbacks=[lgb.early_stopping(config.early_stopping, verbose=False)],
    )
    best = int(probe.best_iteration or config.n_estimators)
    # the gate scores every query of the held-out users (all carves: 3x the early-stopping
    # queries, the earlier carves never trained on nor stopped on)
    held = ts.take(is_valid)
    pred = np.asarray(probe.predict(held.X[:, cols], num_iteration=best), dtype=np.float64)
    score = group_ndcg(pred, held.y, held.group, 10)
    retriever = group_ndcg(-held.X[:, ts.names.index("retriever_rank")], held.y, held.group, 10)
    info = {
        "n_queries": float(q),
        "best_iteration": float(best),
        "validation_ndcg@10": score,
        "validation_retriever_ndcg@10": retriever,
    }
    if config.gate and not score > retriever:
        return "", info
    dall = lgb.Dataset(ts.X[:, cols], ts.y, group=ts.group, feature_name=names)
    booster = lgb.train({**params, "metric": "none"}, dall, num_boost_round=best)
    return booster.model_to_string(), info


def break_ties_by_position(scores: np.ndarray) -> np.ndarray:
    """``scores`` (b, M; -inf: no candidate) nudged so that equal scores order by position
    (the retriever's order), as training and validation order them, instead of by item index
    in the ranking path. A few trees give many equal scores (leaves), and an item-index order
    among them is arbitrary. Each score moves down by less than the smallest gap between
    distinct scores of its row, so the order of distinct scores is kept."""
    out = np.array(scores, dtype=np.float64, copy=True)
    m = out.shape[1]
    if m < 2:
        return out
    finite = np.isfinite(out)
    srt = np.sort(np.where(finite, out, np.inf), axis=1)
    with np.errstate(invalid="ignore"):  # inf - inf past the last finite score
        gaps = np.diff(srt, axis=1)
    smallest = np.where(np.isfinite(gaps) & (gaps > 0), gaps, np.inf).min(axis=1)
    base = np.where(finite, np.abs(out), 0.0).max(axis=1)
    fallback = np.where(base > 0, base * 1e-9, 1e-9)
    step = np.where(np.isfinite(smallest), smallest, fallback) / (2.0 * m)
    return np.where(finite, out - step[:, None] * np.arange(m)[None, :], out)


def group_ndcg(scores: np.ndarray, y: np.ndarray, group: np.ndarray, n: int) -> float:
    """Mean NDCG@n of the queries (consecutive rows, ``group`` rows each) ordered by
    ``scores`` (ties by row order), binary labels ``y``."""
    out = []
    start = 0
    disc = 1.0 / np.log2(np.arange(2, n + 2))
    for g in group.tolist():
        s, lab = scores[start : start + g], y[start : start + g]
        start += g
        order = np.argsort(-s, kind="stable")[:n]
        dcg = float((lab[order] * disc[: len(order)]).sum())
        ideal = float(disc[: min(int(lab.sum()), n)].sum())
        out.append(dcg / ideal if ideal > 0 else 0.0)
    return float(np.mean(out)) if out else float("nan")


@register("learned")
class LearnedRanker(Model):
    """The learned second stage over a retriever (module docstring).

    Args:
        config: a :class:`LearnedConfig` (or its fields as keyword options).
        embedder: an embedder object to use instead of ``config.embedder`` (tests).
        llm_client: a language-model client to use instead of ``config.llm`` (tests).
    """

    ranker_text_: str = ""
    #: the text options (item_text, profiles, embedder) reach :meth:`from_options`
    takes_text_options = True

    def __init__(
        self,
        config: LearnedConfig | None = None,
        *,
        embedder: Any = None,
        llm_client: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        if config is not None and kwargs:
            raise ConfigError("pass either a LearnedConfig or keyword options, not both")
        self.config = config or LearnedConfig.from_dict(kwargs)
        self._embedder = embedder
        self._llm_client = llm_client
        self._llm: Any = None  # the LLMFeature, built on first use
        self._profile_cache: tuple[tuple[int, int], np.ndarray] | None = None
        self.llm_texts_: list[str] = []
        self.mu_ = None
        self.stage_: FeatureStage | None = None
        self.ranker_text_ = ""
        self.fit_info_: dict[str, float] = {}
        self.fit_note_: str | None = None

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> LearnedRanker:
        """Build from command-line options: ``retriever``/``n_candidates`` and the other
        :class:`LearnedConfig` fields are taken, then ``learned_options`` (``--learned-option
        KEY=VALUE``, which win), the rest (k, similarity, ...) ignored."""
        known = {f.name for f in fields(LearnedConfig)}
        values = {k: v for k, v in options.items() if k in known}
        values.update(options.get("learned_options") or {})  # --learned-option KEY=VALUE
        return cls(LearnedConfig.from_dict(values))

    def get_config(self) -> dict[str, Any]:
        return asdict(self.config)

    def chosen_settings(self) -> dict[str, Any]:
        """What this fit chose on its training carves: the ranker (kept, or the retriever's
        order by the gate) and its number of rounds."""
        info = self.fit_info_
        if "validation_ndcg@10" not in info:
            return {}
        out: dict[str, Any] = {"stage": "ranker" if self.ranker_text_ else "retriever order"}
        out["rounds"] = int(info["best_iteration"])
        out["validation ndcg@10"] = round(float(info["validation_ndcg@10"]), 4)
        out["retriever's"] = round(float(info["validation_retriever_ndcg@10"]), 4)
        return out

    @property
    def columns(self) -> list[int]:
        """The feature columns of the configured families."""
        fam = family_columns(self.config.feature_models)
        return sorted(c for f in self.config.families for c in fam[f])

    # ------------------------------------------------------------------ fit
    def item_vectors(self, dataset: Dataset) -> np.ndarray:
        """The item text vectors of the text features (a zero column without them)."""
        from llmcf.rerank.features import item_text_vectors

        if "text" not in self.config.families:
            return np.zeros((dataset.n_items, 1), dtype=np.float32)
        emb = self._embedder if self._embedder is not None else self.config.embedder
        return item_text_vectors(dataset, emb, self.config.item_text, self.config.profiles)

    def build_stage(self, dataset: Dataset, vectors: np.ndarray) -> FeatureStage:
        """The retriever and feature models fitted on ``dataset``, with its item statistics."""
        cfg = self.config
        models = _fit_models([cfg.retriever, *cfg.feature_models], dataset)
        feats = {name: models[name] for name in cfg.feature_models}
        stage = FeatureStage.build(models[cfg.retriever], feats, vectors, dataset)
        if "profile" in cfg.families:
            stage.profile_vectors = self._profile_vectors(dataset)
        if "llm" in cfg.families:
            if not self.llm_texts_:
                from llmcf.pipeline.core import item_texts
                from llmcf.rerank.llm_feature import MAX_TEXT_CHARS

                self.llm_texts_ = [t[:MAX_TEXT_CHARS] for t in item_texts(dataset)]
            stage.llm = self.llm_feature()
        return stage

    def _profile_vectors(self, dataset: Dataset) -> np.ndarray:
        """Unit embeddings of the items' profiles (the ``profile`` family), computed once
        per catalog (the carves of a fit share it)."""
        from llmcf.rerank.features import item_text_vectors

        cfg = self.config
        if cfg.profiles is None:
            raise ConfigError(
                "the profile feature family needs the item profiles: profiles=DIR "
                "(llmcf enrich --out DIR), e.g. --profiles DIR or --learned-option profiles=DIR"
            )
        key = (id(dataset.item_catalog), dataset.n_items)
        cached = self._profile_cache
        if cached is None or cached[0] != key:
            emb = self._embedder if self._embedder is not None else cfg.embedder
            cached = (key, item_text_vectors(dataset, emb, "profile", cfg.profiles))
            self._profile_cache = cached
        return cached[1]

    def llm_feature(self) -> Any:
        """The :class:`~llmcf.rerank.llm_feature.LLMFeature` of the ``llm`` family (built
        once: the language model is loaded on first use)."""
        if self._llm is None:
            from llmcf.rerank.llm_feature import LLMFeature

            cfg = self.config
            client = self._llm_client
            if client is None:
                from llmcf.rerank.clients import make_llm_client

                client = make_llm_client(cfg.llm, n_threads=cfg.llm_threads)
            self._llm = LLMFeature(
                client,
                self.llm_texts_,
                n_candidates=cfg.llm_candidates,
                history_size=cfg.llm_history,
                mode=cfg.llm_mode,
                cache_path=cfg.llm_cache,
            )
        return self._llm

    def training_data(
        self, dataset: Dataset, vectors: np.ndarray, *, bar: Any = None
    ) -> TrainingSet | None:
        """The labelled training queries of ``dataset`` (module docstring): a per-user
        holdout, the retriever and feature models fitted on the rest; None without a
        held-out interaction."""
        from llmcf.eval.split import holdout_split, leave_one_out_split

        cfg = self.config
        parts = []
        older = dataset  # carve="last": carve k holds out the last interaction before k
        for k in range(cfg.n_carves):
            if cfg.carve == "last":
                fold = leave_one_out_split(older)[0]
                inner, held = older.subset(fold.train), older.subset(fold.test)
                older = inner
            else:
                fold = holdout_split(dataset, cfg.holdout, cfg.seed + k)[0]
                inner, held = dataset.subset(fold.train), dataset.subset(fold.test)
            if not len(held):
                return None
            stage = self.build_stage(inner, vectors)
            parts.append(
                training_set(
                    stage,
                    inner,
                    held,
                    cfg.n_candidates,
                    max_users=self._max_train_users(),
                    seed=cfg.seed + k,
                )
            )
            if bar is not None:
                bar.update(1)
        return TrainingSet(
            np.concatenate([p.X for p in parts]),
            np.concatenate([p.y for p in parts]),
            np.concatenate([p.group for p in parts]),
            np.concatenate([p.users for p in parts]),
            parts[0].names,
            np.concatenate([np.full(len(p.group), k, np.int64) for k, p in enumerate(parts)]),
        )

    def prepare_serving(self) -> None:
        """Called by the service on load: with the ``llm`` family, judgements not yet cached
        are computed on a background thread and the request is answered without them
        (:mod:`llmcf.rerank.llm_feature`), so the language model stays off the request path."""
        if "llm" in self.config.families:
            self.llm_feature().background = True

    def _max_train_users(self) -> int | None:
        cfg = self.config
        if "llm" not in cfg.families:
            return cfg.max_train_users
        return min(cfg.max_train_users or cfg.llm_train_users, cfg.llm_train_users)

    def fit(self, dataset: Dataset, *, progress: bool = False) -> LearnedRanker:
        """Train on holdouts of ``dataset``, refit the feature models on all of it
        (``progress``: a bar over the carves and the final refit)."""
        from tqdm.auto import tqdm

        t0 = time.perf_counter()
        self.mu_ = None
        self.llm_texts_ = []
        with tqdm(
            total=self.config.n_carves + 1, disable=not progress, desc="learned", unit="stage"
        ) as bar:
            vectors = self.item_vectors(dataset)
            ts = self.training_data(dataset, vectors, bar=bar)
            stage = self.build_stage(dataset, vectors)
            self.assemble(dataset, ts, stage)
            bar.update(1)
        self.fit_seconds_ = time.perf_counter() - t0
        return self

    def assemble(
        self, dataset: Dataset, ts: TrainingSet | None, stage: FeatureStage
    ) -> LearnedRanker:
        """The last step of :meth:`fit`: train the ranker on ``ts`` (this model's feature
        columns) and serve with ``stage`` (fitted on ``dataset``). Variants that share the
        training queries and the stage (the ablation) are fitted through it."""
        cfg = self.config
        self.mu_ = None
        self._begin_fit(dataset)
        text, info = "", {"n_queries": 0.0}
        if ts is not None:
            text, info = train_ranker(ts, self.columns, cfg)
        if text:
            self.fit_note_ = None
        elif "validation_ndcg@10" in info:
            self.fit_note_ = (
                f"the ranker's validation NDCG@10 {info['validation_ndcg@10']:.4f} is not above "
                f"the {cfg.retriever} order's {info['validation_retriever_ndcg@10']:.4f} on the "
                f"same held-out queries: the {cfg.retriever} order is kept (gate=False trains "
                "it anyway)"
            )
        else:
            self.fit_note_ = (
                f"{int(info['n_queries'])} training queries (< {MIN_QUERIES}): no ranker "
                f"trained, the {cfg.retriever} order is kept"
            )
        self.stage_ = stage
        self.ranker_text_ = text
        self.fit_info_ = info
        self.mu_ = dataset.global_mean()
        return self

    # ------------------------------------------------------------------ scoring
    def _booster(self) -> Any:
        def build() -> Any:
            import lightgbm as lgb

            return lgb.Booster(model_str=self.ranker_text_)

        return self._cache("booster", build)

    def candidate_scores(self, h: Histories) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(items (b, M), X (b, M, F), scores (b, M))`` of the history rows; -inf for padding."""
        self._check_fitted()
        assert self.stage_ is not None
        if "llm" in self.config.families and self.stage_.llm is None:
            self.stage_.llm = self.llm_feature()  # a loaded model: its LLM on first use
        with blas_limit(self.config.threads):
            items, X = self.stage_.features(h, self.config.n_candidates)
        valid = items >= 0
        scores = np.full(items.shape, -np.inf)
        if not valid.any():
            return items, X, scores
        if self.ranker_text_:
            pred = self._booster().predict(X[valid][:, self.columns], num_threads=1)
            scores[valid] = np.asarray(pred, dtype=np.float64)
            scores = break_ties_by_position(scores)
        else:  # no ranker: the retriever's order
            scores[valid] = -np.broadcast_to(np.arange(items.shape[1]), items.shape)[valid]
        return items, X, scores

    def score_histories(self, h: Histories) -> tuple[np.ndarray, None]:
        """The ranker's score of each row's candidates; -inf for every other item."""
        items, _, scores = self.candidate_scores(h)
        out = np.full((len(h), len(self.items_)), -np.inf)
        rows, cols = np.nonzero(items >= 0)
        out[rows, items[rows, cols]] = scores[rows, cols]
        return out, None

    def ranking_source(self) -> str:
        return SOURCE_MODEL

    def predict_detailed(
        self, user_idx: np.ndarray, item_idx: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(mu for every pair, all True)``: a ranker, every rating is a fallback."""
        self._check_fitted()
        u = np.asarray(user_idx, dtype=np.int64).ravel()
        i = np.asarray(item_idx, dtype=np.int64).ravel()
        if u.shape != i.shape:
            raise ConfigError(f"users and items differ in length: {u.shape[0]} vs {i.shape[0]}")
        return self._clip(np.full(u.shape, float(self.mu_ or 0.0))), np.ones(u.shape, dtype=bool)

    def contributions(self, h: Histories) -> tuple[np.ndarray, np.ndarray]:
        """``(items (b, M), per-family contributions (b, M, families))`` to the ranker's score
        (LightGBM's SHAP values summed per family, :attr:`config.families` order); zeros
        without a ranker."""
        items, X, _ = self.candidate_scores(h)
        fams = self.config.families
        out = np.zeros((*items.shape, len(fams)))
        valid = items >= 0
        if not self.ranker_text_ or not valid.any():
            return items, out
        contrib = np.asarray(
            self._booster().predict(X[valid][:, self.columns], pred_contrib=True, num_threads=1)
        )[:, :-1]
        fam_cols = family_columns(self.config.feature_models)
        position = {c: j for j, c in enumerate(self.columns)}
        per = np.zeros((int(valid.sum()), len(fams)))
        for k, f in enumerate(fams):
            per[:, k] = contrib[:, [position[c] for c in fam_cols[f]]].sum(axis=1)
        out[valid] = per
        return items, out

    # ------------------------------------------------------------------ persistence
    def _state(self) -> dict[str, Any]:
        assert self.stage_ is not None
        subs = []
        for name, model in self._sub_models():
            subs.append(
                {
                    "name": name,
                    "class": type(model).__name__,
                    "config": model.get_config(),
                    "ranking": model.ranking.as_dict(),
                    "state": model._state(),
                }
            )
        return {
            **super()._state(),
            "sub_models": subs,
            "fit_info": self.fit_info_,
            "fit_note": self.fit_note_,
            "ref_time": self.stage_.ref_time,
            "llm_texts": self.llm_texts_,
        }

    def _sub_models(self) -> list[tuple[str, Any]]:
        assert self.stage_ is not None
        out = [(self.config.retriever, self.stage_.retriever)]
        out += [(n, m) for n, m in self.stage_.models.items() if m is not self.stage_.retriever]
        return out

    def _arrays(self) -> dict[str, np.ndarray]:
        assert self.stage_ is not None
        st = self.stage_
        arrays = {
            **super()._arrays(),
            "vectors": st.vectors,
            "popularity_counts": st.popularity,
            "item_mean": st.item_mean,
            "item_last": st.item_last,
            "item_first": st.item_first,
            "user_last": st.user_last,
            "ranker": np.frombuffer(self.ranker_text_.encode("utf-8"), dtype=np.uint8),
        }
        if st.profile_vectors is not None:
            arrays["profile_vectors"] = st.profile_vectors
        for k, (_, model) in enumerate(self._sub_models()):
            for key, value in model._arrays().items():
                if key not in _INTERACTIONS:
                    arrays[f"sub{k}__{key}"] = value
        return arrays

    def _restore(self, arrays: dict[str, np.ndarray], state: dict[str, Any]) -> None:
        self._restore_common(state)
        for key in _INTERACTIONS:
            setattr(self, key + "_", arrays[key])
        self._check_restored()
        subs = state["sub_models"]
        if not isinstance(subs, list) or not subs:
            raise ModelLoadError("the learned stage's manifest lists no sub-models")
        built: dict[str, Any] = {}
        for k, sub in enumerate(subs):
            cls = registry.by_class(sub["class"])
            if cls is None:
                raise ModelLoadError(f"unknown sub-model class {sub['class']!r}")
            prefix = f"sub{k}__"
            own = {key[len(prefix) :]: a for key, a in arrays.items() if key.startswith(prefix)}
            own.update({key: arrays[key] for key in _INTERACTIONS})
            model = cls(**sub["config"]) if sub["config"] else cls()
            model.users_, model.items_ = self.users_, self.items_
            model._restore(own, sub["state"])
            model.set_ranking(**sub["ranking"])
            built[sub["name"]] = model
        cfg = self.config
        missing = [n for n in (cfg.retriever, *cfg.feature_models) if n not in built]
        if missing:
            raise ModelLoadError(f"sub-model {missing[0]!r} missing from the saved stage")
        n_items = len(self.items_)
        for key in ("popularity_counts", "item_mean", "item_last", "item_first"):
            if arrays[key].shape != (n_items,):
                raise ModelLoadError(f"{key} has shape {arrays[key].shape}, expected ({n_items},)")
        if arrays["vectors"].ndim != 2 or arrays["vectors"].shape[0] != n_items:
            raise ModelLoadError(f"vectors have shape {arrays['vectors'].shape}")
        profile = arrays.get("profile_vectors")
        if "profile" in cfg.families and (
            profile is None or profile.ndim != 2 or profile.shape[0] != n_items
        ):
            raise ModelLoadError(
                "the saved stage uses the profile family but its profile_vectors are "
                + ("missing" if profile is None else f"of shape {profile.shape}")
            )
        self.stage_ = FeatureStage(
            built[cfg.retriever],
            {n: built[n] for n in cfg.feature_models},
            arrays["vectors"],
            arrays["popularity_counts"],
            arrays["item_mean"],
            arrays["item_last"],
            arrays["item_first"],
            arrays["user_last"],
            float(state["ref_time"]),
            profile_vectors=profile,
        )
        self.ranker_text_ = arrays["ranker"].tobytes().decode("utf-8")
        self.fit_info_ = dict(state.get("fit_info") or {})
        self.fit_note_ = state.get("fit_note")
        texts = state.get("llm_texts") or []
        if "llm" in cfg.families and len(texts) != n_items:
            raise ModelLoadError(
                f"the saved stage uses the llm family but holds {len(texts)} item texts for "
                f"{n_items} items"
            )
        self.llm_texts_ = [str(t) for t in texts]
        self._llm = None


#: what a family's reason says
_FAMILY_PHRASES = {
    "retriever": "people who liked it also liked this",
    "cf": "people who liked it also liked this",
    "text": "this is close to it in content",
    "popularity": "this is popular among recent users",
    "llm": "the language model judged this a match for it",
    "profile": "its description is close to this one's",
}


class LearnedExplainer:
    """One sentence per item citing the history item and the feature family that put the
    recommended item where it is (no language model; the ranker's own SHAP values).

    The family with the largest positive contribution to the item's score is named; the
    history item cited is the liked one (value >= the user's mean value) with the largest
    co-occurrence cosine to the item for the CF families, the largest text cosine for ``text``
    and ``llm`` (for ``popularity`` the item's training interactions are cited instead). Sentences go through
    :func:`~llmcf.rerank.explain.clean_explanation`.
    """

    def __init__(self, model: LearnedRanker, titles: Sequence[str]) -> None:
        self.model = model
        self.titles = titles

    def _title(self, item: int) -> str:
        t = str(self.titles[item]) if 0 <= item < len(self.titles) else ""
        return t or f"item {self.model.items_.ids[item]}"

    def explain_user(self, user_idx: int, items: np.ndarray) -> list[str | None]:
        """One reason per item of ``items`` for training user ``user_idx`` (-1: unknown)."""
        model = self.model
        h = training_histories(model, np.array([user_idx]))
        cands, contrib = model.contributions(h)
        pos = {int(c): j for j, c in enumerate(cands[0].tolist()) if c >= 0}
        fams = model.config.families
        row = h.values[0]
        scale = model.rating_scale_
        out: list[str | None] = []
        assert model.stage_ is not None
        for item in np.asarray(items, dtype=np.int64).ravel().tolist():
            if item not in pos or row.nnz == 0:
                out.append(self._sentence("{} is popular with other users.", item))
                continue
            c = contrib[0, pos[item]]
            fam = fams[int(np.argmax(c))] if c.max() > 0 else "cf"
            hist, co, text = model.stage_.pair_support(row, item)
            values = np.asarray(row.data, dtype=np.float64)
            if fam == "popularity":
                n = int(model.stage_.popularity[item])
                out.append(
                    self._sentence(
                        f"Because {{}} is popular right now ({n} interactions) and fits what "
                        "you rated well.",
                        item,
                    )
                )
                continue
            support = text if fam in ("text", "llm", "profile") else co
            liked = values >= values.mean() - 1e-9  # cite what the user liked (>= their mean)
            best = int(np.argmax(np.where(liked, support + 1e-9 * values, -np.inf)))
            did = f"rated {{}} {values[best]:g}" if scale is not None else "chose {}"
            out.append(
                self._sentence(f"Because you {did} and {_FAMILY_PHRASES[fam]}.", int(hist[best]))
            )
        return out

    def _sentence(self, template: str, *items: int) -> str | None:
        """``template`` cleaned to one sentence (:func:`~llmcf.rerank.explain.clean_explanation`)
        before the titles go into its ``{}`` slots, so a title's own full stop ("Dr.
        Strangelove") cannot end the sentence."""
        from llmcf.rerank.explain import clean_explanation

        cleaned = clean_explanation(template)
        if cleaned is None:
            return None
        return cleaned.format(*(f"*{self._title(i)}*" for i in items))

    def explain(self, history: np.ndarray, items: np.ndarray) -> list[str | None]:
        """The :class:`~llmcf.rerank.explain.Explainer` face; needs the user, so it says so."""
        raise ConfigError("LearnedExplainer explains per user: call explain_user(user, items)")
