"""Ranked lists: what the one ranking path (:mod:`llmcf.ranking.path`) hands out."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SOURCE_NEIGHBOURS = "neighbours"
SOURCE_TEXT = "text"
SOURCE_POPULAR = "popular"
SOURCE_MODEL = "model"
#: where a listed item comes from; :class:`Recommendations` stores codes into this tuple
SOURCES: tuple[str, ...] = (SOURCE_NEIGHBOURS, SOURCE_TEXT, SOURCE_POPULAR, SOURCE_MODEL)
SOURCE_CODE = {name: code for code, name in enumerate(SOURCES)}

REASON_UNKNOWN_USER = "unknown user: most popular items"
REASON_NO_SCORES = "no model scores: most popular items"


@dataclass
class ItemList:
    """A ranked list for one user: item indices, external ids and scores (best first), the
    ``source`` of each item, and whether the list is a fallback (``reason`` says why)."""

    item_idx: np.ndarray
    item_ids: np.ndarray
    scores: np.ndarray
    was_fallback: bool = False
    reason: str | None = None
    sources: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.item_idx.shape[0])


@dataclass
class Recommendations:
    """Top-N lists for a batch of users.

    ``items`` (n_users, n) int32 (-1 only where the catalog has fewer eligible items than n);
    ``scores`` float64 (the model's score for scored items, the popularity for padded ones,
    -inf for empty slots); ``sources`` uint8 codes into :data:`SOURCES`; ``was_fallback``
    (n_users,) bool; ``n_scored`` (n_users,) int: how many leading entries the model scored
    (the rest are popularity padding); ``reasons``: one reason per fallback row, else None.
    """

    items: np.ndarray
    scores: np.ndarray
    was_fallback: np.ndarray
    sources: np.ndarray | None = None
    n_scored: np.ndarray | None = None
    reasons: list[str | None] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.items.shape[0])

    def row(self, r: int, item_ids: np.ndarray) -> ItemList:
        """Row ``r`` as an :class:`ItemList` (external ids from ``item_ids``)."""
        keep = self.items[r] >= 0
        idx = self.items[r][keep]
        sources = (
            [SOURCES[c] for c in self.sources[r][keep].tolist()]
            if self.sources is not None
            else [SOURCE_MODEL] * len(idx)
        )
        notes = []
        if self.n_scored is not None and not self.was_fallback[r]:
            filled = int(keep.sum()) - min(int(self.n_scored[r]), int(keep.sum()))
            if filled > 0:
                notes.append(f"{filled} item(s) completed from the most popular")
        reason = self.reasons[r] if r < len(self.reasons) else None
        return ItemList(
            idx,
            item_ids[idx],
            self.scores[r][keep],
            bool(self.was_fallback[r]),
            reason,
            sources,
            notes,
        )


def top_n_rows(scores: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of the ``n`` largest finite entries of each row, best first.

    Ties are broken by lower column index. Rows with fewer than ``n`` finite entries are padded
    with -1 / -inf.
    """
    n_rows, n_cols = scores.shape
    m = min(n, n_cols)
    if m == 0:
        return np.full((n_rows, n), -1, np.int32), np.full((n_rows, n), -np.inf)
    part = (
        np.argpartition(-scores, m - 1, axis=1)[:, :m]
        if m < n_cols
        else np.tile(np.arange(n_cols), (n_rows, 1))
    )
    vals = np.take_along_axis(scores, part, axis=1)
    if m < n_cols:
        # argpartition picks an arbitrary subset of the entries tied with the m-th value;
        # the tie-break by lower index needs every tied entry, so widen those rows
        cut = vals.min(axis=1)
        ties = (scores == cut[:, None]).sum(axis=1) > (vals == cut[:, None]).sum(axis=1)
        if ties.any():
            for r in np.flatnonzero(ties & np.isfinite(cut)):
                row = scores[r]
                cand = np.flatnonzero(row >= cut[r])
                best = cand[np.lexsort((cand, -row[cand]))][:m]
                part[r] = best
                vals[r] = row[best]
    order = np.lexsort((part, -vals), axis=1)
    idx = np.take_along_axis(part, order, axis=1)
    vals = np.take_along_axis(vals, order, axis=1)
    idx = np.where(np.isfinite(vals), idx, -1).astype(np.int32)
    if m < n:
        idx = np.pad(idx, ((0, 0), (0, n - m)), constant_values=-1)
        vals = np.pad(vals, ((0, 0), (0, n - m)), constant_values=-np.inf)
    return idx, vals
