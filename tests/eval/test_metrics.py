"""Metrics: hand-computed examples, a per-user reference oracle and Hypothesis invariants."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from llmcf.eval.metrics import (
    catalog_coverage,
    hit_rate_at_n,
    mae,
    mrr_at_n,
    ndcg_at_n,
    precision_at_n,
    ranking_report,
    recall_at_n,
    relevance_matrix,
    rmse,
)

PER_USER = {
    "precision": precision_at_n,
    "recall": recall_at_n,
    "ndcg": ndcg_at_n,
    "hit_rate": hit_rate_at_n,
    "mrr": mrr_at_n,
}


# ---------------------------------------------------------------------- rating accuracy
def test_mae_rmse_by_hand() -> None:
    y_true = np.array([1.0, 2.0, 3.0])
    y_pred = np.array([2.0, 2.0, 5.0])  # errors 1, 0, 2
    assert mae(y_true, y_pred) == pytest.approx(1.0)
    assert rmse(y_true, y_pred) == pytest.approx(math.sqrt(5 / 3))


def test_mae_rmse_empty_and_mismatch() -> None:
    assert math.isnan(mae(np.array([]), np.array([])))
    assert math.isnan(rmse(np.array([]), np.array([])))
    with pytest.raises(ValueError, match="3 vs 2"):
        mae(np.ones(3), np.ones(2))


# ---------------------------------------------------------------------- ranking by hand
# user 0: relevant {1, 2, 7}; hits at ranks 1 and 3 of the top 3
# user 1: relevant {4}; a hit at rank 3 (item 4 repeated at rank 4: outside the top 3)
# user 2: no relevant item -> NaN everywhere
# user 3: relevant {0..4}; no hit, list padded
RECOMMENDED = np.array(
    [
        [1, 5, 2, -1],
        [3, 0, 4, 4],
        [0, 1, 2, 3],
        [6, 6, -1, -1],
    ]
)
RELEVANT = relevance_matrix(
    np.array([0, 0, 0, 1, 3, 3, 3, 3, 3]),
    np.array([1, 2, 7, 4, 0, 1, 2, 3, 4]),
    n_users=4,
    n_items=8,
)


def test_precision_recall_by_hand() -> None:
    np.testing.assert_allclose(
        precision_at_n(RECOMMENDED, RELEVANT, 3), [2 / 3, 1 / 3, np.nan, 0.0]
    )
    np.testing.assert_allclose(recall_at_n(RECOMMENDED, RELEVANT, 3), [2 / 3, 1.0, np.nan, 0.0])


def test_recall_denominator_is_number_of_relevant_items() -> None:
    # user 3 has 5 relevant items; a perfect top 2 still has recall 2/5, not 2/2
    rec = np.array([[0, 1]])
    rel = relevance_matrix(np.zeros(5, int), np.arange(5), 1, 5)
    assert recall_at_n(rec, rel, 2)[0] == pytest.approx(2 / 5)
    assert ndcg_at_n(rec, rel, 2)[0] == pytest.approx(1.0)


def test_ndcg_by_hand() -> None:
    # user 0: DCG = 1/log2(2) + 1/log2(4) = 1.5; IDCG (3 relevant) = 1 + 1/log2(3) + 1/2
    idcg0 = 1.0 + 1.0 / math.log2(3) + 0.5
    # user 1: DCG = 1/log2(4) = 0.5; IDCG (1 relevant) = 1
    expected = [1.5 / idcg0, 0.5, np.nan, 0.0]
    np.testing.assert_allclose(ndcg_at_n(RECOMMENDED, RELEVANT, 3), expected)
    assert 1.5 / idcg0 == pytest.approx(0.703918, abs=1e-6)


def test_hit_rate_and_mrr_by_hand() -> None:
    np.testing.assert_allclose(hit_rate_at_n(RECOMMENDED, RELEVANT, 3), [1.0, 1.0, np.nan, 0.0])
    np.testing.assert_allclose(mrr_at_n(RECOMMENDED, RELEVANT, 3), [1.0, 1 / 3, np.nan, 0.0])
    # with N = 2 user 1's hit at rank 3 is out of the list
    np.testing.assert_allclose(mrr_at_n(RECOMMENDED, RELEVANT, 2), [1.0, 0.0, np.nan, 0.0])


def test_repeated_item_counts_once() -> None:
    rec = np.array([[4, 4, 4]])
    rel = relevance_matrix(np.array([0]), np.array([4]), 1, 5)
    assert precision_at_n(rec, rel, 3)[0] == pytest.approx(1 / 3)
    assert ndcg_at_n(rec, rel, 3)[0] == pytest.approx(1.0)


def test_short_lists_count_missing_positions_as_misses() -> None:
    rec = np.array([[2]])
    rel = relevance_matrix(np.array([0]), np.array([2]), 1, 3)
    assert precision_at_n(rec, rel, 4)[0] == pytest.approx(1 / 4)
    assert recall_at_n(rec, rel, 4)[0] == pytest.approx(1.0)


def test_ranking_report_averages_over_users_with_relevant_items() -> None:
    report = ranking_report(RECOMMENDED, RELEVANT, 3)
    assert report["n_users_evaluated"] == 3
    assert report["precision@3"] == pytest.approx((2 / 3 + 1 / 3 + 0) / 3)
    assert report["recall@3"] == pytest.approx((2 / 3 + 1 + 0) / 3)
    assert report["hit_rate@3"] == pytest.approx(2 / 3)
    assert report["mrr@3"] == pytest.approx((1 + 1 / 3) / 3)
    assert report["ndcg@3"] == pytest.approx(np.nanmean(ndcg_at_n(RECOMMENDED, RELEVANT, 3)))
    # top 3 of all rows: {0,1,2,3,4,5,6} of 8 items
    assert report["coverage@3"] == pytest.approx(7 / 8)


def test_ranking_report_without_relevant_items_is_nan() -> None:
    rel = sp.csr_array((2, 4), dtype=bool)
    report = ranking_report(np.array([[0, 1], [2, 3]]), rel, 2)
    assert report["n_users_evaluated"] == 0
    assert math.isnan(report["ndcg@2"])
    assert report["coverage@2"] == pytest.approx(1.0)


def test_accepts_spmatrix_with_explicit_zeros() -> None:
    rel = sp.csr_matrix(np.array([[0, 1, 0], [1, 0, 0]], dtype=float))
    rel.data[:] = [1.0, 0.0]  # user 1's entry is an explicit zero: not relevant
    out = hit_rate_at_n(np.array([[1], [0]]), rel, 1)
    np.testing.assert_allclose(out, [1.0, np.nan])


def test_catalog_coverage_by_hand() -> None:
    rec = np.array([[0, 1, -1], [1, 2, -1]])
    assert catalog_coverage(rec, 5) == pytest.approx(3 / 5)
    assert catalog_coverage(rec, 5, n=1) == pytest.approx(2 / 5)
    assert catalog_coverage(rec, 0) == 0.0
    with pytest.raises(ValueError, match="outside"):
        catalog_coverage(rec, 2)


@pytest.mark.parametrize(
    ("recommended", "n", "match"),
    [
        (np.array([[0, 1]]), 0, "positive integer"),
        (np.array([0, 1]), 2, "2-D int array"),
        (np.array([[0.0, 1.0]]), 2, "2-D int array"),
        (np.array([[0, 1], [1, 0]]), 2, "2 rows but relevant has 1"),
        (np.array([[0, 9]]), 2, "9 is outside"),
    ],
)
def test_bad_inputs_raise(recommended: np.ndarray, n: int, match: str) -> None:
    rel = relevance_matrix(np.array([0]), np.array([1]), 1, 3)
    with pytest.raises(ValueError, match=match):
        ndcg_at_n(recommended, rel, n)


def test_dense_relevant_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"scipy\.sparse"):
        precision_at_n(np.array([[0]]), np.array([[1]]), 1)  # type: ignore[arg-type]


# ---------------------------------------------------------------------- reference oracle
def _reference(rec_row: list[int], rel_set: set[int], n: int) -> dict[str, float]:
    """Slow, obvious per-user definitions."""
    if not rel_set:
        return dict.fromkeys(PER_USER, math.nan)
    seen: set[int] = set()
    gains = []
    for item in rec_row[:n]:
        gains.append(1.0 if item >= 0 and item in rel_set and item not in seen else 0.0)
        seen.add(item)
    gains += [0.0] * (n - len(gains))
    n_hits = sum(gains)
    dcg = sum(g / math.log2(r + 2) for r, g in enumerate(gains))
    idcg = sum(1 / math.log2(r + 2) for r in range(min(n, len(rel_set))))
    first = next((r for r, g in enumerate(gains) if g), None)
    return {
        "precision": n_hits / n,
        "recall": n_hits / len(rel_set),
        "ndcg": dcg / idcg,
        "hit_rate": float(n_hits > 0),
        "mrr": 0.0 if first is None else 1 / (first + 1),
    }


@st.composite
def ranking_batches(draw: st.DrawFn) -> tuple[np.ndarray, sp.csr_array, int, int]:
    n_users = draw(st.integers(1, 6))
    n_items = draw(st.integers(1, 12))
    width = draw(st.integers(1, 8))
    rec = np.array(
        draw(
            st.lists(
                st.lists(st.integers(-1, n_items - 1), min_size=width, max_size=width),
                min_size=n_users,
                max_size=n_users,
            )
        )
    )
    dense = np.array(
        draw(
            st.lists(
                st.lists(st.booleans(), min_size=n_items, max_size=n_items),
                min_size=n_users,
                max_size=n_users,
            )
        )
    )
    n = draw(st.integers(1, 10))
    return rec, sp.csr_array(dense), n, n_items


@settings(max_examples=150, deadline=None)
@given(ranking_batches())
def test_metrics_match_reference_and_lie_in_unit_interval(
    batch: tuple[np.ndarray, sp.csr_array, int, int],
) -> None:
    rec, rel, n, _ = batch
    dense = rel.toarray()
    for name, fn in PER_USER.items():
        values = fn(rec, rel, n)
        assert values.shape == (rec.shape[0],)
        expected = [
            _reference(list(rec[u]), set(np.flatnonzero(dense[u]).tolist()), n)[name]
            for u in range(rec.shape[0])
        ]
        np.testing.assert_allclose(values, expected, err_msg=name)
        finite = values[~np.isnan(values)]
        assert ((finite >= 0) & (finite <= 1 + 1e-12)).all()
        assert (np.isnan(values) == (dense.sum(axis=1) == 0)).all()


@settings(max_examples=100, deadline=None)
@given(ranking_batches())
def test_perfect_ranking_scores_one(batch: tuple[np.ndarray, sp.csr_array, int, int]) -> None:
    _, rel, n, n_items = batch
    dense = rel.toarray()
    # each user's relevant items first, then the others: the ideal list
    perfect = np.argsort(~dense, axis=1, kind="stable")
    has_relevant = dense.any(axis=1)
    n_rel = dense.sum(axis=1)
    ndcg = ndcg_at_n(perfect, rel, n)
    np.testing.assert_allclose(ndcg[has_relevant], 1.0)
    np.testing.assert_allclose(hit_rate_at_n(perfect, rel, n)[has_relevant], 1.0)
    np.testing.assert_allclose(mrr_at_n(perfect, rel, n)[has_relevant], 1.0)
    np.testing.assert_allclose(
        recall_at_n(perfect, rel, n)[has_relevant],
        np.minimum(n_rel, n)[has_relevant] / n_rel[has_relevant],
    )
    report = ranking_report(perfect, rel, n)
    if has_relevant.any():
        assert report[f"ndcg@{n}"] == pytest.approx(1.0)
    assert 0.0 <= report[f"coverage@{n}"] <= 1.0
    assert catalog_coverage(perfect, n_items) == pytest.approx(1.0)
