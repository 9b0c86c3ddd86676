"""Baseline estimates b_ui = mu + b_u + b_i, and the models that predict with them alone.

ALS (the default, as in scikit-surprise, Koren 2010 section 2.1), ``n_epochs`` alternations of::

    b_i = sum_{u in U_i} (r_ui - mu - b_u) / (reg_i + |U_i|)      for every item
    b_u = sum_{i in I_u} (r_ui - mu - b_i) / (reg_u + |I_u|)      for every user

SGD, ``n_epochs`` passes over the ratings (user by user, each user's ratings in input order)::

    e = r_ui - (mu + b_u + b_i);  b_u += lr (e - reg b_u);  b_i += lr (e - reg b_i)

Users and items without training ratings keep a bias of 0.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from llmcf.cf import _kernels
from llmcf.cf.topn import TopNMixin
from llmcf.data.dataset import Dataset
from llmcf.errors import ConfigError, NotFittedError


@dataclass(frozen=True)
class BaselineConfig:
    """Hyperparameters of the baseline estimates (defaults are scikit-surprise's)."""

    method: Literal["als", "sgd"] = "als"
    n_epochs: int | None = None  # als: 10, sgd: 20
    reg_u: float = 15.0
    reg_i: float = 10.0
    reg: float = 0.02
    learning_rate: float = 0.005

    def __post_init__(self) -> None:
        if self.method not in ("als", "sgd"):
            raise ConfigError(f"baseline method must be 'als' or 'sgd', got {self.method!r}")
        if self.n_epochs is not None and self.n_epochs < 0:
            raise ConfigError(f"n_epochs must be >= 0, got {self.n_epochs}")

    @property
    def epochs(self) -> int:
        if self.n_epochs is not None:
            return self.n_epochs
        return 10 if self.method == "als" else 20


def fit_baselines(
    user_idx: np.ndarray,
    item_idx: np.ndarray,
    rating: np.ndarray,
    n_users: int,
    n_items: int,
    config: BaselineConfig | None = None,
) -> tuple[float, np.ndarray, np.ndarray]:
    """Return ``(mu, b_u, b_i)`` (float64 arrays of length n_users / n_items)."""
    cfg = config or BaselineConfig()
    mu = float(np.mean(rating)) if len(rating) else 0.0
    bu = np.zeros(n_users)
    bi = np.zeros(n_items)
    if cfg.method == "als":
        n_u = np.bincount(user_idx, minlength=n_users).astype(np.float64)
        n_i = np.bincount(item_idx, minlength=n_items).astype(np.float64)
        _kernels.als_epochs(
            np.ascontiguousarray(user_idx, dtype=np.int64),
            np.ascontiguousarray(item_idx, dtype=np.int64),
            np.ascontiguousarray(rating, dtype=np.float64),
            mu,
            bu,
            bi,
            cfg.reg_i + n_i,
            cfg.reg_u + n_u,
            cfg.epochs,
        )
    else:
        # SGD is sequential by nature; visit users in index order, each user's ratings in input order
        order = np.argsort(user_idx, kind="stable")
        _kernels.sgd_epochs(
            np.ascontiguousarray(user_idx[order], dtype=np.int64),
            np.ascontiguousarray(item_idx[order], dtype=np.int64),
            np.ascontiguousarray(rating[order], dtype=np.float64),
            mu,
            bu,
            bi,
            cfg.epochs,
            cfg.reg,
            cfg.learning_rate,
        )
    return mu, bu, bi


class _RatingModel(TopNMixin):
    """Shared plumbing of rating predictors: vocabularies, clipping, fallbacks, persistence."""

    name = "model"
    mu_: float | None = None
    users_: Any
    items_: Any
    rating_scale_: tuple[float, float] | None = None

    def __init__(self) -> None:
        self.fit_seconds_: float | None = None

    def _check_fitted(self) -> None:
        if getattr(self, "mu_", None) is None:
            raise NotFittedError(f"{type(self).__name__} is not fitted; call fit(dataset) first")

    def _clip(self, est: np.ndarray) -> np.ndarray:
        scale = getattr(self, "rating_scale_", None)
        if scale is None:
            return est
        return np.clip(est, scale[0], scale[1])

    def _keep_interactions(self, dataset: Dataset) -> None:
        self.user_idx_ = dataset.user_idx
        self.item_idx_ = dataset.item_idx
        self.rating_ = dataset.rating

    def predict_ids(self, user_ids: object, item_ids: object) -> np.ndarray:
        """Predictions for external ids; unknown ids get the model's fallback."""
        self._check_fitted()
        users = self.users_.lookup(user_ids, missing="negative")  # type: ignore[attr-defined]
        items = self.items_.lookup(item_ids, missing="negative")  # type: ignore[attr-defined]
        return self.predict(users, items)

    def predict(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        return self.predict_detailed(user_idx, item_idx)[0]

    def predict_detailed(
        self, user_idx: np.ndarray, item_idx: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - overridden
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        cfg = getattr(self, "config", None)
        return asdict(cfg) if cfg is not None else {}

    def save(self, path: str) -> None:
        """Write the model to folder ``path`` (manifest.json + arrays.npz, no pickle)."""
        from llmcf.persist import save_model

        save_model(self, path)

    @classmethod
    def load(cls, path: str) -> Any:
        """Load a model saved with :meth:`save`; checks that it is of this class."""
        from llmcf.errors import ModelLoadError
        from llmcf.persist import load_model

        model = load_model(path)
        if not isinstance(model, cls):
            raise ModelLoadError(f"{path}: holds a {type(model).__name__}, not a {cls.__name__}")
        return model

    def _state(self) -> dict[str, Any]:
        return {"mu": self.mu_, "rating_scale": getattr(self, "rating_scale_", None)}

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"user_idx": self.user_idx_, "item_idx": self.item_idx_, "rating": self.rating_}

    def _restore(self, arrays: dict[str, np.ndarray], state: dict[str, Any]) -> None:
        self.mu_ = float(state["mu"])
        scale = state.get("rating_scale")
        self.rating_scale_ = None if scale is None else (float(scale[0]), float(scale[1]))
        for name, value in arrays.items():
            setattr(self, name + "_", value)


class BaselineOnly(_RatingModel):
    """Predicts ``mu + b_u + b_i`` (scikit-surprise's BaselineOnly), clipped to the rating scale."""

    name = "baseline"

    def __init__(self, config: BaselineConfig | None = None, **kwargs: Any) -> None:
        super().__init__()
        self.config = config or BaselineConfig(**kwargs)
        self.mu_ = None

    def fit(self, dataset: Dataset) -> BaselineOnly:
        t0 = time.perf_counter()
        self.users_ = dataset.users
        self.items_ = dataset.items
        self.rating_scale_ = dataset.rating_scale
        self.mu_, self.bu_, self.bi_ = fit_baselines(
            dataset.user_idx,
            dataset.item_idx,
            dataset.rating,
            dataset.n_users,
            dataset.n_items,
            self.config,
        )
        self.user_known_ = dataset.user_counts() > 0
        self.item_known_ = dataset.item_counts() > 0
        self._keep_interactions(dataset)
        self.fit_seconds_ = time.perf_counter() - t0
        return self

    def _score_block(self, users: np.ndarray) -> np.ndarray:
        # b_j ranks items for every user; shift so that every known item scores > 0
        scores = np.where(self.item_known_, self.bi_ - self.bi_.min() + 1.0, 0.0)
        return np.tile(scores, (len(users), 1))

    def _arrays(self) -> dict[str, np.ndarray]:
        return {
            **super()._arrays(),
            "bu": self.bu_,
            "bi": self.bi_,
            "user_known": self.user_known_,
            "item_known": self.item_known_,
        }

    def predict_detailed(
        self, user_idx: np.ndarray, item_idx: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(predictions, was_fallback)``; a pair with an unknown user or item is a fallback."""
        self._check_fitted()
        u = np.asarray(user_idx, dtype=np.int64)
        i = np.asarray(item_idx, dtype=np.int64)
        ku = (u >= 0) & (u < len(self.bu_))
        ki = (i >= 0) & (i < len(self.bi_))
        ku[ku] = self.user_known_[u[ku]]
        ki[ki] = self.item_known_[i[ki]]
        est = np.full(u.shape, self.mu_, dtype=np.float64)
        est[ku] += self.bu_[u[ku]]
        est[ki] += self.bi_[i[ki]]
        return self._clip(est), ~(ku & ki)


class GlobalMean(_RatingModel):
    """Predicts the mean training rating for every pair (the floor every model must beat)."""

    name = "global-mean"

    def __init__(self) -> None:
        super().__init__()
        self.config = None
        self.mu_ = None

    def fit(self, dataset: Dataset) -> GlobalMean:
        self.users_ = dataset.users
        self.items_ = dataset.items
        self.rating_scale_ = dataset.rating_scale
        self.mu_ = dataset.global_mean()
        self._keep_interactions(dataset)
        return self

    def _score_block(self, users: np.ndarray) -> np.ndarray:
        return np.tile(self._popularity(), (len(users), 1))

    def predict_detailed(
        self, user_idx: np.ndarray, item_idx: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(predictions, was_fallback)``; pairs with an unknown user or item are flagged."""
        self._check_fitted()
        u = np.asarray(user_idx, dtype=np.int64).ravel()
        i = np.asarray(item_idx, dtype=np.int64).ravel()
        known = (u >= 0) & (u < len(self.users_)) & (i >= 0) & (i < len(self.items_))
        return np.full(len(u), self.mu_, dtype=np.float64), ~known
