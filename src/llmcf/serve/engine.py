"""Serving-side view of a loaded model: ids in and out, stored events folded in, and every
list from the one ranking path (:func:`llmcf.ranking.path.rank`).

:class:`ServingModel` is built once per loaded model (at start-up and on every reload) and is
immutable afterwards, so a reload swaps one reference and requests in flight finish on the
model they started with.

A user's list: the training row plus the user's stored events newer than the model's events
cutoff (the events it was trained on), folded in the model's units
(:mod:`llmcf.ranking.events`); items the model does not know but whose text is stored become
text rows, scored by text models through their text neighbours. Then :func:`rank` scores,
excludes, orders and pads exactly as it does for ``model.recommend``, ``llmcf evaluate`` and
the batch backends, so without new events the service returns what ``model.recommend``
returns, and with them what ``llmcf recommend --events-db`` returns.

A request's list is cut from a :class:`Ranking` computed to a depth (any shorter list is its
prefix), which the service keeps per user until the user's next event or a reload
(:func:`llmcf.serve.state.recommend`).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from llmcf.ranking.events import EventRows
from llmcf.ranking.lists import (
    SOURCE_NEIGHBOURS,
    SOURCE_POPULAR,
    SOURCE_TEXT,
    SOURCES,
    top_n_rows,
)
from llmcf.ranking.path import fold_in_histories, rank, training_histories
from llmcf.serve.store import UserHistory
from llmcf.text.neighbours import top_positive

_MODEL_TOKENS = itertools.count(1)
#: the largest quantity a view, cart or purchase event may carry
MAX_QUANTITY = 10_000.0


@dataclass
class RankedItems:
    """A ranked list in external ids, with one ``source`` per item."""

    item_ids: list[str]
    scores: list[float]
    sources: list[str]
    was_fallback: bool = False
    reason: str | None = None
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True, eq=False)
class Ranking:
    """A user's ranked list in item indices, computed once for a length ``depth`` and cut to
    any ``n <= depth`` by :meth:`take` (the order is total, so a shorter list is a prefix).

    ``n_scored`` entries come from the model, the rest from popularity. ``token`` names the
    :class:`ServingModel` that computed it. Compact, as the service keeps one per user.
    """

    token: int
    depth: int
    items: np.ndarray
    scores: np.ndarray
    sources: np.ndarray
    n_scored: int
    was_fallback: bool
    reason: str | None
    notes: tuple[str, ...]

    def take(self, item_ids: np.ndarray, n: int) -> RankedItems:
        """The first ``n`` entries (``n <= depth``) in external ids."""
        m = min(n, len(self.items))
        notes = list(self.notes)
        filled = m - min(self.n_scored, m)
        if filled > 0 and not self.was_fallback:
            notes.append(f"{filled} item(s) completed from the most popular")
        return RankedItems(
            item_ids[self.items[:m]].tolist(),
            self.scores[:m].tolist(),
            [SOURCES[code] for code in self.sources[:m].tolist()],
            was_fallback=self.was_fallback,
            reason=self.reason,
            notes=notes,
        )


class ServingModel:
    """A fitted model plus what a request needs precomputed (see the module docstring).

    Args:
        model: a fitted llmcf model (loaded with :func:`llmcf.models.load_model`).
        source: where it came from (a folder), for ``/readyz`` and logs.
        events_cutoff: events with ``seq`` <= this are in the training data (default: the
            model's own ``events_cutoff_``, saved in its manifest).
    """

    def __init__(
        self, model: Any, *, source: str = "<memory>", events_cutoff: int | None = None
    ) -> None:
        t0 = time.perf_counter()
        self.model = model
        self.source = source
        self.events_cutoff = int(
            getattr(model, "events_cutoff_", 0) if events_cutoff is None else events_cutoff
        )
        self.users = model.users_
        self.items = model.items_
        self.n_users, self.n_items = len(self.users), len(self.items)
        self.item_ids_str = self.items.ids.astype(str)
        scale = getattr(model, "rating_scale_", None)
        self.explicit = scale is not None
        self.top_rating = float(scale[1]) if scale is not None else 1.0
        self.weights = model.event_weights()
        #: item-based text models score items new to the model through their text
        self.text = hasattr(model, "text_similarities") and not getattr(model, "user_based", True)
        self.item_based = not getattr(model, "user_based", True)
        self.scoring = model.ranking_scoring()
        #: user-based models with their own (rating) neighbours cannot re-derive a user's
        #: neighbours from new events
        self.fold_in = not (getattr(model, "user_based", False) and self.scoring == "model")
        model.train_matrix()
        prepare = getattr(model, "prepare_serving", None)
        if callable(prepare):  # e.g. the learned stage: its language model off the request path
            prepare()
        if self.n_users:  # build the scorer's derived structures once, not on a request
            rank(model, 1, users=np.array([0]))
        self.token = next(_MODEL_TOKENS)  # names this model's rankings in the user cache
        self.loaded_at = time.time()
        self.prepare_seconds = time.perf_counter() - t0

    # ------------------------------------------------------------------ info
    def info(self) -> dict[str, Any]:
        return {
            "class": type(self.model).__name__,
            "source": self.source,
            "n_users": self.n_users,
            "n_items": self.n_items,
            "fold_in": self.fold_in,
            "scoring": self.scoring,
            "text_neighbours": self.text,
            "events_cutoff": self.events_cutoff,
            "loaded_at": self.loaded_at,
        }

    def user_index(self, user_id: str) -> int:
        return int(lookup_ids(self.users, [user_id])[0])

    def item_index(self, item_ids: list[str] | np.ndarray) -> np.ndarray:
        return lookup_ids(self.items, item_ids)

    # ------------------------------------------------------------------ recommend
    def needs_store(self, history: UserHistory | None) -> bool:
        """Whether :meth:`rank` may query the store (texts of items new to the model)."""
        if history is None or len(history) == 0 or not self.text:
            return False
        new = history.after(self.events_cutoff)
        return bool(len(new)) and bool((self.item_index(new.item_ids) < 0).any())

    def recommend(
        self,
        user_id: str,
        n: int,
        history: UserHistory | None = None,
        item_texts: Callable[[list[str]], dict[str, str]] | None = None,
    ) -> RankedItems:
        """Top-``n`` for ``user_id`` with the user's stored events folded in."""
        return self.rank(user_id, n, history, item_texts).take(self.item_ids_str, n)

    def rank(
        self,
        user_id: str,
        depth: int,
        history: UserHistory | None = None,
        item_texts: Callable[[list[str]], dict[str, str]] | None = None,
    ) -> Ranking:
        """The :class:`Ranking` of :meth:`recommend`, ``depth`` entries long."""
        u = self.user_index(user_id)
        new = history.after(self.events_cutoff) if history is not None else UserHistory.empty()
        notes: list[str] = []
        if len(new) == 0:
            h = training_histories(self.model, np.array([u]))
        else:
            ev_idx = self.item_index(new.item_ids).astype(np.int64)
            known = ev_idx >= 0
            events = EventRows(ev_idx[known], new.types[known], new.values[known])
            texts = self._text_rows(new, ~known, item_texts, notes)
            h = fold_in_histories(self.model, np.array([u]), [events], [texts])
            if not self.fold_in:
                notes.append(
                    f"{type(self.model).__name__} ranks with its training neighbours: recent "
                    "events are excluded from the list but not folded into the scores"
                )
        recs = rank(self.model, depth, histories=h)
        keep = recs.items[0] >= 0
        assert recs.sources is not None and recs.n_scored is not None
        return Ranking(
            self.token,
            depth,
            recs.items[0][keep],
            recs.scores[0][keep],
            recs.sources[0][keep],
            int(recs.n_scored[0]),
            bool(recs.was_fallback[0]),
            recs.reasons[0],
            tuple(notes),
        )

    def _text_rows(
        self,
        new: UserHistory,
        unknown: np.ndarray,
        item_texts: Callable[[list[str]], dict[str, str]] | None,
        notes: list[str],
    ) -> list[tuple[str, float]]:
        """(text, value) of the history's items unknown to the model, in the model's units."""
        if not unknown.any():
            return []
        ids = [str(i) for i in new.item_ids[unknown]]
        if not self.text or item_texts is None:
            notes.append("items unknown to the model are not folded in (the model has no text)")
            return []
        uniq = sorted(set(ids))
        texts = item_texts(uniq)
        # the same fold as for known items, over stand-in indices of the unknown ones
        pseudo = {item_id: k for k, item_id in enumerate(uniq)}
        events = EventRows(
            np.array([pseudo[i] for i in ids], dtype=np.int64),
            new.types[unknown],
            new.values[unknown],
        )
        idx, vals, _ = events.fold(
            np.zeros(0, np.int64),
            np.zeros(0),
            explicit=self.explicit,
            weights=self.weights,
            top_rating=self.top_rating,
        )
        value = dict(zip(idx.tolist(), vals.tolist(), strict=True))
        rows = [(texts[i], value.get(k, 0.0)) for k, i in enumerate(uniq) if texts.get(i)]
        if not rows:
            notes.append("items unknown to the model have no stored text: not folded in")
        return rows

    def check_event(self, event_type: str, value: float | None) -> str | None:
        """Why the model cannot take this event (None when it can): a rating outside the
        model's rating scale, or a non-positive quantity for a view, cart or purchase."""
        if value is None:
            return None
        scale = getattr(self.model, "rating_scale_", None)
        if event_type == "rating":
            if scale is not None and not scale[0] <= value <= scale[1]:
                return f"rating {value:g} is outside the model's rating scale {scale[0]:g}..{scale[1]:g}"
            if scale is None and value < 0:
                return f"rating {value:g} must be >= 0 for an implicit-feedback model"
            return None
        if not 0 < value <= MAX_QUANTITY:
            return (
                f"{event_type} value (a quantity) must be in (0, {MAX_QUANTITY:g}], got {value:g}"
            )
        return None

    # ------------------------------------------------------------------ similar
    def similar(
        self, item_id: str, n: int, item_text: Callable[[str], str | None] | None = None
    ) -> RankedItems:
        """The ``n`` items most similar to ``item_id``; for an item unknown to the model, its
        text neighbours (text models) or the most popular items (labelled)."""
        idx = int(self.item_index([item_id])[0])
        if idx >= 0:
            got = self.model.similar_items(idx, n)
            result = RankedItems(
                [str(x) for x in self.item_ids_str[got.item_idx]],
                [float(s) for s in got.scores],
                [SOURCE_NEIGHBOURS] * len(got),
            )
            if len(got) == 0:
                result.was_fallback = True
                result.reason = "item has no neighbours: most popular items"
            self._fill_popular(result, n, np.array([idx], np.int64), got.item_idx)
            return result
        text = item_text(item_id) if item_text is not None else None
        if text and self.text:
            nb, sims = top_positive(self.model.text_index().cosines(text), n)
            result = RankedItems(
                [str(x) for x in self.item_ids_str[nb]],
                [float(s) for s in sims],
                [SOURCE_TEXT] * len(nb),
                reason="item unknown to the model: text neighbours",
            )
            self._fill_popular(result, n, np.zeros(0, np.int64), nb)
            return result
        result = RankedItems([], [], [], was_fallback=True)
        if text:
            result.reason = (
                "item unknown to the model and the model has no text embeddings: most popular items"
            )
        else:
            result.reason = "unknown item: most popular items"
        self._fill_popular(result, n, np.zeros(0, np.int64), np.zeros(0, np.int64))
        return result

    def _fill_popular(
        self, result: RankedItems, n: int, seen: np.ndarray, chosen: np.ndarray
    ) -> None:
        """Complete ``result`` to ``n`` items with the most popular ones not in ``seen`` or
        ``chosen`` (popularity desc, ties by index: the padding rule of the ranking path)."""
        missing = n - len(result.item_ids)
        if missing <= 0:
            return
        pop = self.model.popularity()
        scores = pop.astype(np.float64).copy()
        scores[np.asarray(seen, dtype=np.int64)] = -np.inf
        scores[np.asarray(chosen, dtype=np.int64)] = -np.inf
        head, _ = top_n_rows(scores[None, :], missing)
        head = head[0][head[0] >= 0]
        result.item_ids.extend(str(x) for x in self.item_ids_str[head])
        result.scores.extend(float(s) for s in pop[head])
        result.sources.extend([SOURCE_POPULAR] * len(head))
        if not result.was_fallback and len(head):
            result.notes.append(f"{len(head)} item(s) completed from the most popular")

    # ------------------------------------------------------------------ predict
    def predict(
        self, user_ids: list[str], item_ids: list[str]
    ) -> list[tuple[float, bool, str | None]]:
        """``(prediction, was_fallback, reason)`` per pair (training data only; no fold-in)."""
        u = lookup_ids(self.users, user_ids)
        i = lookup_ids(self.items, item_ids)
        est, fallback = self.model.predict_detailed(u, i)
        out = []
        for e, fb, ku, ki in zip(est, fallback, u, i, strict=True):
            reason = None
            if ku < 0:
                reason = "unknown user"
            elif ki < 0:
                reason = "unknown item"
            elif fb:
                reason = "no usable neighbour"
            out.append((float(e), bool(fb or ku < 0 or ki < 0), reason))
        return out


def lookup_ids(vocab: Any, ids: list[str] | np.ndarray) -> np.ndarray:
    """int32 indices of external ids given as text (-1 where unknown).

    For an integer vocabulary only the canonical decimal text of an id matches ("42", not
    "042" or "abc"); each id is judged on its own.
    """
    if len(ids) == 0:
        return np.zeros(0, np.int32)
    if vocab.ids.dtype.kind in "iu":
        parsed = np.zeros(len(ids), dtype=np.int64)
        valid = np.zeros(len(ids), dtype=bool)
        for k, text in enumerate(ids):
            text = str(text)
            try:
                value = int(text)
            except ValueError:
                continue
            if str(value) == text and -(2**63) <= value < 2**63:
                parsed[k], valid[k] = value, True
        out = np.full(len(ids), -1, dtype=np.int32)
        if valid.any():
            out[valid] = vocab.lookup(parsed[valid].astype(vocab.ids.dtype), missing="negative")
        return out
    return np.asarray(vocab.lookup(np.asarray(ids, dtype=str), missing="negative"), dtype=np.int32)
