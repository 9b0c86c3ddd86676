"""Choosing tunables on validation carved from the training data only.

Every tunable a model chooses for itself (the text weight of the T-rankings, EASE's lambda,
the ranking defaults of :class:`~llmcf.ranking.config.RankingConfig`) is chosen here, on a
seeded carve of the data passed to ``fit``: the test data of an experiment never reaches
these functions.

Protocol: ``fraction`` of the training interactions (seeded) are held out; the held-out
interactions with a value >= :func:`positive_threshold` are each user's relevant items; a
candidate setting is fitted on the rest and scored by the mean NDCG@``n`` of its full
ranking over unseen items (the protocol of ``llmcf evaluate --task topn``).

Cold items (``cold_items`` > 0, :func:`cold_carve`): a seeded share of the items with
interactions additionally loses *all* its interactions to the held-out part, so a setting that
only matters for items without training interactions (the text weight they rank with) is
chosen on items that are cold in the fit, competing with the warm held-out items.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from llmcf.data.dataset import Dataset
from llmcf.errors import ConfigError
from llmcf.eval.metrics import ndcg_at_n, relevance_matrix


def positive_threshold(dataset: Dataset) -> float | None:
    """The value from which an interaction counts as relevant: 3/4 up the rating scale for
    explicit data (4 on a 1-5 scale), every interaction (None) for implicit data."""
    scale = dataset.rating_scale
    if scale is None:
        return None
    lo, hi = scale
    return float(lo + 0.75 * (hi - lo))


def carve(dataset: Dataset, fraction: float = 0.1, seed: int = 0) -> tuple[Dataset, Dataset]:
    """``(rest, held)``: a seeded random ``fraction`` of the interactions held out."""
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"validation fraction must be in (0, 1), got {fraction}")
    held = np.random.default_rng(seed).random(len(dataset)) < fraction
    if held.all() or not held.any():
        raise ConfigError(
            f"{len(dataset)} training interactions are too few for a {fraction:.0%} validation carve"
        )
    return dataset.subset(np.flatnonzero(~held)), dataset.subset(np.flatnonzero(held))


def cold_carve(
    dataset: Dataset, cold_items: float = 0.1, fraction: float = 0.1, seed: int = 0
) -> tuple[Dataset, Dataset]:
    """``(rest, held)``: every interaction of a seeded ``cold_items`` share of the items with
    interactions, and a seeded random ``fraction`` of the other interactions, held out."""
    if not 0.0 < cold_items < 1.0:
        raise ConfigError(f"cold item fraction must be in (0, 1), got {cold_items}")
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"validation fraction must be in (0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    items = np.flatnonzero(np.bincount(dataset.item_idx, minlength=dataset.n_items) > 0)
    n_cold = round(cold_items * len(items))
    if n_cold < 1 or n_cold >= len(items):
        raise ConfigError(
            f"{len(items)} items with interactions are too few for a {cold_items:.0%} "
            "cold-item carve"
        )
    cold = np.zeros(dataset.n_items, dtype=bool)
    cold[rng.choice(items, size=n_cold, replace=False)] = True
    held = cold[dataset.item_idx] | (rng.random(len(dataset)) < fraction)
    if held.all():
        raise ConfigError(f"{len(dataset)} training interactions are too few for a cold carve")
    return dataset.subset(np.flatnonzero(~held)), dataset.subset(np.flatnonzero(held))


def validation_ndcg(model: Any, held: Dataset, n: int = 10) -> float:
    """Mean NDCG@``n`` of ``model``'s lists for the users with a relevant held-out item."""
    threshold = positive_threshold(held)
    keep = np.ones(len(held), dtype=bool) if threshold is None else held.rating >= threshold
    rel = relevance_matrix(held.user_idx[keep], held.item_idx[keep], held.n_users, held.n_items)
    users = np.flatnonzero(np.diff(rel.indptr) > 0)
    if len(users) == 0:
        return float("nan")
    recs = model.recommend_many(users, n)
    return float(np.nanmean(ndcg_at_n(recs.items, rel[users], n)))


def select(
    settings: Sequence[dict[str, Any]],
    fit: Callable[[Dataset, dict[str, Any]], Any],
    train: Dataset,
    *,
    n: int = 10,
    fraction: float = 0.1,
    seed: int = 0,
    cold_items: float = 0.0,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The setting of ``settings`` with the best validation NDCG@``n`` (the first on ties)
    and the table of every setting's score. ``fit(data, setting)`` returns a fitted model.
    ``cold_items`` > 0 carves with :func:`cold_carve` (that share of the items goes cold)."""
    if not settings:
        raise ConfigError("nothing to select from")
    if cold_items > 0:
        rest, held = cold_carve(train, cold_items, fraction, seed)
    else:
        rest, held = carve(train, fraction, seed)
    table = []
    for setting in settings:
        score = validation_ndcg(fit(rest, dict(setting)), held, n)
        table.append({**setting, f"ndcg@{n}": score})
    key = f"ndcg@{n}"
    best = max(range(len(table)), key=lambda k: (np.nan_to_num(table[k][key], nan=-1.0), -k))
    return dict(settings[best]), table
