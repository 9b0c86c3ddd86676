"""The :class:`Dataset`: user x item interactions, timestamps and an item catalog with text."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np

from llmcf.data.vocab import Vocabulary
from llmcf.errors import DataError

if TYPE_CHECKING:
    import scipy.sparse as sp

Feedback = Literal["explicit", "implicit"]


@dataclass
class Catalog:
    """Item (or user) attributes aligned with a vocabulary: ``fields[name][idx]``.

    Values are plain Python objects (str, list of str, float or None where missing), so text
    fields of any shape (titles, genre lists, descriptions) fit.
    """

    fields: dict[str, list[object]] = field(default_factory=dict)

    def get(self, name: str, idx: int) -> object:
        col = self.fields.get(name)
        return None if col is None or idx >= len(col) else col[idx]

    def columns(self) -> list[str]:
        return list(self.fields)

    def take(self, n: int) -> Catalog:
        """The catalog padded with ``None`` (or cut) to ``n`` rows."""
        return Catalog({k: (list(v) + [None] * (n - len(v)))[:n] for k, v in self.fields.items()})


class Dataset:
    """Interactions between users and items, in input order, with vocabularies and catalogs.

    Interactions are kept as parallel arrays in input order (``user_idx``, ``item_idx``,
    ``rating``, ``timestamp``); :meth:`matrix` gives the user x item CSR matrix. The input
    order is kept because it is part of the semantics of some peers (ties between equally
    similar neighbours are broken by it), and it makes splits reproducible.

    Args:
        users, items: vocabularies; indices are positions in them. Items may include catalog
            items with no interaction (cold-start items).
        user_idx, item_idx: int32 arrays of shape (n,).
        rating: float64 array of shape (n,): explicit ratings or implicit weights.
        timestamp: optional int64 unix seconds, shape (n,).
        feedback: ``"explicit"`` (ratings on ``rating_scale``) or ``"implicit"`` (event weights).
        rating_scale: (lowest, highest) for explicit feedback; predictions are clipped to it.
        item_catalog, user_catalog: attributes aligned with the vocabularies.
        name: a label for reports.
        info: free-form provenance written by loaders (source path, rows dropped and why);
            carried over by :meth:`subset` and :meth:`deduplicate`.
        check_duplicates: raise :class:`DataError` when a (user, item) pair occurs twice.
    """

    def __init__(
        self,
        users: Vocabulary,
        items: Vocabulary,
        user_idx: np.ndarray,
        item_idx: np.ndarray,
        rating: np.ndarray | None = None,
        timestamp: np.ndarray | None = None,
        *,
        feedback: Feedback = "explicit",
        rating_scale: tuple[float, float] | None = None,
        item_catalog: Catalog | None = None,
        user_catalog: Catalog | None = None,
        name: str = "dataset",
        check_duplicates: bool = True,
        info: dict[str, object] | None = None,
    ) -> None:
        self.users = users
        self.items = items
        self.user_idx = np.ascontiguousarray(user_idx, dtype=np.int32)
        self.item_idx = np.ascontiguousarray(item_idx, dtype=np.int32)
        n = self.user_idx.shape[0]
        if self.item_idx.shape != (n,):
            raise DataError(f"user_idx and item_idx lengths differ: {n} vs {self.item_idx.shape}")
        self.rating = (
            np.ones(n, dtype=np.float64)
            if rating is None
            else np.ascontiguousarray(rating, dtype=np.float64)
        )
        if self.rating.shape != (n,):
            raise DataError(f"rating has shape {self.rating.shape}, expected ({n},)")
        self.timestamp = (
            None if timestamp is None else np.ascontiguousarray(timestamp, dtype=np.int64)
        )
        if self.timestamp is not None and self.timestamp.shape != (n,):
            raise DataError(f"timestamp has shape {self.timestamp.shape}, expected ({n},)")
        self.feedback: Feedback = feedback
        self.rating_scale = rating_scale
        self.item_catalog = item_catalog or Catalog()
        self.user_catalog = user_catalog or Catalog()
        self.name = name
        self.info: dict[str, object] = {} if info is None else info
        if n:
            if self.user_idx.min() < 0 or self.user_idx.max() >= len(users):
                raise DataError("user index out of range of the user vocabulary")
            if self.item_idx.min() < 0 or self.item_idx.max() >= len(items):
                raise DataError("item index out of range of the item vocabulary")
            if not np.isfinite(self.rating).all():
                bad = int(np.flatnonzero(~np.isfinite(self.rating))[0])
                raise DataError(
                    f"non-finite rating at interaction {bad}", value=float(self.rating[bad])
                )
        if check_duplicates and n:
            key = self.user_idx.astype(np.int64) * len(items) + self.item_idx
            uniq, counts = np.unique(key, return_counts=True)
            if (counts > 1).any():
                k = int(uniq[counts > 1][0])
                raise DataError(
                    "duplicate (user, item) pair; deduplicate with Dataset.deduplicate(policy)",
                    value=(users.ids[k // len(items)].item(), items.ids[k % len(items)].item()),
                )
        self._csr: sp.csr_matrix | None = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_arrays(
        cls,
        user_ids: Sequence[object] | np.ndarray,
        item_ids: Sequence[object] | np.ndarray,
        rating: Sequence[float] | np.ndarray | None = None,
        timestamp: Sequence[int] | np.ndarray | None = None,
        *,
        users: Vocabulary | None = None,
        items: Vocabulary | None = None,
        duplicates: Literal["error", "last", "first", "sum", "mean"] = "error",
        **kwargs: object,
    ) -> Dataset:
        """Build from external ids. Vocabularies are made in order of first appearance unless given.

        ``duplicates`` is the policy for repeated (user, item) pairs: ``"error"`` raises,
        ``"last"``/``"first"`` keep one (by timestamp when given, else by input order),
        ``"sum"``/``"mean"`` aggregate the values (implicit feedback).
        """
        uids = np.asarray(user_ids)
        iids = np.asarray(item_ids)
        if users is None:
            users, uidx = Vocabulary.from_values(uids, name="user")
        else:
            uidx = users.lookup(uids)
        if items is None:
            items, iidx = Vocabulary.from_values(iids, name="item")
        else:
            iidx = items.lookup(iids)
        r = None if rating is None else np.asarray(rating, dtype=np.float64)
        ts = None if timestamp is None else np.asarray(timestamp, dtype=np.int64)
        ds = cls(users, items, uidx, iidx, r, ts, check_duplicates=False, **kwargs)  # type: ignore[arg-type]
        if duplicates == "error":
            ds._check_no_duplicates()
            return ds
        return ds.deduplicate(duplicates)

    def _check_no_duplicates(self) -> None:
        Dataset.__init__(
            self,
            self.users,
            self.items,
            self.user_idx,
            self.item_idx,
            self.rating,
            self.timestamp,
            feedback=self.feedback,
            rating_scale=self.rating_scale,
            item_catalog=self.item_catalog,
            user_catalog=self.user_catalog,
            name=self.name,
            check_duplicates=True,
            info=self.info,
        )

    def n_duplicates(self) -> int:
        """Number of interactions that repeat an earlier (user, item) pair."""
        key = self.user_idx.astype(np.int64) * max(len(self.items), 1) + self.item_idx
        return int(len(key) - len(np.unique(key)))

    def deduplicate(self, policy: Literal["last", "first", "sum", "mean"] = "last") -> Dataset:
        """One interaction per (user, item); ``last``/``first`` by timestamp (then input order)."""
        n = len(self)
        key = self.user_idx.astype(np.int64) * max(len(self.items), 1) + self.item_idx
        order_key = self.timestamp if self.timestamp is not None else np.zeros(n, np.int64)
        # sort by pair, then time, then input position
        order = np.lexsort((np.arange(n), order_key, key))
        skey = key[order]
        start = np.ones(n, dtype=bool)
        start[1:] = skey[1:] != skey[:-1]
        group = np.cumsum(start) - 1
        if policy in ("last", "first"):
            if policy == "last":
                end = np.ones(n, dtype=bool)
                end[:-1] = skey[1:] != skey[:-1]
                keep = order[end]
            else:
                keep = order[start]
            keep = np.sort(keep)  # back to input order
            return self.subset(keep)
        sums: np.ndarray = np.bincount(group, weights=self.rating[order])
        if policy == "mean":
            sums = sums / np.bincount(group)
        first = order[start]
        rank = np.argsort(first, kind="stable")
        keep = first[rank]
        new = self.subset(keep)
        new.rating = sums[rank].astype(np.float64)
        if self.timestamp is not None:
            new.timestamp = np.maximum.reduceat(self.timestamp[order], np.flatnonzero(start))[rank]
        return new

    # ------------------------------------------------------------------ views
    def __len__(self) -> int:
        return int(self.user_idx.shape[0])

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_items(self) -> int:
        return len(self.items)

    def __repr__(self) -> str:
        return (
            f"Dataset({self.name!r}, {len(self)} {self.feedback} interactions, "
            f"{self.n_users} users, {self.n_items} items)"
        )

    def subset(self, indices: np.ndarray, name: str | None = None) -> Dataset:
        """The interactions at ``indices`` (in that order), with the same vocabularies and catalogs."""
        idx = np.asarray(indices)
        return Dataset(
            self.users,
            self.items,
            self.user_idx[idx],
            self.item_idx[idx],
            self.rating[idx],
            None if self.timestamp is None else self.timestamp[idx],
            feedback=self.feedback,
            rating_scale=self.rating_scale,
            item_catalog=self.item_catalog,
            user_catalog=self.user_catalog,
            name=name or self.name,
            check_duplicates=False,
            info=dict(self.info),
        )

    def matrix(self) -> sp.csr_matrix:
        """User x item CSR matrix (float64) of the ratings / weights, with sorted indices."""
        if self._csr is None:
            import scipy.sparse as sp

            self._csr = sp.csr_matrix(
                (self.rating, (self.user_idx, self.item_idx)), shape=(self.n_users, self.n_items)
            )
            self._csr.sum_duplicates()
        return self._csr

    def global_mean(self) -> float:
        return float(self.rating.mean()) if len(self) else 0.0

    def user_counts(self) -> np.ndarray:
        return np.bincount(self.user_idx, minlength=self.n_users)

    def item_counts(self) -> np.ndarray:
        return np.bincount(self.item_idx, minlength=self.n_items)

    def item_text_fields(self) -> Mapping[str, list[object]]:
        return self.item_catalog.fields
