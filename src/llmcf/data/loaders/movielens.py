"""MovieLens: every official release layout -> :class:`Dataset`.

Layouts (detected from the files present, see :func:`load_movielens`): ``u.data`` and the
``u1``..``ub`` folds (100K), ``ratings.dat`` / ``ratings*.dat.gz`` (1M, 10M), ``ratings_pairs*``
(pairs only) and ``ratings.csv`` (20M, 25M, 32M, latest). Ratings must lie on the release's
scale (1..5, or 0.5..5 for half stars): a rating outside it is a :class:`DataError` naming the
file, line, column and value, never a silently widened scale.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from llmcf.data.dataset import Catalog, Dataset, Feedback
from llmcf.data.loaders.common import (
    PathLike,
    _check_duplicates_or_warn,
    _LazyCatalog,
    _split_title_year,
    _vocab_with_extra,
    _whole_number_ids,
)
from llmcf.data.loaders.lines import (
    Kind,
    Table,
    header_names,
    parse_delimited,
    read_bytes,
)
from llmcf.data.vocab import Vocabulary
from llmcf.errors import DataError

__all__ = [
    "ML100K_FOLDS",
    "load_movielens",
    "load_movielens_100k",
    "load_movielens_100k_fold",
]

ML100K_FOLDS = ("u1", "u2", "u3", "u4", "u5", "ua", "ub")

_ML_LAYOUT_FILES = (
    "u.data / u1.base (100K)",
    "ratings.dat or ratings*.dat.gz (1M/10M)",
    "ratings_pairs*.parquet / ratings_pairs*.csv[.gz] (pairs only)",
    "ratings.csv (20M/25M/32M/latest)",
)

# field names as in the MovieLens READMEs; they name the column in errors
_U_DATA: list[tuple[str, Kind]] = [
    ("user", "int"),
    ("item", "int"),
    ("rating", "int"),
    ("timestamp", "int"),
]
_U_ITEM: list[tuple[str, Kind]] = [
    ("movie id", "int"),
    ("movie title", "str"),
    ("release date", "str"),
    ("video release date", "str"),
    ("IMDb URL", "str"),
]  # then one 0/1 field per genre
_U_USER: list[tuple[str, Kind]] = [
    ("user id", "int"),
    ("age", "int"),
    ("gender", "str"),
    ("occupation", "str"),
    ("zip code", "str"),
]
_U_GENRE: list[tuple[str, Kind]] = [("genre", "str"), ("number", "int")]
_RATINGS_DAT: list[tuple[str, Kind]] = [
    ("UserID", "int"),
    ("MovieID", "int"),
    ("Rating", "float"),
    ("Timestamp", "int"),
]
_MOVIES_DAT: list[tuple[str, Kind]] = [("MovieID", "int"), ("Title", "str"), ("Genres", "str")]
_USERS_DAT: list[tuple[str, Kind]] = [
    ("UserID", "int"),
    ("Gender", "str"),
    ("Age", "int"),
    ("Occupation", "int"),
    ("Zip-code", "str"),
]
_RATINGS_CSV: list[tuple[str, Kind]] = [
    ("userId", "int"),
    ("movieId", "int"),
    ("rating", "float"),
    ("timestamp", "int"),
]
# the texts pandas.read_csv reads as missing by default; movies.csv / tags.csv were read with
# those defaults, so a title or tag spelled like one counts as missing as before
_PANDAS_NA = frozenset(
    {
        "",
        "#N/A",
        "#N/A N/A",
        "#NA",
        "-1.#IND",
        "-1.#QNAN",
        "-NaN",
        "-nan",
        "1.#IND",
        "1.#QNAN",
        "<NA>",
        "N/A",
        "NA",
        "NULL",
        "NaN",
        "None",
        "n/a",
        "nan",
        "null",
    }
)


def _check_scale(
    rating: np.ndarray, scale: tuple[float, float], tables: list[Table], column: str
) -> None:
    """Raise naming file, line, column and value of the first rating outside ``scale``.

    ``rating`` is the column as parsed (int64 for whole stars), so the value is the file's.
    """
    bad = (rating < scale[0]) | (rating > scale[1])
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        path, line = _locate(tables, k)
        lo, hi = (int(v) if float(v).is_integer() else v for v in scale)
        raise DataError(
            f"rating outside the scale ({lo}, {hi})",
            path=path,
            line=line,
            column=column,
            value=rating[k].item(),
        )


def _locate(tables: list[Table], k: int) -> tuple[str, int]:
    """File and line of row ``k`` of the concatenation of ``tables``."""
    for table in tables:
        if k < len(table):
            return table.path, table.line(k)
        k -= len(table)
    raise IndexError(k)  # pragma: no cover


# ---------------------------------------------------------------------------------- 100K
def _ml100k_items(folder: Path) -> tuple[Vocabulary, Catalog]:
    """Item vocabulary from ``u.item`` now; the catalog fields are built on first access."""
    path = folder / "u.item"
    table = parse_delimited(
        read_bytes(path), path, _U_ITEM, sep="|", extra=True, encoding="latin-1"
    )
    genre_names = _ml100k_genres(folder)
    return Vocabulary(table["movie id"], name="item"), _LazyCatalog(
        lambda: _ml100k_item_fields(table, genre_names)
    )


def _ml100k_item_fields(table: Table, genre_names: list[str]) -> dict[str, list[object]]:
    titles: list[object] = []
    years: list[object] = []
    genres: list[object] = []
    urls: list[object] = []
    dates: list[object] = []
    assert table.rest is not None
    for raw_title, date, url, flags in zip(
        table["movie title"].tolist(),
        table["release date"].tolist(),
        table["IMDb URL"].tolist(),
        table.rest,
        strict=True,
    ):
        title, year = _split_title_year(raw_title)
        if year is None and date[-4:].isdigit():
            year = int(date[-4:])
        titles.append(title or None)
        years.append(year)
        dates.append(date or None)
        urls.append(url or None)
        genres.append(
            [
                genre_names[k] if k < len(genre_names) else str(k)
                for k, flag in enumerate(flags)
                if flag == "1"
            ]
        )
    return {"title": titles, "year": years, "genres": genres, "url": urls, "release_date": dates}


def _ml100k_genres(folder: Path) -> list[str]:
    path = folder / "u.genre"
    if not path.exists():
        return []
    table = parse_delimited(read_bytes(path), path, _U_GENRE, sep="|", encoding="latin-1")
    names = dict(zip(table["number"].tolist(), table["genre"].tolist(), strict=True))
    return [names[k] for k in sorted(names)]


def _ml100k_users(folder: Path) -> tuple[Vocabulary, Catalog]:
    path = folder / "u.user"
    table = parse_delimited(read_bytes(path), path, _U_USER, sep="|", encoding="latin-1")
    cols: dict[str, list[object]] = {
        "age": table["age"].tolist(),
        "gender": table["gender"].tolist(),
        "occupation": table["occupation"].tolist(),
        "zip": table["zip code"].tolist(),
    }
    return Vocabulary(table["user id"], name="user"), Catalog(cols)


def _ml100k_dataset(folder: Path, tables: list[Path], name: str) -> tuple[Dataset, list[int]]:
    """Interactions of ``tables`` concatenated in file order; returns the dataset and row counts."""
    users, user_catalog = (
        _ml100k_users(folder) if (folder / "u.user").exists() else (None, Catalog())
    )
    items, item_catalog = (
        _ml100k_items(folder) if (folder / "u.item").exists() else (None, Catalog())
    )
    parts = [parse_delimited(read_bytes(p), p, _U_DATA, sep="\t", blank="trailing") for p in tables]
    sizes = [len(p) for p in parts]

    def column(name: str) -> np.ndarray:
        if not parts:
            return np.empty(0, np.int64)
        return np.concatenate([p[name] for p in parts]) if len(parts) > 1 else parts[0][name]

    user_ids, item_ids = column("user"), column("item")
    if users is None:
        users, user_idx = Vocabulary.from_values(user_ids, name="user")
    else:
        user_idx = _lookup(users, user_ids, parts, "user")
    if items is None:
        items, item_idx = Vocabulary.from_values(item_ids, name="item")
    else:
        item_idx = _lookup(items, item_ids, parts, "item")
    stars = column("rating")
    _check_scale(stars, (1.0, 5.0), parts, "rating")
    rating = stars.astype(np.float64)
    ds = Dataset(
        users,
        items,
        user_idx,
        item_idx,
        rating,
        column("timestamp"),
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


def _lookup(vocab: Vocabulary, ids: np.ndarray, tables: list[Table], what: str) -> np.ndarray:
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
        path, line = _locate(tables, k)
        raise DataError(
            f"{what} id not in the {what} list",
            path=path,
            line=line,
            column=what,
            value=int(ids[k]),
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


# ---------------------------------------------------------------------------------- 1M / 10M
def _ml_dat_items(path: Path) -> tuple[np.ndarray, Catalog]:
    table = parse_delimited(read_bytes(path), path, _MOVIES_DAT, sep="::", encoding="latin-1")
    split = [_split_title_year(t) for t in table["Title"].tolist()]
    cols: dict[str, list[object]] = {
        "title": [t for t, _ in split],
        "year": [y for _, y in split],
        "genres": [_genres(g) for g in table["Genres"].tolist()],
    }
    return table["MovieID"], Catalog(cols)


def _genres(text: str) -> list[str]:
    return [g for g in text.strip().split("|") if g and g != "(no genres listed)"]


def _ml_dat_users(path: Path) -> tuple[np.ndarray, Catalog]:
    table = parse_delimited(read_bytes(path), path, _USERS_DAT, sep="::", encoding="latin-1")
    cols: dict[str, list[object]] = {
        "gender": table["Gender"].tolist(),
        "age": table["Age"].tolist(),
        "occupation": table["Occupation"].tolist(),
        "zip": table["Zip-code"].tolist(),
    }
    return table["UserID"], Catalog(cols)


def _ml_ratings_dat(path: Path) -> Table:
    """UserID, MovieID (int64), Rating (float64), Timestamp (int64) of a ``::`` ratings file."""
    return parse_delimited(read_bytes(path), path, _RATINGS_DAT, sep="::")


def _ml_pairs(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """int64 user and movie ids of a pairs file (columns UserID and MovieID, any case)."""
    if path.suffix == ".parquet":
        return _ml_pairs_parquet(path)
    data = read_bytes(path)
    names, header_line = header_names(data, path, sep=",", quoting=True)
    lower = {name.lower(): name for name in names}
    user_col, item_col = lower.get("userid"), lower.get("movieid")
    if user_col is None or item_col is None:
        raise DataError(
            f"pairs file needs columns UserID and MovieID; found {names}",
            path=str(path),
            line=header_line,
        )
    table = parse_delimited(
        data, path, [(user_col, "int"), (item_col, "int")], sep=",", header=True, quoting=True
    )
    return table[user_col], table[item_col]


def _ml_pairs_parquet(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    label = str(path)
    try:
        table = pq.read_table(path)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read Parquet: {exc}", path=label) from None
    lower = {name.lower(): name for name in table.column_names}
    user_col, item_col = lower.get("userid"), lower.get("movieid")
    if user_col is None or item_col is None:
        raise DataError(
            f"pairs file needs columns UserID and MovieID; found {table.column_names}",
            path=label,
        )
    out = []
    for name, role in ((user_col, "user"), (item_col, "item")):
        col = table[name]
        if col.null_count:
            row = int(np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[0])
            raise DataError(f"empty {role} id", path=label, line=row + 1, column=name)
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            try:
                out.append(pc.cast(col, pa.int64()).to_numpy())
                continue
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                values = _numbers_of_text(col.to_numpy(zero_copy_only=False), label, name)
        else:
            values = col.to_numpy(zero_copy_only=False)
        ids = _whole_number_ids(values, label, name, role, lambda row: row + 1)
        if ids is None:
            bad = np.flatnonzero(np.mod(values, 1) != 0)[0]
            raise DataError(
                "id is not an integer",
                path=label,
                line=int(bad) + 1,
                column=name,
                value=values[bad],
            )
        out.append(ids)
    return out[0], out[1]


def _numbers_of_text(values: np.ndarray, label: str, column: str) -> np.ndarray:
    """Text ids as numbers (int64 or float64); raises naming the first row that is none."""
    import pandas as pd

    numbers = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce")
    if numbers.isna().any():
        row = int(np.flatnonzero(numbers.isna().to_numpy())[0])
        raise DataError(
            "id is not an integer", path=label, line=row + 1, column=column, value=values[row]
        )
    return numbers.to_numpy()


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
        ratings = _ml_ratings_dat(rating_path)
        u, i, rating = ratings["UserID"], ratings["MovieID"], ratings["Rating"]
        timestamp = ratings["Timestamp"]
        feedback = "explicit"
        # ML-1M ships users.dat and has whole stars; ML-10M has no users.dat and half stars
        scale = (1.0, 5.0) if users_file.exists() else (0.5, 5.0)
        info["files"] = [rating_path.name]
        if "TRUNCATED" in rating_path.name:
            info["truncated"] = True
        _check_scale(rating, scale, [ratings], "Rating")
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


# ---------------------------------------------------------------------------------- csv releases
def _load_movielens_csv(folder: Path) -> Dataset:
    ratings_path = folder / "ratings.csv"
    ratings = parse_delimited(
        read_bytes(ratings_path), ratings_path, _RATINGS_CSV, sep=",", header=True, quoting=True
    )
    rating = ratings["rating"]
    _check_scale(rating, (0.5, 5.0), [ratings], "rating")
    item_ids: np.ndarray | None = None
    cols: dict[str, list[object]] = {}
    movies_path = folder / "movies.csv"
    if movies_path.exists():
        movies = parse_delimited(
            read_bytes(movies_path),
            movies_path,
            [("movieId", "int"), ("title", "str"), ("genres", "str")],
            sep=",",
            header=True,
            quoting=True,
        )
        item_ids = movies["movieId"]
        split = [_split_title_year(_text(t)) for t in movies["title"].tolist()]
        cols["title"] = [t or None for t, _ in split]
        cols["year"] = [y for _, y in split]
        cols["genres"] = [_genres(_text(g)) for g in movies["genres"].tolist()]
    users, user_idx = Vocabulary.from_values(ratings["userId"], name="user")
    items, item_idx = _vocab_with_extra(item_ids, ratings["movieId"], "item")
    catalog = Catalog(cols).take(len(items)) if cols else Catalog()
    tags_path = folder / "tags.csv"
    if tags_path.exists():
        tags = parse_delimited(
            read_bytes(tags_path),
            tags_path,
            [("movieId", "int"), ("tag", "str")],
            sep=",",
            header=True,
            quoting=True,
        )
        tag_idx = items.lookup(tags["movieId"], missing="negative")
        per_item: list[object] = [[] for _ in range(len(items))]
        seen: list[set[str]] = [set() for _ in range(len(items))]
        for k, raw in zip(tag_idx.tolist(), tags["tag"].tolist(), strict=True):
            tag = _text(raw).strip()
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
        ratings["timestamp"],
        feedback="explicit",
        rating_scale=(0.5, 5.0),
        item_catalog=catalog,
        name=folder.name or "movielens",
        info={"source": str(folder), "files": [ratings_path.name]},
    )


def _text(value: str) -> str:
    """``value``, or ``""`` for the texts pandas reads as missing."""
    return "" if value in _PANDAS_NA else value


# ---------------------------------------------------------------------------------- detection
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
        if header.removeprefix("\ufeff").startswith("userid,movieid"):
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

    Raises:
        DataError: naming file, line, column and value: a malformed line, a rating outside the
            release's scale, an id missing from ``u.user``/``u.item``, a duplicate pair (100K).
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
