"""Features of the learned second stage: one row per (user, candidate) over a retriever's top M.

:class:`FeatureStage` holds what the features are computed from (the fitted retriever and
feature models, the item text vectors, per-item popularity and timestamps), all fitted on
the same training data; :meth:`FeatureStage.features` turns a block of history rows
(:class:`~llmcf.ranking.path.Histories`) into

* ``items`` int64 (b, M): each user's candidates, the retriever's top M unseen items (of
  ``h.allowed`` when the ranking path got a candidate set) in its
  order (ties by lower index, as the ranking path), ``-1`` padded when it scores fewer;
* ``X`` float32 (b, M, F): the feature rows, NaN where a value is missing (LightGBM's
  missing value).

Feature families (:data:`FAMILIES`; the column names are :func:`feature_names`):

``retriever``
    the retriever's score, its z-score over the user's candidates and its rank (always on).
``cf``
    for every feature model (default item-knn, user-knn, ease): its score of the candidate
    (NaN: no score), the z-score over the user's candidates and ``log1p`` of the candidate's
    rank among all the user's unseen items under that model.
``text``
    cosine of the candidate's text embedding to the mean embedding of the user's history
    items and the largest cosine to any one history item.
``popularity``
    ``log1p`` training interactions of the item, its mean training value shrunk to the global
    mean (``(sum + 10 mu) / (count + 10)``), days from the item's last and first
    training interaction to the user's last event (NaN without timestamps; the training
    users' last event, the data's last one for users without training events) and
    ``log1p`` of the user's history length.
``profile``
    the two text cosines again, from the embeddings of the items' LLM-written profiles
    (``llmcf enrich``; the ``profiles`` folder of the stage), NaN without them. Off by
    default (docs/experiments.md "Learned second stage").
``llm``
    the language model's yes/no logit of the candidate and its z-score over the user's
    judged candidates, for the retriever's top 20 (:mod:`llmcf.rerank.llm_feature`; NaN
    elsewhere and when the stage has no language model). Off by default: it costs 0.5-1 s
    per user and did not help on validation (docs/experiments.md "Learned second stage").

Everything is vectorised over the block but the largest-cosine feature, which multiplies
one small (M x history) matrix per user.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from llmcf.errors import ConfigError
from llmcf.ranking.lists import top_n_rows
from llmcf.rerank.llm_feature import LLM_COLUMNS

if TYPE_CHECKING:
    from llmcf.data.dataset import Dataset
    from llmcf.ranking.path import Histories

__all__ = [
    "DEFAULT_FAMILIES",
    "FAMILIES",
    "FeatureStage",
    "family_columns",
    "feature_names",
    "item_text_vectors",
]

#: every feature family, in column order
FAMILIES = ("retriever", "cf", "text", "popularity", "llm", "profile")
#: the families the learned stage uses unless told otherwise, plus ``profile`` when it has
#: a profiles folder (chosen on validation, docs/experiments.md "Learned second stage";
#: ``llm`` is off: it did not help on validation)
DEFAULT_FAMILIES = ("retriever", "cf", "text", "popularity")
_TEXT_COLUMNS = ("text_mean_cos", "text_max_cos")
_PROFILE_COLUMNS = ("profile_mean_cos", "profile_max_cos")
_POP_COLUMNS = (
    "log_popularity",
    "item_mean_value",
    "days_since_item_last",
    "item_age_days",
    "log_history_len",
)
#: pseudo-count of the item mean's shrinkage to the global mean
_MEAN_SHRINK = 10.0
_DAY = 86400.0


def feature_names(models: Sequence[str]) -> list[str]:
    """The column names of every family, in order, for feature models ``models``."""
    names = ["retriever_score", "retriever_z", "retriever_rank"]
    for m in models:
        names += [f"{m}_score", f"{m}_z", f"{m}_log_rank"]
    return [
        *names,
        *_TEXT_COLUMNS,
        *_POP_COLUMNS,
        *LLM_COLUMNS,
        *_PROFILE_COLUMNS,
    ]


def family_columns(models: Sequence[str]) -> dict[str, list[int]]:
    """Column indices of each family (:func:`feature_names` order)."""
    n_cf = 3 * len(models)
    t0 = 3 + n_cf
    p0 = t0 + len(_TEXT_COLUMNS)
    l0 = p0 + len(_POP_COLUMNS)
    f0 = l0 + len(LLM_COLUMNS)
    return {
        "retriever": [0, 1, 2],
        "cf": list(range(3, t0)),
        "text": list(range(t0, p0)),
        "popularity": list(range(p0, l0)),
        "llm": list(range(l0, f0)),
        "profile": list(range(f0, f0 + len(_PROFILE_COLUMNS))),
    }


def item_text_vectors(
    dataset: Dataset, embedder: Any, item_text: str = "catalog", profiles: str | None = None
) -> np.ndarray:
    """float32 (n_items, dim) unit text embeddings of the items (on-disk embedding cache).

    The one place the learned stage reads item text, through
    :func:`llmcf.text.profiles.item_text_source` (``item_text``: ``catalog``, ``profile`` or
    ``both``; ``profiles``: the folder of ``llmcf enrich``); items without text get a zero
    vector (their cosine features are 0), a catalog without any text all zeros.
    """
    from llmcf.text.cache import embed_with_cache
    from llmcf.text.embedders import make_embedder
    from llmcf.text.profiles import item_text_source

    try:
        source = item_text_source(dataset, item_text, profiles)
    except ConfigError:
        if item_text != "catalog":
            raise
        return np.zeros((dataset.n_items, 1), dtype=np.float32)
    texts = source.texts
    emb = make_embedder(embedder) if isinstance(embedder, str) else embedder
    vectors = np.asarray(
        embed_with_cache(emb, texts, template_version=source.version), dtype=np.float32
    ).copy()
    vectors[np.array([not t for t in texts], dtype=bool)] = 0.0
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)


def _dense(scores: np.ndarray) -> np.ndarray:
    out = np.array(scores, dtype=np.float64, copy=True)
    out[np.isnan(out)] = -np.inf
    return out


def _zscores(vals: np.ndarray) -> np.ndarray:
    """Per-row z-scores of the finite entries (NaN elsewhere; 0 for a constant row)."""
    finite = np.isfinite(vals)
    cnt = np.maximum(finite.sum(axis=1, keepdims=True), 1)
    v = np.where(finite, vals, 0.0)
    mean = v.sum(axis=1, keepdims=True) / cnt
    var = (np.where(finite, vals - mean, 0.0) ** 2).sum(axis=1, keepdims=True) / cnt
    std = np.sqrt(var)
    z = np.divide(vals - mean, std, out=np.zeros_like(vals), where=std > 0)
    return np.where(finite, z, np.nan)


@dataclass
class FeatureStage:
    """The fitted inputs of the features (module docstring); all from one training set.

    ``retriever``: the fitted retriever; ``models``: name -> fitted feature model (the
    retriever may be one of them); ``vectors``: (n_items, dim) unit text vectors;
    ``popularity``: training interactions per item; ``item_mean``: the shrunk mean value per
    item; ``item_last``/``item_first``: float
    unix seconds of each item's last/first training interaction (NaN: none or no
    timestamps); ``user_last``: per training user; ``ref_time``: the data's last timestamp;
    ``llm``: the :class:`~llmcf.rerank.llm_feature.LLMFeature` of the ``llm`` family (None:
    its columns are NaN); ``profile_vectors``: unit embeddings of the items' profiles (the
    ``profile`` family; None: NaN).
    """

    retriever: Any
    models: dict[str, Any]
    vectors: np.ndarray
    popularity: np.ndarray
    item_mean: np.ndarray
    item_last: np.ndarray
    item_first: np.ndarray
    user_last: np.ndarray
    ref_time: float
    llm: Any = None
    profile_vectors: np.ndarray | None = None

    @classmethod
    def build(
        cls, retriever: Any, models: dict[str, Any], vectors: np.ndarray, dataset: Dataset
    ) -> FeatureStage:
        """A stage over fitted models and the item statistics of ``dataset`` (their training
        data)."""
        n_items, n_users = dataset.n_items, dataset.n_users
        pop = np.bincount(dataset.item_idx, minlength=n_items).astype(np.float64)
        sums = np.bincount(dataset.item_idx, weights=dataset.rating, minlength=n_items)
        mu = float(dataset.rating.mean()) if len(dataset) else 0.0
        mean = (sums + _MEAN_SHRINK * mu) / (pop + _MEAN_SHRINK)
        last = np.full(n_items, np.nan)
        first = np.full(n_items, np.nan)
        ulast = np.full(n_users, np.nan)
        ref = float("nan")
        if dataset.timestamp is not None and len(dataset):
            ts = dataset.timestamp.astype(np.float64)
            last_m = np.full(n_items, -np.inf)
            np.maximum.at(last_m, dataset.item_idx, ts)
            first_m = np.full(n_items, np.inf)
            np.minimum.at(first_m, dataset.item_idx, ts)
            u_m = np.full(n_users, -np.inf)
            np.maximum.at(u_m, dataset.user_idx, ts)
            last = np.where(np.isfinite(last_m), last_m, np.nan)
            first = np.where(np.isfinite(first_m), first_m, np.nan)
            ulast = np.where(np.isfinite(u_m), u_m, np.nan)
            ref = float(ts.max())
        return cls(retriever, dict(models), vectors, pop, mean, last, first, ulast, ref)

    @property
    def model_names(self) -> list[str]:
        return list(self.models)

    def candidates(self, h: Histories, m: int) -> tuple[np.ndarray, np.ndarray]:
        """``(items (b, m) int64 -1 padded, retriever scores (b, n_items) with seen -inf)``."""
        scores = self._masked(self.retriever, h)
        idx, _ = top_n_rows(scores, m)
        return idx.astype(np.int64), scores

    def _masked(self, model: Any, h: Histories) -> np.ndarray:
        """``model``'s scores of the rows, -inf for seen items and for items outside
        ``h.allowed`` (the candidate set of the ranking path, e.g. cold items only)."""
        scores = _dense(model.score_histories(h)[0])
        seen = h.seen
        rows = np.repeat(np.arange(len(h)), np.diff(seen.indptr))
        scores[rows, seen.indices] = -np.inf
        if h.allowed is not None:
            scores[:, ~h.allowed] = -np.inf
        return scores

    def features(self, h: Histories, m: int) -> tuple[np.ndarray, np.ndarray]:
        """``(items (b, m), X (b, m, F))`` of the module docstring."""
        items, retr = self.candidates(h, m)
        b = len(h)
        valid = items >= 0
        safe = np.where(valid, items, 0)
        rows = np.arange(b)[:, None]
        cols: list[np.ndarray] = []
        # retriever
        rs = np.where(valid, retr[rows, safe], -np.inf)
        cols += [np.where(np.isfinite(rs), rs, np.nan), _zscores(rs)]
        cols.append(np.broadcast_to(np.arange(m, dtype=np.float64), (b, m)).copy())
        # cf
        for model in self.models.values():
            s = retr if model is self.retriever else self._masked(model, h)
            vals = np.where(valid, s[rows, safe], -np.inf)
            order = np.argsort(-s, axis=1, kind="stable")
            rank_of = np.empty_like(order)
            np.put_along_axis(rank_of, order, np.arange(s.shape[1])[None, :], axis=1)
            rk = np.log1p(rank_of[rows, safe].astype(np.float64))
            finite = np.isfinite(vals)
            cols += [np.where(finite, vals, np.nan), _zscores(vals), np.where(finite, rk, np.nan)]
        # text
        cols += list(self._text(h, safe, self.vectors))
        # popularity and recency
        cols.append(np.log1p(self.popularity[safe]))
        cols.append(self.item_mean[safe])
        ref = np.full(b, self.ref_time)
        known = (h.users >= 0) & (h.users < len(self.user_last))
        if known.any():
            ul = self.user_last[h.users[known]]
            ref[known] = np.where(np.isfinite(ul), ul, self.ref_time)
        cols.append((ref[:, None] - self.item_last[safe]) / _DAY)
        cols.append((ref[:, None] - self.item_first[safe]) / _DAY)
        hist_len = np.log1p(np.diff(h.values.indptr).astype(np.float64))
        cols.append(np.broadcast_to(hist_len[:, None], (b, m)).copy())
        # the language model's judgement
        if self.llm is None:
            cols += [np.full((b, m), np.nan)] * len(LLM_COLUMNS)
        else:
            judged = self.llm.scores(h, np.where(valid, items, -1))
            cols += [judged, _zscores(judged)]
        # the profiles' text
        if self.profile_vectors is None:
            cols += [np.full((b, m), np.nan)] * len(_PROFILE_COLUMNS)
        else:
            cols += list(self._text(h, safe, self.profile_vectors))
        X = np.stack(cols, axis=2).astype(np.float32)
        X[~valid] = np.nan
        return items, X

    def _text(self, h: Histories, safe: np.ndarray, V: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Cosine (unit rows ``V``) of each candidate to the user's mean history vector, and
        the largest cosine to one history item (one small product per user)."""
        b, m = safe.shape
        vals = h.values
        mean_cos = np.zeros((b, m))
        max_cos = np.zeros((b, m))
        for t in range(b):
            hist = vals.indices[vals.indptr[t] : vals.indptr[t + 1]]
            if not len(hist):
                continue
            C = V[safe[t]]
            sims = C @ V[hist].T  # (m, history)
            max_cos[t] = sims.max(axis=1)
            p = V[hist].sum(axis=0)
            norm = float(np.linalg.norm(p))
            if norm > 0:
                mean_cos[t] = C @ (p / norm)
        return mean_cos, max_cos

    def pair_support(self, user_row: Any, item: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For explanations: per history item of one user (CSR row ``user_row``), the
        co-occurrence cosine to ``item`` in the training matrix and the text cosine;
        ``(history items, co-occurrence cosines, text cosines)``."""
        hist = np.asarray(user_row.indices, dtype=np.int64)
        R = self.retriever.train_matrix()
        col = R[:, [item]]
        H = R[:, hist]
        dots = np.asarray((H.T @ col).todense()).ravel()
        norms_h = np.sqrt(np.asarray(H.multiply(H).sum(axis=0)).ravel())
        norm_c = float(np.sqrt(col.multiply(col).sum()))
        with np.errstate(divide="ignore", invalid="ignore"):
            co = dots / (norms_h * norm_c)
        co[~np.isfinite(co)] = 0.0
        text = self.vectors[hist] @ self.vectors[item]
        return hist, co, np.asarray(text, dtype=np.float64)
