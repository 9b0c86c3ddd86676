"""Local (single-machine) backend: neighbour artifacts with the C kernels, batch top-N.

Neighbour lists come from :func:`llmcf.cf.similarity.compute_similarities` (``dense=False``),
the same kernel :class:`~llmcf.cf.knn.ItemKNN` uses above ``dense_max``; only the index order
differs: the artifact indexes entities by their sorted external ids (see
:mod:`llmcf.backends.artifact`). Cost: ``sum_y deg(y)^2`` accumulations (y = users for
item-item, items for user-user), memory O(nnz + n * K + threads * n).

Batch recommendations (:func:`recommend_all`), with S_k the first ``k`` stored neighbours and
R the users x items rating matrix::

    item kind:  score(u, j) = sum_{i in I_u} R[u, i] * S_k[j, i]
    user kind:  score(u, j) = sum_{v in N_k(u)} S_k[u, v] * R[v, j]

Each user gets the unseen items with score > 0, by decreasing score (ties: lower item index);
free slots are filled with the most popular unseen items not yet listed (popularity = number
of interactions, ties: lower index), marked ``from_cf = False``. A user with no positive score
at all is a fallback (``was_fallback``): popularity only.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from llmcf.backends.artifact import (
    Kind,
    NeighborArtifact,
    _guess,
    canonical_vocabulary,
    check_params,
    fuse_neighbors,
)
from llmcf.data.dataset import Dataset
from llmcf.data.vocab import Vocabulary
from llmcf.errors import ConfigError, DataError
from llmcf.ranking.lists import Recommendations

PathLike = str | os.PathLike[str]


@dataclass
class Interactions:
    """Interactions re-indexed to the canonical (sorted-id) vocabularies; int64 / float64 arrays."""

    users: Vocabulary
    items: Vocabulary
    user_idx: np.ndarray
    item_idx: np.ndarray
    rating: np.ndarray
    source: str = ""

    @classmethod
    def from_dataset(cls, dataset: Dataset) -> Interactions:
        """Keep the users/items that occur, ordered by external id."""

        def remap(vocab: Vocabulary, idx: np.ndarray, name: str) -> tuple[Vocabulary, np.ndarray]:
            present = np.flatnonzero(np.bincount(idx, minlength=len(vocab)) > 0)
            ids = vocab.ids[present]
            order = np.argsort(ids, kind="stable")
            new_of_old = np.full(len(vocab), -1, dtype=np.int64)
            new_of_old[present[order]] = np.arange(len(present))
            return canonical_vocabulary(ids, name), new_of_old[idx]

        users, uidx = remap(dataset.users, dataset.user_idx, "user")
        items, iidx = remap(dataset.items, dataset.item_idx, "item")
        return cls(
            users, items, uidx, iidx, np.asarray(dataset.rating, dtype=np.float64), dataset.name
        )

    def __len__(self) -> int:
        return int(self.user_idx.shape[0])


def load_interactions(
    source: PathLike | Dataset | Interactions, *, columns: dict[str, str] | None = None
) -> Interactions:
    """Interactions from a Dataset, a Parquet/CSV file (columns guessed or given) or a known name."""
    if isinstance(source, Interactions):
        return source
    if isinstance(source, Dataset):
        return Interactions.from_dataset(source)
    from llmcf.data.loaders import load_table, resolve_dataset

    path = Path(source)
    if path.is_file() and path.suffix == ".parquet":
        return _read_parquet(path, columns)
    if path.is_file() and path.suffix in (".csv", ".tsv", ".gz"):
        dataset = load_table(path, columns=columns)
    else:
        if columns is not None:
            raise ConfigError("columns apply to a single Parquet/CSV file, not to a named data set")
        dataset = resolve_dataset(str(source))
    return Interactions.from_dataset(dataset)


def _parquet_ids(values: np.ndarray, label: str, column: str, role: str) -> np.ndarray:
    """Ids typed as :func:`llmcf.data.loaders.load_table` types them (ints, whole floats ->
    int64, with the same range check; anything else -> stripped text); empty ids raise
    naming the row."""
    from llmcf.data.loaders.common import _whole_number_ids

    if values.dtype.kind == "f":
        bad = ~np.isfinite(values)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataError(f"empty {role} id", path=label, line=row + 1, column=column)
    if values.dtype.kind in "iuf":
        ids = _whole_number_ids(values, label, column, role, lambda row: row + 1)
        if ids is not None:
            return ids
    text = np.char.strip(values.astype(str))
    empty = text == ""  # nulls were rejected before
    if empty.any():
        row = int(np.flatnonzero(empty)[0])
        raise DataError(f"empty {role} id", path=label, line=row + 1, column=column)
    return text


def _read_parquet(path: Path, columns: dict[str, str] | None) -> Interactions:
    """Parquet interactions straight to canonical indices (one ``np.unique`` per side, no
    first-appearance vocabulary): the checks of ``load_table`` (missing column, empty id,
    rating that is not a finite number, duplicate pair), with 1-based rows in the messages."""
    import pyarrow.parquet as pq

    label = str(path)
    try:
        available = list(pq.read_schema(path).names)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read Parquet: {exc}", path=label) from None
    mapping = _guess(available, dict(columns) if columns is not None else None, label)
    table = pq.read_table(
        path, columns=list(dict.fromkeys(mapping[r] for r in mapping if r != "timestamp"))
    )
    if table.num_rows == 0:
        raise DataError("no data rows", path=label)
    ids = {}
    for role in ("user", "item"):
        col = table[mapping[role]]
        if col.null_count:
            row = int(np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[0])
            raise DataError(f"empty {role} id", path=label, line=row + 1, column=mapping[role])
        ids[role] = _parquet_ids(col.to_numpy(zero_copy_only=False), label, mapping[role], role)
    if "rating" in mapping:
        raw = table[mapping["rating"]].to_numpy(zero_copy_only=False)
        try:
            rating = raw.astype(np.float64)
        except (TypeError, ValueError):
            rating = np.array([_to_float(v) for v in raw])
        bad = ~np.isfinite(rating)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataError(
                "rating is not a number",
                path=label,
                line=row + 1,
                column=mapping["rating"],
                value=raw[row].item() if hasattr(raw[row], "item") else raw[row],
            )
    else:
        rating = np.ones(table.num_rows)
    user_ids, user_idx = np.unique(ids["user"], return_inverse=True)
    item_ids, item_idx = np.unique(ids["item"], return_inverse=True)
    key = user_idx.astype(np.int64) * len(item_ids) + item_idx
    order = np.argsort(key, kind="stable")
    repeated = np.flatnonzero(key[order][1:] == key[order][:-1])
    if len(repeated):
        first, second = sorted((int(order[repeated[0]]), int(order[repeated[0] + 1])))
        raise DataError(
            f"duplicate (user, item) pair at rows {first + 1} and {second + 1}; deduplicate the table",
            path=label,
            value=(user_ids[user_idx[first]].item(), item_ids[item_idx[first]].item()),
        )
    return Interactions(
        canonical_vocabulary(user_ids, "user"),
        canonical_vocabulary(item_ids, "item"),
        user_idx.astype(np.int64),
        item_idx.astype(np.int64),
        rating,
        path.name.split(".")[0],
    )


def _to_float(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return float("nan")


def read_text_neighbors(
    source: PathLike | Any, items: Vocabulary
) -> tuple[np.ndarray, np.ndarray, int]:
    """Text neighbour lists from a table (``item_id``, ``neighbor_id``, ``similarity``).

    ``source`` is a Parquet/CSV path or a pandas DataFrame. Rows whose item or neighbour is not
    in ``items`` (no interactions) are dropped; their number is returned. Returns
    ``(idx int32, cos float64, n_dropped)`` with shape (n_items, max list length), -1 padded,
    each row sorted by decreasing cosine.
    """
    import pandas as pd

    if isinstance(source, pd.DataFrame):
        frame, label = source, "<DataFrame>"
    else:
        path = Path(source)
        label = str(path)
        if not path.is_file():
            raise DataError("text neighbour file not found", path=label)
        frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    for col in ("item_id", "neighbor_id", "similarity"):
        if col not in frame.columns:
            raise DataError(
                f"missing column {col!r} in text neighbours; available: {list(map(str, frame.columns))}",
                path=label,
            )
    sims = pd.to_numeric(frame["similarity"], errors="coerce").to_numpy(np.float64)
    bad = ~np.isfinite(sims)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(
            "similarity is not a finite number",
            path=label,
            line=row + 2 if label.endswith(".csv") else row + 1,
            column="similarity",
            value=frame["similarity"].iloc[row],
        )
    x = items.lookup(frame["item_id"].to_numpy(), missing="negative").astype(np.int64)
    x2 = items.lookup(frame["neighbor_id"].to_numpy(), missing="negative").astype(np.int64)
    keep = (x >= 0) & (x2 >= 0)
    dropped = int((~keep).sum())
    x, x2, sims = x[keep], x2[keep], sims[keep]
    order = np.lexsort((x2, -sims, x))
    x, x2, sims = x[order], x2[order], sims[order]
    n = len(items)
    counts = np.bincount(x, minlength=n)
    width = max(int(counts.max()) if len(counts) else 0, 1)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.arange(len(x)) - starts[x]
    idx = np.full((n, width), -1, dtype=np.int32)
    cos = np.zeros((n, width))
    idx[x, rank] = x2
    cos[x, rank] = sims
    return idx, cos, dropped


def text_neighbor_table(
    item_ids: np.ndarray, embeddings: np.ndarray, n_neighbors: int, block_size: int = 1024
) -> Any:
    """Exact text neighbours as a DataFrame (``item_id``, ``neighbor_id``, ``similarity``).

    ``embeddings`` (n, d) rows are L2-normalised; the similarity is the cosine v_x . v_x',
    the ``n_neighbors`` largest per item (self excluded), ties by lower position.
    """
    import pandas as pd

    from llmcf.ranking import top_n_rows

    emb = np.asarray(embeddings, dtype=np.float64)
    n = emb.shape[0]
    rows, nbrs, sims = [], [], []
    for start in range(0, n, block_size):
        block = emb[start : start + block_size] @ emb.T
        np.fill_diagonal(block[:, start : start + block_size], -np.inf)
        idx, val = top_n_rows(block, n_neighbors)
        keep = idx >= 0
        rows.append(np.repeat(np.arange(start, start + len(block)), keep.sum(axis=1)))
        nbrs.append(idx[keep])
        sims.append(val[keep])
    ids = np.asarray(item_ids)
    r = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    c = np.concatenate(nbrs) if nbrs else np.zeros(0, np.int64)
    return pd.DataFrame(
        {
            "item_id": ids[r],
            "neighbor_id": ids[c],
            "similarity": np.concatenate(sims) if sims else np.zeros(0),
        }
    )


def entry_values(
    x: np.ndarray, y: np.ndarray, rating: np.ndarray, n_y: int, similarity: str
) -> np.ndarray:
    """Per-entry values the similarity is computed on: raw ratings, or ``r - mean_y`` for
    adjusted_cosine (mean_y = sum of y's ratings / their number, as in :mod:`llmcf.cf.knn`)."""
    from llmcf.cf.similarity import EntryContext, get_similarity

    y_means = np.bincount(y, weights=rating, minlength=n_y) / np.maximum(
        np.bincount(y, minlength=n_y), 1
    )
    ctx = EntryContext(x, y, rating, 0.0, None, None, y_means)
    return get_similarity(similarity).transform(ctx)


def build_neighbors(
    source: PathLike | Dataset | Interactions,
    kind: Kind = "item",
    similarity: str = "cosine",
    *,
    n_neighbors: int = 50,
    shrinkage: float | None = None,
    min_support: int = 1,
    threads: int | None = None,
    text_neighbors: PathLike | Any | None = None,
    alpha: float = 0.5,
    shift: float = 0.0,
    power: float = 1.0,
    columns: dict[str, str] | None = None,
    progress: bool = False,
) -> NeighborArtifact:
    """Top-``n_neighbors`` lists of ``kind`` (item-item or user-user) with the C kernel.

    With ``text_neighbors`` (item kind only; a table as in :func:`read_text_neighbors`) the CF
    lists are fused with the text lists (:func:`llmcf.backends.artifact.fuse_neighbors`).
    """
    from llmcf.cf import _kernels
    from llmcf.cf.similarity import EntryLayout, compute_similarities, get_similarity

    check_params(kind, similarity, n_neighbors, min_support, shrinkage, alpha)
    if text_neighbors is not None and kind != "item":
        raise ConfigError("text neighbours fuse item-item similarities; use kind='item'")
    t0 = time.perf_counter()
    data = load_interactions(source, columns=columns)
    if kind == "item":
        x, y, n_x, n_y = data.item_idx, data.user_idx, len(data.items), len(data.users)
    else:
        x, y, n_x, n_y = data.user_idx, data.item_idx, len(data.users), len(data.items)
    _kernels.set_threads(threads)
    layout = EntryLayout.build(x, y, n_x, n_y)
    values = entry_values(x, y, data.rating, n_y, similarity)
    result = compute_similarities(
        layout,
        values,
        get_similarity(similarity),
        min_support=min_support,
        shrinkage=shrinkage,
        dense=False,
        n_neighbors=n_neighbors,
        progress=progress,
    )
    assert isinstance(result, tuple)
    nbr_idx, nbr_sim = result
    params: dict[str, Any] = {
        "n_neighbors": n_neighbors,
        "shrinkage": 0.0 if shrinkage is None else float(shrinkage),
        "min_support": max(int(min_support), 1),
    }
    info: dict[str, Any] = {"backend": "local", "source": data.source, "n_interactions": len(data)}
    if text_neighbors is not None:
        t_idx, t_cos, dropped = read_text_neighbors(text_neighbors, data.items)
        nbr_idx, nbr_sim = fuse_neighbors(
            nbr_idx, nbr_sim, t_idx, t_cos, alpha, n_neighbors, shift=shift, power=power
        )
        params.update({"fusion": "fixed", "alpha": alpha, "shift": shift, "power": power})
        info["text_rows_dropped"] = dropped
    info["seconds"] = time.perf_counter() - t0
    return NeighborArtifact(
        kind, similarity, params, data.users, data.items, nbr_idx, nbr_sim, info
    )


def recommendations_frame(model: Any, recs: Recommendations, users: np.ndarray) -> Any:
    """Long table of batch lists: ``user_id``, ``rank`` (1 = best), ``item_id``, ``score``,
    ``source`` and ``was_fallback``; sorted by user index then rank."""
    import pandas as pd

    from llmcf.ranking.lists import SOURCES

    keep = recs.items >= 0
    rows, rank = np.nonzero(keep)
    sources = np.asarray(SOURCES)[recs.sources[keep]] if recs.sources is not None else "model"
    return pd.DataFrame(
        {
            "user_id": model.users_.ids[users[rows]],
            "rank": (rank + 1).astype(np.int32),
            "item_id": model.items_.ids[recs.items[keep]],
            "score": recs.scores[keep],
            "source": sources,
            "was_fallback": recs.was_fallback[rows],
        }
    )


def recommend_all(model: Any, n: int = 10, *, progress: bool = False) -> Any:
    """Top-``n`` of every training user of a fitted model through the one ranking path
    (:func:`llmcf.ranking.path.rank`), as :func:`recommendations_frame`."""
    from tqdm.auto import tqdm

    from llmcf.ranking.path import check_n, rank

    n = check_n(n)
    users = np.arange(len(model.users_), dtype=np.int64)
    step = max(1, min(2048, (1 << 24) // max(len(model.items_), 1)))
    frames = []
    for start in tqdm(
        range(0, len(users), step), desc="recommend", unit="block", disable=not progress
    ):
        block = users[start : start + step]
        frames.append(recommendations_frame(model, rank(model, n, users=block), block))
    import pandas as pd

    return (
        pd.concat(frames, ignore_index=True)
        if frames
        else recommendations_frame(model, rank(model, n, users=users[:0]), users[:0])
    )


def write_recommendations(path: PathLike, frame: Any) -> Path:
    """Write a :func:`recommendations_frame` to one Parquet file; returns the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(out, index=False)
    return out


def read_recommendations(path: PathLike) -> Any:
    """Read recommendations written by either backend (a file or a Spark output folder) as a
    DataFrame sorted by (user_id, rank)."""
    import pandas as pd

    frame = pd.read_parquet(path)
    return frame.sort_values(["user_id", "rank"], kind="stable").reset_index(drop=True)
