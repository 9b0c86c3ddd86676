"""Train/test splitters over a :class:`~llmcf.data.dataset.Dataset`.

Every splitter returns a list of :class:`Fold`: index arrays into the dataset's interactions
(``dataset.subset(fold.train)``). In every fold ``train`` and ``test`` are disjoint, and both
are sorted ascending, i.e. in the original input order. Splitters are vectorised and, for a
given ``seed``, deterministic.

:func:`parse_split` turns a spec string into a splitter:

=======================  ====================================================================
``kfold:K``              K shuffled folds; every interaction is in exactly one test fold
``random:F``             one fold; a random fraction F of the interactions is the test set
``temporal:F``           one fold; the latest fraction F of the interactions by timestamp is
                         the test set (a global time cutoff; needs timestamps)
``coldstart[:M]``        one fold; 20% of the users and 20% of the items are "cold" and keep at
                         most M (default 3) interactions each in train (:func:`coldstart_split`)
``coldstart-items[:F]``  one fold of strictly cold *items*: ALL interactions of a seeded
                         fraction F (0 < F < 1, default 0.2) of the items are the test set
                         (:func:`coldstart_items_split`)
``loo``                  one fold; each user's last interaction is the test set (leave one out)
``holdout:F``            one fold; a random fraction F of each user's interactions is the test
                         set
=======================  ====================================================================

``coldstart`` mixes cold users and items that keep a few training interactions;
``coldstart-items`` is the item cold-start protocol: the cold items have no training
interaction at all, while the training data keeps every other interaction (every user
keeps their warm interactions; a user who only ever met cold items has an empty training
row) and, as in every split, the dataset's user and item vocabularies and catalogs are kept
whole, so a text model can still score the cold items from their text (the kNN models give
them no score). ``llmcf evaluate --task topn --candidates cold`` ranks
exactly these items.

The MovieLens file splits ``u1``..``u5``, ``u1-u5``, ``ua`` and ``ub`` are read from files by
the data loaders, not computed here: :func:`is_file_split` recognises them and
:func:`parse_split` rejects them with a :class:`~llmcf.errors.ConfigError`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from llmcf.data.dataset import Dataset
from llmcf.errors import ConfigError, DataError

__all__ = [
    "SPLIT_FORMS",
    "Fold",
    "Splitter",
    "coldstart_items_split",
    "coldstart_split",
    "holdout_split",
    "is_file_split",
    "kfold_split",
    "leave_one_out_split",
    "parse_split",
    "random_split",
    "temporal_split",
]

SPLIT_FORMS = (
    "kfold:K (K >= 2)",
    "random:F (0 < F < 1)",
    "temporal:F (0 < F < 1)",
    "coldstart or coldstart:M (M >= 0)",
    "coldstart-items or coldstart-items:F (0 < F < 1)",
    "loo",
    "holdout:F (0 < F < 1)",
    "u1..u5, u1-u5, ua, ub (MovieLens 100K's predefined files)",
)


@dataclass(frozen=True, eq=False)
class Fold:
    """One train/test split: int64 indices into a dataset's interactions, disjoint, ascending.

    Attributes:
        name: a label for reports (``"fold1"``, ``"loo"``, ...).
        train: indices of the training interactions, shape ``(n_train,)``, in input order.
        test: indices of the test interactions, shape ``(n_test,)``, in input order.
    """

    name: str
    train: np.ndarray
    test: np.ndarray


@dataclass(frozen=True)
class Splitter:
    """A splitter made by :func:`parse_split`: call it on a dataset to get its folds."""

    spec: str
    seed: int
    split: Callable[[Dataset], list[Fold]] = field(repr=False, compare=False)

    def __call__(self, dataset: Dataset) -> list[Fold]:
        return self.split(dataset)


# ---------------------------------------------------------------------- helpers
def _fold(name: str, n: int, test_mask: np.ndarray) -> Fold:
    assert test_mask.shape == (n,)
    return Fold(name, np.flatnonzero(~test_mask), np.flatnonzero(test_mask))


def _mask(n: int, test: np.ndarray) -> np.ndarray:
    mask = np.zeros(n, dtype=bool)
    mask[test] = True
    return mask


def _check_fraction(name: str, fraction: float) -> float:
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"{name}: the test fraction must be in (0, 1), got {fraction!r}")
    return float(fraction)


def _rank_within_groups(group: np.ndarray, order_key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sort interactions by ``(group, order_key, input position)``.

    Returns ``order`` (the sorting permutation) and ``rank`` (position of ``order[j]`` within
    its group, 0-based).
    """
    n = group.shape[0]
    order = np.lexsort((np.arange(n), order_key, group))
    sorted_group = group[order]
    starts = np.ones(n, dtype=bool)
    starts[1:] = sorted_group[1:] != sorted_group[:-1]
    start_pos = np.maximum.accumulate(np.where(starts, np.arange(n), 0))
    return order, np.arange(n) - start_pos


# ---------------------------------------------------------------------- splitters
def kfold_split(dataset: Dataset, k: int = 5, seed: int = 0) -> list[Fold]:
    """K folds over shuffled interactions: fold ``i`` tests the ``i``-th of ``k`` near-equal
    chunks of a seeded permutation; each interaction is in exactly one test set.

    Raises:
        DataError: the dataset has fewer than ``k`` interactions.
    """
    if k < 2:
        raise ConfigError(f"kfold: K must be >= 2, got {k}")
    n = len(dataset)
    if n < k:
        raise DataError(f"kfold:{k} needs at least {k} interactions, the dataset has {n}")
    perm = np.random.default_rng(seed).permutation(n)
    return [
        _fold(f"fold{i + 1}", n, _mask(n, chunk)) for i, chunk in enumerate(np.array_split(perm, k))
    ]


def random_split(dataset: Dataset, test_fraction: float = 0.2, seed: int = 0) -> list[Fold]:
    """One fold whose test set is ``round(test_fraction * n)`` interactions drawn at random."""
    _check_fraction("random", test_fraction)
    n = len(dataset)
    n_test = round(test_fraction * n)
    perm = np.random.default_rng(seed).permutation(n)
    return [_fold("random", n, _mask(n, perm[:n_test]))]


def temporal_split(dataset: Dataset, test_fraction: float = 0.2) -> list[Fold]:
    """One fold with a global time cutoff: the ``round(test_fraction * n)`` latest interactions
    by timestamp are the test set (equal timestamps ordered by input position, later = newer).

    So ``max(timestamp[train]) <= min(timestamp[test])``.

    Raises:
        DataError: the dataset has no timestamps.
    """
    _check_fraction("temporal", test_fraction)
    if dataset.timestamp is None:
        raise DataError(f"temporal split needs timestamps; dataset {dataset.name!r} has none")
    n = len(dataset)
    n_test = round(test_fraction * n)
    order = np.lexsort((np.arange(n), dataset.timestamp))
    return [_fold("temporal", n, _mask(n, order[n - n_test :]))]


def coldstart_split(
    dataset: Dataset, max_train: int = 3, seed: int = 0, cold_fraction: float = 0.2
) -> list[Fold]:
    """One fold simulating cold users and cold items.

    1. Among the users with at least one interaction, ``round(cold_fraction * n)`` (at least 1)
       are drawn at random as cold; likewise for the items.
    2. Each cold user keeps ``max_train`` of their interactions (chosen at random; all of them
       if they have fewer) for train; their other interactions go to test. Likewise, each cold
       item keeps ``max_train`` random interactions for train.
    3. An interaction is in test when rule 2 sends it there for its user or for its item; all
       other interactions (warm user and warm item, or kept by both rules) are in train.

    Hence every cold user and every cold item has at most ``max_train`` interactions in train,
    and every test interaction belongs to a cold user or a cold item.
    """
    if max_train < 0:
        raise ConfigError(f"coldstart: M must be >= 0, got {max_train}")
    _check_fraction("coldstart", cold_fraction)
    rng = np.random.default_rng(seed)
    n = len(dataset)
    test = np.zeros(n, dtype=bool)
    for entity in (dataset.user_idx, dataset.item_idx):
        active = np.unique(entity)
        n_cold = max(1, round(cold_fraction * active.size)) if active.size else 0
        cold = np.zeros(int(entity.max()) + 1 if n else 0, dtype=bool)
        cold[rng.choice(active, size=n_cold, replace=False)] = True
        order, rank = _rank_within_groups(entity, rng.random(n))
        test[order] |= cold[entity[order]] & (rank >= max_train)
    return [_fold("coldstart", n, test)]


def coldstart_items_split(
    dataset: Dataset, cold_fraction: float = 0.2, seed: int = 0
) -> list[Fold]:
    """One fold whose test set is ALL interactions of a seeded random set of cold items.

    Among the ``n`` items with at least one interaction (items of the vocabulary without any,
    e.g. catalog-only items, are never drawn), ``round(cold_fraction * n)`` items, clipped to
    ``1 .. n - 1``, are drawn without replacement with ``numpy.random.default_rng(seed)``. Every
    interaction of a cold item is in test, every other interaction in train: no cold item has a
    training interaction, every warm item keeps all of its own. The vocabularies are those of
    the dataset (``dataset.subset`` keeps them), so the cold items stay known to the models.

    Raises:
        ConfigError: ``cold_fraction`` not in (0, 1).
        DataError: fewer than 2 items have an interaction.
    """
    if not 0.0 < cold_fraction < 1.0:
        raise ConfigError(
            f"coldstart-items: the cold-item fraction F must be in (0, 1), got {cold_fraction!r}"
        )
    active = np.unique(dataset.item_idx)
    if active.size < 2:
        raise DataError(
            f"coldstart-items needs at least 2 items with interactions; dataset "
            f"{dataset.name!r} has {active.size}"
        )
    n_cold = min(max(round(cold_fraction * active.size), 1), active.size - 1)
    cold = np.zeros(dataset.n_items, dtype=bool)
    cold[np.random.default_rng(seed).choice(active, size=n_cold, replace=False)] = True
    return [_fold("coldstart-items", len(dataset), cold[dataset.item_idx])]


def leave_one_out_split(dataset: Dataset) -> list[Fold]:
    """One fold whose test set is each user's last interaction: the latest timestamp, ties (and
    datasets without timestamps) broken by input order, later = newer. Users with fewer than 2
    interactions stay wholly in train.
    """
    n = len(dataset)
    ts = dataset.timestamp if dataset.timestamp is not None else np.zeros(n, dtype=np.int64)
    order, rank = _rank_within_groups(dataset.user_idx, ts)
    counts = np.bincount(dataset.user_idx, minlength=dataset.n_users)
    user = dataset.user_idx[order]
    is_last = (rank == counts[user] - 1) & (counts[user] >= 2)
    return [_fold("loo", n, _mask(n, order[is_last]))]


def holdout_split(dataset: Dataset, test_fraction: float = 0.2, seed: int = 0) -> list[Fold]:
    """One fold holding out a random share of each user's interactions.

    A user with ``c >= 2`` interactions gets ``clip(floor(test_fraction * c + 0.5), 1, c - 1)``
    random test interactions (at least one, and at least one left for train); users with
    fewer than 2 interactions stay wholly in train.
    """
    _check_fraction("holdout", test_fraction)
    n = len(dataset)
    rng = np.random.default_rng(seed)
    counts = np.bincount(dataset.user_idx, minlength=dataset.n_users)
    n_test = np.clip(np.floor(test_fraction * counts + 0.5).astype(np.int64), 1, counts - 1)
    n_test[counts < 2] = 0
    order, rank = _rank_within_groups(dataset.user_idx, rng.random(n))
    return [_fold("holdout", n, _mask(n, order[rank < n_test[dataset.user_idx[order]]]))]


# ---------------------------------------------------------------------- specs
_FILE_SPLIT = re.compile(r"^(?:u([1-5])(?:-u([1-5]))?|(ua|ub))$")


def is_file_split(spec: str) -> list[str] | None:
    """The MovieLens file-split names a spec stands for, or ``None`` when it is not one.

    ``"u3"`` -> ``["u3"]``, ``"u1-u5"`` -> ``["u1", ..., "u5"]``, ``"ua"`` -> ``["ua"]``,
    ``"ub"`` -> ``["ub"]``. A descending range such as ``"u4-u2"`` is not a file split.
    """
    match = _FILE_SPLIT.match(spec.strip().lower())
    if match is None:
        return None
    first, last, named = match.groups()
    if named:
        return [named]
    lo, hi = int(first), int(last or first)
    return [f"u{i}" for i in range(lo, hi + 1)] if lo <= hi else None


def _number(spec: str, text: str, kind: type[int] | type[float]) -> float:
    try:
        return kind(text)
    except ValueError:
        raise ConfigError(
            f"split {spec!r}: {text!r} is not a valid {kind.__name__}; valid forms: "
            + ", ".join(SPLIT_FORMS)
        ) from None


def parse_split(spec: str, seed: int = 0) -> Splitter:
    """The splitter for a spec string (forms in the module docstring and :data:`SPLIT_FORMS`).

    Raises:
        ConfigError: an unknown spec, a bad argument, or a file split (``u1``..``u5``,
            ``u1-u5``, ``ua``, ``ub``: check :func:`is_file_split` first and load the files).
    """
    text = spec.strip().lower()
    if is_file_split(text) is not None:
        raise ConfigError(
            f"split {spec!r} is a file split (MovieLens u1..u5 / ua / ub): it is read from files "
            "by the data loader, not computed; check is_file_split(spec) before parse_split"
        )
    name, _, arg = text.partition(":")
    split: Callable[[Dataset], list[Fold]]
    if name == "kfold" and arg:
        k = int(_number(spec, arg, int))
        if k < 2:
            raise ConfigError(f"split {spec!r}: K must be >= 2, got {k}")

        def split(ds: Dataset) -> list[Fold]:
            return kfold_split(ds, k, seed)
    elif name in ("random", "temporal", "holdout") and arg:
        fraction = _check_fraction(f"split {spec!r}", _number(spec, arg, float))
        if name == "random":

            def split(ds: Dataset) -> list[Fold]:
                return random_split(ds, fraction, seed)
        elif name == "temporal":

            def split(ds: Dataset) -> list[Fold]:
                return temporal_split(ds, fraction)
        else:

            def split(ds: Dataset) -> list[Fold]:
                return holdout_split(ds, fraction, seed)
    elif name == "coldstart" and (arg or ":" not in text):
        max_train = int(_number(spec, arg, int)) if arg else 3
        if max_train < 0:
            raise ConfigError(f"split {spec!r}: M must be >= 0, got {max_train}")

        def split(ds: Dataset) -> list[Fold]:
            return coldstart_split(ds, max_train, seed)
    elif name == "coldstart-items" and (arg or ":" not in text):
        cold_fraction = float(_number(spec, arg, float)) if arg else 0.2
        if not 0.0 < cold_fraction < 1.0:
            raise ConfigError(
                f"split {spec!r}: the cold-item fraction F must be in (0, 1), got {arg}; "
                "e.g. coldstart-items:0.2 moves all interactions of 20% of the items to test"
            )

        def split(ds: Dataset) -> list[Fold]:
            return coldstart_items_split(ds, cold_fraction, seed)
    elif text == "loo":
        split = leave_one_out_split
    else:
        raise ConfigError(f"unknown split {spec!r}; valid forms: " + ", ".join(SPLIT_FORMS))
    return Splitter(text, seed, split)
