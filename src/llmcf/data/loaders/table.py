"""Any (user, item[, rating][, timestamp]) table: CSV/TSV (optionally gzipped), Parquet or a DataFrame."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from llmcf.data.dataset import Dataset, Feedback
from llmcf.data.loaders.common import (
    DuplicatePolicy,
    PathLike,
    _check_duplicates_or_warn,
    _vocabularies,
    _whole_number_ids,
)
from llmcf.data.loaders.lines import Table, parse_delimited, read_bytes
from llmcf.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["load_table"]

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
    """Role -> column for the roles whose common names (:data:`_COLUMN_GUESSES`) are present."""
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


def load_table(
    source: PathLike | pd.DataFrame,
    columns: Mapping[str, str] | None = None,
    *,
    sep: str | None = None,
    feedback: Feedback | None = None,
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
        feedback: ``"explicit"`` or ``"implicit"``; ``None`` (default): explicit when there is
            a rating column, else implicit. Without a rating column every interaction weighs 1
            and the data set is implicit (no rating scale): ``"explicit"`` is then an error.
        rating_scale: (lowest, highest); ratings outside it are an error. ``None`` with explicit
            feedback uses the observed (min, max), so predictions are clipped to it.
        duplicates: repeated (user, item) pairs: ``"error"`` (default, names both lines) or a
            :meth:`Dataset.deduplicate` policy, applied with a warning.
        encoding: text encoding of CSV/TSV files.

    Raises:
        DataError: naming file, line (1-based, header counted; for Parquet/DataFrames the row,
            1-based) and value: missing column (lists the available ones), empty file, ragged
            line, undecodable bytes (encoding and byte offset), non-numeric or out-of-scale
            rating, empty id, an integer id outside int64 (e.g. a float id >= 2**63), duplicate
            pair, explicit feedback or a rating scale without a rating column.
    """
    import pandas as pd

    table: Table | None = None
    if isinstance(source, pd.DataFrame):
        frame = source
        label = "<DataFrame>"
        path: Path | None = None
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
        else:
            data = read_bytes(path)
            if not data or data.isspace():
                raise DataError("empty file", path=label)
            text_sep = sep or _guess_sep(path, data[:4096].decode(encoding, errors="replace"))
            table = parse_delimited(
                data, path, sep=text_sep, header=True, quoting=True, encoding=encoding
            )
            frame = pd.DataFrame(table.columns, dtype=object)
    is_text = table is not None
    if len(frame.columns) == 0 or (len(frame) == 0 and is_text):
        raise DataError("no data rows (header only)", path=label, line=1 if is_text else None)

    def where(row: int) -> int:
        return table.line(row) if table is not None else row + 1

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
                line=1 if is_text else None,
            )
    for role, column in mapping.items():
        if column not in frame.columns:
            raise DataError(
                f"missing {role} column {column!r}; available columns: {available}",
                path=label,
                line=1 if is_text else None,
            )
    if "rating" not in mapping:
        if feedback == "explicit":
            raise DataError(
                "feedback='explicit' needs a rating column (given as columns={'rating': ...} "
                f"or named {', '.join(_COLUMN_GUESSES['rating'])}); available columns: {available}",
                path=label,
            )
        if rating_scale is not None:
            raise DataError(
                f"rating_scale {rating_scale} given but the table has no rating column; "
                f"available columns: {available}",
                path=label,
            )
    if feedback is None:
        feedback = "explicit" if "rating" in mapping else "implicit"

    ids: dict[str, np.ndarray] = {}
    for role in ("user", "item"):
        col = frame[mapping[role]]
        empty = col.isna().to_numpy() | (col.astype(str).str.strip() == "").to_numpy()
        if empty.any():
            row = int(np.flatnonzero(empty)[0])
            raise DataError(f"empty {role} id", path=label, line=where(row), column=mapping[role])
        kind = col.dtype.kind
        whole = (
            _whole_number_ids(
                col.to_numpy({"i": np.int64, "u": np.uint64, "f": np.float64}[kind]),
                label,
                mapping[role],
                role,
                where,
            )
            if kind in "iuf"
            else None
        )
        ids[role] = whole if whole is not None else col.astype(str).str.strip().to_numpy(dtype=str)

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
            values = numeric.to_numpy(np.float64)
            bad = ~np.isfinite(values) | (np.abs(values) >= 2.0**62)
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                raise DataError(
                    "timestamp out of range (unix seconds)",
                    path=label,
                    line=where(row),
                    column=mapping["timestamp"],
                    value=raw.iloc[row],
                )
            timestamp = values.astype(np.int64)

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
        what = "line" if is_text else "row"
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
