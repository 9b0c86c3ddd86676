"""Shared fixtures: a tiny hand-checkable ratings table and the real-data location."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from llmcf.data.dataset import Dataset

os.environ.setdefault("LLMCF_THREADS", "2")

# users x items; 0 = no rating
TINY = np.array(
    [
        [5, 3, 0, 1],
        [4, 0, 0, 1],
        [1, 1, 0, 5],
        [1, 0, 0, 4],
        [0, 1, 5, 4],
    ],
    dtype=float,
)


def dataset_from_dense(
    matrix: np.ndarray, rating_scale: tuple[float, float] | None = (1, 5)
) -> Dataset:
    users, items = np.nonzero(matrix)
    return Dataset.from_arrays(
        [f"u{u}" for u in users],
        [f"i{i}" for i in items],
        matrix[users, items],
        rating_scale=rating_scale,
        name="tiny",
    )


@pytest.fixture
def tiny() -> Dataset:
    return dataset_from_dense(TINY)


def real_data_dir(name: str) -> Path:
    root = os.environ.get("LLMCF_DATA_DIR")
    if not root:
        pytest.skip("LLMCF_DATA_DIR is not set: real-data test skipped")
    path = Path(root) / name
    if not path.exists():
        pytest.skip(f"{path} does not exist: real-data test skipped")
    return path


@pytest.fixture
def ml100k() -> Path:
    return real_data_dir("ml-100k")


def random_dataset(
    seed: int, n_users: int = 12, n_items: int = 9, density: float = 0.45
) -> Dataset:
    """A random small explicit data set with integer ratings 1..5 in shuffled input order."""
    rng = np.random.default_rng(seed)
    mask = rng.random((n_users, n_items)) < density
    users, items = np.nonzero(mask)
    order = rng.permutation(len(users))
    users, items = users[order], items[order]
    ratings = rng.integers(1, 6, size=len(users)).astype(float)
    return Dataset.from_arrays(users, items, ratings, rating_scale=(1, 5), name=f"random{seed}")


def movielens_folder(folder: Path, n_users: int, n_items: int, n_ratings: int, seed: int) -> str:
    """A MovieLens-100K-layout folder (u.data, u.item) of synthetic ratings with titles
    (:func:`llmcf.data.synth.generate`), for tests that run the CLI on a named layout."""
    from llmcf.data.synth import generate

    ds = generate(n_users, n_items, n_ratings, seed=seed, with_text=True)
    folder.mkdir(parents=True, exist_ok=True)
    lines = [
        f"{u + 1}\t{i + 1}\t{int(r)}\t{880000000 + n}"
        for n, (u, i, r) in enumerate(zip(ds.user_idx, ds.item_idx, ds.rating, strict=True))
    ]
    (folder / "u.data").write_text("\n".join(lines) + "\n")
    titles = ds.item_catalog.fields["title"]
    genres = "|".join(["0"] * 19)
    items = [
        f"{i + 1}|{titles[i]} (1995)|01-Jan-1995||http://x|{genres}" for i in range(ds.n_items)
    ]
    (folder / "u.item").write_text("\n".join(items) + "\n", encoding="latin-1")
    return str(folder)
