"""How a model turns interactions into top-N scores: the ranking configuration, the weight
matrix W and the implicit ranking similarity.

Rating predictors are not rankers: a rating similarity computed over co-rated entries gives a
pair of items with one common rater similarity 1, and ranking by predicted rating favours
obscure items. Plain kNN therefore ranks with a *ranking similarity* on the interaction
matrix, the implicit-feedback item/user kNN of Deshpande & Karypis (2004) and Aiolli (2013).

W is the users x items weight matrix: the training values summed per (user, item) (the
model's *units*: ratings for explicit feedback, counts or quantities for implicit), then
weighted by :func:`interaction_weights` (``rating``: as is, ``log1p``, ``binary``). Between two
columns (items) a, b of W, over the **full** vectors::

    sim(a, b) = <W_a, W_b> / (||W_a||^(2 alpha) * ||W_b||^(2 (1 - alpha)) + shrinkage)

(alpha = 0.5: cosine; alpha < 0.5 favours popular neighbours b; shrinkage damps pairs with
little support). Each row keeps its ``n_neighbors`` largest positive similarities, S_k.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from llmcf.errors import ConfigError
from llmcf.options import config_from_dict
from llmcf.ranking.lists import top_n_rows

if TYPE_CHECKING:
    import scipy.sparse as sp

RANKING_SCORINGS = ("auto", "implicit", "model")
WEIGHTINGS = ("auto", "rating", "log1p", "binary")


@dataclass(frozen=True)
class RankingConfig:
    """How a model scores items for top-N (formulas in :mod:`llmcf.ranking`).

    scoring: ``"auto"`` (implicit for plain ItemKNN/UserKNN, else the model's scores),
        ``"implicit"`` (ranking similarity on W) or ``"model"`` (the model's own similarity).
    weighting: W from the summed training values: ``"rating"`` (as is), ``"log1p"``
        (log(1 + value), for counts and quantities), ``"binary"`` (1 per pair) or ``"auto"``
        (rating for explicit data with a rating scale, log1p otherwise).
    n_neighbors: neighbours kept per item of S_k; user_neighbors: per user; alpha, shrinkage:
        the similarity's exponent and damping term.
    """

    scoring: Literal["auto", "implicit", "model"] = "auto"
    weighting: Literal["auto", "rating", "log1p", "binary"] = "auto"
    # n_neighbors, alpha and shrinkage: the best mean validation NDCG@10 over 10% carves of
    # the ml-100k u1..u5 *training* folds (benchmarks/ranking_validation.py, docs/experiments.md);
    # no test rating is read. (The former alpha=0.3, shrinkage=10, n_neighbors=100 had been
    # picked on fold u1's test ratings.)
    n_neighbors: int = 50
    alpha: float = 0.2
    shrinkage: float = 50.0
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
        if not self.shrinkage >= 0:
            raise ConfigError(f"shrinkage must be >= 0, got {self.shrinkage}")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RankingConfig:
        return config_from_dict(cls, values, "ranking")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def interaction_weights(
    values: np.ndarray, weighting: str = "auto", *, explicit: bool = True
) -> np.ndarray:
    """Weights w >= 0 of W from summed interaction values.

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
        return (v != 0).astype(np.float64)
    raise ConfigError(f"unknown weighting {weighting!r}; valid: {', '.join(WEIGHTINGS)}")


def weigh_rows(values: sp.csr_matrix, weighting: str, *, explicit: bool) -> sp.csr_matrix:
    """``values`` (rows of summed interaction values) with :func:`interaction_weights` applied
    entry-wise, explicit zeros removed."""
    out = values.copy()
    out.data = interaction_weights(out.data, weighting, explicit=explicit)
    out.eliminate_zeros()
    return out


def neighbour_rows(
    queries: sp.csr_matrix,
    rows: sp.csr_matrix,
    n_neighbors: int,
    *,
    alpha: float = 0.5,
    shrinkage: float = 0.0,
    exclude: np.ndarray | None = None,
    rows_sq: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``n_neighbors`` full-vector (asymmetric) cosine of each query row against ``rows``.

    ``sim(q, b) = <q, x_b> / (||q||^(2 alpha) ||x_b||^(2 (1 - alpha)) + shrinkage)``, only
    positive values kept; ``exclude[t]`` (a row index, -1 for none) is left out for query t
    (a row's similarity to itself). Returns ``(idx int32, sim float64)`` of shape
    (n_queries, n_neighbors), -1 / -inf padded. Memory: n_queries x n_rows.
    """
    q_sq = np.asarray(queries.multiply(queries).sum(axis=1)).ravel()
    if rows_sq is None:
        rows_sq = np.asarray(rows.multiply(rows).sum(axis=1)).ravel()
    # rows @ queries.T converts the (small) queries to CSR, not the whole rows matrix (8 ms a
    # call for ml-100k's users); each entry still sums over the shared columns in ascending
    # order, so the values are the same bit for bit
    gram = np.asarray((rows @ queries.T).T.todense())
    with np.errstate(divide="ignore", invalid="ignore"):
        sims = gram / (
            np.power(q_sq, alpha)[:, None] * np.power(rows_sq, 1.0 - alpha)[None, :] + shrinkage
        )
    sims[~np.isfinite(sims) | (sims <= 0)] = -np.inf
    if exclude is not None:
        own = np.flatnonzero(exclude >= 0)
        sims[own, exclude[own]] = -np.inf
    k = min(n_neighbors, max(rows.shape[0] - 1, 1))
    return top_n_rows(sims, k)


def cosine_neighbors(
    rows: sp.csr_matrix,
    n_neighbors: int,
    *,
    alpha: float = 0.5,
    shrinkage: float = 0.0,
    block_size: int = 1024,
) -> sp.csr_matrix:
    """S_k: :func:`neighbour_rows` of every row of ``rows`` against all rows (itself
    excluded), in blocks of ``block_size`` rows (memory block_size x n_rows); CSR
    (n_rows, n_rows) with at most ``n_neighbors`` entries per row."""
    import scipy.sparse as sp

    X = sp.csr_matrix(rows, dtype=np.float64)
    n = X.shape[0]
    sq = np.asarray(X.multiply(X).sum(axis=1)).ravel()
    all_idx, all_val = [], []
    for start in range(0, n, block_size):
        stop = min(start + block_size, n)
        idx, val = neighbour_rows(
            X[start:stop],
            X,
            n_neighbors,
            alpha=alpha,
            shrinkage=shrinkage,
            exclude=np.arange(start, stop),
            rows_sq=sq,
        )
        all_idx.append(idx)
        all_val.append(val)
    k = min(n_neighbors, max(n - 1, 1))
    idx = np.concatenate(all_idx) if all_idx else np.zeros((0, k), np.int32)
    val = np.concatenate(all_val) if all_val else np.zeros((0, k))
    return lists_to_csr(idx, val, n)


def lists_to_csr(idx: np.ndarray, val: np.ndarray, n_cols: int) -> sp.csr_matrix:
    """CSR (len(idx), n_cols) of -1 padded neighbour lists."""
    import scipy.sparse as sp

    keep = idx >= 0
    row_of = np.repeat(np.arange(idx.shape[0]), keep.sum(axis=1))
    return sp.csr_matrix((val[keep], (row_of, idx[keep])), shape=(idx.shape[0], n_cols))
