"""T-EASE: EASE with item text as side information, after Jeunen, Van Balen & Goethals (2020),
"Closed-form models for collaborative filtering with side-information" (RecSys, late-breaking
results): the side information enters EASE's closed form as extra rows of X.

**Model.** With X the users x items positives of :mod:`llmcf.cf.ease` and T the d x items
matrix whose column j is the L2-normalised embedding ``e_j`` of item j's rendered text (a zero
column for an item without text), EASE is fitted on the stacked matrix ``[X; sqrt(beta') T]``::

    G = X^T X + beta' T^T T = X^T X + beta' E E^T        (E: items x d, rows e_j)
    P = (G + lam I)^-1,   B = I - P diag(1 / diag(P)),   score(u) = x_u B

so column j of B is the ridge regression of item j on every other item over the users *and*
the d text dimensions. ``beta' = beta * s`` with the scale ``s = mean_j (X^T X)_jj /
mean_j (E E^T)_jj = sum(X^2) / sum_j |e_j|^2``: ``beta`` (``text_beta``) is scale-free, 1
gives the text rows the weight of an average item's interactions. ``beta = 0`` is exactly
:class:`~llmcf.cf.ease.EASE` (the same arithmetic, identical lists).

**Cold items.** An item with text and no training positive has ``(X^T X)_j = 0``, so its column
of G is text alone: ``B[:, j]`` regresses its text on the other items' (and on the users, who
all have 0 for it), and users get a score for it from the items they liked that read like it.
Such columns use their own weight ``cold_text_beta`` (each column of B is its own regression,
so a per-column weight is still the closed form of that column); without text they stay empty
(no score, -inf) as in EASE. Scores of these items are flagged as scored through text.

**Choice without test data.** ``lam`` keeps EASE's own choice (``lam``, or ``tune=True``: the
lam grid on plain EASE). ``text_beta=None`` (default) picks ``beta`` from ``beta_grid`` (0
included, first of equal ones) by validation NDCG@10 on a seeded ``tune_fraction`` carve of
the training data (:func:`llmcf.eval.select.carve` and ``validation_ndcg``, the protocol of
``select``; the cold columns then use the same weight). The validation fits of a carve share
one inverse of ``X^T X + lam I`` (Woodbury's identity for the rank-d text term, see
:meth:`TEASE._probes`). A warm carve rarely puts a cold item in anyone's top 10, so it says little about the
cold columns: ``cold_text_beta=None`` picks their weight from ``beta_grid`` on a *cold-item
carve* (:func:`llmcf.eval.select.cold_carve`: a seeded 10% of the training items lose all
their interactions, beside ``tune_fraction`` of the others), by the NDCG@10 of each user's
ranking of the carve's cold items only (:func:`cold_validation_ndcg`, the protocol of
``llmcf evaluate --candidates cold`` on training data). That carve runs only when the training
data has items with text and no positive (otherwise the cold weight is ``beta``). The test
data are never seen. A data set without item text gives a warning and exactly the plain EASE
model.

**Memory.** Exact model (at most ``dense_max`` items): ``E E^T`` is added to G in row blocks;
with a cold weight different from ``beta`` a second Gram matrix is inverted for the cold
columns, so the fit peaks at about ``2 * n_items^2 * 8`` bytes. Bounded model (more items):
``E E^T`` is replaced by a sparse, diagonally dominant (so positive semi-definite) matrix over
each item's ``n_text_neighbors`` nearest text neighbours (:func:`text_gram_lists`), added to
the pruned Gram of :func:`llmcf.cf.ease.pruned_gram`: memory
``O(nnz(X) + n_items (k + m + n_text_neighbors))``, never n_items^2.

**Threads.** As in EASE, the dense products and factorisations run on one BLAS thread:
reproducible to the bit, and on a loaded 2-core machine a two-thread ``eigh`` of a 384 x 384
matrix took 4.6 s instead of 0.04 s.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from llmcf.cf.ease import (
    BLOCK_ENTRIES,
    EASE,
    OPTION_KEYS,
    TUNE_N,
    EASEConfig,
    blas_threads,
    ease_dense,
    gram_dense,
    pruned_gram,
    solve_lists,
    spd_inverse_inplace,
)
from llmcf.data.dataset import Dataset
from llmcf.errors import ConfigError
from llmcf.options import config_from_dict
from llmcf.ranking.path import Histories
from llmcf.registry import register
from llmcf.text.ann import ANN_METHODS, text_top_k
from llmcf.text.fused import _pair_cosines
from llmcf.text.profiles import ITEM_TEXT_MODES

if TYPE_CHECKING:
    import scipy.sparse as sp

    from llmcf.text.embedding_base import Embedder

#: the scale-free text weights ``beta`` tried on validation (0: plain EASE)
BETA_GRID = (0.0, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0)
#: share of the training items made cold in the carve that picks ``cold_text_beta``
COLD_ITEMS = 0.1


@dataclass(frozen=True)
class TEASEConfig(EASEConfig):
    """EASE's options (:class:`~llmcf.cf.ease.EASEConfig`) and the text options of T-EASE.

    embedder, template, item_text, profiles: which item texts are embedded and how (as for
    T-ItemKNN, :func:`llmcf.text.profiles.item_text_source`).
    text_beta: the scale-free weight of the text rows (None: chosen on a validation carve
    among ``beta_grid``); cold_text_beta: the same for the columns of items without a training
    positive (None: chosen on a cold-item carve). n_text_neighbors, ann: the text neighbours
    per item of the bounded model's sparse text term.
    """

    embedder: str = "minilm"
    template: str = "auto"
    item_text: str = "catalog"
    profiles: str | None = None
    text_beta: float | None = None
    cold_text_beta: float | None = None
    beta_grid: tuple[float, ...] = BETA_GRID
    n_text_neighbors: int = 50
    ann: str = "auto"

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("text_beta", "cold_text_beta"):
            value = getattr(self, name)
            if value is not None and not _non_negative(value):
                raise ConfigError(f"{name} must be a finite number >= 0 or None, got {value!r}")
        if isinstance(self.beta_grid, (str, bytes)) or not hasattr(self.beta_grid, "__iter__"):
            raise ConfigError(f"beta_grid must be a list of numbers, got {self.beta_grid!r}")
        grid = tuple(self.beta_grid)
        if not grid or not all(_non_negative(v) for v in grid):
            raise ConfigError(f"beta_grid must be numbers >= 0, got {list(grid)}")
        object.__setattr__(self, "beta_grid", tuple(float(v) for v in grid))
        if (
            isinstance(self.n_text_neighbors, bool)
            or not isinstance(self.n_text_neighbors, (int, np.integer))
            or self.n_text_neighbors < 1
        ):
            raise ConfigError(
                f"n_text_neighbors must be an integer >= 1, got {self.n_text_neighbors!r}"
            )
        if self.ann not in ANN_METHODS:
            raise ConfigError(f"unknown ann {self.ann!r}; valid: {', '.join(ANN_METHODS)}")
        if not isinstance(self.embedder, str) or not isinstance(self.template, str):
            raise ConfigError("embedder and template must be strings")
        if self.item_text not in ITEM_TEXT_MODES:
            raise ConfigError(
                f"unknown item_text {self.item_text!r}; valid: {', '.join(ITEM_TEXT_MODES)}"
            )

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TEASEConfig:
        return config_from_dict(cls, values, "T-EASE")


def _non_negative(value: Any) -> bool:
    return (
        not isinstance(value, bool)
        and isinstance(value, (int, float, np.integer, np.floating))
        and bool(np.isfinite(value))
        and bool(value >= 0)
    )


#: command-line option -> TEASEConfig field (every other option is ignored)
TEASE_OPTION_KEYS = {
    **OPTION_KEYS,
    **{f.name: f.name for f in fields(TEASEConfig)},
}


# ---------------------------------------------------------------------- text terms
def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """float64 C-order copy of ``vectors`` with each non-zero row scaled to norm 1."""
    E = np.array(vectors, dtype=np.float64, order="C")
    norms = np.linalg.norm(E, axis=1, keepdims=True)
    np.divide(E, norms, out=E, where=norms > 0)
    return E


def add_text_gram(G: np.ndarray, E: np.ndarray, weight: float) -> None:
    """``G += weight * E E^T`` in place (float64, in row blocks)."""
    n = G.shape[0]
    E64 = np.ascontiguousarray(E, dtype=np.float64)
    step = max(1, BLOCK_ENTRIES // max(n, 1))
    with blas_threads(1):  # module docstring, "Threads"
        for a in range(0, n, step):
            b = min(a + step, n)
            G[a:b] += weight * (E64[a:b] @ E64.T)


def text_gram_lists(E: np.ndarray, k: int, ann: str = "auto") -> sp.csr_matrix:
    """The bounded model's text term: a sparse, symmetric, diagonally dominant (so positive
    semi-definite) stand-in for ``E E^T`` with ``O(n k)`` entries.

    Off the diagonal: ``c_ij / r`` for each item and its ``k`` nearest text neighbours (the
    positive cosines ``c_ij = e_i . e_j``, float64; a pair is kept when either lists the
    other); on it: ``max(|e_j|^2, sum_i c_ij / r)``; ``r`` is the mean of ``sum_i c_ij`` over
    the items with text, so the diagonal averages about ``|e_j|^2 = 1`` like ``E E^T``'s.
    A truncated ``E E^T`` (the cosines with a unit diagonal) is not positive semi-definite:
    with a large weight its small systems were indefinite and the lists broke down (ml-100k
    u1, beta 3: NDCG@10 0.034). Diagonal dominance survives the pruning of the Gram lists
    and every principal submatrix, so each small system stays positive definite."""
    import scipy.sparse as sp

    n = E.shape[0]
    idx, _ = text_top_k(E, k, ann)
    rows = np.repeat(np.arange(n, dtype=np.int64), idx.shape[1])
    cols = idx.ravel().astype(np.int64)
    ok = (cols >= 0) & (cols != rows)
    rows, cols = rows[ok], cols[ok]
    pairs = np.unique(np.concatenate([rows * n + cols, cols * n + rows]))
    rows, cols = pairs // n, pairs % n
    vals = _pair_cosines(E, rows, cols)
    keep = vals > 0
    rows, cols, vals = rows[keep], cols[keep], vals[keep]
    diag = np.arange(n, dtype=np.int64)
    sq = _pair_cosines(E, diag, diag)
    sums = np.bincount(rows, weights=vals, minlength=n)
    has = sq > 0
    mean = float(sums[has].mean()) if has.any() and sums[has].mean() > 0 else 1.0
    out = sp.csr_matrix(
        (
            np.concatenate([vals / mean, np.maximum(sq, sums / mean)]),
            (np.concatenate([rows, diag]), np.concatenate([cols, diag])),
        ),
        shape=(n, n),
    )
    out.sum_duplicates()
    out.sort_indices()
    return out


def cold_validation_ndcg(model: Any, rest: Dataset, held: Dataset, n: int = TUNE_N) -> float:
    """Mean NDCG@``n`` of ``model`` (fitted on ``rest``) ranking only the carve's cold items
    (interactions in ``held``, none in ``rest``) for the users with a relevant held-out cold
    item: the protocol of ``llmcf evaluate --candidates cold`` on a carve of training data."""
    from llmcf.eval.metrics import ndcg_at_n, relevance_matrix
    from llmcf.eval.select import positive_threshold

    n_items = held.n_items
    cold = (np.bincount(held.item_idx, minlength=n_items) > 0) & (
        np.bincount(rest.item_idx, minlength=n_items) == 0
    )
    threshold = positive_threshold(held)
    keep = cold[held.item_idx]
    if threshold is not None:
        keep &= held.rating >= threshold
    rel = relevance_matrix(held.user_idx[keep], held.item_idx[keep], held.n_users, n_items)
    users = np.flatnonzero(np.diff(rel.indptr) > 0)
    if len(users) == 0:
        return float("nan")
    recs = model.recommend_many(users, n, candidates=np.flatnonzero(cold))
    return float(np.nanmean(ndcg_at_n(recs.items, rel[users], n)))


def _text_scale(X: sp.csr_matrix, E: np.ndarray) -> float:
    """``sum(X^2) / sum_j |e_j|^2`` (mean diagonal of X^T X over that of E E^T); 1 when X is
    empty."""
    mass = float(np.square(X.data).sum())
    return mass / float(np.einsum("ij,ij->", E, E)) if mass > 0 else 1.0


def _best(table: list[dict[str, Any]], name: str) -> float:
    """``name`` of the row with the best NDCG@TUNE_N (NaN counts -1; first of equal ones)."""
    scores = [np.nan_to_num(row[f"ndcg@{TUNE_N}"], nan=-1.0) for row in table]
    return float(table[int(np.argmax(scores))][name])


# ---------------------------------------------------------------------- the model
@register("t-ease")
class TEASE(EASE):
    """T-EASE: EASE whose Gram matrix gets the item-text rows ``beta' E E^T`` (module
    docstring). A ranker like EASE: ``predict`` gives the training mean, flagged."""

    config: TEASEConfig

    def __init__(
        self,
        config: TEASEConfig | None = None,
        *,
        embedder: str | Embedder | None = None,
        **kwargs: Any,
    ) -> None:
        # an Embedder object is used as is (tests, custom models); its name goes in the config
        self._embedder: Embedder | None = None
        if isinstance(embedder, str):
            kwargs["embedder"] = embedder
        elif embedder is not None:
            self._embedder = embedder
            if config is None:
                kwargs.setdefault("embedder", getattr(embedder, "name", type(embedder).__name__))
        if config is not None and kwargs:
            raise ConfigError("pass either a TEASEConfig or keyword options, not both")
        super().__init__(config or TEASEConfig.from_dict(kwargs))
        self.text_beta_: float | None = None
        self.cold_text_beta_: float | None = None
        self.text_scale_: float | None = None
        self.beta_results_: list[dict[str, Any]] = []
        self.cold_beta_results_: list[dict[str, Any]] = []
        #: item vectors handed to validation probes (they fit on carves of the same catalog)
        self._given_vectors: np.ndarray | None = None
        self._progress: bool | None = False
        #: validation fits of :meth:`_probes` leave B to it
        self._defer_closed_form = False

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> TEASE:
        """Build from command-line options; those that are not T-EASE options are ignored."""
        return cls(
            TEASEConfig.from_dict(
                {TEASE_OPTION_KEYS[k]: v for k, v in options.items() if k in TEASE_OPTION_KEYS}
            )
        )

    # ------------------------------------------------------------------ fit
    def fit(self, dataset: Dataset, *, progress: bool = False) -> TEASE:
        """Fit T-EASE on ``dataset``: lam as EASE chooses it, the text weights on validation
        carves of ``dataset`` (unless fixed), then the closed form; returns ``self``."""
        self._progress = None if progress else False
        self.text_beta_ = self.cold_text_beta_ = self.text_scale_ = None
        self.beta_results_, self.cold_beta_results_ = [], []
        self.item_text_provenance_: dict[str, Any] | None = None
        super().fit(dataset)
        return self

    def _item_vectors(self, dataset: Dataset) -> np.ndarray | None:
        """float32 (n_items, d) item-text embeddings; None when the catalog has no text field."""
        if self._given_vectors is not None:
            return self._given_vectors
        if self.config.template == "auto":
            from llmcf.text.render import resolve_template

            try:
                resolve_template(dataset.item_catalog.fields, "auto")
            except ConfigError:
                return None
        from llmcf.text.cache import embed_with_cache
        from llmcf.text.embedders import make_embedder
        from llmcf.text.profiles import item_text_source

        cfg = self.config
        try:
            source = item_text_source(dataset, cfg.item_text, cfg.profiles, template=cfg.template)
        except ConfigError as exc:
            raise ConfigError(f"{type(self).__name__} needs item text: {exc}") from None
        self.item_text_provenance_ = source.provenance
        if self._embedder is None:
            self._embedder = make_embedder(cfg.embedder)
        return embed_with_cache(
            self._embedder, source.texts, template_version=source.version, progress=self._progress
        )

    def _fit_closed_form(self, dataset: Dataset, X: sp.csr_matrix, lam: float) -> None:
        cfg = self.config
        if self._defer_closed_form:
            self.text_items_ = np.zeros(X.shape[1], dtype=bool)
            return
        vectors = self._item_vectors(dataset)
        has_text = (
            np.linalg.norm(vectors, axis=1) > 0
            if vectors is not None
            else np.zeros(X.shape[1], dtype=bool)
        )
        self.text_items_ = np.zeros(X.shape[1], dtype=bool)
        if not has_text.any():
            warnings.warn(
                f"{type(self).__name__}: no item has text; fitting the plain EASE model",
                stacklevel=4,
            )
            self.text_beta_ = self.cold_text_beta_ = 0.0
            self.text_scale_ = 0.0
            super()._fit_closed_form(dataset, X, lam)
            return
        assert vectors is not None
        if vectors.shape[0] != X.shape[1]:
            raise ConfigError(f"{vectors.shape[0]} item vectors for {X.shape[1]} items")
        E = unit_rows(vectors)
        scale = _text_scale(X, E)
        warm = self.item_known_.copy()
        cold = has_text & ~warm
        beta = (
            float(cfg.text_beta)
            if cfg.text_beta is not None
            else self._choose_beta(dataset, lam, vectors)
        )
        if cfg.cold_text_beta is not None:
            cold_beta = float(cfg.cold_text_beta)
        elif cold.any():
            cold_beta = self._choose_cold_beta(dataset, lam, vectors)
        else:
            cold_beta = beta
        self.text_beta_, self.cold_text_beta_, self.text_scale_ = beta, cold_beta, scale
        if beta == 0.0 and (cold_beta == 0.0 or not cold.any()):
            super()._fit_closed_form(dataset, X, lam)  # exactly EASE
            return
        if X.shape[1] <= cfg.dense_max:
            G = gram_dense(X)
            B_cold = None
            if cold.any() and cold_beta not in (0.0, beta):
                Gc = G.copy()
                add_text_gram(Gc, E, cold_beta * scale)
                B_cold = ease_dense(Gc, lam, overwrite=True)
                del Gc
            if beta > 0:
                add_text_gram(G, E, beta * scale)
            B = ease_dense(G, lam, overwrite=True)
            if cold.any():
                if cold_beta == 0.0:
                    B[:, cold] = 0.0
                elif B_cold is not None:
                    B[:, cold] = B_cold[:, cold]
            self.B_ = B
        else:
            S = text_gram_lists(E, cfg.n_text_neighbors, cfg.ann)

            def lists(weight: float) -> tuple[np.ndarray, np.ndarray]:
                gram = pruned_gram(
                    X, cfg.n_neighbors, cfg.gram_size, S * (weight * scale) if weight else None
                )
                return gram.nbr_idx, solve_lists(gram, lam, threads=cfg.threads)

            idx, weights = lists(beta)
            if cold.any():
                if cold_beta == 0.0:
                    idx[cold], weights[cold] = -1, 0.0
                elif cold_beta != beta:
                    c_idx, c_weights = lists(cold_beta)
                    idx[cold], weights[cold] = c_idx[cold], c_weights[cold]
            self.nbr_idx_, self.nbr_weight_ = idx, weights
        if cold_beta > 0:
            self.text_items_ = cold
            self.item_known_ = warm | cold

    # ------------------------------------------------------------------ choices
    def _probe(self, lam: float, beta: float, cold_beta: float, vectors: np.ndarray) -> TEASE:
        probe = TEASE(
            replace(self.config, tune=False, lam=lam, text_beta=beta, cold_text_beta=cold_beta),
            embedder=self._embedder,
        )
        probe._given_vectors = vectors
        probe.set_ranking(self.ranking)
        return probe

    def _probes(
        self, rest: Dataset, lam: float, vectors: np.ndarray
    ) -> Iterator[tuple[float, TEASE]]:
        """``(w, model)`` for each ``w`` of ``beta_grid``: T-EASE fitted on ``rest`` with both
        text weights ``w`` (one model object, updated in place between the yields).

        Exact model: one inverse ``K^-1 = (X^T X + lam I)^-1`` serves every weight, through
        Woodbury's identity for the rank-d text term::

            (K + w' E E^T)^-1 = K^-1 - U (I / w' + E^T U)^-1 U^T,    U = K^-1 E

        (with ``E^T U`` diagonalised once: one ``n^2 d`` product per weight instead of an
        ``n^3`` inverse; w = 0 is plain EASE with ease_dense's arithmetic); memory about
        ``2 n^2 * 8`` bytes. Bounded model: a fit per weight."""
        if rest.n_items > self.config.dense_max:
            for w in self.config.beta_grid:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    yield w, self._probe(lam, w, w, vectors).fit(rest)
            return
        probe = self._probe(lam, 0.0, 0.0, vectors)
        probe._defer_closed_form = True  # everything but B, which is formed here
        probe.fit(rest)
        X = probe._positives(probe.train_matrix())
        E = unit_rows(vectors)
        scale = _text_scale(X, E)
        warm = probe.item_known_.copy()
        cold = (np.linalg.norm(E, axis=1) > 0) & ~warm
        K = gram_dense(X)
        K.flat[:: K.shape[0] + 1] += lam
        K_inv = spd_inverse_inplace(K)
        with blas_threads(1):  # module docstring, "Threads"
            U = K_inv @ E
            # E^T U = Q diag(ev) Q^T, so (I / w' + E^T U)^-1 = Q diag(1 / (1 / w' + ev)) Q^T
            # and the update is W diag(.) W^T with W = U Q: one n^2 d product per weight
            ev, Q = np.linalg.eigh(E.T @ U)
            W = U @ Q
        for w in self.config.beta_grid:
            probe.B_ = None  # the previous weight's B goes before the next is formed
            if w == 0.0:  # plain EASE, the arithmetic of ease_dense
                P = K_inv.copy()
                probe.item_known_, probe.text_items_ = warm, np.zeros_like(warm)
            else:
                with blas_threads(1):
                    P = (W / (1.0 / (w * scale) + ev)) @ W.T
                np.subtract(K_inv, P, out=P)
                probe.item_known_, probe.text_items_ = warm | cold, cold
            P /= -np.diag(P).copy()
            np.fill_diagonal(P, 0.0)
            probe.B_ = P
            probe.text_beta_ = probe.cold_text_beta_ = w
            probe._derived = {}
            yield w, probe

    def _choose_beta(self, dataset: Dataset, lam: float, vectors: np.ndarray) -> float:
        """``beta`` of ``beta_grid`` with the best validation NDCG@10 on a carve of ``dataset``
        (:func:`llmcf.eval.select.carve` and ``validation_ndcg``, the protocol of
        :func:`llmcf.eval.select.select`; the cold columns with the same weight); 0 when the
        data are too few to carve."""
        from llmcf.eval.select import carve, validation_ndcg

        cfg = self.config
        try:
            rest, held = carve(dataset, cfg.tune_fraction, cfg.tune_seed)
        except ConfigError:
            return 0.0
        self.beta_results_ = [
            {"text_beta": w, f"ndcg@{TUNE_N}": validation_ndcg(probe, held, TUNE_N)}
            for w, probe in self._probes(rest, lam, vectors)
        ]
        return _best(self.beta_results_, "text_beta")

    def _choose_cold_beta(self, dataset: Dataset, lam: float, vectors: np.ndarray) -> float:
        """The cold columns' weight of ``beta_grid`` chosen on a cold-item carve of ``dataset``
        by :func:`cold_validation_ndcg` (which ranks cold items only, so it does not depend
        on ``beta``: the probes use one weight for all columns); 0 when the data are too few."""
        from llmcf.eval.select import cold_carve

        cfg = self.config
        try:
            rest, held = cold_carve(
                dataset, cold_items=COLD_ITEMS, fraction=cfg.tune_fraction, seed=cfg.tune_seed
            )
        except ConfigError:
            return 0.0
        self.cold_beta_results_ = [
            {"cold_text_beta": w, f"ndcg@{TUNE_N}": cold_validation_ndcg(probe, rest, held)}
            for w, probe in self._probes(rest, lam, vectors)
        ]
        return _best(self.cold_beta_results_, "cold_text_beta")

    # ------------------------------------------------------------------ scores
    def score_histories(self, h: Histories) -> tuple[np.ndarray, np.ndarray | None]:
        """EASE's ``x B``; items without a training positive that are scored through their
        text column are flagged as text-only."""
        scores, _ = super().score_histories(h)
        text = getattr(self, "text_items_", None)
        if text is None or not text.any():
            return scores, None
        return scores, text[None, :] & np.isfinite(scores)

    # ------------------------------------------------------------------ persistence
    def _state(self) -> dict[str, Any]:
        return {
            **super()._state(),
            "text_beta": self.text_beta_,
            "cold_text_beta": self.cold_text_beta_,
            "text_scale": self.text_scale_,
            "beta_results": self.beta_results_,
            "cold_beta_results": self.cold_beta_results_,
            "item_text": getattr(self, "item_text_provenance_", None),
        }

    def _arrays(self) -> dict[str, np.ndarray]:
        return {**super()._arrays(), "text_items": self.text_items_}

    def _restore(self, arrays: dict[str, np.ndarray], state: dict[str, Any]) -> None:
        self.text_items_ = arrays.pop("text_items")
        for name in ("text_beta", "cold_text_beta", "text_scale"):
            value = state.get(name)
            setattr(self, name + "_", None if value is None else float(value))
        self.beta_results_ = [dict(row) for row in state.get("beta_results") or []]
        self.cold_beta_results_ = [dict(row) for row in state.get("cold_beta_results") or []]
        self.item_text_provenance_ = state.get("item_text")
        super()._restore(arrays, state)
        n = len(self.items_)
        if self.text_items_.shape != (n,) or self.text_items_.dtype != bool:
            raise ValueError(f"text_items must be bool ({n},), got {self.text_items_.shape}")
        if (self.text_items_ & ~self.item_known_).any():
            raise ValueError("text_items must be known items")
