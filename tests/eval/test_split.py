"""Splitters: hand-checked folds, spec parsing and Hypothesis invariants (partition, no leak)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmcf.data.dataset import Dataset
from llmcf.errors import ConfigError, DataError
from llmcf.eval.split import (
    SPLIT_FORMS,
    Fold,
    coldstart_items_split,
    coldstart_split,
    holdout_split,
    is_file_split,
    leave_one_out_split,
    parse_split,
    temporal_split,
)

SPECS = [
    "kfold:5",
    "kfold:2",
    "random:0.2",
    "temporal:0.2",
    "coldstart",
    "coldstart:1",
    "loo",
    "holdout:0.2",
    "holdout:0.5",
]


def make_dataset(
    users: list[int], items: list[int], timestamps: list[int] | None = None
) -> Dataset:
    return Dataset.from_arrays(
        np.array(users), np.array(items), rating=np.ones(len(users)), timestamp=timestamps
    )


def check_fold(fold: Fold, n: int) -> None:
    """A fold is a partition of range(n) into two ascending, disjoint index arrays."""
    assert isinstance(fold, Fold)
    assert np.intersect1d(fold.train, fold.test).size == 0
    assert (np.diff(fold.train) > 0).all() and (np.diff(fold.test) > 0).all()
    assert np.array_equal(np.union1d(fold.train, fold.test), np.arange(n))


@st.composite
def datasets(draw: st.DrawFn) -> Dataset:
    triples = draw(
        st.lists(
            st.tuples(st.integers(0, 7), st.integers(0, 11), st.integers(0, 5)),
            unique_by=lambda t: (t[0], t[1]),
            min_size=5,
            max_size=70,
        )
    )
    users, items, ts = (list(col) for col in zip(*triples, strict=True))
    return make_dataset(users, items, ts)


# ---------------------------------------------------------------------- properties
@settings(max_examples=60, deadline=None)
@given(datasets(), st.sampled_from(SPECS), st.integers(0, 2**16))
def test_folds_partition_without_leakage_and_are_deterministic(
    ds: Dataset, spec: str, seed: int
) -> None:
    folds = parse_split(spec, seed=seed)(ds)
    for fold in folds:
        check_fold(fold, len(ds))
    again = parse_split(spec, seed=seed)(ds)
    assert [f.name for f in folds] == [f.name for f in again]
    for a, b in zip(folds, again, strict=True):
        assert np.array_equal(a.train, b.train) and np.array_equal(a.test, b.test)


@settings(max_examples=40, deadline=None)
@given(datasets(), st.integers(2, 5), st.integers(0, 100))
def test_kfold_tests_every_interaction_exactly_once(ds: Dataset, k: int, seed: int) -> None:
    folds = parse_split(f"kfold:{k}", seed=seed)(ds)
    assert [f.name for f in folds] == [f"fold{i + 1}" for i in range(k)]
    tests = np.concatenate([f.test for f in folds])
    assert np.array_equal(np.sort(tests), np.arange(len(ds)))
    sizes = [f.test.size for f in folds]
    assert max(sizes) - min(sizes) <= 1


def test_seed_changes_the_split() -> None:
    ds = make_dataset(list(range(40)), [0] * 40)
    a = parse_split("random:0.25", seed=1)(ds)[0]
    b = parse_split("random:0.25", seed=2)(ds)[0]
    assert a.test.size == b.test.size == 10
    assert not np.array_equal(a.test, b.test)


@settings(max_examples=60, deadline=None)
@given(datasets())
def test_loo_picks_the_latest_interaction_of_each_user(ds: Dataset) -> None:
    (fold,) = leave_one_out_split(ds)
    assert ds.timestamp is not None
    counts = ds.user_counts()
    test_users = ds.user_idx[fold.test]
    # one test interaction per user with >= 2 interactions, none for the others
    assert np.array_equal(np.sort(test_users), np.flatnonzero(counts >= 2))
    for j in fold.test:
        own = np.flatnonzero(ds.user_idx == ds.user_idx[j])
        latest = own[ds.timestamp[own] == ds.timestamp[own].max()]
        assert j == latest.max()  # max timestamp, ties -> last in input order


@settings(max_examples=60, deadline=None)
@given(datasets(), st.sampled_from([0.1, 0.2, 0.5, 0.9]))
def test_temporal_cutoff(ds: Dataset, fraction: float) -> None:
    (fold,) = temporal_split(ds, fraction)
    assert ds.timestamp is not None
    assert fold.test.size == round(fraction * len(ds))
    if fold.train.size and fold.test.size:
        assert ds.timestamp[fold.train].max() <= ds.timestamp[fold.test].min()


@settings(max_examples=60, deadline=None)
@given(datasets(), st.sampled_from([0.1, 0.2, 0.5, 0.9]), st.integers(0, 100))
def test_holdout_keeps_train_and_test_for_each_user(
    ds: Dataset, fraction: float, seed: int
) -> None:
    (fold,) = holdout_split(ds, fraction, seed)
    counts = ds.user_counts()
    train_counts = np.bincount(ds.user_idx[fold.train], minlength=ds.n_users)
    test_counts = np.bincount(ds.user_idx[fold.test], minlength=ds.n_users)
    many = counts >= 2
    assert (test_counts[many] >= 1).all() and (train_counts[many] >= 1).all()
    assert (test_counts[~many] == 0).all()


@settings(max_examples=60, deadline=None)
@given(datasets(), st.integers(0, 4), st.integers(0, 100))
def test_coldstart_test_belongs_to_sparse_users_or_items(
    ds: Dataset, max_train: int, seed: int
) -> None:
    (fold,) = coldstart_split(ds, max_train, seed)
    user_train = np.bincount(ds.user_idx[fold.train], minlength=ds.n_users)
    item_train = np.bincount(ds.item_idx[fold.train], minlength=ds.n_items)
    users, items = ds.user_idx[fold.test], ds.item_idx[fold.test]
    assert ((user_train[users] <= max_train) | (item_train[items] <= max_train)).all()


# ---------------------------------------------------------------------- by hand
def test_loo_by_hand_with_ties() -> None:
    # user 0: timestamps 5, 9, 9 -> the later of the two 9s (index 2); user 1: one interaction,
    # stays in train; user 2: timestamps 7, 3 -> index 4, although index 5 comes later
    ds = make_dataset([0, 0, 0, 1, 2, 2], [0, 1, 2, 0, 0, 1], [5, 9, 9, 1, 7, 3])
    (fold,) = parse_split("loo")(ds)
    assert fold.name == "loo"
    assert fold.test.tolist() == [2, 4]
    assert fold.train.tolist() == [0, 1, 3, 5]


def test_loo_without_timestamps_uses_input_order() -> None:
    ds = make_dataset([0, 0, 1, 1, 1], [0, 1, 0, 1, 2])
    (fold,) = leave_one_out_split(ds)
    assert fold.test.tolist() == [1, 4]


def test_holdout_by_hand() -> None:
    # user 0: 10 interactions -> 2 test; user 1: 2 -> 1; user 2: 1 -> 0
    users = [0] * 10 + [1] * 2 + [2]
    items = [*range(10), 0, 1, 0]
    (fold,) = holdout_split(make_dataset(users, items), 0.2, seed=3)
    test_users = make_dataset(users, items).user_idx[fold.test]
    assert np.bincount(test_users, minlength=3).tolist() == [2, 1, 0]


def test_temporal_by_hand_and_needs_timestamps() -> None:
    ds = make_dataset([0, 1, 2, 3, 4], [0, 0, 0, 0, 0], [50, 10, 40, 20, 30])
    (fold,) = parse_split("temporal:0.4")(ds)
    assert fold.test.tolist() == [0, 2]
    with pytest.raises(DataError, match="timestamps"):
        parse_split("temporal:0.2")(make_dataset([0, 1], [0, 0]))


def test_coldstart_by_hand() -> None:
    # 10 users x 10 items, all pairs: 2 cold users and 2 cold items keep <= 3 in train each
    users = np.repeat(np.arange(10), 10).tolist()
    items = np.tile(np.arange(10), 10).tolist()
    ds = make_dataset(users, items)
    (fold,) = parse_split("coldstart", seed=7)(ds)
    user_train = np.bincount(ds.user_idx[fold.train], minlength=10)
    item_train = np.bincount(ds.item_idx[fold.train], minlength=10)
    assert (user_train <= 3).sum() == 2
    assert (item_train <= 3).sum() == 2
    # cold user rows lose 7 each, cold item columns lose 7 each, 4 cells overlap
    assert 14 + 14 - 4 <= fold.test.size <= 28


def test_kfold_needs_enough_interactions() -> None:
    with pytest.raises(DataError, match="at least 5"):
        parse_split("kfold:5")(make_dataset([0, 1, 2], [0, 0, 0]))


# ---------------------------------------------------------------------- specs
@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("u1-u5", ["u1", "u2", "u3", "u4", "u5"]),
        ("u2-u3", ["u2", "u3"]),
        ("u3", ["u3"]),
        ("ua", ["ua"]),
        (" UB ", ["ub"]),
        ("u4-u2", None),
        ("u6", None),
        ("kfold:5", None),
        ("loo", None),
    ],
)
def test_is_file_split(spec: str, expected: list[str] | None) -> None:
    assert is_file_split(spec) == expected


@pytest.mark.parametrize("spec", ["u1", "u1-u5", "ua", "ub"])
def test_parse_split_rejects_file_splits(spec: str) -> None:
    with pytest.raises(ConfigError, match="file split"):
        parse_split(spec)


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("bogus", "unknown split 'bogus'; valid forms: kfold:K"),
        ("kfold", "unknown split"),
        ("coldstart:", "unknown split"),
        ("loo:3", "unknown split"),
        ("kfold:x", "'x' is not a valid int"),
        ("kfold:1", "K must be >= 2"),
        ("random:1.5", r"must be in \(0, 1\), got 1.5"),
        ("holdout:0", r"must be in \(0, 1\)"),
        ("temporal:abc", "'abc' is not a valid float"),
        ("coldstart:-1", "M must be >= 0"),
        ("coldstart-items:0", r"cold-item fraction F must be in \(0, 1\), got 0"),
        ("coldstart-items:1", r"cold-item fraction F must be in \(0, 1\)"),
        ("coldstart-items:-0.2", r"cold-item fraction F must be in \(0, 1\)"),
        ("coldstart-items:x", "'x' is not a valid float"),
        ("coldstart-items:", "unknown split"),
        ("coldstart-item:0.2", "unknown split"),
    ],
)
def test_parse_split_errors_name_the_spec(spec: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        parse_split(spec)


def test_splitter_reports_its_spec() -> None:
    splitter = parse_split(" KFold:3 ", seed=4)
    assert (splitter.spec, splitter.seed) == ("kfold:3", 4)
    assert "kfold:3" in repr(splitter)


# ---------------------------------------------------------------------- coldstart-items
@settings(max_examples=60, deadline=None)
@given(datasets(), st.floats(0.01, 0.99), st.integers(0, 2**16))
def test_coldstart_items_moves_all_interactions_of_the_cold_items(
    ds: Dataset, fraction: float, seed: int
) -> None:
    active = np.unique(ds.item_idx)
    if active.size < 2:
        with pytest.raises(DataError, match="at least 2 items"):
            coldstart_items_split(ds, fraction, seed)
        return
    (fold,) = parse_split(f"coldstart-items:{fraction!r}", seed=seed)(ds)
    assert fold.name == "coldstart-items"
    check_fold(fold, len(ds))
    cold = np.unique(ds.item_idx[fold.test])
    # the test set is every interaction of the cold items, and nothing else
    np.testing.assert_array_equal(fold.test, np.flatnonzero(np.isin(ds.item_idx, cold)))
    assert not np.isin(ds.item_idx[fold.train], cold).any()
    assert cold.size == min(max(round(fraction * active.size), 1), active.size - 1)
    again = coldstart_items_split(ds, fraction, seed)[0]
    np.testing.assert_array_equal(fold.test, again.test)
    train = ds.subset(fold.train)
    assert (train.n_users, train.n_items) == (ds.n_users, ds.n_items)
    assert train.items is ds.items and train.users is ds.users


def test_coldstart_items_exact_count_seed_and_vocabularies() -> None:
    rng = np.random.default_rng(3)
    users = rng.integers(0, 40, size=600)
    items = np.concatenate([np.arange(50), rng.integers(0, 50, size=550)])  # all 50 active
    ds = Dataset.from_arrays(users, items, rating=np.ones(600), duplicates="sum")
    (fold,) = parse_split("coldstart-items:0.2", seed=7)(ds)
    cold = np.unique(ds.item_idx[fold.test])
    assert cold.size == round(0.2 * 50) == 10
    counts = ds.item_counts()
    assert len(fold.test) == counts[cold].sum()  # ALL their interactions moved
    train = ds.subset(fold.train)
    assert (train.item_counts()[cold] == 0).all() and (train.item_counts() > 0).sum() == 40
    assert train.n_items == ds.n_items == 50 and train.n_users == ds.n_users
    # seeded: the same seed gives the same items, other seeds other items
    assert np.array_equal(parse_split("coldstart-items:0.2", seed=7)(ds)[0].test, fold.test)
    others = {
        tuple(np.unique(ds.item_idx[parse_split("coldstart-items:0.2", seed=s)(ds)[0].test]))
        for s in range(5)
    }
    assert len(others) > 1
    # bare form: F = 0.2
    assert np.array_equal(parse_split("coldstart-items", seed=7)(ds)[0].test, fold.test)
    assert coldstart_items_split(ds, 0.2, seed=7)[0].test.tolist() == fold.test.tolist()


def test_coldstart_items_draws_only_items_with_interactions() -> None:
    ds = Dataset.from_arrays(
        ["a", "a", "b", "b", "c"], ["x", "y", "x", "w", "v"], rating=np.ones(5)
    )
    sub = ds.subset(np.arange(4))  # "v" stays in the vocabulary without an interaction
    assert sub.n_items == 4 and sub.item_counts()[ds.items.lookup(["v"])[0]] == 0
    for seed in range(10):
        (fold,) = coldstart_items_split(sub, 0.4, seed)
        # round(0.4 * 3 active items) = 1, not round(0.4 * 4 vocabulary items) = 2
        assert np.unique(sub.item_idx[fold.test]).size == 1
    with pytest.raises(ConfigError, match=r"cold-item fraction F must be in \(0, 1\)"):
        coldstart_items_split(ds, 1.0)
    assert any("coldstart-items" in form for form in SPLIT_FORMS)
