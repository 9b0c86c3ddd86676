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
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from llmcf.base import Model
from llmcf.cf import _kernels
from llmcf.data.dataset import Dataset
from llmcf.errors import ConfigError
from llmcf.ranking.lists import SOURCE_POPULAR
from llmcf.ranking.path import Histories
from llmcf.registry import register


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
        for name in ("reg_u", "reg_i", "reg", "learning_rate"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value >= 0):
                raise ConfigError(f"{name} must be a finite number >= 0, got {value}")

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


@register("baseline")
class BaselineOnly(Model):
    """Predicts ``mu + b_u + b_i`` (scikit-surprise's BaselineOnly), clipped to the rating scale.

    Top-N: ``score(u, j) = b_j`` for every item with training interactions (the order of
    mu + b_u + b_j), the same for every user with a history.
    """

    def __init__(self, config: BaselineConfig | None = None, **kwargs: Any) -> None:
        super().__init__()
        self.config = config or BaselineConfig(**kwargs)
        self.mu_ = None

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> BaselineOnly:
        """Build from command-line options; those that are not baseline options are ignored."""
        keys = {
            "baseline_method": "method",
            "baseline_epochs": "n_epochs",
            "reg_u": "reg_u",
            "reg_i": "reg_i",
        }
        return cls(**{keys[k]: v for k, v in options.items() if k in keys})

    def fit(self, dataset: Dataset) -> BaselineOnly:
        t0 = time.perf_counter()
        self._begin_fit(dataset)
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
        self.fit_seconds_ = time.perf_counter() - t0
        return self

    def score_histories(self, h: Histories) -> tuple[np.ndarray, None]:
        scores = np.where(self.item_known_, self.bi_, -np.inf)
        out = np.tile(scores, (len(h), 1))
        out[~h.has_history()] = -np.inf
        return out, None

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


@register("global-mean")
class GlobalMean(Model):
    """Predicts the mean training rating for every pair (the floor every model must beat).

    Top-N: the most popular items (number of training interactions), source ``popular``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.config = None
        self.mu_ = None

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> GlobalMean:
        """GlobalMean has no options; every option is ignored."""
        return cls()

    def fit(self, dataset: Dataset) -> GlobalMean:
        self._begin_fit(dataset)
        self.mu_ = dataset.global_mean()
        return self

    def ranking_source(self) -> str:
        return SOURCE_POPULAR

    def score_histories(self, h: Histories) -> tuple[np.ndarray, None]:
        pop = self.popularity()
        # an item without training interactions has no popularity to rank by: it is left to
        # the padding, whose tie order does not follow the ids
        out = np.tile(np.where(pop > 0, pop, -np.inf), (len(h), 1))
        out[~h.has_history()] = -np.inf
        return out, None

    def predict_detailed(
        self, user_idx: np.ndarray, item_idx: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(predictions, was_fallback)``; pairs with an unknown user or item are flagged."""
        self._check_fitted()
        u = np.asarray(user_idx, dtype=np.int64).ravel()
        i = np.asarray(item_idx, dtype=np.int64).ravel()
        known = (u >= 0) & (u < len(self.users_)) & (i >= 0) & (i < len(self.items_))
        return np.full(len(u), self.mu_, dtype=np.float64), ~known
