"""Loaders: files on disk (MovieLens, Amazon 2018, UCI Online Retail, any table) -> :class:`Dataset`.

Every loader turns bad input into a :class:`~llmcf.errors.DataError` naming the file, the line
(1-based, header counted) and the offending value. Nothing is cached: each call reads the files.

Entry points
    :func:`load_movielens` (every official layout, detected from the files present),
    :func:`load_movielens_100k_fold`, :func:`load_amazon2018`, :func:`load_online_retail`,
    :func:`load_table` (generic CSV/TSV/Parquet/DataFrame) and :func:`resolve_dataset`
    (a known name under ``settings.data_dir()`` or a path whose loader is detected).
"""

from __future__ import annotations

import ast
import csv
import gzip
import html
import io
import json
import re
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from llmcf import settings
from llmcf.data.dataset import Catalog, Dataset, Feedback
from llmcf.data.vocab import Vocabulary
from llmcf.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "KNOWN_DATASETS",
    "ML100K_FOLDS",
    "load_amazon2018",
    "load_movielens",
    "load_movielens_100k",
    "load_movielens_100k_fold",
    "load_online_retail",
    "load_table",
    "resolve_data_path",
    "resolve_dataset",
]

DuplicatePolicy = Literal["error", "last", "first", "sum", "mean"]
PathLike = str | Path

ML100K_FOLDS = ("u1", "u2", "u3", "u4", "u5", "ua", "ub")

# known name -> folder under settings.data_dir(); ``amazon2018-<category>`` is accepted too.
KNOWN_DATASETS: dict[str, str] = {
    "ml-100k": "ml-100k",
    "ml-1m": "ml-1m",
    "ml-1m-partial": "ml-1m-partial",
    "ml-10m": "ml-10m",
    "ml-latest-small": "ml-latest-small",
    "ml-latest": "ml-latest",
    "ml-20m": "ml-20m",
    "ml-25m": "ml-25m",
    "ml-32m": "ml-32m",
    "amazon2018-gift-cards": "amazon2018-gift-cards",
    "uci-online-retail": "uci-online-retail",
}

_TITLE_YEAR = re.compile(r"^(.*?)\s*\((\d{4})(?:[-–]\d{0,4})?\)\s*$")


# ---------------------------------------------------------------------------------- helpers
def _read_bytes(path: Path) -> bytes:
    """Raw bytes of a file, gunzipped when the name ends in ``.gz``."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as fh:
                return fh.read()
        return path.read_bytes()
    except FileNotFoundError:
        raise DataError("file not found", path=str(path)) from None
    except (OSError, EOFError) as exc:
        raise DataError(f"cannot read file: {exc}", path=str(path)) from None


def _decode(data: bytes, path: Path, encoding: str) -> str:
    """Decode ``data``; a failure names the encoding tried, the byte offset and the line."""
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise DataError(
            f"cannot decode as {encoding} at byte offset {exc.start} ({exc.reason}); "
            "pass the right encoding=",
            path=str(path),
            line=line,
            value=data[exc.start : exc.start + 4],
        ) from None


def _split_title_year(title: str) -> tuple[str, int | None]:
    """``"Toy Story (1995)"`` -> ``("Toy Story", 1995)``; no year -> ``(title, None)``."""
    match = _TITLE_YEAR.match(title)
    if match is None:
        return title.strip(), None
    return match.group(1).strip(), int(match.group(2))


def _parse_int_table(data: bytes, n_cols: int, path: Path, sep: bytes = b"\t") -> np.ndarray:
    """Parse whitespace/``sep``-separated integers into an int64 array of shape (n, n_cols).

    The fast path is ``np.fromstring``; when the value count does not match the line count the
    slow path walks the lines to name the first bad one.
    """
    text = data if sep in (b"\t", b" ") else data.replace(sep, b" ")
    n_lines = text.count(b"\n") + (0 if text.endswith(b"\n") or not text else 1)
    if not text.strip():
        raise DataError("empty file", path=str(path))
    try:
        with warnings.catch_warnings():
            # numpy warns (or raises) when a token is not an integer: take the slow path
            warnings.simplefilter("error")
            values = np.fromstring(text, dtype=np.int64, sep=" ")
    except (ValueError, DeprecationWarning):
        values = np.empty(0, np.int64)
    if values.size == n_lines * n_cols:
        return values.reshape(n_lines, n_cols)
    lines = data.split(b"\n")
    if lines and not lines[-1]:
        lines.pop()
    for lineno, raw in enumerate(lines, start=1):
        fields = raw.strip().split(sep) if sep != b" " else raw.split()
        if not raw.strip():
            raise DataError("empty line", path=str(path), line=lineno)
        if len(fields) != n_cols:
            raise DataError(
                f"expected {n_cols} fields, found {len(fields)}",
                path=str(path),
                line=lineno,
                value=raw.decode("latin-1"),
            )
        for field in fields:
            try:
                int(field)
            except ValueError:
                raise DataError(
                    "not an integer", path=str(path), line=lineno, value=field.decode("latin-1")
                ) from None
    raise DataError("could not parse integer table", path=str(path))  # pragma: no cover


def _first_column_ids(text: str, sep: str, path: Path) -> np.ndarray:
    """int64 ids from the first field of every non-empty line."""
    ids = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        head = line.split(sep, 1)[0]
        try:
            ids.append(int(head))
        except ValueError:
            raise DataError(
                "id is not an integer", path=str(path), line=lineno, value=head
            ) from None
    return np.asarray(ids, dtype=np.int64)


def _n_duplicates(ds: Dataset) -> int:
    """Like :meth:`Dataset.n_duplicates`, with a counting array when users x items is small."""
    cells = ds.n_users * ds.n_items
    if len(ds) == 0:
        return 0
    if cells <= 50_000_000:
        key = ds.user_idx.astype(np.int64) * ds.n_items + ds.item_idx
        return int(len(key) - np.count_nonzero(np.bincount(key, minlength=0)))
    return ds.n_duplicates()


def _check_duplicates_or_warn(
    ds: Dataset, policy: DuplicatePolicy, describe: str, path: Path | str
) -> Dataset:
    n_dup = _n_duplicates(ds)
    if n_dup == 0:
        return ds
    if policy == "error":
        import pandas as pd

        key = ds.user_idx.astype(np.int64) * max(ds.n_items, 1) + ds.item_idx
        dup_mask = pd.Series(key).duplicated(keep=False).to_numpy()
        first = int(np.flatnonzero(dup_mask)[0])
        rows = np.flatnonzero(key == key[first])[:2]
        raise DataError(
            f"duplicate (user, item) pair at {describe} {rows[0] + 1} and {rows[1] + 1}; "
            "pass duplicates='last'|'first'|'sum'|'mean'",
            path=str(path),
            value=(
                ds.users.ids[ds.user_idx[rows[0]]].item(),
                ds.items.ids[ds.item_idx[rows[0]]].item(),
            ),
        )
    warnings.warn(
        f"{path}: {n_dup} duplicate (user, item) interactions merged with policy {policy!r}",
        stacklevel=3,
    )
    out = ds.deduplicate(policy)
    out.info["duplicates_removed"] = n_dup
    return out


# ---------------------------------------------------------------------------------- MovieLens
_ML_LAYOUT_FILES = (
    "u.data / u1.base (100K)",
    "ratings.dat or ratings*.dat.gz (1M/10M)",
    "ratings_pairs*.parquet / ratings_pairs*.csv[.gz] (pairs only)",
    "ratings.csv (20M/25M/32M/latest)",
)


class _LazyCatalog(Catalog):
    """A :class:`Catalog` whose fields are built on first access (keeps hot load paths cheap)."""

    def __init__(self, build: Callable[[], dict[str, list[object]]]) -> None:
        self._build: Callable[[], dict[str, list[object]]] | None = build
        self._fields: dict[str, list[object]] = {}

    @property  # type: ignore[override]
    def fields(self) -> dict[str, list[object]]:
        if self._build is not None:
            self._fields, self._build = self._build(), None
        return self._fields

    @fields.setter
    def fields(self, value: dict[str, list[object]]) -> None:
        self._fields, self._build = value, None


_LEADING_ID = re.compile(rb"^([^|\r\n]*)\|", re.MULTILINE)


def _ml100k_items(folder: Path) -> tuple[Vocabulary, Catalog]:
    """Item vocabulary from ``u.item`` now; the catalog is parsed on first access."""
    path = folder / "u.item"
    data = _read_bytes(path)
    heads = _LEADING_ID.findall(data)
    try:
        ids = np.asarray(heads, dtype=np.int64)
    except ValueError:
        ids = np.asarray([int(h) for h in heads], dtype=np.int64)  # raises below with the line
    text = _decode(data, path, "latin-1")
    n_lines = sum(1 for line in text.splitlines() if line)
    if len(ids) != n_lines:
        _ml100k_item_fields(text, path, [])  # names the bad line
    genre_names = _ml100k_genres(folder)
    return Vocabulary(ids, name="item"), _LazyCatalog(
        lambda: _ml100k_item_fields(text, path, genre_names)
    )


def _ml100k_item_fields(text: str, path: Path, genre_names: list[str]) -> dict[str, list[object]]:
    titles: list[object] = []
    years: list[object] = []
    genres: list[object] = []
    urls: list[object] = []
    dates: list[object] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line:
            continue
        parts = line.split("|")
        if len(parts) < 5:
            raise DataError(
                "expected at least 5 '|'-separated fields", path=str(path), line=lineno, value=line
            )
        try:
            int(parts[0])
        except ValueError:
            raise DataError(
                "movie id is not an integer", path=str(path), line=lineno, value=parts[0]
            ) from None
        title, year = _split_title_year(parts[1])
        if year is None and parts[2][-4:].isdigit():
            year = int(parts[2][-4:])
        titles.append(title or None)
        years.append(year)
        dates.append(parts[2] or None)
        urls.append(parts[4] or None)
        genres.append(
            [
                genre_names[k] if k < len(genre_names) else str(k)
                for k, f in enumerate(parts[5:])
                if f == "1"
            ]
        )
    return {"title": titles, "year": years, "genres": genres, "url": urls, "release_date": dates}


def _ml100k_genres(folder: Path) -> list[str]:
    path = folder / "u.genre"
    if not path.exists():
        return []
    names: dict[int, str] = {}
    for line in _decode(_read_bytes(path), path, "latin-1").splitlines():
        if "|" in line:
            name, _, number = line.rpartition("|")
            if number.strip().isdigit():
                names[int(number)] = name
    return [names[k] for k in sorted(names)]


def _ml100k_users(folder: Path) -> tuple[Vocabulary, Catalog]:
    path = folder / "u.user"
    text = _decode(_read_bytes(path), path, "latin-1")
    ids: list[int] = []
    cols: dict[str, list[object]] = {"age": [], "gender": [], "occupation": [], "zip": []}
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line:
            continue
        parts = line.split("|")
        if len(parts) != 5:
            raise DataError(
                "expected 5 '|'-separated fields", path=str(path), line=lineno, value=line
            )
        try:
            ids.append(int(parts[0]))
            cols["age"].append(int(parts[1]))
        except ValueError:
            raise DataError(
                "user id or age is not an integer", path=str(path), line=lineno, value=line
            ) from None
        cols["gender"].append(parts[2])
        cols["occupation"].append(parts[3])
        cols["zip"].append(parts[4])
    return Vocabulary(np.asarray(ids, dtype=np.int64), name="user"), Catalog(cols)


def _ml100k_dataset(folder: Path, tables: list[Path], name: str) -> tuple[Dataset, list[int]]:
    """Interactions of ``tables`` concatenated in file order; returns the dataset and row counts."""
    users, user_catalog = (
        _ml100k_users(folder) if (folder / "u.user").exists() else (None, Catalog())
    )
    items, item_catalog = (
        _ml100k_items(folder) if (folder / "u.item").exists() else (None, Catalog())
    )
    parts = [_parse_int_table(_read_bytes(p), 4, p) for p in tables]
    sizes = [len(p) for p in parts]
    rows = np.concatenate(parts) if parts else np.empty((0, 4), np.int64)
    if users is None:
        users, user_idx = Vocabulary.from_values(rows[:, 0], name="user")
    else:
        user_idx = _lookup(users, rows[:, 0], tables, sizes, "user")
    if items is None:
        items, item_idx = Vocabulary.from_values(rows[:, 1], name="item")
    else:
        item_idx = _lookup(items, rows[:, 1], tables, sizes, "item")
    rating = rows[:, 2].astype(np.float64)
    bad = (rating < 1) | (rating > 5)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        path, line = _locate(tables, sizes, k)
        raise DataError(
            "rating outside the scale (1, 5)", path=str(path), line=line, value=rating[k]
        )
    ds = Dataset(
        users,
        items,
        user_idx,
        item_idx,
        rating,
        rows[:, 3],
        feedback="explicit",
        rating_scale=(1.0, 5.0),
        item_catalog=item_catalog,
        user_catalog=user_catalog,
        name=name,
        check_duplicates=False,
        info={"source": str(folder), "files": [p.name for p in tables]},
    )
    _check_duplicates_or_warn(ds, "error", "interaction", folder)
    return ds, sizes


def _locate(tables: list[Path], sizes: list[int], k: int) -> tuple[Path, int]:
    for path, size in zip(tables, sizes, strict=True):
        if k < size:
            return path, k + 1
        k -= size
    raise IndexError(k)  # pragma: no cover


def _lookup(
    vocab: Vocabulary, ids: np.ndarray, tables: list[Path], sizes: list[int], what: str
) -> np.ndarray:
    vocab_ids = vocab.ids
    if len(vocab_ids) and 0 <= vocab_ids.min() and vocab_ids.max() < 10_000_000 and len(ids):
        # small non-negative integer ids: a direct table beats a binary search
        table = np.full(int(max(vocab_ids.max(), ids.max(), 0)) + 1, -1, dtype=np.int32)
        table[vocab_ids] = np.arange(len(vocab_ids), dtype=np.int32)
        idx = table[np.clip(ids, 0, len(table) - 1)]
        idx[ids < 0] = -1
    else:
        idx = vocab.lookup(ids, missing="negative")
    if (idx < 0).any():
        k = int(np.flatnonzero(idx < 0)[0])
        path, line = _locate(tables, sizes, k)
        raise DataError(
            f"{what} id not in the {what} list", path=str(path), line=line, value=int(ids[k])
        )
    return idx


def load_movielens_100k(path: PathLike) -> Dataset:
    """MovieLens 100K: all of ``u.data`` (100,000 ratings, 943 users, 1,682 items).

    Vocabularies are the ids of ``u.user`` and ``u.item`` in file order (int64); item catalog
    fields ``title`` (without the year), ``year``, ``genres``, ``url``, ``release_date``; user
    catalog ``age``, ``gender``, ``occupation``, ``zip``. ``rating_scale`` is (1, 5).
    """
    folder = Path(path)
    folder = folder.parent if folder.is_file() else folder
    ds, _ = _ml100k_dataset(folder, [folder / "u.data"], name="ml-100k")
    return ds


def load_movielens_100k_fold(path: PathLike, fold: str) -> tuple[Dataset, np.ndarray, np.ndarray]:
    """One canonical ML-100K split: ``(dataset, train_indices, test_indices)``.

    The interactions are the ``{fold}.base`` lines in file order followed by the
    ``{fold}.test`` lines in file order, so ``train_indices = arange(n_base)`` and
    ``test_indices = arange(n_base, n_base + n_test)``. ``fold`` is one of ``u1``..``u5``,
    ``ua``, ``ub``. Parsing is numpy on the raw bytes (no pandas) and nothing is cached.
    """
    if fold not in ML100K_FOLDS:
        raise DataError(
            f"unknown ML-100K fold; expected one of {', '.join(ML100K_FOLDS)}", value=fold
        )
    folder = Path(path)
    folder = folder.parent if folder.is_file() else folder
    tables = [folder / f"{fold}.base", folder / f"{fold}.test"]
    ds, (n_base, n_test) = _ml100k_dataset(folder, tables, name=f"ml-100k-{fold}")
    train = np.arange(n_base, dtype=np.int64)
    test = np.arange(n_base, n_base + n_test, dtype=np.int64)
    return ds, train, test


def _ml_dat_items(path: Path) -> tuple[np.ndarray, Catalog]:
    text = _decode(_read_bytes(path), path, "latin-1")
    ids: list[int] = []
    cols: dict[str, list[object]] = {"title": [], "year": [], "genres": []}
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line:
            continue
        parts = line.split("::")
        if len(parts) != 3:
            raise DataError(
                "expected MovieID::Title::Genres", path=str(path), line=lineno, value=line
            )
        try:
            ids.append(int(parts[0]))
        except ValueError:
            raise DataError(
                "movie id is not an integer", path=str(path), line=lineno, value=parts[0]
            ) from None
        title, year = _split_title_year(parts[1])
        cols["title"].append(title)
        cols["year"].append(year)
        cols["genres"].append(_genres(parts[2]))
    return np.asarray(ids, dtype=np.int64), Catalog(cols)


def _genres(text: str) -> list[str]:
    return [g for g in text.strip().split("|") if g and g != "(no genres listed)"]


def _ml_dat_users(path: Path) -> tuple[np.ndarray, Catalog]:
    text = _decode(_read_bytes(path), path, "latin-1")
    ids: list[int] = []
    cols: dict[str, list[object]] = {"gender": [], "age": [], "occupation": [], "zip": []}
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line:
            continue
        parts = line.split("::")
        if len(parts) != 5:
            raise DataError(
                "expected UserID::Gender::Age::Occupation::Zip-code",
                path=str(path),
                line=lineno,
                value=line,
            )
        try:
            ids.append(int(parts[0]))
            cols["age"].append(int(parts[2]))
            cols["occupation"].append(int(parts[3]))
        except ValueError:
            raise DataError("not an integer", path=str(path), line=lineno, value=line) from None
        cols["gender"].append(parts[1])
        cols["zip"].append(parts[4])
    return np.asarray(ids, dtype=np.int64), Catalog(cols)


def _vocab_with_extra(
    listed: np.ndarray | None, seen: np.ndarray, name: str
) -> tuple[Vocabulary, np.ndarray]:
    """Vocabulary of ``listed`` ids (file order) plus unlisted ``seen`` ids appended in order of appearance."""
    if listed is None:
        return Vocabulary.from_values(seen, name=name)
    vocab = Vocabulary(listed, name=name).extend(seen)
    return vocab, vocab.lookup(seen)


def _ml_ratings_dat(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """user, item (int64), rating (float64), timestamp (int64) from a ``::`` ratings file."""
    import pandas as pd

    data = _read_bytes(path)
    if not data.strip():
        raise DataError("empty file", path=str(path))
    try:
        frame = pd.read_csv(
            io.BytesIO(data.replace(b"::", b"\t")),
            sep="\t",
            header=None,
            names=["user", "item", "rating", "timestamp"],
            dtype={"user": np.int64, "item": np.int64, "rating": np.float64, "timestamp": np.int64},
            engine="c",
        )
    except (ValueError, pd.errors.ParserError):
        for lineno, line in enumerate(data.split(b"\n"), start=1):
            if not line.strip():
                continue
            parts = line.split(b"::")
            try:
                if len(parts) != 4:
                    raise ValueError
                int(parts[0]), int(parts[1]), float(parts[2]), int(parts[3])
            except ValueError:
                raise DataError(
                    "expected UserID::MovieID::Rating::Timestamp",
                    path=str(path),
                    line=lineno,
                    value=line.decode("latin-1"),
                ) from None
        raise
    return (
        frame["user"].to_numpy(),
        frame["item"].to_numpy(),
        frame["rating"].to_numpy(),
        frame["timestamp"].to_numpy(),
    )


def _ml_pairs(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import pandas as pd

    frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, dtype=str)
    lower = {str(c).lower(): c for c in frame.columns}
    user_col, item_col = lower.get("userid"), lower.get("movieid")
    if user_col is None or item_col is None:
        raise DataError(
            f"pairs file needs columns UserID and MovieID; found {list(frame.columns)}",
            path=str(path),
        )
    try:
        users = pd.to_numeric(frame[user_col], errors="raise").to_numpy(np.int64)
        items = pd.to_numeric(frame[item_col], errors="raise").to_numpy(np.int64)
    except (ValueError, TypeError) as exc:
        raise DataError(f"non-integer id in pairs file: {exc}", path=str(path)) from None
    return users, items


def _load_movielens_dat(folder: Path, pairs_only: bool) -> Dataset:
    movies = folder / "movies.dat"
    users_file = folder / "users.dat"
    item_ids, item_catalog = _ml_dat_items(movies) if movies.exists() else (None, Catalog())
    user_ids, user_catalog = _ml_dat_users(users_file) if users_file.exists() else (None, Catalog())
    info: dict[str, object] = {"source": str(folder)}
    if pairs_only:
        pair_files = sorted(folder.glob("ratings_pairs*.parquet")) + sorted(
            folder.glob("ratings_pairs*.csv*")
        )
        if not pair_files:
            raise DataError(
                "pairs_only=True but no ratings_pairs*.parquet / ratings_pairs*.csv[.gz] found",
                path=str(folder),
            )
        pair_path = pair_files[0]
        u, i = _ml_pairs(pair_path)
        rating = np.ones(len(u), dtype=np.float64)
        timestamp = None
        feedback: Feedback = "implicit"
        scale = None
        info["files"] = [pair_path.name]
    else:
        rating_files = (
            [folder / "ratings.dat"]
            if (folder / "ratings.dat").exists()
            else sorted(folder.glob("ratings*.dat.gz"))
        )
        if not rating_files:
            raise DataError(
                "no ratings.dat or ratings*.dat.gz (use pairs_only=True for pairs files)",
                path=str(folder),
            )
        rating_path = rating_files[0]
        u, i, rating, ts = _ml_ratings_dat(rating_path)
        timestamp = ts
        feedback = "explicit"
        # ML-1M ships users.dat and has whole stars; ML-10M has no users.dat and half stars
        scale = (1.0, 5.0) if users_file.exists() else (0.5, 5.0)
        info["files"] = [rating_path.name]
        if "TRUNCATED" in rating_path.name:
            info["truncated"] = True
        bad = (rating < scale[0]) | (rating > scale[1])
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"rating outside the scale {scale}",
                path=str(rating_path),
                line=k + 1,
                value=rating[k],
            )
    users, user_idx = _vocab_with_extra(user_ids, u, "user")
    items, item_idx = _vocab_with_extra(item_ids, i, "item")
    if len(items) > len(item_catalog.fields.get("title", [])) and item_catalog.fields:
        item_catalog = item_catalog.take(len(items))
    if len(users) > len(user_catalog.fields.get("gender", [])) and user_catalog.fields:
        user_catalog = user_catalog.take(len(users))
    name = folder.name or "movielens"
    return Dataset(
        users,
        items,
        user_idx,
        item_idx,
        rating,
        timestamp,
        feedback=feedback,
        rating_scale=scale,
        item_catalog=item_catalog,
        user_catalog=user_catalog,
        name=name,
        info=info,
    )


def _load_movielens_csv(folder: Path) -> Dataset:
    ratings_path = folder / "ratings.csv"
    frame = _read_csv_checked(ratings_path, ["userId", "movieId", "rating", "timestamp"])
    u = frame["userId"].to_numpy(np.int64)
    i = frame["movieId"].to_numpy(np.int64)
    rating = frame["rating"].to_numpy(np.float64)
    bad = (rating < 0.5) | (rating > 5.0)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise DataError(
            "rating outside the scale (0.5, 5)", path=str(ratings_path), line=k + 2, value=rating[k]
        )
    item_ids: np.ndarray | None = None
    cols: dict[str, list[object]] = {}
    movies_path = folder / "movies.csv"
    if movies_path.exists():
        movies = _read_csv_checked(
            movies_path, ["movieId", "title", "genres"], dtype={"title": str, "genres": str}
        )
        item_ids = movies["movieId"].to_numpy(np.int64)
        split = [_split_title_year(t if isinstance(t, str) else "") for t in movies["title"]]
        cols["title"] = [t or None for t, _ in split]
        cols["year"] = [y for _, y in split]
        cols["genres"] = [_genres(g) if isinstance(g, str) else [] for g in movies["genres"]]
    users, user_idx = Vocabulary.from_values(u, name="user")
    items, item_idx = _vocab_with_extra(item_ids, i, "item")
    catalog = Catalog(cols).take(len(items)) if cols else Catalog()
    tags_path = folder / "tags.csv"
    if tags_path.exists():
        tags = _read_csv_checked(tags_path, ["movieId", "tag"], dtype={"tag": str})
        tags = tags.dropna(subset=["tag"])
        tag_idx = items.lookup(tags["movieId"].to_numpy(np.int64), missing="negative")
        per_item: list[object] = [[] for _ in range(len(items))]
        seen: list[set[str]] = [set() for _ in range(len(items))]
        for k, tag in zip(tag_idx.tolist(), tags["tag"].tolist(), strict=True):
            tag = str(tag).strip()
            if k >= 0 and tag and tag not in seen[k]:
                seen[k].add(tag)
                per_item[k].append(tag)  # type: ignore[attr-defined]
        catalog.fields["tags"] = per_item
    return Dataset(
        users,
        items,
        user_idx,
        item_idx,
        rating,
        frame["timestamp"].to_numpy(np.int64),
        feedback="explicit",
        rating_scale=(0.5, 5.0),
        item_catalog=catalog,
        name=folder.name or "movielens",
        info={"source": str(folder), "files": [ratings_path.name]},
    )


def _read_csv_checked(
    path: Path, required: list[str], dtype: Mapping[str, object] | None = None
) -> pd.DataFrame:
    import pandas as pd

    try:
        frame = pd.read_csv(path, dtype=dtype)  # type: ignore[arg-type]
    except pd.errors.EmptyDataError:
        raise DataError("empty file", path=str(path)) from None
    except (ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"cannot parse CSV: {exc}", path=str(path)) from None
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise DataError(
            f"missing column(s) {missing}; available columns: {list(frame.columns)}",
            path=str(path),
            line=1,
        )
    return frame


def _movielens_layout(folder: Path) -> str | None:
    if (folder / "u.data").exists() or (folder / "u1.base").exists():
        return "100k"
    if (folder / "ratings.dat").exists() or any(folder.glob("ratings*.dat.gz")):
        return "dat"
    if any(folder.glob("ratings_pairs*.parquet")) or any(folder.glob("ratings_pairs*.csv*")):
        return "pairs"
    ratings_csv = folder / "ratings.csv"
    if ratings_csv.exists():
        # only the MovieLens header makes it a MovieLens release; other ratings.csv files are tables
        with open(ratings_csv, "rb") as fh:
            header = fh.readline().decode("utf-8", "replace").strip().lower()
        if header.startswith("userid,movieid"):
            return "csv"
    return None


def load_movielens(path: PathLike, *, pairs_only: bool = False) -> Dataset:
    """Any official MovieLens release, detected from the files in ``path`` (a folder or a file in it).

    * ``u.data`` (100K): see :func:`load_movielens_100k`.
    * ``ratings.dat`` or ``ratings*.dat.gz`` with ``movies.dat``/``users.dat`` (1M, 10M): item
      vocabulary = ``movies.dat`` ids in file order, then unlisted rated ids; user vocabulary =
      ``users.dat`` ids when present. Scale (1, 5) when ``users.dat`` exists (1M), else (0.5, 5).
    * ``pairs_only=True`` (or when only a pairs file exists): ``ratings_pairs*.parquet`` /
      ``ratings_pairs*.csv[.gz]`` with UserID/MovieID, loaded as implicit feedback (weight 1,
      no timestamps). This is how the full 1,000,209 ML-1M pairs in ``ml-1m-partial`` load.
    * ``ratings.csv`` with ``movies.csv`` and ``tags.csv`` (20M/25M/32M/latest): half stars,
      scale (0.5, 5); catalog ``title``, ``year``, ``genres``, ``tags`` (distinct, first-seen order).
    """
    folder = Path(path)
    folder = folder.parent if folder.is_file() else folder
    if not folder.is_dir():
        raise DataError("MovieLens folder not found", path=str(folder))
    layout = _movielens_layout(folder)
    if layout == "100k":
        return load_movielens_100k(folder)
    if layout == "dat" or layout == "pairs":
        return _load_movielens_dat(folder, pairs_only=pairs_only or layout == "pairs")
    if layout == "csv":
        return _load_movielens_csv(folder)
    raise DataError(
        "no MovieLens layout recognised; looked for " + ", ".join(_ML_LAYOUT_FILES),
        path=str(folder),
    )


# ---------------------------------------------------------------------------------- Amazon 2018
_TAG = re.compile(r"<[^>]*>")
_SPACE = re.compile(r"\s+")
_PRICE = re.compile(r"^\$?\s*(\d[\d,]*(?:\.\d+)?)$")


def _clean_text(value: object) -> str | None:
    """HTML tags and entities stripped, whitespace folded; empty -> None."""
    if value is None:
        return None
    text = _TAG.sub(" ", str(value))
    text = _SPACE.sub(" ", html.unescape(text)).strip()
    return text or None


def _clean_list(value: object) -> list[str]:
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    return [t for t in (_clean_text(v) for v in items) if t]


def _parse_price(value: object) -> float | None:
    """``"$25.00"`` -> 25.0; ranges (``"$10.00 - $50.00"``), empty or other text -> None."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, str):
        return None
    match = _PRICE.match(value.strip())
    return float(match.group(1).replace(",", "")) if match else None


def _json_lines(path: Path) -> Iterator[tuple[int, dict[str, object]]]:
    """``(line number, record)`` of a JSON-lines file (strict JSON, or Python literals as in old dumps)."""
    text = _decode(_read_bytes(path), path, "utf-8")
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            try:
                record = ast.literal_eval(line)
            except (ValueError, SyntaxError):
                raise DataError(
                    f"invalid JSON: {exc.msg} at column {exc.colno}",
                    path=str(path),
                    line=lineno,
                    value=line[:80],
                ) from None
        if not isinstance(record, dict):
            raise DataError("expected a JSON object", path=str(path), line=lineno, value=line[:80])
        yield lineno, record


def _amazon_files(path: Path) -> tuple[Path, Path | None]:
    if path.is_file():
        reviews = path
        stem = reviews.name.split(".json")[0]
        category = stem[: -len("_5")] if stem.endswith("_5") else stem
        candidates = [
            reviews.parent / f"meta_{category}.json.gz",
            reviews.parent / f"meta_{category}.json",
        ]
        meta = next((c for c in candidates if c.exists()), None)
        if meta is None:
            others = sorted(reviews.parent.glob("meta_*.json*"))
            meta = others[0] if len(others) == 1 else None
        return reviews, meta
    if not path.is_dir():
        raise DataError("Amazon 2018 file or folder not found", path=str(path))
    json_files = sorted(p for p in path.iterdir() if p.name.endswith((".json", ".json.gz")))
    metas = [p for p in json_files if p.name.startswith("meta_")]
    reviews_files = [p for p in json_files if not p.name.startswith("meta_")]
    five = [p for p in reviews_files if p.name.split(".json")[0].endswith("_5")]
    chosen = five or reviews_files
    if not chosen:
        raise DataError(
            "no reviews file (*_5.json.gz or *.json[.gz] not starting with meta_) found",
            path=str(path),
        )
    return _amazon_files(chosen[0])[0], (
        _amazon_files(chosen[0])[1] or (metas[0] if len(metas) == 1 else None)
    )


def load_amazon2018(path: PathLike, *, max_reviews_per_item: int = 5) -> Dataset:
    """Amazon Review Data (2018): a category's reviews file plus its ``meta_*.json.gz``.

    ``path`` is a folder holding ``*_5.json.gz`` (or any reviews ``*.json[.gz]``) and
    ``meta_*.json[.gz]``, or the reviews file itself (its meta file is found next to it).

    Interactions: user = ``reviewerID``, item = ``asin``, rating = ``overall`` (scale 1..5),
    timestamp = ``unixReviewTime``. Repeated (user, item) reviews (the 2018 release has some)
    keep the **latest** review (ties: the later line); a warning says how many were removed
    and ``info["duplicates_removed"]`` records it.

    Item vocabulary: reviewed items in order of first appearance, then meta-only items (cold
    start items that still have text). Catalog fields: ``title``, ``brand``, ``category``
    (list), ``description`` (joined text), ``feature`` (list), ``price`` (float or None),
    ``main_cat``, ``also_buy``, ``also_view`` and ``reviews``: up to ``max_reviews_per_item``
    texts ``"summary. reviewText"`` of the item, in file order (note: these come from the same
    reviews as the interactions, mind leakage when used as item text in evaluation).
    HTML tags and entities are stripped and whitespace folded in every text field.
    """
    reviews_path, meta_path = _amazon_files(Path(path))
    user_ids: list[str] = []
    item_ids: list[str] = []
    ratings: list[float] = []
    times: list[int] = []
    review_texts: dict[str, list[str]] = {}
    for lineno, record in _json_lines(reviews_path):
        try:
            user = str(record["reviewerID"])
            item = str(record["asin"])
            overall = float(record["overall"])  # type: ignore[arg-type]
            when = int(record.get("unixReviewTime", 0))  # type: ignore[call-overload]
        except KeyError as exc:
            raise DataError(
                f"review lacks field {exc.args[0]!r}", path=str(reviews_path), line=lineno
            ) from None
        except (TypeError, ValueError):
            raise DataError(
                "non-numeric overall or unixReviewTime",
                path=str(reviews_path),
                line=lineno,
                value=record.get("overall"),
            ) from None
        if not 1.0 <= overall <= 5.0:
            raise DataError(
                "overall outside the scale (1, 5)",
                path=str(reviews_path),
                line=lineno,
                column="overall",
                value=overall,
            )
        user_ids.append(user)
        item_ids.append(item)
        ratings.append(overall)
        times.append(when)
        texts = review_texts.setdefault(item, [])
        if len(texts) < max_reviews_per_item:
            joined = ". ".join(
                t
                for t in (_clean_text(record.get("summary")), _clean_text(record.get("reviewText")))
                if t
            )
            if joined:
                texts.append(joined)
    if not user_ids:
        raise DataError("no reviews in file", path=str(reviews_path))

    meta: dict[str, dict[str, object]] = {}
    if meta_path is not None:
        for _, record in _json_lines(meta_path):
            asin = record.get("asin")
            if asin is not None and str(asin) not in meta:
                meta[str(asin)] = record

    reviewed, item_idx = Vocabulary.from_values(np.asarray(item_ids, dtype=str), name="item")
    reviewed_set = set(reviewed.ids.tolist())
    meta_only = [a for a in meta if a not in reviewed_set]
    items = (
        Vocabulary(np.concatenate([reviewed.ids, np.asarray(meta_only, dtype=str)]), name="item")
        if meta_only
        else reviewed
    )
    users, user_idx = Vocabulary.from_values(np.asarray(user_ids, dtype=str), name="user")

    fields: dict[str, list[object]] = {
        k: []
        for k in (
            "title",
            "brand",
            "category",
            "description",
            "feature",
            "price",
            "main_cat",
            "also_buy",
            "also_view",
            "reviews",
        )
    }
    for asin in items.ids.tolist():
        rec = meta.get(asin, {})
        fields["title"].append(_clean_text(rec.get("title")))
        fields["brand"].append(_clean_text(rec.get("brand")))
        fields["category"].append(_clean_list(rec.get("category")))
        fields["description"].append(_clean_text(" ".join(_clean_list(rec.get("description")))))
        fields["feature"].append(_clean_list(rec.get("feature")))
        fields["price"].append(_parse_price(rec.get("price")))
        fields["main_cat"].append(_clean_text(rec.get("main_cat")))
        fields["also_buy"].append([str(a) for a in rec.get("also_buy") or []])  # type: ignore[attr-defined]
        fields["also_view"].append([str(a) for a in rec.get("also_view") or []])  # type: ignore[attr-defined]
        fields["reviews"].append(review_texts.get(asin, []))

    ds = Dataset(
        users,
        items,
        user_idx,
        item_idx,
        np.asarray(ratings, dtype=np.float64),
        np.asarray(times, dtype=np.int64),
        feedback="explicit",
        rating_scale=(1.0, 5.0),
        item_catalog=Catalog(fields),
        name=_amazon_name(reviews_path),
        check_duplicates=False,
        info={
            "source": str(reviews_path),
            "meta": None if meta_path is None else str(meta_path),
            "n_reviews": len(user_ids),
            "duplicates_removed": 0,
        },
    )
    return _check_duplicates_or_warn(ds, "last", "line", reviews_path)


def _amazon_name(reviews_path: Path) -> str:
    stem = reviews_path.name.split(".json")[0]
    stem = stem[: -len("_5")] if stem.endswith("_5") else stem
    return "amazon2018-" + stem.lower().replace("_", "-")


# ---------------------------------------------------------------------------------- Online Retail
_RETAIL_COLUMNS = [
    "InvoiceNo",
    "StockCode",
    "Description",
    "Quantity",
    "InvoiceDate",
    "UnitPrice",
    "CustomerID",
]


def _retail_file(path: Path) -> Path:
    if path.is_file():
        return path
    for name in ("online_retail.parquet", "online_retail.csv.gz", "online_retail.csv"):
        if (path / name).exists():
            return path / name
    raise DataError(
        "no online_retail.parquet, online_retail.csv.gz or online_retail.csv found", path=str(path)
    )


def load_online_retail(
    path: PathLike,
    *,
    weight: Literal["invoices", "quantity"] = "invoices",
    drop_nonpositive_price: bool = True,
) -> Dataset:
    """UCI Online Retail as implicit feedback (customer x StockCode).

    Rows are dropped, each counted under the first reason that applies, in this order:
    no CustomerID, cancellation (InvoiceNo starting with "C"), Quantity <= 0, UnitPrice <= 0
    (the last only when ``drop_nonpositive_price``; on the real file it removes 40 free
    lines, one customer and 10 pairs: 4,338 customers, 3,665 items, 266,792 pairs; without it
    the commonly quoted 4,339 / 3,665 / 266,802 and 397,924 kept rows are obtained).
    The remaining purchases are aggregated per (customer, StockCode): the weight is the number
    of distinct invoices (``weight="invoices"``, default) or the total quantity
    (``weight="quantity"``); the timestamp is the last purchase (InvoiceDate read as UTC, unix
    seconds). Users and items are numbered in order of first appearance among kept rows.

    Catalog: ``description`` = most frequent Description of the StockCode (ties: the first
    seen), ``price`` = median UnitPrice. ``info`` holds ``rows_read``, ``dropped`` (per reason)
    and ``rows_kept``.
    """
    import pandas as pd

    if weight not in ("invoices", "quantity"):
        raise DataError("weight must be 'invoices' or 'quantity'", value=weight)
    file = _retail_file(Path(path))
    if file.suffix == ".parquet":
        frame = pd.read_parquet(file)
    else:
        frame = pd.read_csv(file, dtype={"InvoiceNo": str, "StockCode": str, "Description": str})
    missing = [c for c in _RETAIL_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(
            f"missing column(s) {missing}; available columns: {list(frame.columns)}", path=str(file)
        )
    n_read = len(frame)
    invoice = frame["InvoiceNo"].astype(str)
    quantity = pd.to_numeric(frame["Quantity"], errors="coerce")
    price = pd.to_numeric(frame["UnitPrice"], errors="coerce")
    reasons = {
        "no_customer": frame["CustomerID"].isna().to_numpy(),
        "cancelled": invoice.str.startswith("C").to_numpy(),
        "quantity_le_0": ~(quantity > 0).to_numpy(),
    }
    if drop_nonpositive_price:
        reasons["price_le_0"] = ~(price > 0).to_numpy()
    dropped: dict[str, int] = {}
    gone = np.zeros(n_read, dtype=bool)
    for reason, mask in reasons.items():
        dropped[reason] = int((mask & ~gone).sum())
        gone |= mask
    kept = frame.loc[
        ~gone, ["InvoiceNo", "StockCode", "Description", "InvoiceDate", "CustomerID"]
    ].copy()
    kept["Quantity"] = quantity[~gone]
    kept["UnitPrice"] = price[~gone]
    kept["CustomerID"] = pd.to_numeric(kept["CustomerID"]).astype(np.int64)
    kept["StockCode"] = kept["StockCode"].astype(str)
    times = pd.to_datetime(kept["InvoiceDate"], errors="coerce")
    if times.isna().any():
        row = int(np.flatnonzero(times.isna().to_numpy())[0])
        raise DataError(
            "unparseable InvoiceDate", path=str(file), value=kept["InvoiceDate"].iloc[row]
        )
    kept["ts"] = times.astype("datetime64[s]").astype(np.int64)

    users, user_idx = Vocabulary.from_values(kept["CustomerID"].to_numpy(), name="user")
    items, item_idx = Vocabulary.from_values(kept["StockCode"].to_numpy(dtype=str), name="item")
    kept["u"] = user_idx
    kept["i"] = item_idx
    grouped = kept.groupby(["u", "i"], sort=False)
    agg = grouped.agg(
        invoices=("InvoiceNo", "nunique"), quantity=("Quantity", "sum"), ts=("ts", "max")
    ).reset_index()
    values = agg["invoices"] if weight == "invoices" else agg["quantity"]

    desc = kept.dropna(subset=["Description"])
    counts = desc.groupby(["i", "Description"], sort=False).size().reset_index(name="n")
    # stable sort keeps first-seen order among equally frequent descriptions
    best = counts.sort_values("n", ascending=False, kind="stable").drop_duplicates("i")
    description: list[object] = [None] * len(items)
    for k, text in zip(best["i"].tolist(), best["Description"].tolist(), strict=True):
        description[k] = _SPACE.sub(" ", str(text)).strip() or None
    medians = kept.groupby("i")["UnitPrice"].median()
    prices: list[object] = [None] * len(items)
    for k, value in medians.items():
        prices[int(k)] = float(value)  # type: ignore[call-overload]

    return Dataset(
        users,
        items,
        agg["u"].to_numpy(np.int32),
        agg["i"].to_numpy(np.int32),
        values.to_numpy(np.float64),
        agg["ts"].to_numpy(np.int64),
        feedback="implicit",
        item_catalog=Catalog({"description": description, "price": prices}),
        name="uci-online-retail",
        info={
            "source": str(file),
            "rows_read": n_read,
            "dropped": dropped,
            "rows_kept": int((~gone).sum()),
            "weight": weight,
        },
    )


# ---------------------------------------------------------------------------------- generic table
_COLUMN_GUESSES = {
    "user": (
        "user",
        "user_id",
        "userid",
        "userId",
        "UserID",
        "customer",
        "customer_id",
        "CustomerID",
        "reviewerID",
    ),
    "item": (
        "item",
        "item_id",
        "itemid",
        "itemId",
        "ItemID",
        "movieId",
        "MovieID",
        "movie_id",
        "asin",
        "sku",
        "StockCode",
        "product_id",
    ),
    "rating": ("rating", "Rating", "score", "overall", "weight", "value"),
    "timestamp": ("timestamp", "Timestamp", "time", "ts", "unixReviewTime"),
}


def _guess_columns(available: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for role, names in _COLUMN_GUESSES.items():
        for name in names:
            if name in available:
                found[role] = name
                break
    return found


def _guess_sep(path: Path, head: str) -> str:
    name = path.name.lower().removesuffix(".gz")
    if name.endswith((".tsv", ".tab")):
        return "\t"
    if name.endswith(".csv"):
        return ","
    first = head.split("\n", 1)[0]
    for sep in ("\t", ",", ";", "|"):
        if sep in first:
            return sep
    return ","


def _record_line(text: str, sep: str, record: int) -> int:
    """1-based line of data record ``record`` (0-based, header excluded), counting quoted newlines."""
    reader = csv.reader(io.StringIO(text), delimiter=sep)
    next(reader, None)
    k = -1
    for row in reader:
        if not row:
            continue  # pandas skips blank lines too
        k += 1
        if k == record:
            return reader.line_num
    return record + 2


def load_table(
    source: PathLike | pd.DataFrame,
    columns: Mapping[str, str] | None = None,
    *,
    sep: str | None = None,
    feedback: Feedback = "explicit",
    rating_scale: tuple[float, float] | None = None,
    duplicates: DuplicatePolicy = "error",
    encoding: str = "utf-8",
    name: str | None = None,
) -> Dataset:
    """A (user, item[, rating][, timestamp]) table -> :class:`Dataset`.

    Args:
        source: a CSV/TSV path (optionally ``.gz``), a Parquet path, or a pandas DataFrame.
        columns: role -> column name, roles ``user``, ``item`` (required), ``rating``,
            ``timestamp`` (optional). ``None`` guesses common names (userId, movieId, asin, ...).
        sep: field separator; ``None`` picks it from the extension (.csv ``,``, .tsv ``\\t``)
            or sniffs the header line.
        feedback: ``"explicit"`` or ``"implicit"``; without a rating column the weight is 1.
        rating_scale: (lowest, highest); ratings outside it are an error. ``None`` with explicit
            feedback uses the observed (min, max), so predictions are clipped to it.
        duplicates: repeated (user, item) pairs: ``"error"`` (default, names both lines) or a
            :meth:`Dataset.deduplicate` policy, applied with a warning.
        encoding: text encoding of CSV/TSV files.

    Raises:
        DataError: naming file, line (1-based, header counted; for Parquet/DataFrames the row,
            1-based) and value: missing column (lists the available ones), empty file, ragged
            line, undecodable bytes (encoding and byte offset), non-numeric or out-of-scale
            rating, empty id, duplicate pair.
    """
    import pandas as pd

    if isinstance(source, pd.DataFrame):
        frame = source
        label = "<DataFrame>"
        path: Path | None = None
        text: str | None = None
        text_sep = ","
        header_lines = 0
    else:
        path = Path(source)
        label = str(path)
        if not path.exists():
            raise DataError("file not found", path=label)
        if path.suffix == ".parquet":
            try:
                frame = pd.read_parquet(path)
            except (OSError, ValueError) as exc:
                raise DataError(f"cannot read Parquet: {exc}", path=label) from None
            text = None
            text_sep = ","
            header_lines = 0
        else:
            data = _read_bytes(path)
            if not data.strip():
                raise DataError("empty file", path=label)
            text = _decode(data, path, encoding)
            text_sep = sep or _guess_sep(path, text[:4096])
            frame = _read_text_table(text, text_sep, path)
            header_lines = 1
    if len(frame.columns) == 0 or (len(frame) == 0 and text is not None):
        raise DataError("no data rows (header only)", path=label, line=1 if text else None)

    def where(row: int) -> int:
        if text is not None:
            return _record_line(text, text_sep, row)
        return row + 1 + header_lines

    available = [str(c) for c in frame.columns]
    mapping = dict(columns) if columns is not None else _guess_columns(available)
    unknown_roles = set(mapping) - set(_COLUMN_GUESSES)
    if unknown_roles:
        raise DataError(
            f"unknown column role(s) {sorted(unknown_roles)}; roles are user, item, rating, timestamp"
        )
    for role in ("user", "item"):
        if role not in mapping:
            raise DataError(
                f"no {role} column given or recognised; available columns: {available}",
                path=label,
                line=1 if text else None,
            )
    for role, name in mapping.items():
        if name not in frame.columns:
            raise DataError(
                f"missing {role} column {name!r}; available columns: {available}",
                path=label,
                line=1 if text else None,
            )

    ids: dict[str, np.ndarray] = {}
    for role in ("user", "item"):
        col = frame[mapping[role]]
        empty = col.isna().to_numpy() | (col.astype(str).str.strip() == "").to_numpy()
        if empty.any():
            row = int(np.flatnonzero(empty)[0])
            raise DataError(f"empty {role} id", path=label, line=where(row), column=mapping[role])
        if col.dtype.kind in "iu":
            ids[role] = col.to_numpy(np.int64)
        elif col.dtype.kind == "f" and np.all(np.mod(col.to_numpy(), 1) == 0):
            ids[role] = col.to_numpy().astype(np.int64)
        else:
            as_text = col.astype(str).str.strip()
            ids[role] = as_text.to_numpy(dtype=str)

    rating = None
    if "rating" in mapping:
        raw = frame[mapping["rating"]]
        numeric = pd.to_numeric(raw, errors="coerce")
        bad = numeric.isna().to_numpy() | ~np.isfinite(
            numeric.to_numpy(np.float64, na_value=np.nan)
        )
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataError(
                "rating is not a number",
                path=label,
                line=where(row),
                column=mapping["rating"],
                value=raw.iloc[row],
            )
        rating = numeric.to_numpy(np.float64)
        if rating_scale is not None:
            lo, hi = rating_scale
            outside = (rating < lo) | (rating > hi)
            if outside.any():
                row = int(np.flatnonzero(outside)[0])
                raise DataError(
                    f"rating outside rating_scale {rating_scale}",
                    path=label,
                    line=where(row),
                    column=mapping["rating"],
                    value=raw.iloc[row],
                )
    timestamp = None
    if "timestamp" in mapping:
        raw = frame[mapping["timestamp"]]
        numeric = pd.to_numeric(raw, errors="coerce")
        if numeric.isna().any():
            parsed = pd.to_datetime(raw, errors="coerce", utc=True)
            if parsed.isna().any():
                row = int(np.flatnonzero(parsed.isna().to_numpy())[0])
                raise DataError(
                    "timestamp is neither unix seconds nor a date",
                    path=label,
                    line=where(row),
                    column=mapping["timestamp"],
                    value=raw.iloc[row],
                )
            timestamp = (
                parsed.dt.tz_convert(None).astype("datetime64[s]").astype(np.int64).to_numpy()
            )
        else:
            timestamp = numeric.to_numpy(np.float64).astype(np.int64)

    if rating_scale is None and feedback == "explicit" and rating is not None and len(rating):
        rating_scale = (float(np.min(rating)), float(np.max(rating)))
    ds = Dataset(
        *_vocabularies(ids["user"], ids["item"]),
        rating,
        timestamp,
        feedback=feedback,
        rating_scale=rating_scale,
        name=name or (path.name.split(".")[0] if path else "table"),
        check_duplicates=False,
        info={"source": label, "columns": mapping},
    )
    if duplicates == "error" and ds.n_duplicates():
        key = ds.user_idx.astype(np.int64) * max(ds.n_items, 1) + ds.item_idx
        dup_mask = pd.Series(key).duplicated(keep=False).to_numpy()
        first = int(np.flatnonzero(dup_mask)[0])
        second = int(np.flatnonzero(key == key[first])[1])
        what = "line" if text is not None else "row"
        raise DataError(
            f"duplicate (user, item) pair at {what}s {where(first)} and {where(second)}; "
            "pass duplicates='last'|'first'|'sum'|'mean'",
            path=label,
            value=(
                ds.users.ids[ds.user_idx[first]].item(),
                ds.items.ids[ds.item_idx[first]].item(),
            ),
        )
    return _check_duplicates_or_warn(ds, duplicates, "row", label)


def _vocabularies(
    user_ids: np.ndarray, item_ids: np.ndarray
) -> tuple[Vocabulary, Vocabulary, np.ndarray, np.ndarray]:
    users, uidx = Vocabulary.from_values(user_ids, name="user")
    items, iidx = Vocabulary.from_values(item_ids, name="item")
    return users, items, uidx, iidx


def _read_text_table(text: str, sep: str, path: Path) -> pd.DataFrame:
    """Parse with pandas, then reject ragged lines (too many fields or too few) with their line."""
    import pandas as pd

    try:
        frame = pd.read_csv(
            io.StringIO(text),
            sep=sep,
            dtype=str,
            keep_default_na=False,
            engine="c" if len(sep) == 1 else "python",
        )
    except pd.errors.EmptyDataError:
        raise DataError("empty file", path=str(path)) from None
    except pd.errors.ParserError as exc:
        match = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
        if match:
            line = int(match.group(2))
            bad = text.splitlines()[line - 1] if line - 1 < len(text.splitlines()) else None
            raise DataError(
                f"ragged line: expected {match.group(1)} fields, found {match.group(3)}",
                path=str(path),
                line=line,
                value=bad,
            ) from None
        raise DataError(f"cannot parse table: {exc}", path=str(path)) from None
    # pandas pads short lines with "" (keep_default_na=False), like genuinely empty fields: only
    # when an empty cell exists are the records re-read to tell the two apart
    if len(frame) and (frame == "").to_numpy().any():
        reader = csv.reader(io.StringIO(text), delimiter=sep) if len(sep) == 1 else None
        if reader is not None:
            n_cols = len(frame.columns)
            next(reader, None)
            for row in reader:
                if row and len(row) < n_cols:
                    raise DataError(
                        f"ragged line: expected {n_cols} fields, found {len(row)}",
                        path=str(path),
                        line=reader.line_num,
                        value=sep.join(row),
                    )
    return frame


# ---------------------------------------------------------------------------------- resolving
def _known_names_text() -> str:
    return ", ".join([*KNOWN_DATASETS, "amazon2018-<category>"])


def resolve_data_path(spec: PathLike) -> Path:
    """Folder or file of a data set: a known name under ``settings.data_dir()``, or a path.

    Raises:
        DataError: the name is unknown and no such path exists, or the known name's folder is
            missing; the message names the folder searched and the known names.
    """
    text = str(spec)
    root = settings.data_dir()
    if text in KNOWN_DATASETS or (text.startswith("amazon2018-") and "/" not in text):
        folder = root / KNOWN_DATASETS.get(text, text)
        if not folder.exists():
            raise DataError(
                f"data set {text!r} not found in {root} (set LLMCF_DATA_DIR; known names: {_known_names_text()})",
                path=str(folder),
            )
        return folder
    candidate = Path(text).expanduser()
    if candidate.exists():
        return candidate
    raise DataError(
        f"{text!r} is neither a known data set name nor an existing path; searched {root} "
        f"(LLMCF_DATA_DIR); known names: {_known_names_text()}",
        value=text,
    )


def resolve_dataset(spec: PathLike, **kwargs: object) -> Dataset:
    """Load a data set by known name (under ``settings.data_dir()``) or by path, detecting the loader.

    Detection: a MovieLens layout (:func:`load_movielens`), Amazon 2018 JSON lines
    (:func:`load_amazon2018`), ``online_retail.*`` (:func:`load_online_retail`), else a single
    table file (:func:`load_table` with guessed columns). ``kwargs`` go to the chosen loader.
    """
    target = resolve_data_path(spec)
    folder = target if target.is_dir() else target.parent
    if target.is_dir() and _movielens_layout(folder) is not None:
        return load_movielens(folder, **kwargs)  # type: ignore[arg-type]
    name = target.name
    if (target.is_file() and name.startswith("online_retail")) or (
        target.is_dir() and any(folder.glob("online_retail.*"))
    ):
        return load_online_retail(target, **kwargs)  # type: ignore[arg-type]
    if (target.is_file() and name.endswith((".json", ".json.gz"))) or (
        target.is_dir() and any(folder.glob("*.json*"))
    ):
        return load_amazon2018(target, **kwargs)  # type: ignore[arg-type]
    if (
        target.is_file()
        and _movielens_layout(folder) is not None
        and name.startswith(("u.", "u1.", "ratings", "movies"))
    ):
        return load_movielens(folder, **kwargs)  # type: ignore[arg-type]
    if target.is_file():
        return load_table(target, **kwargs)  # type: ignore[arg-type]
    raise DataError(
        "cannot tell which loader reads this folder; expected a MovieLens layout "
        f"({', '.join(_ML_LAYOUT_FILES)}), Amazon 2018 *.json[.gz], or online_retail.*",
        path=str(target),
    )
