"""Mapping between external ids (user names, SKUs, MovieLens ids) and contiguous int32 indices.

Only :mod:`llmcf.data` deals in external ids (``user_id``, ``item_id``); everything downstream
works on indices (``user_idx``, ``item_idx``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Literal

import numpy as np

from llmcf.errors import DataError

MissingPolicy = Literal["error", "negative"]


class Vocabulary:
    """An ordered set of external ids; position ``k`` is index ``k``.

    Args:
        ids: 1-D array of unique external ids (ints or strings). Order defines the indices.
        name: what the ids are (``"user"``, ``"item"``), used in error messages.
    """

    __slots__ = ("_order", "_sorted", "ids", "name")

    def __init__(self, ids: Iterable[object] | np.ndarray, name: str = "id") -> None:
        arr = np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids)
        if arr.ndim != 1:
            raise ValueError(f"{name} vocabulary must be 1-D, got shape {arr.shape}")
        if arr.dtype == object:
            arr = arr.astype(str)
        self.ids: np.ndarray = arr
        self.name = name
        self._order = np.argsort(arr, kind="stable")
        self._sorted = arr[self._order]
        if len(arr) > 1:
            dup = self._sorted[1:] == self._sorted[:-1]
            if dup.any():
                raise DataError(
                    f"duplicate {name} id in vocabulary", value=self._sorted[1:][dup][0].item()
                )

    @classmethod
    def from_values(cls, values: np.ndarray, name: str = "id") -> tuple[Vocabulary, np.ndarray]:
        """Build a vocabulary in order of first appearance and return ``(vocab, indices)``."""
        values = np.asarray(values)
        if values.dtype == object:
            values = values.astype(str)
        uniq, first, inverse = np.unique(values, return_index=True, return_inverse=True)
        order = np.argsort(first, kind="stable")  # order of first appearance
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        return cls(uniq[order], name=name), rank[inverse.ravel()].astype(np.int32)

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def __contains__(self, external_id: object) -> bool:
        return bool(self.lookup(np.asarray([external_id]), missing="negative")[0] >= 0)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self.digest() == other.digest()

    def __hash__(self) -> int:
        return hash(self.digest())

    def __repr__(self) -> str:
        return f"Vocabulary({self.name}, n={len(self)})"

    def lookup(self, external_ids: object, missing: MissingPolicy = "error") -> np.ndarray:
        """Map external ids to int32 indices.

        ``missing="error"`` raises :class:`DataError` naming the first unknown id;
        ``missing="negative"`` returns -1 for unknown ids.
        """
        q = np.asarray(external_ids)
        if q.dtype == object:
            q = q.astype(str)
        if q.ndim == 0:
            q = q.reshape(1)
        parsed = np.ones(q.shape, dtype=bool)
        text = q
        if len(self) == 0:
            out = np.full(q.shape, -1, dtype=np.int32)
        else:
            if self._sorted.dtype.kind in "iu" and q.dtype.kind in "US":
                # ids typed on a command line or sent as JSON strings arrive as text
                try:
                    q = q.astype(self._sorted.dtype)
                except ValueError:
                    q = np.zeros(text.shape, dtype=np.int64)
                    for j, value in enumerate(text.ravel().tolist()):
                        try:
                            q.flat[j] = int(value)
                        except (ValueError, OverflowError):
                            parsed.flat[j] = False
            elif self._sorted.dtype.kind in "US" and q.dtype.kind in "iuf":
                q = q.astype(str)
            pos = np.searchsorted(self._sorted, q)
            pos_c = np.minimum(pos, len(self) - 1)
            found = (self._sorted[pos_c] == q) & parsed
            out = np.where(found, self._order[pos_c], -1).astype(np.int32)
        if missing == "error" and (out < 0).any():
            bad = (text if not parsed.all() else q)[out < 0][0]
            raise DataError(
                f"unknown {self.name} id", value=bad.item() if hasattr(bad, "item") else bad
            )
        return out

    def index(self, external_id: object) -> int:
        """Index of one external id (raises :class:`DataError` if unknown)."""
        return int(self.lookup(np.asarray([external_id]))[0])

    def external(self, indices: np.ndarray | int) -> np.ndarray:
        """External ids of the given indices."""
        return self.ids[np.asarray(indices)]

    def digest(self) -> str:
        """sha256 of the ordered ids; stored in saved models to detect a vocabulary mismatch."""
        h = hashlib.sha256()
        h.update(self.ids.dtype.kind.encode())
        if self.ids.dtype.kind in "US":
            h.update("\x1f".join(self.ids.tolist()).encode("utf-8", "surrogatepass"))
        else:
            h.update(np.ascontiguousarray(self.ids.astype(np.int64)).tobytes())
        return h.hexdigest()

    def extend(self, new_ids: np.ndarray) -> Vocabulary:
        """A new vocabulary with ``new_ids`` not yet present appended (existing indices unchanged)."""
        new_ids = np.asarray(new_ids)
        unknown = new_ids[self.lookup(new_ids, missing="negative") < 0]
        if len(unknown) == 0:
            return self
        _, first = np.unique(unknown, return_index=True)
        ids = np.concatenate([self.ids, unknown[np.sort(first)]])
        return Vocabulary(ids, name=self.name)
