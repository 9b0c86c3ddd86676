"""The model base class: configuration in, learned state out, one ranking path.

Every llmcf model derives from :class:`Model`. Hyperparameters live in ``config`` (set by
``__init__``); learned arrays end in ``_`` and are set only by ``fit`` (or by loading a saved
model). Derived structures (the training matrix, W, ranking neighbours, ...) are kept in one
cache that ``fit``, loading and :meth:`Model.set_ranking` clear, so a refitted model can
never serve from its previous state.

A model supplies its scorer, ``score_histories`` (see :mod:`llmcf.ranking.path`); top-N
lists (``recommend``, ``recommend_many``), evaluation, the CLI, the service and the batch
backends all go through :func:`llmcf.ranking.path.rank` with it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from llmcf.errors import ConfigError, NotFittedError
from llmcf.ranking.config import RankingConfig, cosine_neighbors, weigh_rows
from llmcf.ranking.events import DATASET_EVENT_WEIGHTS, EventWeights
from llmcf.ranking.lists import (
    REASON_NO_SCORES,
    REASON_UNKNOWN_USER,
    SOURCE_MODEL,
    ItemList,
    Recommendations,
    top_n_rows,
)
from llmcf.ranking.path import Histories, rank, score_matrix

if TYPE_CHECKING:
    import scipy.sparse as sp

    from llmcf.data.dataset import Dataset

T = TypeVar("T")


class Model:
    """Shared plumbing: vocabularies, clipping, fallbacks, persistence, top-N."""

    name = "model"
    #: ``RankingConfig(scoring="auto")`` resolves to this
    auto_scoring = "model"
    mu_: float | None = None
    users_: Any
    items_: Any
    rating_scale_: tuple[float, float] | None = None
    user_idx_: np.ndarray
    item_idx_: np.ndarray
    rating_: np.ndarray

    def __init__(self) -> None:
        self.fit_seconds_: float | None = None
        self.ranking_config = RankingConfig()
        self._derived: dict[str, Any] = {}

    # ------------------------------------------------------------------ fit plumbing
    def _begin_fit(self, dataset: Dataset) -> None:
        """Reset every learned and derived state and keep the training interactions."""
        self._derived = {}
        self.__dict__.pop("ranking_", None)  # a ranking config chosen by the last fit's tune
        self.users_ = dataset.users
        self.items_ = dataset.items
        self.rating_scale_ = dataset.rating_scale
        self.user_idx_ = dataset.user_idx
        self.item_idx_ = dataset.item_idx
        self.rating_ = dataset.rating
        info: dict[str, Any] = dataset.info
        weights = info.get("event_weights")
        self.event_weights_ = dict(weights) if weights else None
        self.events_cutoff_ = int(info.get("max_seq", 0) or 0)

    def _check_fitted(self) -> None:
        if getattr(self, "mu_", None) is None:
            raise NotFittedError(f"{type(self).__name__} is not fitted; call fit(dataset) first")

    def _clip(self, est: np.ndarray) -> np.ndarray:
        scale = getattr(self, "rating_scale_", None)
        if scale is None:
            return est
        return np.clip(est, scale[0], scale[1])

    def _cache(self, key: str, build: Callable[[], T]) -> T:
        """A derived structure, built once per fit (cleared by fit, load and set_ranking)."""
        derived = self.__dict__.setdefault("_derived", {})
        if key not in derived:
            derived[key] = build()
        return derived[key]  # type: ignore[no-any-return]

    # ------------------------------------------------------------------ predict
    def predict_ids(self, user_ids: object, item_ids: object) -> np.ndarray:
        """Predictions for external ids; unknown ids get the model's fallback."""
        self._check_fitted()
        users = self.users_.lookup(user_ids, missing="negative")
        items = self.items_.lookup(item_ids, missing="negative")
        return self.predict(users, items)

    def predict(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        return self.predict_detailed(user_idx, item_idx)[0]

    def predict_detailed(
        self, user_idx: np.ndarray, item_idx: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - overridden
        raise NotImplementedError

    # ------------------------------------------------------------------ persistence
    def get_config(self) -> dict[str, Any]:
        from dataclasses import asdict

        cfg = getattr(self, "config", None)
        return asdict(cfg) if cfg is not None else {}

    def save(self, path: str) -> None:
        """Write the model to folder ``path`` (manifest.json + arrays, no pickle, atomic)."""
        from llmcf.persist import save_model

        save_model(self, path)

    @classmethod
    def load(cls, path: str) -> Any:
        """Load a model saved with :meth:`save`; checks that it is of this class."""
        from llmcf.errors import ModelLoadError
        from llmcf.persist import read_model

        model = read_model(path)
        if not isinstance(model, cls):
            raise ModelLoadError(f"{path}: holds a {type(model).__name__}, not a {cls.__name__}")
        return model

    def _state(self) -> dict[str, Any]:
        return {
            "mu": self.mu_,
            "rating_scale": getattr(self, "rating_scale_", None),
            "event_weights": getattr(self, "event_weights_", None),
            "events_cutoff": int(getattr(self, "events_cutoff_", 0)),
        }

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"user_idx": self.user_idx_, "item_idx": self.item_idx_, "rating": self.rating_}

    def _restore_common(self, state: dict[str, Any]) -> None:
        self._derived = {}
        self.mu_ = float(state["mu"])
        scale = state.get("rating_scale")
        self.rating_scale_ = None if scale is None else (float(scale[0]), float(scale[1]))
        weights = state.get("event_weights")
        self.event_weights_ = dict(weights) if weights else None
        self.events_cutoff_ = int(state.get("events_cutoff", 0) or 0)

    def _restore(self, arrays: dict[str, np.ndarray], state: dict[str, Any]) -> None:
        self._restore_common(state)
        for name, value in arrays.items():
            setattr(self, name + "_", value)

    def _check_restored(self) -> None:
        """Raise ValueError when restored arrays do not fit together (checked on load)."""
        n = len(self.rating_)
        if len(self.user_idx_) != n or len(self.item_idx_) != n:
            raise ValueError("interaction arrays differ in length")
        for name, idx, size in (
            ("user_idx", self.user_idx_, len(self.users_)),
            ("item_idx", self.item_idx_, len(self.items_)),
        ):
            if n and (idx.min() < 0 or idx.max() >= size):
                raise ValueError(f"{name} out of range 0..{size - 1}")

    # ------------------------------------------------------------------ ranking inputs
    @property
    def ranking(self) -> RankingConfig:
        """The top-N scoring configuration (:class:`~llmcf.ranking.config.RankingConfig`): the
        one ``tune`` chose in the last fit (``ranking_``), else the one set with
        :meth:`set_ranking`, else the defaults."""
        cfg = self.__dict__.get("ranking_") or self.__dict__.get("ranking_config")
        return cfg if cfg is not None else RankingConfig()

    def set_ranking(self, config: RankingConfig | None = None, **options: Any) -> Any:
        """Set how top-N lists are scored (saved with the model); returns ``self``."""
        if config is not None and options:
            raise ConfigError("pass either a RankingConfig or keyword options, not both")
        self.ranking_config = config or RankingConfig.from_dict(options)
        self.__dict__.pop("ranking_", None)  # what the user sets wins over what tune chose
        self._derived = {}
        return self

    def chosen_settings(self) -> dict[str, Any]:
        """The tunables this fit chose on validation carves of its training data (``tune``
        and the settings a model always chooses itself, e.g. a T-ranking's text weight);
        reported by ``llmcf evaluate`` beside each fold's row. Empty when nothing was chosen."""
        return {}

    def ranking_scoring(self) -> str:
        """The scoring actually used: ``"implicit"`` or ``"model"``."""
        scoring = self.ranking.scoring
        if scoring == "auto":
            return self.auto_scoring
        if scoring == "implicit" and not hasattr(self, "user_based"):
            return "model"
        return scoring

    def ranking_source(self) -> str:
        """The source named for the items this model scores."""
        return SOURCE_MODEL

    def event_weights(self) -> EventWeights:
        """The event weights of fold-in (:mod:`llmcf.ranking.events`)."""
        weights = getattr(self, "event_weights_", None)
        return EventWeights.from_dict(weights) if weights else DATASET_EVENT_WEIGHTS

    def train_matrix(self) -> sp.csr_matrix:
        """R: CSR (n_users, n_items) of the training values summed per pair, sorted indices."""

        def build() -> sp.csr_matrix:
            import scipy.sparse as sp

            R = sp.csr_matrix(
                (self.rating_, (self.user_idx_, self.item_idx_)),
                shape=(len(self.users_), len(self.items_)),
            )
            R.sum_duplicates()
            R.sort_indices()
            return R

        return self._cache("train", build)

    def popularity(self) -> np.ndarray:
        """Number of training interactions per item, float64 (n_items,)."""
        return self._cache(
            "popularity",
            lambda: np.bincount(self.item_idx_, minlength=len(self.items_)).astype(np.float64),
        )

    def weight_matrix(self) -> sp.csr_matrix:
        """W: the summed training values with the ranking weighting applied."""
        explicit = self.rating_scale_ is not None
        return self._cache(
            "weights",
            lambda: weigh_rows(self.train_matrix(), self.ranking.weighting, explicit=explicit),
        )

    def ranking_neighbors(self) -> sp.csr_matrix:
        """S_k of the implicit ranking similarity: items x items (item-based) or users x users."""
        cfg = self.ranking
        user_based = bool(getattr(self, "user_based", False))

        def build() -> sp.csr_matrix:
            W = self.weight_matrix()
            rows = W if user_based else W.T.tocsr()
            k = cfg.user_neighbors if user_based else cfg.n_neighbors
            return cosine_neighbors(rows, k, alpha=cfg.alpha, shrinkage=cfg.shrinkage)

        return self._cache("ranking_neighbors", build)

    # ------------------------------------------------------------------ scoring
    def score_histories(self, h: Histories) -> tuple[np.ndarray, np.ndarray | None]:
        """(b, n_items) scores of the history rows (-inf: no score) and, for text models, a
        bool mask of the items scored through text alone (else None)."""
        raise NotImplementedError  # pragma: no cover - every registered model overrides it

    # ------------------------------------------------------------------ top-N
    def score_all(self, user_idx: np.ndarray) -> np.ndarray:
        """(len(user_idx), n_items) ranking scores of the training rows before exclusions;
        -inf where the model has no score; users without any score get the popularity."""
        return score_matrix(self, np.asarray(user_idx, dtype=np.int64).ravel())

    def recommend_many(
        self,
        user_idx: np.ndarray,
        n: int = 10,
        *,
        exclude_seen: bool = True,
        candidates: np.ndarray | None = None,
        block_size: int | None = None,
    ) -> Recommendations:
        """Top-``n`` items for each user in ``user_idx`` (-1 = unknown user), through the one
        ranking path (:func:`llmcf.ranking.path.rank`)."""
        return rank(
            self,
            n,
            users=np.asarray(user_idx, dtype=np.int64).ravel(),
            exclude_seen=exclude_seen,
            candidates=candidates,
            block_size=block_size,
        )

    def recommend(self, user_idx: int, n: int = 10, *, exclude_seen: bool = True) -> ItemList:
        """Top-``n`` for one user (a batch of one); -1 means an unknown user."""
        recs = self.recommend_many(np.array([user_idx]), n, exclude_seen=exclude_seen)
        return recs.row(0, self.items_.ids)

    def similar_items(self, item_idx: int, n: int = 10) -> ItemList:
        """The ``n`` items most similar to ``item_idx`` (item-item similarity of the model)."""
        self._check_fitted()
        n_items = len(self.items_)
        if not 0 <= item_idx < n_items:
            raise ConfigError(f"item index {item_idx} out of range 0..{n_items - 1}")
        idx, sims = self._item_neighbors(item_idx, n)
        return ItemList(idx, self.items_.ids[idx], sims, sources=["neighbours"] * len(idx))

    def _item_neighbors(self, item_idx: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Default: cosine between item columns of the training matrix."""
        R = self._cache("train_csc", lambda: self.train_matrix().tocsc())
        col = R[:, item_idx]
        dots = np.asarray((R.T @ col).todense()).ravel()
        norms = np.sqrt(np.asarray(R.multiply(R).sum(axis=0)).ravel())
        with np.errstate(divide="ignore", invalid="ignore"):
            sims = dots / (norms * norms[item_idx])
        sims[~np.isfinite(sims)] = 0.0
        sims[item_idx] = -np.inf
        sims[sims <= 0] = -np.inf
        idx, vals = top_n_rows(sims[None, :], n)
        keep = idx[0] >= 0
        return idx[0][keep], vals[0][keep]


__all__ = ["REASON_NO_SCORES", "REASON_UNKNOWN_USER", "Model"]
