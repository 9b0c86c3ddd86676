"""Top-N recommendation for every model: vectorised sparse scoring, seen-item exclusion and a
popularity fallback that says so.

Rating predictors are not rankers: a rating similarity computed over co-rated entries gives a
pair of items with one common rater similarity 1, and ranking by predicted rating favours
obscure items. Top-N therefore scores with a *ranking similarity* on the interaction matrix,
the implicit-feedback item/user kNN of Deshpande & Karypis (2004) and Aiolli (2013):

W is the users x items weight matrix of the training interactions (:func:`interaction_weights`:
``rating`` weights for explicit feedback, ``log1p`` of counts/quantities for implicit, or
``binary``). Between two columns (items) a, b of W (rows for users), over the **full** vectors::

    sim(a, b) = <W_a, W_b> / (||W_a||^(2 alpha) * ||W_b||^(2 (1 - alpha)) + shrinkage)

(alpha = 0.5: cosine; alpha < 0.5 favours popular neighbours b; shrinkage damps pairs with
little support). Each row keeps its ``n_neighbors`` largest positive similarities, S_k.

=============  ===============================================================================
ItemKNN        score(u, j) = sum_{i in I_u} W[u, i] * S_k[j, i]          (ranking="implicit")
UserKNN        score(u, j) = sum_{v in N_k(u)} S_k[u, v] * W[v, j]       (ranking="implicit")
kNN "model"    the same sums with the model's own rating similarity and k, R instead of W
BaselineOnly   score(u, j) = b_j  (the same order as mu + b_u + b_i)
GlobalMean     popularity (number of interactions)
other models   their ``_score_block`` (e.g. text-fused kNN)
=============  ===============================================================================

``RankingConfig(scoring="auto")`` uses "implicit" for the plain ``ItemKNN``/``UserKNN`` and the
model's own scores for every other class. Set it per model with ``model.set_ranking(...)``.

A user unknown to the training data, or whose scores are all zero, gets the most popular
unseen items, flagged as a fallback (``was_fallback``, ``reason``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from llmcf.errors import ConfigError

if TYPE_CHECKING:
    import scipy.sparse as sp


@dataclass
class ItemList:
    """A ranked list for one user: item indices, external ids and scores (best first)."""

    item_idx: np.ndarray
    item_ids: np.ndarray
    scores: np.ndarray
    was_fallback: bool = False
    reason: str | None = None

    def __len__(self) -> int:
        return int(self.item_idx.shape[0])


@dataclass
class Recommendations:
    """Top-N lists for a batch of users: ``items`` (n_users, n) int32, -1 padded; ``scores``;
    ``was_fallback`` (n_users,) bool."""

    items: np.ndarray
    scores: np.ndarray
    was_fallback: np.ndarray


def top_n_rows(scores: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of the ``n`` largest finite entries of each row, best first.

    Ties are broken by lower column index. Rows with fewer than ``n`` finite entries are padded
    with -1 / -inf.
    """
    n_rows, n_cols = scores.shape
    m = min(n, n_cols)
    if m == 0:
        return np.full((n_rows, n), -1, np.int32), np.full((n_rows, n), -np.inf)
    part = (
        np.argpartition(-scores, m - 1, axis=1)[:, :m]
        if m < n_cols
        else np.tile(np.arange(n_cols), (n_rows, 1))
    )
    vals = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -vals), axis=1)
    idx = np.take_along_axis(part, order, axis=1)
    vals = np.take_along_axis(vals, order, axis=1)
    idx = np.where(np.isfinite(vals), idx, -1).astype(np.int32)
    if m < n:
        idx = np.pad(idx, ((0, 0), (0, n - m)), constant_values=-1)
        vals = np.pad(vals, ((0, 0), (0, n - m)), constant_values=-np.inf)
    return idx, vals


RANKING_SCORINGS = ("auto", "implicit", "model")
WEIGHTINGS = ("auto", "rating", "log1p", "binary")


@dataclass(frozen=True)
class RankingConfig:
    """How a model scores items for top-N (see the module docstring for the formulas).

    scoring: ``"auto"`` (implicit for plain ItemKNN/UserKNN, else the model's scores),
        ``"implicit"`` (ranking similarity on W) or ``"model"`` (the model's own similarity).
    weighting: W from the training values: ``"rating"`` (raw values), ``"log1p"``
        (log(1 + value), for counts and quantities), ``"binary"`` (1 per interaction) or
        ``"auto"`` (rating for explicit data with a rating scale, log1p otherwise).
    n_neighbors: neighbours kept per row of S_k; alpha, shrinkage: the similarity's exponents
        and damping term.
    """

    scoring: Literal["auto", "implicit", "model"] = "auto"
    weighting: Literal["auto", "rating", "log1p", "binary"] = "auto"
    n_neighbors: int = 100
    alpha: float = 0.3  # chosen on ml-100k u1 (0.3: NDCG@10 .446, 0.5: .410)
    shrinkage: float = 10.0
    user_neighbors: int = 40

    def __post_init__(self) -> None:
        if self.scoring not in RANKING_SCORINGS:
            raise ConfigError(
                f"unknown ranking scoring {self.scoring!r}; valid: {', '.join(RANKING_SCORINGS)}"
            )
        if self.weighting not in WEIGHTINGS:
            raise ConfigError(
                f"unknown weighting {self.weighting!r}; valid: {', '.join(WEIGHTINGS)}"
            )
        if self.n_neighbors < 1 or self.user_neighbors < 1:
            raise ConfigError(
                f"n_neighbors and user_neighbors must be >= 1, got {self.n_neighbors}, "
                f"{self.user_neighbors}"
            )
        if not 0.0 <= self.alpha <= 1.0:
            raise ConfigError(f"alpha must be in [0, 1], got {self.alpha}")
        if self.shrinkage < 0:
            raise ConfigError(f"shrinkage must be >= 0, got {self.shrinkage}")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RankingConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ConfigError(
                f"unknown ranking option(s) {sorted(unknown)}; valid: {', '.join(sorted(known))}"
            )
        return cls(**values)


def interaction_weights(
    values: np.ndarray, weighting: str = "auto", *, explicit: bool = True
) -> np.ndarray:
    """Per-interaction weights w >= 0 for the ranking matrix W.

    ``rating``: w = value; ``log1p``: w = log(1 + max(value, 0)); ``binary``: w = 1;
    ``auto``: ``rating`` when ``explicit`` else ``log1p``. Non-finite values raise.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.size and not np.isfinite(v).all():
        bad = v[~np.isfinite(v)][0]
        raise ConfigError(f"interaction values must be finite, got {bad}")
    if weighting == "auto":
        weighting = "rating" if explicit else "log1p"
    if weighting == "rating":
        return np.maximum(v, 0.0)
    if weighting == "log1p":
        return np.log1p(np.maximum(v, 0.0))
    if weighting == "binary":
        return np.ones_like(v)
    raise ConfigError(f"unknown weighting {weighting!r}; valid: {', '.join(WEIGHTINGS)}")


def cosine_neighbors(
    rows: sp.csr_matrix,
    n_neighbors: int,
    *,
    alpha: float = 0.5,
    shrinkage: float = 0.0,
    block_size: int = 1024,
) -> sp.csr_matrix:
    """Top-``n_neighbors`` full-vector (asymmetric) cosine between the rows of ``rows``.

    ``sim(a, b) = <x_a, x_b> / (||x_a||^(2 alpha) ||x_b||^(2 (1 - alpha)) + shrinkage)``, the
    diagonal excluded and only positive values kept. Computed in blocks of ``block_size``
    rows (memory block_size x n_rows); returns a CSR (n_rows, n_rows) with at most
    ``n_neighbors`` entries per row.
    """
    import scipy.sparse as sp

    X = sp.csr_matrix(rows, dtype=np.float64)
    n = X.shape[0]
    sq = np.asarray(X.multiply(X).sum(axis=1)).ravel()
    left = np.power(sq, alpha)
    right = np.power(sq, 1.0 - alpha)
    XT = X.T.tocsc()
    k = min(n_neighbors, max(n - 1, 1))
    all_idx, all_val = [], []
    for start in range(0, n, block_size):
        stop = min(start + block_size, n)
        gram = np.asarray((X[start:stop] @ XT).todense())
        with np.errstate(divide="ignore", invalid="ignore"):
            sims = gram / (left[start:stop, None] * right[None, :] + shrinkage)
        sims[~np.isfinite(sims) | (sims <= 0)] = -np.inf
        sims[np.arange(stop - start), np.arange(start, stop)] = -np.inf
        idx, val = top_n_rows(sims, k)
        all_idx.append(idx)
        all_val.append(val)
    idx = np.concatenate(all_idx) if all_idx else np.zeros((0, k), np.int32)
    val = np.concatenate(all_val) if all_val else np.zeros((0, k))
    keep = idx >= 0
    row_of = np.repeat(np.arange(n), keep.sum(axis=1))
    return sp.csr_matrix((val[keep], (row_of, idx[keep])), shape=(n, n))


class TopNMixin:
    """Adds ``recommend``, ``recommend_many`` and ``similar_items`` to a fitted model.

    Subclasses implement ``_score_block(users) -> (len(users), n_items) float64``.
    """

    users_: Any
    items_: Any
    user_idx_: np.ndarray
    item_idx_: np.ndarray
    rating_: np.ndarray

    def _cached(self, name: str, key: tuple[Any, ...]) -> Any:
        """A derived structure cached on the model, invalidated by a refit (new arrays)."""
        entry = getattr(self, name, None)
        full_key = (id(self.rating_), id(self.item_idx_), *key)
        if entry is not None and entry[0] == full_key:
            return entry[1]
        return None

    def _store(self, name: str, key: tuple[Any, ...], value: Any) -> Any:
        setattr(self, name, ((id(self.rating_), id(self.item_idx_), *key), value))
        return value

    def _train_matrix(self) -> sp.csr_matrix:
        """CSR (n_users, n_items) of the training values (duplicates summed)."""
        cached = self._cached("_train_csr_cache", ())
        if cached is None:
            import scipy.sparse as sp

            cached = sp.csr_matrix(
                (self.rating_, (self.user_idx_, self.item_idx_)),
                shape=(len(self.users_), len(self.items_)),  # type: ignore[arg-type]
            )
            self._store("_train_csr_cache", (), cached)
        return cached

    def _popularity(self) -> np.ndarray:
        """Number of training interactions per item, float64 (n_items,)."""
        cached = self._cached("_pop_cache", ())
        if cached is None:
            cached = np.bincount(self.item_idx_, minlength=len(self.items_)).astype(np.float64)  # type: ignore[arg-type]
            self._store("_pop_cache", (), cached)
        return cached

    # ------------------------------------------------------------------ ranking scores
    @property
    def ranking(self) -> RankingConfig:
        """The top-N scoring configuration (:class:`RankingConfig`)."""
        return getattr(self, "_ranking_config", None) or RankingConfig()

    def set_ranking(self, config: RankingConfig | None = None, **options: Any) -> Any:
        """Set how top-N lists are scored; returns ``self``. Options as :class:`RankingConfig`."""
        if config is not None and options:
            raise ConfigError("pass either a RankingConfig or keyword options, not both")
        self._ranking_config = config or RankingConfig.from_dict(options)
        return self

    def ranking_scoring(self) -> str:
        """The scoring actually used: ``"implicit"`` or ``"model"``."""
        scoring = self.ranking.scoring
        if scoring == "auto":
            plain_knn = type(self).__module__ == "llmcf.cf.knn" and hasattr(self, "user_based")
            return "implicit" if plain_knn else "model"
        if scoring == "implicit" and not hasattr(self, "user_based"):
            return "model"
        return scoring

    def _weight_matrix(self) -> sp.csr_matrix:
        """W: CSR (n_users, n_items) of :func:`interaction_weights` of the training values."""
        cfg = self.ranking
        cached = self._cached("_weights_cache", (cfg.weighting,))
        if cached is None:
            import scipy.sparse as sp

            explicit = getattr(self, "rating_scale_", None) is not None
            w = interaction_weights(self.rating_, cfg.weighting, explicit=explicit)
            cached = sp.csr_matrix(
                (w, (self.user_idx_, self.item_idx_)),
                shape=(len(self.users_), len(self.items_)),  # type: ignore[arg-type]
            )
            cached.eliminate_zeros()
            self._store("_weights_cache", (cfg.weighting,), cached)
        return cached

    def ranking_neighbors(self) -> sp.csr_matrix:
        """S_k of the implicit ranking similarity: items x items (item-based) or users x users."""
        cfg = self.ranking
        user_based = bool(getattr(self, "user_based", False))
        key = (cfg, user_based)
        cached = self._cached("_rank_nbr_cache", key)
        if cached is None:
            W = self._weight_matrix()
            rows = W if user_based else W.T.tocsr()
            k = cfg.user_neighbors if user_based else cfg.n_neighbors
            cached = cosine_neighbors(rows, k, alpha=cfg.alpha, shrinkage=cfg.shrinkage)
            self._store("_rank_nbr_cache", key, cached)
        return cached

    def _ranking_scores(self, users: np.ndarray) -> np.ndarray:
        """(len(users), n_items) float64 top-N scores (formulas in the module docstring)."""
        if self.ranking_scoring() != "implicit":
            return self._score_block(users)
        W = self._weight_matrix()
        S = self.ranking_neighbors()
        if getattr(self, "user_based", False):
            return np.asarray((S[users] @ W).todense())
        return np.asarray((W[users] @ S.T).todense())

    def _score_block(self, users: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def score_all(self, user_idx: np.ndarray) -> np.ndarray:
        """(len(user_idx), n_items) ranking scores before seen-item exclusion; unknown users
        (-1) and users without any positive score get the popularity scores."""
        self._check_fitted()  # type: ignore[attr-defined]
        users = np.asarray(user_idx, dtype=np.int64).ravel()
        known = (users >= 0) & (users < len(self.users_))  # type: ignore[arg-type]
        scores = self._ranking_scores(np.where(known, users, 0))
        scores[~known] = 0.0
        empty = ~(scores > 0).any(axis=1) | ~known
        scores[empty] = self._popularity()
        return scores

    def recommend_many(
        self,
        user_idx: np.ndarray,
        n: int = 10,
        *,
        exclude_seen: bool = True,
        candidates: np.ndarray | None = None,
        block_size: int = 2048,
    ) -> Recommendations:
        """Top-``n`` items for each user in ``user_idx`` (index -1 = unknown user).

        Scoring runs in blocks of ``block_size`` users (memory block_size x n_items).
        ``candidates`` optionally restricts the items that may be recommended.
        """
        self._check_fitted()  # type: ignore[attr-defined]
        if n < 1:
            raise ConfigError(f"n must be >= 1, got {n}")
        users = np.asarray(user_idx, dtype=np.int64).ravel()
        n_users, n_items = len(self.users_), len(self.items_)  # type: ignore[arg-type]
        known = (users >= 0) & (users < n_users)
        R = self._train_matrix()
        pop = self._popularity()
        allowed = None
        if candidates is not None:
            allowed = np.zeros(n_items, dtype=bool)
            allowed[np.asarray(candidates, dtype=np.int64)] = True
        out_items = np.full((len(users), n), -1, np.int32)
        out_scores = np.full((len(users), n), -np.inf)
        fallback = np.zeros(len(users), dtype=bool)
        for start in range(0, len(users), block_size):
            block = users[start : start + block_size]
            kb = known[start : start + block_size]
            safe = np.where(kb, block, 0)
            scores = self._ranking_scores(safe)
            scores[~kb] = 0.0
            empty = ~(scores > 0).any(axis=1) | ~kb
            # fallback rows: popularity; keep a tiny popularity tie-break on all rows
            scores[empty] = pop
            fallback[start : start + block_size] = empty
            if allowed is not None:
                scores[:, ~allowed] = -np.inf
            if exclude_seen:
                sub = R[safe[kb]]
                rows = np.flatnonzero(kb)
                row_of = np.repeat(rows, np.diff(sub.indptr))
                scores[row_of, sub.indices] = -np.inf
            idx, vals = top_n_rows(scores, n)
            out_items[start : start + len(block)] = idx
            out_scores[start : start + len(block)] = vals
        return Recommendations(out_items, out_scores, fallback)

    def recommend(self, user_idx: int, n: int = 10, *, exclude_seen: bool = True) -> ItemList:
        """Top-``n`` for one user (a batch of one); -1 means an unknown user."""
        recs = self.recommend_many(np.array([user_idx]), n, exclude_seen=exclude_seen)
        keep = recs.items[0] >= 0
        items = recs.items[0][keep]
        fb = bool(recs.was_fallback[0])
        reason = None
        if fb:
            reason = (
                "unknown user: most popular items"
                if user_idx < 0
                else "no neighbour scores: most popular items"
            )
        return ItemList(items, self.items_.external(items), recs.scores[0][keep], fb, reason)  # type: ignore[attr-defined]

    def similar_items(self, item_idx: int, n: int = 10) -> ItemList:
        """The ``n`` items most similar to ``item_idx`` (item-item similarity of the model)."""
        self._check_fitted()  # type: ignore[attr-defined]
        n_items = len(self.items_)  # type: ignore[arg-type]
        if not 0 <= item_idx < n_items:
            raise ConfigError(f"item index {item_idx} out of range 0..{n_items - 1}")
        idx, sims = self._item_neighbors(item_idx, n)
        return ItemList(idx, self.items_.external(idx), sims)  # type: ignore[attr-defined]

    def _item_neighbors(self, item_idx: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Default: cosine between item columns of the training matrix."""
        R = self._train_matrix().tocsc()
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
