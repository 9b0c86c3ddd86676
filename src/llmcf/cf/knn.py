"""User-based and item-based k-nearest-neighbour rating predictors.

For a pair (u, i), let x be the entity the neighbours are drawn from and y the other one
(user-based: x = u, y = i; item-based: x = i, y = u). The candidates are the x' that have a
rating r_x'y, with similarity sim(x, x') > 0; N^k is the k most similar of them (ties broken
by the order of the ratings in the training data, as a stable sort would). Prediction rules:

===========  ===========================================================================
basic        r = sum sim(x,x') r_x'y / sum sim(x,x')
mean         r = mu_x + sum sim(x,x') (r_x'y - mu_x') / sum sim(x,x')
zscore       r = mu_x + sigma_x sum sim(x,x') (r_x'y - mu_x') / sigma_x' / sum sim(x,x')
baseline     r = b_ui + sum sim(x,x') (r_x'y - b_x'y) / sum sim(x,x'),  b_ui = mu + b_u + b_i
===========  ===========================================================================

(sums over x' in N^k; mu_x, sigma_x: mean and population standard deviation of x's ratings,
sigma_x = overall sigma when 0). When fewer than ``min_k`` neighbours are usable, the pair is a
*fallback*: ``basic`` predicts the global mean, ``mean``/``zscore`` predict mu_x, ``baseline``
predicts b_ui; pairs with a user or item unknown to the training data get b_ui for ``baseline``
and the global mean otherwise. Fallbacks are counted and flagged, never silently mixed in.
Predictions are clipped to the rating scale. These are exactly scikit-surprise's KNNBasic,
KNNWithMeans, KNNWithZScore and KNNBaseline.

Option ``correction_shrinkage`` (gamma, default 0: off, Surprise's behaviour) damps the neighbour
correction of a pair whose y has few training ratings (the user in item-based kNN, the item in
user-based kNN), where the k neighbours are all there are and their weighted mean is noisy::

    r = f + (r_knn - f) * n_y / (n_y + gamma)

with r_knn the rule's estimate above, f the pair's fallback value (b_ui for ``baseline``) and
n_y the number of training ratings of y. A user with 3 ratings keeps 3/11 of the correction at
gamma = 8, one with 100 keeps 93%.

Storage: when the neighbour side has at most ``dense_max`` entities, the full similarity matrix is
kept (exact peer semantics: the k neighbours are chosen among all raters). Above it only the
``n_neighbors`` most similar per entity are kept (memory O(nnz + n * n_neighbors)), and the k
neighbours of a prediction are chosen among those (the usual truncation on large catalogs).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

import numpy as np

from llmcf.base import Model
from llmcf.cf import _kernels
from llmcf.cf.baselines import BaselineConfig, fit_baselines
from llmcf.cf.similarity import (
    EntryContext,
    EntryLayout,
    compute_similarities,
    get_similarity,
)
from llmcf.data.dataset import Dataset
from llmcf.errors import ConfigError
from llmcf.options import config_from_dict
from llmcf.ranking.config import lists_to_csr, neighbour_rows, weigh_rows
from llmcf.ranking.lists import SOURCE_NEIGHBOURS, top_n_rows
from llmcf.ranking.path import Histories
from llmcf.registry import register

PREDICTION_RULES = ("basic", "mean", "zscore", "baseline")


@dataclass(frozen=True)
class KNNConfig:
    """Hyperparameters of user/item kNN (unknown keys are rejected by ``from_dict``)."""

    k: int = 40
    min_k: int = 1
    similarity: str = "pearson_baseline"
    prediction: Literal["basic", "mean", "zscore", "baseline"] = "baseline"
    shrinkage: float | None = None  # None: the similarity's default (100 for pearson_baseline)
    min_support: int = 1
    n_neighbors: int | None = None  # stored neighbours in sparse mode; default max(k, 50)
    dense_max: int = 8192
    baseline_method: Literal["als", "sgd"] = "als"
    baseline_epochs: int | None = None
    reg_u: float = 15.0
    reg_i: float = 10.0
    correction_shrinkage: float = 0.0  # gamma: damp the correction by n_y / (n_y + gamma)
    threads: int | None = None
    #: choose reg_u/reg_i and correction_shrinkage among FIT_GRID on a validation carve of
    #: the training data (``tune_fraction``, seed ``tune_seed``) by MAE at ``k``
    tune: bool = False
    tune_fraction: float = 0.1
    tune_seed: int = 0

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ConfigError(f"k must be >= 1, got {self.k}")
        if self.min_k < 0:
            raise ConfigError(f"min_k must be >= 0, got {self.min_k}")
        if self.prediction not in PREDICTION_RULES:
            raise ConfigError(
                f"unknown prediction rule {self.prediction!r}; valid: {', '.join(PREDICTION_RULES)}"
            )
        get_similarity(self.similarity)
        if self.shrinkage is not None and not (np.isfinite(self.shrinkage) and self.shrinkage >= 0):
            raise ConfigError(f"shrinkage must be a finite number >= 0, got {self.shrinkage}")
        for name in ("reg_u", "reg_i"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value >= 0):
                raise ConfigError(f"{name} must be a finite number >= 0, got {value}")
        if self.min_support < 0:
            raise ConfigError(f"min_support must be >= 0, got {self.min_support}")
        if not self.correction_shrinkage >= 0:
            raise ConfigError(f"correction_shrinkage must be >= 0, got {self.correction_shrinkage}")
        if not 0.0 < self.tune_fraction < 1.0:
            raise ConfigError(f"tune_fraction must be in (0, 1), got {self.tune_fraction}")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> KNNConfig:
        return config_from_dict(cls, values, "kNN")

    def baseline_config(self) -> BaselineConfig:
        return BaselineConfig(
            method=self.baseline_method,
            n_epochs=self.baseline_epochs,
            reg_u=self.reg_u,
            reg_i=self.reg_i,
        )


#: the non-text fit settings ``tune`` chooses among (the library default first; the same grid
#: for plain and text-fused kNN, so a T-vs-plain comparison differs only in text)
FIT_GRID: tuple[dict[str, float], ...] = tuple(
    {"reg_u": ru, "reg_i": ri, "correction_shrinkage": g}
    for ru, ri in ((15.0, 10.0), (5.0, 2.0))
    for g in (0.0, 8.0)
)
FIT_SETTINGS = ("reg_u", "reg_i", "correction_shrinkage")
#: the implicit ranking settings ``tune`` chooses among (by validation NDCG@10), the rest of
#: RankingConfig as configured; item-based: n_neighbors, user-based: user_neighbors
RANKING_GRID: tuple[dict[str, float], ...] = tuple(
    {"alpha": a, "shrinkage": s} for a in (0.1, 0.2, 0.3, 0.5) for s in (10.0, 50.0)
)
ITEM_NEIGHBOURS_GRID = (50, 100)
USER_NEIGHBOURS_GRID = (20, 40, 80)


class _KNN(Model):
    user_based: bool = True
    sim_: np.ndarray | None = None
    nbr_idx_: np.ndarray | None = None
    nbr_sim_: np.ndarray | None = None

    def __init__(self, config: KNNConfig | None = None, **kwargs: Any) -> None:
        super().__init__()
        if config is not None and kwargs:
            raise ConfigError("pass either a KNNConfig or keyword options, not both")
        self.config = config or KNNConfig.from_dict(kwargs)
        self.mu_ = None

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> _KNN:
        """Build from command-line options (validated by :class:`KNNConfig`)."""
        return cls(KNNConfig.from_dict(options))

    # ------------------------------------------------------------------ fit
    def fit(self, dataset: Dataset, *, progress: bool = False) -> _KNN:
        """Learn biases, means and neighbour similarities from ``dataset`` (choosing the fit
        settings on a validation carve first with ``tune``); returns ``self``."""
        t0 = time.perf_counter()
        self.fit_config_, self.fit_results_ = self._tune_fit_settings(dataset)
        self._fit_with(dataset, progress=progress)
        if self.config.tune:
            self._tune_ranking(dataset)
        self.fit_seconds_ = time.perf_counter() - t0
        return self

    def _ranking_probe_on(self, data: Dataset) -> _KNN:
        """A model that ranks ``data`` as this one would with the implicit ranking similarity:
        the interactions only (the implicit lists do not depend on the rating fit)."""
        probe = type(self)(self.config)
        probe._begin_fit(data)
        probe.mu_ = float(np.mean(data.rating)) if len(data) else 0.0
        return probe

    def _tune_ranking(self, dataset: Dataset) -> None:
        """With the implicit ranking scoring and the default ranking (one the user set, or a
        saved model's, is kept): choose alpha,
        shrinkage and the neighbour count (RANKING_GRID x ITEM_/USER_NEIGHBOURS_GRID) by
        validation NDCG@10 on a seeded carve of ``dataset`` (llmcf.eval.select) and keep it
        as ``ranking_`` (what :attr:`ranking` returns until the next fit or set_ranking)."""
        self.ranking_results_: list[dict[str, Any]] = []
        from llmcf.eval.select import select
        from llmcf.ranking.config import RankingConfig

        if self.ranking_scoring() != "implicit" or self.ranking != RankingConfig():
            return  # lists from the rating model, or a ranking the user set

        base = self.ranking
        key = "user_neighbors" if self.user_based else "n_neighbors"
        counts = USER_NEIGHBOURS_GRID if self.user_based else ITEM_NEIGHBOURS_GRID
        grid = [{**g, key: c} for c in counts for g in RANKING_GRID]

        def fit(data: Dataset, setting: dict[str, Any]) -> Any:
            probe = self._ranking_probe_on(data)
            probe.set_ranking(RankingConfig.from_dict({**base.as_dict(), **setting}))
            return probe

        cfg = self.config
        best, self.ranking_results_ = select(
            grid, fit, dataset, fraction=cfg.tune_fraction, seed=cfg.tune_seed
        )
        self.ranking_ = RankingConfig.from_dict({**base.as_dict(), **best})
        self._derived = {}

    def _fit_cfg(self) -> KNNConfig:
        """The fit settings in force: ``fit_config_`` (set by fit: ``config``, or what
        ``tune`` chose), else ``config``."""
        return getattr(self, "fit_config_", None) or self.config

    def chosen_settings(self) -> dict[str, Any]:
        if not self.config.tune:
            return {}
        fit = self._fit_cfg()
        return {**{k: getattr(fit, k) for k in FIT_SETTINGS}, **self._chosen_ranking()}

    def _chosen_ranking(self) -> dict[str, Any]:
        """The ranking settings ``tune`` chose (empty when it chose none)."""
        chosen = self.__dict__.get("ranking_")
        if chosen is None:
            return {}
        key = "user_neighbors" if self.user_based else "n_neighbors"
        return {f"ranking_{k}": getattr(chosen, k) for k in ("alpha", "shrinkage", key)}

    def _tune_fit_settings(self, dataset: Dataset) -> tuple[KNNConfig, list[dict[str, float]]]:
        """The fit config: ``config``, or with ``tune`` the FIT_GRID setting of lowest MAE at
        ``k`` on a seeded carve of ``dataset`` (the training data; see llmcf.eval.select)."""
        cfg = self.config
        if not cfg.tune:
            return cfg, []
        from llmcf.eval.metrics import mae
        from llmcf.eval.select import carve

        rest, held = carve(dataset, cfg.tune_fraction, cfg.tune_seed)
        table: list[dict[str, float]] = []
        fits: dict[tuple[float, float], _KNN] = {}
        for setting in FIT_GRID:
            probe_cfg = replace(
                cfg,
                tune=False,
                reg_u=setting["reg_u"],
                reg_i=setting["reg_i"],
                correction_shrinkage=setting["correction_shrinkage"],
            )
            key = (setting["reg_u"], setting["reg_i"])
            if key not in fits:
                fits[key] = type(self)(probe_cfg)._fit_with(rest)
            probe = fits[key]
            probe.fit_config_ = probe_cfg
            est, _, _ = probe.predict_k(held.user_idx, held.item_idx, [cfg.k])
            table.append({**setting, "mae": mae(held.rating, est[:, 0])})
        best = min(range(len(table)), key=lambda j: (table[j]["mae"], j))
        chosen = FIT_GRID[best]
        return (
            replace(
                cfg,
                tune=False,
                reg_u=chosen["reg_u"],
                reg_i=chosen["reg_i"],
                correction_shrinkage=chosen["correction_shrinkage"],
            ),
            table,
        )

    def _fit_with(self, dataset: Dataset, *, progress: bool = False) -> _KNN:
        """The fit proper, with the settings of ``fit_config_``."""
        cfg = self._fit_cfg()
        _kernels.set_threads(cfg.threads)
        self._begin_fit(dataset)
        n_u, n_i = dataset.n_users, dataset.n_items
        r = dataset.rating
        self.mu_ = float(np.mean(r)) if len(r) else 0.0
        self.user_known_ = np.bincount(dataset.user_idx, minlength=n_u) > 0
        self.item_known_ = np.bincount(dataset.item_idx, minlength=n_i) > 0
        sim = get_similarity(cfg.similarity)
        if sim.needs_baselines or cfg.prediction == "baseline":
            self.bu_, self.bi_ = self._fit_baselines(dataset)
        else:
            self.bu_, self.bi_ = np.zeros(n_u), np.zeros(n_i)
        x, y, n_x, n_y = self._switch_arrays(dataset.user_idx, dataset.item_idx, n_u, n_i)
        count_x = np.bincount(x, minlength=n_x)
        count_y = np.bincount(y, minlength=n_y)
        self.x_means_ = np.bincount(x, weights=r, minlength=n_x) / np.maximum(count_x, 1)
        y_means = np.bincount(y, weights=r, minlength=n_y) / np.maximum(count_y, 1)
        if cfg.prediction == "zscore":
            var = np.bincount(x, weights=(r - self.x_means_[x]) ** 2, minlength=n_x)
            sigma = np.sqrt(var / np.maximum(count_x, 1))
            self.x_sigmas_ = np.where(sigma == 0.0, float(np.std(r)) if len(r) else 1.0, sigma)
        else:
            self.x_sigmas_ = np.ones(n_x)
        bx, by = (self.bu_, self.bi_) if self.user_based else (self.bi_, self.bu_)
        layout = EntryLayout.build(x.astype(np.int64), y.astype(np.int64), n_x, n_y)
        ctx = EntryContext(x, y, r, self.mu_, bx, by, y_means)
        self.dense_ = n_x <= cfg.dense_max
        n_store = cfg.n_neighbors or max(cfg.k, 50)
        result = compute_similarities(
            layout,
            sim.transform(ctx),
            sim,
            min_support=cfg.min_support,
            shrinkage=cfg.shrinkage,
            dense=self.dense_,
            n_neighbors=n_store,
            progress=progress,
        )
        if isinstance(result, tuple):
            self.nbr_idx_, self.nbr_sim_ = result
            self.sim_ = None
        else:
            self.sim_ = result
            self.nbr_idx_, self.nbr_sim_ = None, None
        self._prepare(layout)
        return self

    def _fit_baselines(self, dataset: Dataset) -> tuple[np.ndarray, np.ndarray]:
        """``(b_u, b_i)`` of the training data (subclasses may supply other baselines)."""
        _, bu, bi = fit_baselines(
            dataset.user_idx,
            dataset.item_idx,
            dataset.rating,
            dataset.n_users,
            dataset.n_items,
            self._fit_cfg().baseline_config(),
        )
        return bu, bi

    def _switch_arrays(
        self, u: np.ndarray, i: np.ndarray, n_u: int, n_i: int
    ) -> tuple[np.ndarray, np.ndarray, int, int]:
        return (u, i, n_u, n_i) if self.user_based else (i, u, n_i, n_u)

    def _prepare(self, layout: EntryLayout | None = None) -> None:
        """Derived prediction structures (rebuilt after ``load``)."""
        x, y, n_x, n_y = self._switch_arrays(
            self.user_idx_, self.item_idx_, len(self.users_), len(self.items_)
        )
        if layout is None:
            layout = EntryLayout.build(x.astype(np.int64), y.astype(np.int64), n_x, n_y)
        self._layout = layout
        r = self.rating_
        bx, by = (self.bu_, self.bi_) if self.user_based else (self.bi_, self.bu_)
        rule = self.config.prediction
        if rule == "basic":
            dev = r
        elif rule == "mean":
            dev = r - self.x_means_[x]
        elif rule == "zscore":
            dev = (r - self.x_means_[x]) / self.x_sigmas_[x]
        else:
            dev = r - ((self.mu_ + bx[x]) + by[y])
        self._y_dev = np.ascontiguousarray(dev[layout.y_order], dtype=np.float64)

    # ------------------------------------------------------------------ predict
    def _known(self, user_idx: np.ndarray, item_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        u = np.asarray(user_idx, dtype=np.int64).ravel()
        i = np.asarray(item_idx, dtype=np.int64).ravel()
        if u.shape != i.shape:
            raise ConfigError(f"users and items differ in length: {u.shape[0]} vs {i.shape[0]}")
        ku = (u >= 0) & (u < len(self.user_known_))
        ki = (i >= 0) & (i < len(self.item_known_))
        ku[ku] = self.user_known_[u[ku]]
        ki[ki] = self.item_known_[i[ki]]
        return np.where(ku, u, -1), np.where(ki, i, -1)

    def predict_k(
        self, user_idx: np.ndarray, item_idx: np.ndarray, ks: list[int] | np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Predictions at several neighbour counts in one pass.

        Returns ``(est, was_fallback, actual_k)``, each of shape (n_pairs, len(ks)); est is
        clipped to the rating scale. One sort of the candidates serves every k.
        """
        self._check_fitted()
        ks_arr = np.asarray(ks, dtype=np.int64)
        if ks_arr.ndim != 1 or len(ks_arr) == 0 or (ks_arr < 1).any():
            raise ConfigError(f"neighbour counts must be positive integers, got {list(ks_arr)}")
        order = np.argsort(ks_arr, kind="stable")
        ks_sorted = ks_arr[order]
        if not self.dense_ and self.nbr_idx_ is not None and ks_sorted[-1] > self.nbr_idx_.shape[1]:
            raise ConfigError(
                f"k={ks_sorted[-1]} exceeds the {self.nbr_idx_.shape[1]} stored neighbours; "
                "refit with a larger n_neighbors"
            )
        u, i = self._known(user_idx, item_idx)
        px, py = (u, i) if self.user_based else (i, u)
        both = (u >= 0) & (i >= 0)
        n = len(u)
        bx_u = np.where(u >= 0, self.bu_[np.maximum(u, 0)], 0.0)
        bx_i = np.where(i >= 0, self.bi_[np.maximum(i, 0)], 0.0)
        baseline = (self.mu_ + bx_u) + bx_i
        rule = self.config.prediction
        xs = np.maximum(px, 0)
        if rule == "baseline":
            offset, scale = baseline, np.ones(n)
        elif rule == "basic":
            offset, scale = np.zeros(n), np.ones(n)
        else:
            offset = self.x_means_[xs]
            scale = self.x_sigmas_[xs] if rule == "zscore" else np.ones(n)
        px_k = np.where(both, px, -1)
        py_k = np.where(both, py, -1)
        est = np.empty((n, len(ks_sorted)))
        actual = np.empty((n, len(ks_sorted)), dtype=np.int64)
        dummy_dense = np.zeros((1, 1))
        if self.dense_:
            assert self.sim_ is not None
            dense_sim, nbr_idx, nbr_sim = self.sim_, np.zeros((1, 1), np.int32), dummy_dense
        else:
            assert self.nbr_idx_ is not None and self.nbr_sim_ is not None
            dense_sim, nbr_idx, nbr_sim = dummy_dense, self.nbr_idx_, self.nbr_sim_
        _kernels.set_threads(self.config.threads)
        _kernels.predict_pairs(
            px_k,
            py_k,
            self._layout.y_indptr,
            self._layout.y_indices,
            self._y_dev,
            dense_sim,
            nbr_idx,
            nbr_sim,
            self.dense_,
            self._layout.n_x,
            ks_sorted,
            self.config.min_k,
            np.ascontiguousarray(offset, dtype=np.float64),
            np.ascontiguousarray(scale, dtype=np.float64),
            est,
            actual,
            _kernels.n_chunks(8),
        )
        fallback = np.isnan(est)
        if rule == "baseline":
            fb_value = baseline
        elif rule == "basic":
            fb_value = np.full(n, float(self.mu_ or 0.0))
        else:
            fb_value = np.where(both, offset, float(self.mu_ or 0.0))
        gamma = self._fit_cfg().correction_shrinkage
        if gamma > 0:
            n_y = np.diff(self._layout.y_indptr).astype(np.float64)
            support = np.where(py_k >= 0, n_y[np.maximum(py_k, 0)], 0.0)
            keep = (support / (support + gamma))[:, None]
            est = fb_value[:, None] + (est - fb_value[:, None]) * keep  # NaN stays NaN
        est = np.where(fallback, fb_value[:, None], est)
        inverse = np.empty_like(order)
        inverse[order] = np.arange(len(order))
        return self._clip(est)[:, inverse], fallback[:, inverse], actual[:, inverse]

    def predict_detailed(
        self, user_idx: np.ndarray, item_idx: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(predictions, was_fallback)`` at the configured ``k``."""
        est, fb, _ = self.predict_k(user_idx, item_idx, [self.config.k])
        return est[:, 0], fb[:, 0]

    # ------------------------------------------------------------------ neighbours
    def neighbors(self, x_idx: int, n: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """The ``n`` most similar entities (users for UserKNN, items for ItemKNN) to ``x_idx``."""
        self._check_fitted()
        if self.sim_ is not None:
            row = self.sim_[x_idx].copy()
            row[x_idx] = -np.inf
            cand = np.flatnonzero(row > 0)
            order = cand[np.lexsort((cand, -row[cand]))][:n]
            return order.astype(np.int32), row[order]
        assert self.nbr_idx_ is not None and self.nbr_sim_ is not None
        idx = self.nbr_idx_[x_idx]
        keep = idx >= 0
        return idx[keep][:n], self.nbr_sim_[x_idx][keep][:n]

    def neighbor_matrix(self, k: int | None = None) -> Any:
        """CSR (n_x, n_x): row x holds the ``k`` (default config k) most similar x' with sim > 0."""
        self._check_fitted()
        k = k or self.config.k

        def build() -> Any:
            if self.sim_ is not None:
                sims = self.sim_.copy()
                np.fill_diagonal(sims, -np.inf)
                sims[sims <= 0] = -np.inf
                idx, vals = top_n_rows(sims, k)
            else:
                assert self.nbr_idx_ is not None and self.nbr_sim_ is not None
                idx, vals = self.nbr_idx_[:, :k], self.nbr_sim_[:, :k]
            return lists_to_csr(idx, vals, idx.shape[0])

        return self._cache(f"neighbor_matrix:{k}", build)

    # ------------------------------------------------------------------ top-N scores
    def ranking_source(self) -> str:
        return SOURCE_NEIGHBOURS

    def _transposed(self, key: str, M: Any) -> Any:
        """``M.T`` as CSR, kept while ``M`` is the matrix in use (scipy would convert the
        CSC view on every product: ~2 ms per one-user list on ml-100k, 10x the product)."""
        derived = self.__dict__.setdefault("_derived", {})
        hit = derived.get(f"{key}:T")
        if hit is None or hit[0] is not M:
            hit = derived[f"{key}:T"] = (M, M.T.tocsr())
        return hit[1]

    def score_histories(self, h: Histories) -> tuple[np.ndarray, np.ndarray | None]:
        """Top-N scores of history rows (formulas in docs/algorithms.md, "Top-N"):

        ==============  ======================================================================
        item, implicit  score(j) = sum_i W_h[i] * S_k[j, i]   (S_k: ranking similarity on W)
        item, model     score(j) = sum_i h[i] * N_k[j, i]     (N_k: the model's k neighbours)
        user, implicit  score(j) = sum_{v in N_k(h)} sim(h, v) W[v, j], the neighbours of the
                        history W_h computed on the fly (the ranking similarity against every
                        training user, the user itself excluded)
        user, model     score(j) = sum_v N_k[u, v] * R[v, j]  (training users only)
        ==============  ======================================================================

        with h the history values and W_h their ranking weights. Items reached by no neighbour
        (score <= 0) have no score (-inf). Text rows add their text neighbours
        (:meth:`_text_scores`).
        """
        scoring = self.ranking_scoring()
        cfg = self.ranking
        explicit = self.rating_scale_ is not None
        if not self.user_based:
            if scoring == "implicit":
                Wh = weigh_rows(h.values, cfg.weighting, explicit=explicit)
                ST = self._transposed("ranking_neighbors", self.ranking_neighbors())
                scores = np.asarray((Wh @ ST).todense())
            else:
                NT = self._transposed("neighbor_matrix", self.neighbor_matrix())
                scores = np.asarray((h.values @ NT).todense())
        elif scoring == "implicit":
            W = self.weight_matrix()
            Wh = weigh_rows(h.values, cfg.weighting, explicit=explicit)
            row_sq = self._cache(
                "weight_row_sq", lambda: np.asarray(W.multiply(W).sum(axis=1)).ravel()
            )
            idx, sim = neighbour_rows(
                Wh,
                W,
                cfg.user_neighbors,
                alpha=cfg.alpha,
                shrinkage=cfg.shrinkage,
                exclude=h.users,
                rows_sq=row_sq,
            )
            scores = np.asarray((lists_to_csr(idx, sim, W.shape[0]) @ W).todense())
        else:
            known = h.users >= 0
            N = self.neighbor_matrix()[np.where(known, h.users, 0)]
            scores = np.asarray((N @ self.train_matrix()).todense())
            scores[~known] = 0.0
        text_only = None
        if h.text_rows:
            text = self._text_scores(h)
            if text is not None:
                text_only = (scores <= 0) & (text > 0)
                scores = scores + text
        scores[~(scores > 0)] = -np.inf
        return scores, text_only

    def _text_scores(self, h: Histories) -> np.ndarray | None:
        """Scores of the text rows (items unknown to the model); plain kNN has no text."""
        return None

    def _item_neighbors(self, item_idx: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        if self.user_based:
            return Model._item_neighbors(self, item_idx, n)
        return self.neighbors(item_idx, n)

    # ------------------------------------------------------------------ persistence
    def _arrays(self) -> dict[str, np.ndarray]:
        arrays = {
            "user_idx": self.user_idx_,
            "item_idx": self.item_idx_,
            "rating": self.rating_,
            "bu": self.bu_,
            "bi": self.bi_,
            "x_means": self.x_means_,
            "x_sigmas": self.x_sigmas_,
            "user_known": self.user_known_,
            "item_known": self.item_known_,
        }
        if self.sim_ is not None:
            arrays["sim"] = self.sim_
        else:
            assert self.nbr_idx_ is not None and self.nbr_sim_ is not None
            arrays["nbr_idx"] = self.nbr_idx_
            arrays["nbr_sim"] = self.nbr_sim_
        return arrays

    def _state(self) -> dict[str, Any]:
        fit = self._fit_cfg()
        return {**super()._state(), "fit_settings": {k: getattr(fit, k) for k in FIT_SETTINGS}}

    def _restore(self, arrays: dict[str, np.ndarray], state: dict[str, Any]) -> None:
        self._restore_common(state)
        settings = state.get("fit_settings") or {}
        if not isinstance(settings, dict) or set(settings) - set(FIT_SETTINGS):
            raise ValueError(f"fit_settings must map {FIT_SETTINGS} to numbers, got {settings!r}")
        self.fit_config_ = KNNConfig.from_dict({**asdict(self.config), **settings, "tune": False})
        self.fit_results_ = []
        self.user_idx_ = arrays["user_idx"]
        self.item_idx_ = arrays["item_idx"]
        self.rating_ = arrays["rating"]
        self.bu_, self.bi_ = arrays["bu"], arrays["bi"]
        self.x_means_, self.x_sigmas_ = arrays["x_means"], arrays["x_sigmas"]
        self.user_known_, self.item_known_ = arrays["user_known"], arrays["item_known"]
        self.sim_ = arrays.get("sim")
        self.dense_ = self.sim_ is not None
        self.nbr_idx_ = arrays.get("nbr_idx")
        self.nbr_sim_ = arrays.get("nbr_sim")
        self._check_restored()
        self._prepare()

    def _check_restored(self) -> None:
        super()._check_restored()
        n_x = len(self.users_) if self.user_based else len(self.items_)
        for name, a, size in (
            ("bu", self.bu_, len(self.users_)),
            ("bi", self.bi_, len(self.items_)),
        ):
            if a.shape != (size,):
                raise ValueError(f"{name} has shape {a.shape}, expected ({size},)")
        for name, a in (("x_means", self.x_means_), ("x_sigmas", self.x_sigmas_)):
            if a.shape != (n_x,):
                raise ValueError(f"{name} has shape {a.shape}, expected ({n_x},)")
        if self.user_known_.shape != (len(self.users_),) or self.item_known_.shape != (
            len(self.items_),
        ):
            raise ValueError("user_known/item_known do not match the vocabularies")
        if self.sim_ is not None:
            if self.sim_.shape != (n_x, n_x):
                raise ValueError(f"sim has shape {self.sim_.shape}, expected ({n_x}, {n_x})")
        elif self.nbr_idx_ is None or self.nbr_sim_ is None:
            raise ValueError("neither sim nor nbr_idx/nbr_sim")
        else:
            if self.nbr_idx_.shape[0] != n_x or self.nbr_idx_.shape != self.nbr_sim_.shape:
                raise ValueError(
                    f"neighbour lists of shape {self.nbr_idx_.shape} for {n_x} entities"
                )
            if self.nbr_idx_.size and (self.nbr_idx_.min() < -1 or self.nbr_idx_.max() >= n_x):
                raise ValueError("neighbour indices out of range")

    def get_config(self) -> dict[str, Any]:
        return asdict(self.config)


@register("user-knn")
class UserKNN(_KNN):
    """User-based kNN: neighbours are users who rated the item (see module docstring)."""

    user_based = True
    auto_scoring = "implicit"


@register("item-knn")
class ItemKNN(_KNN):
    """Item-based kNN: neighbours are items the user rated (see module docstring)."""

    user_based = False
    auto_scoring = "implicit"
