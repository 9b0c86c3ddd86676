"""Helpers shared by the loaders: duplicate checks, vocabularies, integer ids, lazy catalogs."""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import numpy as np

from llmcf.data.dataset import Catalog, Dataset
from llmcf.data.vocab import Vocabulary
from llmcf.errors import DataError

DuplicatePolicy = Literal["error", "last", "first", "sum", "mean"]
PathLike = str | Path

_TITLE_YEAR = re.compile(r"^(.*?)\s*\((\d{4})(?:[-–]\d{0,4})?\)\s*$")
_TWO_63 = 2.0**63


def _split_title_year(title: str) -> tuple[str, int | None]:
    """``"Toy Story (1995)"`` -> ``("Toy Story", 1995)``; no year -> ``(title, None)``."""
    match = _TITLE_YEAR.match(title)
    if match is None:
        return title.strip(), None
    return match.group(1).strip(), int(match.group(2))


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
    """``ds`` unchanged without repeated (user, item) pairs; else raise (``"error"``) or merge.

    ``describe`` names the unit of the 1-based positions in the error (``"interaction"``,
    ``"row"``, ``"line"``); a merge warns and records ``info["duplicates_removed"]``.
    """
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


def _vocab_with_extra(
    listed: np.ndarray | None, seen: np.ndarray, name: str
) -> tuple[Vocabulary, np.ndarray]:
    """Vocabulary of ``listed`` ids (file order) plus unlisted ``seen`` ids appended in order of appearance."""
    if listed is None:
        return Vocabulary.from_values(seen, name=name)
    vocab = Vocabulary(listed, name=name).extend(seen)
    return vocab, vocab.lookup(seen)


def _vocabularies(
    user_ids: np.ndarray, item_ids: np.ndarray
) -> tuple[Vocabulary, Vocabulary, np.ndarray, np.ndarray]:
    """User and item vocabularies in order of first appearance, with the indices."""
    users, uidx = Vocabulary.from_values(user_ids, name="user")
    items, iidx = Vocabulary.from_values(item_ids, name="item")
    return users, items, uidx, iidx


def _whole_number_ids(
    values: np.ndarray, label: str, column: str, role: str, where: Callable[[int], int]
) -> np.ndarray | None:
    """int64 ids from an integer or float array; ``None`` when a float is not a whole number.

    Raises:
        DataError: an id outside the int64 range (floats >= 2**63 or < -2**63, uint64 >=
            2**63), naming the column, the line/row ``where(row)`` and the value; such ids
            would otherwise wrap or collapse into one.
    """
    kind = values.dtype.kind
    if kind == "i":
        return values.astype(np.int64, copy=False)
    if kind == "u":
        outside = values > np.iinfo(np.int64).max
    elif kind == "f":
        with np.errstate(invalid="ignore"):
            if not np.all(np.mod(values, 1) == 0):
                return None
        outside = (values >= _TWO_63) | (values < -_TWO_63)
    else:
        return None
    if outside.any():
        row = int(np.flatnonzero(outside)[0])
        raise DataError(
            f"{role} id outside the 64-bit integer range",
            path=label,
            line=where(row),
            column=column,
            value=values[row].item(),
        )
    return values.astype(np.int64)
