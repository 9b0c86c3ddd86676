"""Text-fused kNN (T-UserCF / T-ItemCF): CF similarity blended with text-embedding similarity.

For two entities x, x' (items for :class:`TItemKNN`, users for :class:`TUserKNN`) with CF
similarity ``cf(x, x')`` (the configured kNN similarity, shrinkage included), ``n`` co-ratings
and text vectors v_x (unit rows; items: the embedding of the rendered item text, users: the
weighted average of the embeddings of the items they rated, see :mod:`llmcf.text.users`)::

    cos(x, x')  = v_x . v_x'
    text(x, x') = max(0, (cos - shift) / (1 - shift)) ** power        (rescaled to CF's range)

    fixed:    s = alpha * cf + (1 - alpha) * text
    support:  s = w * cf + (1 - w) * text,   w = n / (n + beta)

    sim = s ** amplify   where s > 0                              ("case amplification")

so with the support-aware blend a pair with many co-ratings keeps its CF similarity and a pair
with few (or none) leans on text. ``amplify`` > 1 sharpens the weights: the neighbours that
are similar by ratings *and* by text dominate the weighted mean, while the many pairs that only
share a genre keep a small weight (it does not change which neighbours are the k most similar).
The fused similarity then drives the unchanged kNN prediction rules and kernel of
:mod:`llmcf.cf.knn` (same k, min_k, prediction rule, ``correction_shrinkage``).

Baselines: with ``bias_prior`` > 0 the ALS item biases are shrunk towards the mean bias of the
item's ``bias_prior_k`` nearest text neighbours instead of towards 0
(:mod:`llmcf.text.priors`), which matters for items with few or no ratings. The baselines
enter the ``pearson_baseline`` similarity, the ``baseline`` prediction rule and the
``residual`` user vectors.

Neighbour candidates are the union of CF neighbours and text neighbours:

* dense mode (``n_x <= dense_max``): the full fused matrix is computed exactly, so every
  pair with positive CF *or* text similarity is a candidate;
* sparse mode (larger catalogs): the CF top lists (``n_neighbors`` per entity) are merged with
  the ``n_text_neighbors`` nearest text vectors (:func:`llmcf.text.ann.text_top_k`: exact, or
  faiss HNSW when installed); for every pair of the union the text cosine and co-rating count
  are computed exactly and the CF similarity is taken from the CF list (0 when the pair is not
  in it, i.e. its CF similarity is <= 0 or below the list's cut-off); the ``n_neighbors`` best
  fused pairs are kept.

Cold start: an item with text but no ratings counts as known to :class:`TItemKNN` (its text
neighbours among the user's rated items predict it, and it can be recommended through them);
a user with a few ratings gets a text vector and so neighbours in :class:`TUserKNN`.

``tune=True`` carves a validation set (``tune_fraction`` of the *training* interactions,
seeded) from the data passed to ``fit``, fits on the rest, picks the ``alpha`` (fixed) or
``beta`` (support), ``shift`` and ``amplify`` with the lowest validation MAE at the configured
``k``, and then fits on all the training data with them. The test data are never seen.

Defaults (chosen by the mean validation MAE over 10% carves of the ml-100k u1-u5 *training*
folds, see docs/experiments.md): :class:`TItemKNN` ``fusion=fixed, alpha=0.75, shift=0.2,
amplify=4, bias_prior=1, bias_prior_k=20``; :class:`TUserKNN` ``fusion=fixed, alpha=0.85,
shift=0, amplify=1, user_repr=residual, bias_prior=1``; both with the kNN options
``reg_u=5, reg_i=2, correction_shrinkage=8`` (:attr:`_TextKNN.knn_defaults`) and the library's
other kNN defaults (pearson_baseline, shrinkage 100, baseline rule). Options passed
explicitly, or a whole :class:`~llmcf.cf.knn.KNNConfig` / :class:`TextFusionConfig`, win.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, fields, replace
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np

from llmcf.cf.knn import _KNN, ItemKNN, KNNConfig, UserKNN
from llmcf.data.dataset import Dataset
from llmcf.errors import ConfigError
from llmcf.options import config_from_dict
from llmcf.ranking.path import Histories
from llmcf.registry import register
from llmcf.text.ann import ANN_METHODS, text_top_k
from llmcf.text.fusion import FUSIONS, fuse_similarity, rescale_text
from llmcf.text.neighbours import TextNeighbours, top_positive
from llmcf.text.profiles import ITEM_TEXT_MODES
from llmcf.text.users import USER_REPRESENTATIONS, user_vectors

if TYPE_CHECKING:
    import scipy.sparse as sp

    from llmcf.text.embedding_base import Embedder

__all__ = [
    "FUSIONS",
    "TItemKNN",
    "TUserKNN",
    "TextFusionConfig",
    "fuse_similarity",
    "rescale_text",
]

ALPHA_GRID = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
BETA_GRID = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1e9)
SHIFT_GRID = (0.0, 0.2, 0.4)
AMPLIFY_GRID = (1.0, 2.0, 3.0, 4.0)
#: the smallest text weight of cold items (no training interactions): ordered by their text,
#: below every item with a CF score
COLD_TEXT_FLOOR = 1e-6
#: text weights of the T-ranking tried on validation (0: the plain ranking similarity)
RANK_WEIGHT_GRID = (0.0, 0.1, 0.2, 0.3, 0.5, 0.7)
#: the parameters ``--tune`` chooses (the blend); the others stay as configured
BLEND_PARAMS = ("alpha", "beta", "shift", "power", "amplify")
#: the blend that is exactly the CF similarity (no text)
PLAIN_BLEND = {"alpha": 1.0, "beta": 1e9, "shift": 0.0, "power": 1.0, "amplify": 1.0}


@dataclass(frozen=True)
class TextFusionConfig:
    """Text options of T-kNN (unknown keys are rejected by ``from_dict``)."""

    embedder: str = "minilm"
    fusion: Literal["fixed", "support"] = "support"
    alpha: float = 0.5
    beta: float = 50.0
    shift: float = 0.0
    power: float = 1.0
    amplify: float = 1.0
    bias_prior: float = 0.0
    bias_prior_k: int = 20
    user_repr: str = "centered"
    template: str = "auto"
    #: which item text is embedded: catalog, profile (LLM-written, ``llmcf enrich``) or both
    #: (:func:`llmcf.text.profiles.item_texts`); ``profiles``: the folder of the profiles
    item_text: str = "catalog"
    profiles: str | None = None
    n_text_neighbors: int = 50
    ann: str = "auto"
    tune: bool = False
    tune_fraction: float = 0.1
    tune_seed: int = 0
    #: weight of text in the item ranking similarity (T-ItemKNN top-N); None: chosen on a
    #: validation carve of the training data among RANK_WEIGHT_GRID (0 = no text allowed)
    rank_weight: float | None = None
    #: weight of text for items without training interactions (cold items, and new items
    #: with a text); None: ``rank_weight`` when that is given, else the chosen warm weight,
    #: at least COLD_TEXT_FLOOR (see ``_choose_cold_rank_weight``)
    cold_rank_weight: float | None = None

    def __post_init__(self) -> None:
        if self.fusion not in FUSIONS:
            raise ConfigError(f"unknown fusion {self.fusion!r}; valid: {', '.join(FUSIONS)}")
        if not 0.0 <= self.alpha <= 1.0:
            raise ConfigError(f"alpha must be in [0, 1], got {self.alpha}")
        if not self.beta > 0.0:
            raise ConfigError(f"beta must be > 0, got {self.beta}")
        if not 0.0 <= self.shift < 1.0:
            raise ConfigError(f"shift must be in [0, 1), got {self.shift}")
        if not self.power > 0.0:
            raise ConfigError(f"power must be > 0, got {self.power}")
        if not self.amplify > 0.0:
            raise ConfigError(f"amplify must be > 0, got {self.amplify}")
        if not 0.0 <= self.bias_prior <= 1.0:
            raise ConfigError(f"bias_prior must be in [0, 1], got {self.bias_prior}")
        if self.bias_prior_k < 1:
            raise ConfigError(f"bias_prior_k must be >= 1, got {self.bias_prior_k}")
        if self.user_repr not in USER_REPRESENTATIONS:
            raise ConfigError(
                f"unknown user_repr {self.user_repr!r}; valid: {', '.join(USER_REPRESENTATIONS)}"
            )
        if self.item_text not in ITEM_TEXT_MODES:
            raise ConfigError(
                f"unknown item_text {self.item_text!r}; valid: {', '.join(ITEM_TEXT_MODES)}"
            )
        if self.ann not in ANN_METHODS:
            raise ConfigError(f"unknown ann {self.ann!r}; valid: {', '.join(ANN_METHODS)}")
        if self.n_text_neighbors < 1:
            raise ConfigError(f"n_text_neighbors must be >= 1, got {self.n_text_neighbors}")
        if self.rank_weight is not None and not 0.0 <= self.rank_weight <= 1.0:
            raise ConfigError(f"rank_weight must be in [0, 1], got {self.rank_weight}")
        if self.cold_rank_weight is not None and not 0.0 <= self.cold_rank_weight <= 1.0:
            raise ConfigError(f"cold_rank_weight must be in [0, 1], got {self.cold_rank_weight}")
        if not 0.0 < self.tune_fraction < 1.0:
            raise ConfigError(f"tune_fraction must be in (0, 1), got {self.tune_fraction}")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TextFusionConfig:
        return config_from_dict(cls, values, "text")


TEXT_OPTIONS = frozenset(f.name for f in fields(TextFusionConfig))


_PAIR_BLOCK = 1 << 16  # pairs per block of the pairwise computations


#: up to this many vectors, pair cosines come from blocks of the full cosine matrix (BLAS)
_DENSE_COS_MAX = 8192


def _pair_cosines(vectors: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """float64 dot products of the row pairs (rows[t], cols[t]) of unit ``vectors``: for up to
    :data:`_DENSE_COS_MAX` vectors from row blocks of ``V V^T`` (one matrix product per
    block, memory bounded by :data:`_PAIR_BLOCK` x 64 entries), else gathered in blocks of
    pairs."""
    n = vectors.shape[0]
    out = np.empty(len(rows))
    if n <= _DENSE_COS_MAX:
        V = vectors.astype(np.float64)
        order = np.argsort(rows, kind="stable")
        r_sorted = rows[order]
        step = max(1, (_PAIR_BLOCK * 64) // max(n, 1))
        bounds = np.searchsorted(r_sorted, np.arange(0, n + step, step))
        for b, a in enumerate(range(0, n, step)):
            lo, hi = bounds[b], bounds[b + 1]
            if lo == hi:
                continue
            block = V[a : a + step] @ V.T
            sel = order[lo:hi]
            out[sel] = block[rows[sel] - a, cols[sel]]
        return out
    for start in range(0, len(rows), _PAIR_BLOCK):
        r, c = rows[start : start + _PAIR_BLOCK], cols[start : start + _PAIR_BLOCK]
        out[start : start + _PAIR_BLOCK] = np.einsum(
            "ij,ij->i", vectors[r].astype(np.float64), vectors[c].astype(np.float64)
        )
    return out


def _top_lists(
    rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, n: int, k: int, dtype: Any
) -> tuple[np.ndarray, np.ndarray]:
    """Per row of (rows, cols, vals) pairs: the ``k`` largest positive values (ties by lower
    column), as -1 / 0 padded ``(idx, val)`` of shape (n, k)."""
    keep = vals > 0
    rows, cols, vals = rows[keep], cols[keep], vals[keep]
    order = np.lexsort((cols, -vals, rows))
    rows, cols, vals = rows[order], cols[order], vals[order]
    starts = np.searchsorted(rows, np.arange(n))
    rank = np.arange(len(rows)) - starts[rows]
    top = rank < k
    idx = np.full((n, k), -1, dtype=dtype)
    val = np.zeros((n, k))
    idx[rows[top], rank[top]] = cols[top]
    val[rows[top], rank[top]] = vals[top]
    return idx, val


@dataclass
class _Components:
    """What the blend needs: dense (n_x, n_x) matrices, or flat arrays over candidate pairs."""

    cf: np.ndarray
    cos: np.ndarray
    support: np.ndarray
    rows: np.ndarray | None = None
    cols: np.ndarray | None = None


class _TextKNN(_KNN):
    """Shared fit/fuse/tune/persist logic of :class:`TItemKNN` and :class:`TUserKNN`."""

    #: text options that differ from :class:`TextFusionConfig`'s defaults for this model
    #: (the best setting on validation carves of MovieLens 100K, see docs/experiments.md)
    text_defaults: ClassVar[dict[str, Any]] = {}
    #: kNN options that differ from :class:`~llmcf.cf.knn.KNNConfig`'s defaults (used when no
    #: KNNConfig object is passed): lighter bias regularisation, damped corrections for users
    #: (items) with few ratings
    knn_defaults: ClassVar[dict[str, Any]] = {
        "reg_u": 5.0,
        "reg_i": 2.0,
        "correction_shrinkage": 8.0,
    }

    takes_text_options = True

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> _TextKNN:
        """Build from command-line options (kNN and text options)."""
        return cls(**options)

    def __init__(
        self,
        config: KNNConfig | None = None,
        text: TextFusionConfig | None = None,
        *,
        embedder: str | Embedder | None = None,
        **kwargs: Any,
    ) -> None:
        text_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k in TEXT_OPTIONS}
        # the non-text defaults this model sets for itself (a data set without item text
        # falls back to the plain model's, see fit)
        self._own_knn_defaults = (
            frozenset(self.knn_defaults) - set(kwargs) if config is None else frozenset()
        )
        if config is None:
            kwargs = {**self.knn_defaults, **kwargs}
        super().__init__(config, **kwargs)
        # an Embedder object is used as is (tests, custom models); its name goes in the config
        self._embedder: Embedder | None = None
        if isinstance(embedder, str):
            text_kwargs["embedder"] = embedder
        elif embedder is not None:
            self._embedder = embedder
        if text is not None and text_kwargs:
            raise ConfigError("pass either a TextFusionConfig or keyword text options, not both")
        if text is None:
            if self._embedder is not None:
                text_kwargs["embedder"] = getattr(embedder, "name", type(embedder).__name__)
            text = TextFusionConfig.from_dict({**self.text_defaults, **text_kwargs})
        if text.bias_prior > 0 and self.config.baseline_method != "als":
            raise ConfigError(
                "bias_prior needs the ALS baselines (baseline_method='als'); "
                "pass bias_prior=0 to use SGD baselines"
            )
        self.text_config = text
        self.params_: dict[str, float] | None = None

    # ------------------------------------------------------------------ text
    def item_text_vectors(self, dataset: Dataset, *, progress: bool | None = False) -> np.ndarray:
        """float32 (n_items, dim) embeddings of the item texts in the configured ``item_text``
        mode (:func:`llmcf.text.profiles.item_text_source`; on-disk cache). Records where the
        texts came from in ``item_text_provenance_`` (saved with the model)."""
        from llmcf.text.cache import embed_with_cache
        from llmcf.text.embedders import make_embedder
        from llmcf.text.profiles import item_text_source

        tc = self.text_config
        if self._embedder is None:
            self._embedder = make_embedder(tc.embedder)
        try:
            source = item_text_source(dataset, tc.item_text, tc.profiles, template=tc.template)
        except ConfigError as exc:
            if tc.item_text == "catalog" and tc.template == "auto":
                # a catalog without text fields: zero vectors, and fit falls back to the plain
                # model with a warning
                self.item_text_provenance_ = {"mode": "catalog", "texts": "none"}
                return np.zeros((dataset.n_items, self._embedder.dim), dtype=np.float32)
            raise ConfigError(f"{type(self).__name__} needs item text: {exc}") from None
        self.item_text_provenance_ = source.provenance
        return embed_with_cache(
            self._embedder, source.texts, template_version=source.version, progress=progress
        )

    def _x_vectors(self, item_vectors: np.ndarray) -> np.ndarray:
        if not self.user_based:
            return item_vectors
        baseline = None
        if self.text_config.user_repr == "residual":
            baseline = (self.mu_ + self.bu_[self.user_idx_]) + self.bi_[self.item_idx_]
        return user_vectors(
            self.user_idx_,
            self.item_idx_,
            self.rating_,
            len(self.users_),
            item_vectors,
            self.text_config.user_repr,
            baseline=baseline,
        )

    # ------------------------------------------------------------------ fit
    def fit(self, dataset: Dataset, *, progress: bool = False) -> _TextKNN:
        """Fit CF, embed the item texts (cached), tune if asked, and fuse; returns ``self``."""
        t0 = time.perf_counter()
        item_vectors = self.item_text_vectors(dataset, progress=None if progress else False)
        if item_vectors.shape[0] != dataset.n_items:
            raise ConfigError(f"{item_vectors.shape[0]} item vectors for {dataset.n_items} items")
        tc = self.text_config
        if not (np.linalg.norm(item_vectors, axis=1) > 0).any():
            import warnings

            plain = "user-knn" if self.user_based else "item-knn"
            warnings.warn(
                f"{type(self).__name__}: no item has text (data set {dataset.name!r}); "
                f"fitting the plain {plain} model (its non-text settings, no text)",
                stacklevel=2,
            )
            params = dict(PLAIN_BLEND)
            plain_defaults = KNNConfig()
            fit_config = KNNConfig.from_dict(
                {
                    **asdict(self.config),
                    **{k: getattr(plain_defaults, k) for k in self._own_knn_defaults},
                }
            )
            bias_prior = 0.0
            self.tune_results_: list[dict[str, float]] = []
            if tc.tune:  # the plain model's own tune (its grid, the same carve)
                plain_cls = UserKNN if self.user_based else ItemKNN
                probe = plain_cls(
                    replace(
                        fit_config,
                        tune=True,
                        tune_fraction=tc.tune_fraction,
                        tune_seed=tc.tune_seed,
                    )
                )
                fit_config, self.tune_results_ = probe._tune_fit_settings(dataset)
            fusion: str | None = "fixed"  # alpha 1: the CF similarity itself
        elif tc.tune:
            params, fit_config, bias_prior, results = self._tune(dataset, item_vectors)
            self.tune_results_ = results
            fusion = None
        else:
            params = {name: float(getattr(tc, name)) for name in BLEND_PARAMS}
            fit_config, bias_prior = self.config, tc.bias_prior
            self.tune_results_ = []
            fusion = None
        self.bias_prior_ = float(bias_prior)
        components = self._fit_components(
            dataset, item_vectors, fit_config=fit_config, progress=progress
        )
        self._apply(components, params, fusion)
        if tc.tune:  # the plain ranking's settings first, as the plain model's tune does
            self._tune_ranking(dataset)
        self.rank_weight_, self.rank_results_ = self._choose_rank_weight(dataset)
        self.cold_rank_weight_, self.cold_rank_results_ = self._choose_cold_rank_weight(dataset)
        self._derived = {}
        self.fit_seconds_ = time.perf_counter() - t0
        return self

    def _ranking_probe_on(self, data: Dataset) -> _KNN:
        return self._ranking_probe(data, 0.0, 0.0)  # no text: the plain ranking

    def chosen_settings(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.text_config.tune:
            fit = self._fit_cfg()
            out.update({k: getattr(fit, k) for k in ("reg_u", "reg_i", "correction_shrinkage")})
            out.update(self.params_ or {})
            out["bias_prior"] = float(getattr(self, "bias_prior_", self.text_config.bias_prior))
            out.update(self._chosen_ranking())
        if not self.user_based:
            if self.text_config.rank_weight is None:
                out["rank_weight"] = float(getattr(self, "rank_weight_", 0.0))
            if self.text_config.cold_rank_weight is None and self.text_config.rank_weight is None:
                out["cold_rank_weight"] = float(getattr(self, "cold_rank_weight_", 0.0))
        return out

    # ------------------------------------------------------------------ T-ranking
    def _has_text(self) -> bool:
        """Whether any item of the fitted catalog has a text vector."""
        return self._cache(
            "has_text", lambda: bool((np.linalg.norm(self.item_vectors_, axis=1) > 0).any())
        )

    def ranking_scoring(self) -> str:
        """As the model's, except that without any item text the ``auto`` scoring is the plain
        kNN's (the fallback is the plain model in its lists too)."""
        if self.ranking.scoring == "auto" and not self._has_text():
            return "implicit"
        return super().ranking_scoring()

    def _ranking_probe(
        self, data: Dataset, w: float, w_cold: float, shared: dict[int, Any] | None = None
    ) -> _TextKNN:
        """This model's T-ranking on ``data`` (a carve) with text weights ``w`` / ``w_cold``,
        for choosing them. Item-based T-ranking lists depend only on the interactions, the
        item vectors and the ranking config, not on the rating fit (baselines, rating
        similarities), so the probe holds just those: its lists equal those of a full fit with
        the same weights (tested), at a fraction of the cost."""
        probe = type(self)(
            self.config,
            replace(self.text_config, tune=False, rank_weight=w, cold_rank_weight=w_cold),
            embedder=self._embedder,
        )
        probe.set_ranking(self.ranking)
        probe._begin_fit(data)
        probe.mu_ = float(np.mean(data.rating)) if len(data) else 0.0
        probe.item_vectors_ = self.item_vectors_
        probe.rank_weight_, probe.cold_rank_weight_ = float(w), float(w_cold)
        if shared is not None:  # the candidate pairs of this carve, once for all weights
            if id(data) not in shared:
                shared[id(data)] = (data, probe._t_ranking_pairs())
            probe._derived["t_ranking_pairs"] = shared[id(data)][1]
        return probe

    def _choose_rank_weight(self, dataset: Dataset) -> tuple[float, list[dict[str, Any]]]:
        """The text weight of the item ranking similarity (see :meth:`ranking_neighbors`):
        the configured one, else the best on a validation carve of ``dataset`` (the training
        data) among :data:`RANK_WEIGHT_GRID`; 0 for user-based models and without item text."""
        tc = self.text_config
        if self.user_based or self.ranking_scoring() != "implicit":
            return 0.0, []  # lists from the rating model: no T-ranking to weigh
        if not (np.linalg.norm(self.item_vectors_, axis=1) > 0).any():
            return 0.0, []  # fit warned: the plain model
        if tc.rank_weight is not None:
            return float(tc.rank_weight), []
        from llmcf.eval.select import select

        shared: dict[int, Any] = {}

        def fit(data: Dataset, setting: dict[str, Any]) -> Any:
            w = setting["rank_weight"]
            return self._ranking_probe(data, w, w, shared)

        grid = [{"rank_weight": w} for w in RANK_WEIGHT_GRID]
        best, table = select(grid, fit, dataset, fraction=tc.tune_fraction, seed=tc.tune_seed)
        return float(best["rank_weight"]), table

    def _choose_cold_rank_weight(self, dataset: Dataset) -> tuple[float, list[dict[str, Any]]]:
        """The text weight of pairs with an item without training interactions (a cold item:
        its S_k is 0, so it is scored by text alone): the configured one (``rank_weight``
        when only that is given), else the warm weight ``rank_weight_`` chosen on the
        validation carve -- whose catalog holds the cold items too, so it weighs them against
        the warm ones at the mix the lists meet -- and at least :data:`COLD_TEXT_FLOOR`: with
        a warm weight of 0 the cold items are still ordered by their text, below every item
        that has a CF score. 0 for user-based models, without item text and for lists from
        the rating model. (A separate weight chosen on a cold-item carve was tried: a carve
        cannot tell items that lost their interactions from catalog items that never had any
        -- 90% of the Amazon gift-card catalog -- and flooded warm lists with the latter.)"""
        tc = self.text_config
        if self.user_based or not (np.linalg.norm(self.item_vectors_, axis=1) > 0).any():
            return 0.0, []
        if self.ranking_scoring() != "implicit":
            return 0.0, []
        if tc.cold_rank_weight is not None:
            return float(tc.cold_rank_weight), []
        if tc.rank_weight is not None:  # a fixed text weight holds for every pair
            return float(tc.rank_weight), []
        return max(float(self.rank_weight_), COLD_TEXT_FLOOR), []

    def _text_weights(self) -> tuple[float, float]:
        """``(w, w_cold)``: text weights of the T-ranking for warm pairs and for pairs with an
        item without training interactions."""
        w = float(getattr(self, "rank_weight_", 0.0) or 0.0)
        return w, float(getattr(self, "cold_rank_weight_", w) or 0.0)

    def _t_ranking_pairs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(rows, cols, cf, cos)`` of the T-ranking's candidate pairs (the union of each
        item's ranking neighbours and text neighbours, sorted by row): their S_k (0 off the
        ranking lists) and text cosine; independent of the text weights."""

        def build() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
            plain = super(_TextKNN, self).ranking_neighbors().tocoo()
            n = plain.shape[0]
            vectors = self.item_vectors_
            t_idx, _ = text_top_k(vectors, self.ranking.n_neighbors, self.text_config.ann)
            t_rows = np.repeat(np.arange(n, dtype=np.int64), t_idx.shape[1])
            t_cols = t_idx.ravel().astype(np.int64)
            ok = (t_cols >= 0) & (t_cols != t_rows)
            keys_cf = plain.row.astype(np.int64) * n + plain.col
            keys = np.union1d(keys_cf, t_rows[ok] * n + t_cols[ok])
            rows, cols = keys // n, keys % n
            cf = np.zeros(len(keys))
            cf[np.searchsorted(keys, keys_cf)] = plain.data
            return rows, cols, cf, _pair_cosines(vectors, rows, cols)

        return self._cache("t_ranking_pairs", build)

    def ranking_neighbors(self) -> Any:
        """Item-based: S_T = (1 - w) * S_k + w * max(0, cos_text), the implicit ranking
        similarity of :mod:`llmcf.ranking.config` blended with item-text cosine (one fusion,
        :func:`llmcf.text.fusion.fuse_similarity`, fixed blend), over the union of each item's
        ranking neighbours and text neighbours; its ``n_neighbors`` best kept. ``w`` =
        ``rank_weight_`` for pairs of items with training interactions and
        ``cold_rank_weight_`` for pairs with an item without (its S_k is 0, so its score is
        text alone); both 0: exactly the plain ranking similarity."""
        w, w_cold = self._text_weights()
        if self.user_based or (w == 0.0 and w_cold == 0.0):
            return super().ranking_neighbors()
        cfg = self.ranking

        def build() -> Any:
            from llmcf.ranking.config import lists_to_csr

            rows, cols, cf, cos = self._t_ranking_pairs()
            n = len(self.items_)
            warm = self.popularity() > 0
            weight = np.where(warm[rows] & warm[cols], w, w_cold)
            fused = fuse_similarity(
                cf, cos, np.zeros(len(rows)), fusion="fixed", alpha=1.0 - weight, beta=1.0
            )
            idx, val = _top_lists(rows, cols, fused, n, cfg.n_neighbors, np.int64)
            return lists_to_csr(idx, val, n)

        return self._cache("t_ranking_neighbors", build)

    def _fit_components(
        self,
        dataset: Dataset,
        item_vectors: np.ndarray,
        *,
        fit_config: KNNConfig | None = None,
        progress: bool = False,
    ) -> _Components:
        self.item_vectors_ = np.ascontiguousarray(item_vectors, dtype=np.float32)
        self.fit_config_ = fit_config or self.config
        self.fit_results_ = []
        self._fit_with(dataset, progress=progress)  # baselines via _fit_baselines (text prior)
        x_vectors = self._x_vectors(self.item_vectors_)
        self.x_vectors_ = x_vectors
        self._mark_text_known()
        x, y, n_x, n_y = self._switch_arrays(
            self.user_idx_, self.item_idx_, len(self.users_), len(self.items_)
        )
        import scipy.sparse as sp

        binary = sp.csr_matrix((np.ones(len(x)), (x, y)), shape=(n_x, n_y))
        binary.sum_duplicates()
        binary.data[:] = 1.0
        if self.dense_:
            assert self.sim_ is not None
            cos = x_vectors.astype(np.float64) @ x_vectors.T.astype(np.float64)
            support = (binary @ binary.T).toarray()
            return _Components(self.sim_, cos, support)
        return self._sparse_components(binary, x_vectors)

    def _fit_baselines(self, dataset: Dataset) -> tuple[np.ndarray, np.ndarray]:
        """ALS baselines; with ``bias_prior`` > 0 item biases shrink towards text neighbours'."""
        tc = self.text_config
        strength = float(getattr(self, "bias_prior_", tc.bias_prior))
        if strength == 0.0:
            return super()._fit_baselines(dataset)
        from llmcf.text.priors import text_prior_baselines, text_prior_weights

        rated = np.bincount(dataset.item_idx, minlength=dataset.n_items) > 0
        weights = text_prior_weights(self.item_vectors_, rated, tc.bias_prior_k, tc.ann)
        cfg = self._fit_cfg().baseline_config()
        _, bu, bi = text_prior_baselines(
            dataset.user_idx,
            dataset.item_idx,
            dataset.rating,
            dataset.n_users,
            dataset.n_items,
            weights,
            strength=strength,
            reg_u=cfg.reg_u,
            reg_i=cfg.reg_i,
            n_epochs=cfg.epochs,
        )
        return bu, bi

    def _mark_text_known(self) -> None:
        """Items with text are known to item-based prediction; cold items get mean mu."""
        if self.user_based:
            return
        has_text = np.linalg.norm(self.item_vectors_, axis=1) > 0
        cold = has_text & ~self.item_known_
        self.item_known_ = self.item_known_ | has_text
        if cold.any():
            assert self.mu_ is not None
            self.x_means_ = np.where(cold, self.mu_, self.x_means_)

    def _sparse_components(self, binary: sp.csr_matrix, x_vectors: np.ndarray) -> _Components:
        assert self.nbr_idx_ is not None and self.nbr_sim_ is not None
        n_x = x_vectors.shape[0]
        t_idx, _ = text_top_k(x_vectors, self.text_config.n_text_neighbors, self.text_config.ann)
        cf_rows = np.repeat(np.arange(n_x), self.nbr_idx_.shape[1])
        cf_cols = self.nbr_idx_.ravel().astype(np.int64)
        cf_vals = self.nbr_sim_.ravel()
        keep = cf_cols >= 0
        cf_keys = cf_rows[keep] * n_x + cf_cols[keep]
        cf_vals = cf_vals[keep]
        t_rows = np.repeat(np.arange(n_x), t_idx.shape[1])
        t_cols = t_idx.ravel().astype(np.int64)
        t_keys = t_rows[t_cols >= 0] * n_x + t_cols[t_cols >= 0]
        keys = np.union1d(cf_keys, t_keys)
        rows, cols = keys // n_x, keys % n_x
        cf = np.zeros(len(keys))
        order = np.argsort(cf_keys)
        cf[np.searchsorted(keys, cf_keys[order])] = cf_vals[order]
        cos = _pair_cosines(x_vectors, rows, cols)
        support = np.empty(len(keys))
        block = _PAIR_BLOCK
        for start in range(0, len(keys), block):
            r, c = rows[start : start + block], cols[start : start + block]
            support[start : start + block] = np.asarray(
                binary[r].multiply(binary[c]).sum(axis=1)
            ).ravel()
        return _Components(cf, cos, support, rows, cols)

    def _apply(
        self, comp: _Components, params: dict[str, float], fusion: str | None = None
    ) -> None:
        """Blend the components with ``params`` into ``sim_`` (dense) or the top lists
        (``fusion``: the configured one unless given)."""
        tc = self.text_config
        fused = fuse_similarity(
            comp.cf,
            comp.cos,
            comp.support,
            fusion=fusion or tc.fusion,
            alpha=params["alpha"],
            beta=params["beta"],
            shift=params["shift"],
            power=params["power"],
            amplify=params["amplify"],
        )
        self.params_ = dict(params)
        self._derived = {}  # neighbour matrices of the previous blend
        if comp.rows is None:
            np.fill_diagonal(fused, 1.0)
            self.sim_ = fused
            return
        assert comp.cols is not None and self.nbr_idx_ is not None
        n_x, n_store = self.nbr_idx_.shape
        self.nbr_idx_, self.nbr_sim_ = _top_lists(
            comp.rows, comp.cols, fused, n_x, n_store, np.int32
        )

    # ------------------------------------------------------------------ tune
    def _grid(self) -> list[dict[str, float]]:
        tc = self.text_config
        base = {name: float(getattr(tc, name)) for name in BLEND_PARAMS}
        weights = (
            [{"alpha": a} for a in ALPHA_GRID]
            if tc.fusion == "fixed"
            else [{"beta": b} for b in BETA_GRID]
        )
        return [
            {**base, **w, "shift": s, "amplify": m}
            for m in AMPLIFY_GRID
            for s in SHIFT_GRID
            for w in weights
        ]

    def _tune(
        self, dataset: Dataset, item_vectors: np.ndarray
    ) -> tuple[dict[str, float], KNNConfig, float, list[dict[str, float]]]:
        """Pick the blend parameters, the non-text fit settings (the plain kNN's ``tune`` grid,
        :data:`~llmcf.cf.knn.FIT_GRID`) and the bias prior (as configured, or 0) jointly by
        validation MAE at ``k`` on a carve of ``dataset`` (the training data). The grid holds
        the plain model's own candidates (alpha 1 / beta 1e9, amplify 1, no bias prior), so on
        validation a tuned T-model is never worse than the plain kNN tuned the same way.
        Returns ``(blend, fit config, bias prior, table)``."""
        from llmcf.cf.knn import FIT_GRID
        from llmcf.eval.metrics import mae

        tc = self.text_config
        rng = np.random.default_rng(tc.tune_seed)
        held = rng.random(len(dataset)) < tc.tune_fraction
        if held.all() or not held.any():
            raise ConfigError(
                f"tune: {len(dataset)} training interactions are too few for a "
                f"{tc.tune_fraction:.0%} validation carve"
            )
        sub = dataset.subset(np.flatnonzero(~held))
        val = dataset.subset(np.flatnonzero(held))
        self.tune_validation_ = np.flatnonzero(held)
        priors = sorted({float(tc.bias_prior), 0.0}, reverse=True)
        if self.config.baseline_method != "als":
            priors = [0.0]
        regs = list(dict.fromkeys((g["reg_u"], g["reg_i"]) for g in FIT_GRID))
        gammas = list(dict.fromkeys(g["correction_shrinkage"] for g in FIT_GRID))
        results: list[dict[str, float]] = []
        best: tuple[float, dict[str, float], KNNConfig, float] | None = None
        for reg_u, reg_i in regs:
            fit_config = replace(self.config, reg_u=reg_u, reg_i=reg_i, tune=False)
            for prior in priors:
                probe = type(self)(
                    self.config, replace(tc, tune=False, bias_prior=prior), embedder=self._embedder
                )
                components = probe._fit_components(sub, item_vectors, fit_config=fit_config)
                for params in self._grid():
                    probe._apply(components, params)  # the blend does not depend on gamma
                    for gamma in gammas:
                        probe.fit_config_ = replace(fit_config, correction_shrinkage=gamma)
                        est, _, _ = probe.predict_k(val.user_idx, val.item_idx, [self.config.k])
                        score = mae(val.rating, est[:, 0])
                        results.append(
                            {
                                **params,
                                "reg_u": reg_u,
                                "reg_i": reg_i,
                                "correction_shrinkage": gamma,
                                "bias_prior": prior,
                                "mae": score,
                            }
                        )
                        if best is None or score < best[0]:
                            best = (score, dict(params), probe.fit_config_, prior)
        assert best is not None
        _, params, fit_config, prior = best
        return {k: params[k] for k in BLEND_PARAMS}, fit_config, prior, results

    # ------------------------------------------------------------------ persistence
    def get_config(self) -> dict[str, Any]:
        return {**asdict(self.config), **asdict(self.text_config)}

    def _state(self) -> dict[str, Any]:
        return {
            **super()._state(),
            "params": self.params_,
            "item_text": getattr(self, "item_text_provenance_", None),
            "rank_weight": float(getattr(self, "rank_weight_", 0.0)),
            "cold_rank_weight": float(getattr(self, "cold_rank_weight_", 0.0)),
        }

    def _arrays(self) -> dict[str, np.ndarray]:
        arrays = {**super()._arrays(), "item_vectors": self.item_vectors_}
        if self.user_based:
            arrays["x_vectors"] = self.x_vectors_
        return arrays

    def _restore(self, arrays: dict[str, np.ndarray], state: dict[str, Any]) -> None:
        self.item_vectors_ = arrays.pop("item_vectors")
        self.x_vectors_ = arrays.pop("x_vectors", self.item_vectors_)
        self.params_ = state.get("params")
        self.item_text_provenance_ = state.get("item_text") or {"mode": "catalog"}
        self.rank_weight_ = float(state.get("rank_weight", 0.0) or 0.0)
        self.cold_rank_weight_ = float(state.get("cold_rank_weight", self.rank_weight_) or 0.0)
        self.tune_results_ = []
        self.rank_results_ = []
        self.cold_rank_results_ = []
        super()._restore(arrays, state)
        if self.item_vectors_.ndim != 2 or self.item_vectors_.shape[0] != len(self.items_):
            raise ValueError(
                f"item_vectors has shape {self.item_vectors_.shape} for {len(self.items_)} items"
            )

    # ------------------------------------------------------------------ text fold-in
    def text_index(self) -> TextNeighbours:
        """Nearest catalog items of a new text (the model's embedder and item vectors)."""

        def build() -> TextNeighbours:
            from llmcf.text.embedders import make_embedder

            if self._embedder is None:
                self._embedder = make_embedder(self.text_config.embedder)
            return TextNeighbours(self.item_vectors_, self._embedder.embed)

        return self._cache("text_index", build)

    def text_similarities(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """Similarities of a new item with ``text`` to the catalog, as the model's top-N
        scoring would have them for an item without interactions: with the T-ranking,
        ``w * max(0, cos)`` (the CF part is 0), its ``n_neighbors`` best; with the model's
        rating similarity (``scoring="model"``), the rating fusion with cf = 0 and
        support = 0, its ``k`` best."""
        cos = self.text_index().cosines(text)
        if self.ranking_scoring() == "implicit":
            _, w = self._text_weights()  # a new item has no training interactions
            fused = fuse_similarity(
                np.zeros_like(cos), cos, np.zeros_like(cos), fusion="fixed", alpha=1.0 - w, beta=1.0
            )
            return top_positive(fused, self.ranking.n_neighbors)
        params = self.params_ or {
            name: float(getattr(self.text_config, name)) for name in BLEND_PARAMS
        }
        fused = fuse_similarity(
            np.zeros_like(cos),
            cos,
            np.zeros_like(cos),
            fusion=self.text_config.fusion,
            alpha=params["alpha"],
            beta=params["beta"],
            shift=params["shift"],
            power=params["power"],
            amplify=params["amplify"],
        )
        return top_positive(fused, self.config.k)

    def _text_scores(self, h: Histories) -> np.ndarray | None:
        """Item-based: ``sum_t value_t * sim_T(j, t)`` over the text rows t of each history."""
        if self.user_based or not h.text_rows:
            return None
        from llmcf.ranking.config import interaction_weights

        implicit = self.ranking_scoring() == "implicit"
        explicit = self.rating_scale_ is not None
        out = np.zeros((len(h), len(self.items_)))
        for t in h.text_rows:
            value = t.value
            if implicit:  # the history's weighting, as W_h of the known items
                value = float(
                    interaction_weights(
                        np.array([value]), self.ranking.weighting, explicit=explicit
                    )[0]
                )
            if value == 0:
                continue
            nb, sim = self.text_similarities(t.text)
            out[t.row, nb] += value * sim
        return out


@register("t-item-knn")
class TItemKNN(_TextKNN, ItemKNN):
    """T-ItemCF: item-based kNN over CF similarity fused with item-text similarity.

    Top-N fold-in: an item new to the model with a text (an event's ``item_text`` or
    ``PUT /v1/items/{id}``) adds ``value * sim_T(j, new)`` for its text neighbours j
    (:meth:`text_similarities`), the item's row had it been in the catalog without ratings.
    """

    user_based = False
    auto_scoring = "implicit"  # ranks through its T-ranking (ranking_neighbors)
    text_defaults: ClassVar[dict[str, Any]] = {
        "fusion": "fixed",
        "alpha": 0.75,
        "shift": 0.2,
        "amplify": 4.0,
        "bias_prior": 1.0,
    }


@register("t-user-knn")
class TUserKNN(_TextKNN, UserKNN):
    """T-UserCF: user-based kNN over CF similarity fused with user-text similarity."""

    user_based = True
    auto_scoring = "model"
    text_defaults: ClassVar[dict[str, Any]] = {
        "fusion": "fixed",
        "alpha": 0.85,
        "shift": 0.0,
        "user_repr": "residual",
        "bias_prior": 1.0,
    }
