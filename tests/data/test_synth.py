"""Tests of the synthetic data generator (llmcf.data.synth), at small sizes."""

from __future__ import annotations

import re

import numpy as np
import pyarrow.parquet as pq
import pytest
from scipy.stats import spearmanr

from llmcf.data.synth import (
    PARQUET_SCHEMA,
    SynthConfig,
    generate,
    generate_to_parquet,
    iter_chunks,
    latent_truth,
    write_parquet,
)

N_USERS, N_ITEMS, N_INTERACTIONS = 3_000, 800, 60_000


@pytest.fixture(scope="module")
def small():
    return generate(N_USERS, N_ITEMS, N_INTERACTIONS, seed=7, chunk_size=10_000)


def _pairs(user_idx: np.ndarray, item_idx: np.ndarray, n_items: int) -> np.ndarray:
    return user_idx.astype(np.int64) * n_items + item_idx


def test_exact_counts_and_every_user_active(small):
    assert len(small.user_idx) == N_INTERACTIONS
    assert len(small.users) == N_USERS and len(small.items) == N_ITEMS
    per_user = np.bincount(small.user_idx, minlength=N_USERS)
    assert per_user.min() >= 1
    assert per_user.max() <= N_ITEMS
    assert small.timestamp is not None and small.timestamp.dtype == np.int64


@pytest.mark.parametrize(
    ("n_users", "n_items", "n_interactions"),
    [(50, 40, 1_990), (50, 40, 2_000), (100, 10, 37), (1, 5, 5), (10, 10, 0), (200, 30, 1_000)],
)
def test_counts_exact_and_pairs_unique_at_extreme_densities(n_users, n_items, n_interactions):
    ds = generate(n_users, n_items, n_interactions, seed=3, chunk_size=64)
    assert len(ds.user_idx) == n_interactions
    assert ds.n_duplicates() == 0
    if n_interactions >= n_users:
        assert np.bincount(ds.user_idx, minlength=n_users).min() >= 1


def test_pairs_unique(small):
    pairs = _pairs(small.user_idx, small.item_idx, N_ITEMS)
    assert np.unique(pairs).shape[0] == pairs.shape[0]


def test_deterministic_by_seed():
    a = generate(500, 200, 8_000, seed=11, with_text=True)
    b = generate(500, 200, 8_000, seed=11, with_text=True)
    c = generate(500, 200, 8_000, seed=12)
    for name in ("user_idx", "item_idx", "rating", "timestamp"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.item_catalog.fields == b.item_catalog.fields
    assert not np.array_equal(a.item_idx, c.item_idx)


def test_rows_ordered_by_user_then_time(small):
    assert (np.diff(small.user_idx) >= 0).all()
    same_user = np.diff(small.user_idx) == 0
    assert (np.diff(small.timestamp)[same_user] >= 0).all()


def test_heavy_tail_of_item_popularity(small):
    per_item = np.sort(np.bincount(small.item_idx, minlength=N_ITEMS))[::-1]
    top_1pct = per_item[: N_ITEMS // 100].sum() / per_item.sum()
    assert top_1pct > 0.10  # ten times its uniform share
    per_user = np.sort(np.bincount(small.user_idx, minlength=N_USERS))[::-1]
    assert per_user[: N_USERS // 100].sum() / per_user.sum() > 0.05


def test_ratings_follow_true_affinity(small):
    truth = latent_truth(SynthConfig(N_USERS, N_ITEMS, N_INTERACTIONS, seed=7, chunk_size=10_000))
    affinity = truth.affinity(small.user_idx, small.item_idx)
    assert spearmanr(small.rating, affinity).statistic > 0.5


def test_choices_are_biased_toward_high_affinity(small):
    truth = latent_truth(SynthConfig(N_USERS, N_ITEMS, N_INTERACTIONS, seed=7))
    chosen = truth.affinity(small.user_idx, small.item_idx).mean()
    rng = np.random.default_rng(0)
    random_items = rng.integers(0, N_ITEMS, small.user_idx.shape[0])
    assert chosen > truth.affinity(small.user_idx, random_items).mean() + 0.3


def test_truth_counts_match_generated(small):
    truth = latent_truth(SynthConfig(N_USERS, N_ITEMS, N_INTERACTIONS, seed=7))
    np.testing.assert_array_equal(truth.user_counts, np.bincount(small.user_idx, minlength=N_USERS))


def test_explicit_ratings_on_scale():
    whole = generate(300, 100, 3_000, seed=1)
    assert set(np.unique(whole.rating)) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    assert whole.rating_scale == (1.0, 5.0) and whole.feedback == "explicit"
    half = generate(300, 100, 3_000, seed=1, rating_step=0.5)
    assert np.all(half.rating * 2 == np.round(half.rating * 2))
    assert half.rating.min() >= 1.0 and half.rating.max() <= 5.0


def test_implicit_feedback_counts():
    ds = generate(300, 100, 3_000, seed=1, feedback="implicit")
    assert ds.feedback == "implicit"
    assert ds.rating.min() >= 1.0 and np.all(ds.rating == np.round(ds.rating))


def test_chunk_stream_matches_generate():
    config = SynthConfig(400, 150, 6_000, seed=5, chunk_size=1_000)
    chunks = list(iter_chunks(config))
    assert len(chunks) > 3
    ds = generate(400, 150, 6_000, seed=5, chunk_size=1_000)
    np.testing.assert_array_equal(np.concatenate([c["item_idx"] for c in chunks]), ds.item_idx)


def test_parquet_round_trip(tmp_path, small):
    path = tmp_path / "small.parquet"
    write_parquet(small, path, row_group_size=7_000)
    table = pq.read_table(path)
    assert table.schema.equals(PARQUET_SCHEMA)
    np.testing.assert_array_equal(table["user_id"].to_numpy(), small.users.ids[small.user_idx])
    np.testing.assert_array_equal(table["item_id"].to_numpy(), small.items.ids[small.item_idx])
    np.testing.assert_array_equal(table["rating"].to_numpy(), small.rating.astype(np.float32))
    np.testing.assert_array_equal(table["timestamp"].to_numpy(), small.timestamp)


def test_generate_to_parquet_streams_same_rows(tmp_path, small):
    path, items_path = tmp_path / "stream.parquet", tmp_path / "items.parquet"
    generate_to_parquet(
        N_USERS,
        N_ITEMS,
        N_INTERACTIONS,
        path,
        items_path=items_path,
        seed=7,
        chunk_size=10_000,
        with_text=True,
    )
    meta = pq.ParquetFile(path).metadata
    assert meta.num_rows == N_INTERACTIONS and meta.num_row_groups > 1
    table = pq.read_table(path)
    assert table.schema.equals(PARQUET_SCHEMA)
    np.testing.assert_array_equal(table["user_id"].to_numpy(), small.user_idx)
    np.testing.assert_array_equal(table["item_id"].to_numpy(), small.item_idx)
    items = pq.read_table(items_path)
    assert items.num_rows == N_ITEMS and items.column_names == ["item_id", "title", "description"]


def test_text_present_and_follows_latent_factors():
    ds = generate(400, 300, 4_000, seed=2, with_text=True)
    titles = ds.item_catalog.fields["title"]
    descriptions = ds.item_catalog.fields["description"]
    assert len(titles) == len(descriptions) == 300
    assert all(isinstance(t, str) and t for t in titles + descriptions)
    assert generate(400, 300, 4_000, seed=2).item_catalog.fields == {}

    # items whose descriptions share words are closer in factor space than random pairs
    truth = latent_truth(SynthConfig(400, 300, 4_000, seed=2))
    q = truth.item_factors / np.linalg.norm(truth.item_factors, axis=1, keepdims=True)
    cf_similarity = q @ q.T
    stop = {"a", "tale", "of", "and", "with"}
    bags = [set(re.findall(r"[a-z]+", str(d).lower())) - stop for d in descriptions]
    overlap = np.array([[len(x & y) for y in bags] for x in bags])
    off_diagonal = ~np.eye(300, dtype=bool)
    sharing = cf_similarity[(overlap > 0) & off_diagonal].mean()
    disjoint = cf_similarity[(overlap == 0) & off_diagonal].mean()
    assert sharing > disjoint + 0.1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_users": 0, "n_items": 5, "n_interactions": 0},
        {"n_users": 2, "n_items": 2, "n_interactions": 5},
        {"n_users": 2, "n_items": 2, "n_interactions": 1, "feedback": "clicks"},
        {"n_users": 2, "n_items": 2, "n_interactions": 1, "temperature": 0.0},
    ],
)
def test_invalid_config_raises_naming_the_value(kwargs):
    with pytest.raises(ValueError, match=r"n_users|n_interactions|feedback|temperature"):
        SynthConfig(**kwargs)


def test_sizes_beyond_the_generator_limit_are_refused_before_allocating() -> None:
    from llmcf.data.synth import MAX_ENTITIES, SynthConfig

    with pytest.raises(ValueError, match="exceeds the generator's limit"):
        SynthConfig(n_users=MAX_ENTITIES + 1, n_items=10, n_interactions=10)
