"""Similarity measures: hand-computed values, the reference oracle, and invariants."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.conftest import TINY, random_dataset

from llmcf import ItemKNN, UserKNN
from llmcf.cf.similarity import SIMILARITIES, get_similarity, similarity_matrix
from llmcf.errors import ConfigError
from llmcf.testing import reference


def _item_sim(name: str, **kw: object) -> np.ndarray:
    return similarity_matrix(TINY, name, axis=1, **kw)  # type: ignore[arg-type]


def test_cosine_by_hand() -> None:
    sims = _item_sim("cosine")
    # i0 vs i3: co-raters u0..u3, a = 5,4,1,1 and b = 1,1,5,4
    assert sims[0, 3] == pytest.approx(18 / 43, abs=1e-15)
    # i0 vs i1: co-raters u0, u2
    assert sims[0, 1] == pytest.approx(16 / math.sqrt(26 * 10), abs=1e-15)
    # i0 and i2 share no rater
    assert sims[0, 2] == 0.0
    assert np.allclose(np.diag(sims), 1.0)
    users = similarity_matrix(TINY, "cosine", axis=0)
    assert users[0, 1] == pytest.approx(21 / math.sqrt(26 * 17), abs=1e-15)


def test_msd_and_pearson_by_hand() -> None:
    assert _item_sim("msd")[0, 3] == pytest.approx(1 / (50 / 4 + 1), abs=1e-15)
    assert _item_sim("pearson")[0, 3] == pytest.approx(-12.25 / 12.75, abs=1e-15)
    # support of one co-rating: pearson is undefined -> 0
    assert _item_sim("pearson")[1, 2] == 0.0


def test_adjusted_cosine_centres_by_user_mean() -> None:
    sims = _item_sim("adjusted_cosine")
    user_means = TINY.sum(axis=1) / (TINY > 0).sum(axis=1)
    both = (TINY[:, 0] > 0) & (TINY[:, 3] > 0)
    a = TINY[both, 0] - user_means[both]
    b = TINY[both, 3] - user_means[both]
    assert sims[0, 3] == pytest.approx(a @ b / math.sqrt((a @ a) * (b @ b)), abs=1e-12)


def test_shrinkage_and_min_support() -> None:
    plain = _item_sim("cosine")
    shrunk = _item_sim("cosine", shrinkage=10.0)
    assert shrunk[0, 3] == pytest.approx(plain[0, 3] * 3 / 13, abs=1e-15)  # n = 4
    supported = _item_sim("cosine", min_support=3)
    assert supported[0, 1] == 0.0 and supported[0, 3] == pytest.approx(plain[0, 3])


def test_unknown_similarity_lists_valid_names() -> None:
    with pytest.raises(ConfigError, match="adjusted_cosine") as err:
        get_similarity("jaccard")
    assert "pearson_baseline" in str(err.value)
    with pytest.raises(ConfigError):
        ItemKNN(similarity="nope")


@pytest.mark.parametrize("name", [n for n in SIMILARITIES if n != "pearson_baseline"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kernels_match_reference(name: str, seed: int) -> None:
    ds = random_dataset(seed)
    for axis in (0, 1):
        x, y = (ds.user_idx, ds.item_idx) if axis == 0 else (ds.item_idx, ds.user_idx)
        n_y = ds.n_items if axis == 0 else ds.n_users
        values = ds.rating.copy()
        if name == "adjusted_cosine":
            means = np.bincount(y, weights=ds.rating, minlength=n_y) / np.bincount(y, minlength=n_y)
            values = ds.rating - means[y]
        rows = reference.ratings_by_row(x, y, values)
        got = similarity_matrix(ds.matrix(), name, axis=axis, min_support=2, shrinkage=3.0)
        for a in range(len(rows)):
            for b in range(len(rows)):
                if a != b:
                    want = reference.similarity(
                        name, rows[a], rows[b], min_support=2, shrinkage=3.0
                    )
                    assert got[a, b] == pytest.approx(want, abs=1e-12), (a, b)


@pytest.mark.parametrize("cls", [UserKNN, ItemKNN])
@pytest.mark.parametrize("name", list(SIMILARITIES))
def test_sparse_top_lists_equal_dense_rows(cls: type, name: str) -> None:
    ds = random_dataset(7, n_users=30, n_items=20, density=0.4)
    dense = cls(similarity=name, k=5).fit(ds)
    sparse = cls(similarity=name, k=5, dense_max=0, n_neighbors=8).fit(ds)
    assert dense.sim_ is not None and sparse.nbr_idx_ is not None and sparse.nbr_sim_ is not None
    for x in range(dense.sim_.shape[0]):
        idx, sims = dense.neighbors(x, 8)
        got = sparse.nbr_idx_[x]
        np.testing.assert_array_equal(got[got >= 0], idx)
        np.testing.assert_allclose(sparse.nbr_sim_[x][got >= 0], sims, rtol=0, atol=1e-12)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    name=st.sampled_from(["cosine", "msd", "pearson", "adjusted_cosine"]),
)
def test_similarity_invariants(seed: int, name: str) -> None:
    ds = random_dataset(seed, n_users=10, n_items=8, density=0.5)
    sims = similarity_matrix(ds.matrix(), name, axis=1)
    np.testing.assert_allclose(sims, sims.T, atol=1e-12)
    assert np.all(np.diag(sims) == 1.0)
    if name == "msd":
        assert np.all((sims >= 0) & (sims <= 1))
    else:
        assert np.all((sims >= -1 - 1e-12) & (sims <= 1 + 1e-12))
