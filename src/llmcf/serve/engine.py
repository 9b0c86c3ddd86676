"""Serving-side scoring: a loaded model with everything a request needs precomputed.

:class:`ServingModel` is built once per loaded model (at start-up and on every reload) and is
immutable afterwards, so a reload swaps one reference and requests in flight finish on the
model they started with.

Recommendations with fold-in (item-based models, e.g. :class:`~llmcf.cf.knn.ItemKNN`): the
user's history vector h is the training row plus the weighted events stored since the model
was trained,

    h[i] = H[u, i] + sum_{e: item(e) = i, seq(e) > cutoff} w(e)

and the score of item j is the item-based top-N score of :mod:`llmcf.cf.topn`

    score(j) = sum_i h[i] * S_k[j, i]

where S_k and the history matrix H are the ones the model's own top-N uses, so that without
new events the service returns what ``model.recommend`` returns: the implicit ranking
similarity ``model.ranking_neighbors()`` on the weight matrix W when the model ranks with it
(:mod:`llmcf.cf.topn`), else the rating neighbours ``model.neighbor_matrix()`` (each item's k
most similar items, similarity > 0) on the training values R. The score is computed from the
rows of S_k^T of the items in h only, so its cost is O(|h| * k), not O(catalog). Seen items
(training row and events) are excluded; when fewer than n items have a positive score the
list is completed with the most popular unseen items, each labelled with its ``source``
("neighbours", "text" or "popular"). An item unknown to the model, with a text stored in the
event store, contributes through its text neighbours when a :class:`TextNeighbours` index is
available (its row is the cosine similarities to the k nearest catalog items, > 0), else it
only counts as seen.

A request's list is cut from a :class:`Ranking` computed to a depth (any shorter list is its
prefix), which the service keeps per user until the user's next event or a reload
(:func:`llmcf.serve.state.recommend`).

Other models (user-based kNN, baselines) are served by their own ``recommend``; their events
are excluded from the list but not folded into the scores (the result says so).
"""

from __future__ import annotations

import itertools
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from llmcf.serve.store import UserHistory

SOURCE_NEIGHBOURS = "neighbours"
SOURCE_TEXT = "text"
SOURCE_POPULAR = "popular"
SOURCE_MODEL = "model"
#: the sources in the compact form of :class:`Ranking` (uint8 codes)
SOURCES = (SOURCE_NEIGHBOURS, SOURCE_TEXT, SOURCE_POPULAR, SOURCE_MODEL)
_SOURCE_CODE = {name: code for code, name in enumerate(SOURCES)}

_MODEL_TOKENS = itertools.count(1)


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
    any ``n <= depth`` by :meth:`take`.

    The order (score desc, index asc; then the most popular unseen items) is a total order, so
    the top ``n`` of a longer list is its first ``n`` entries: one ranking serves every ``n``
    up to its depth. ``n_scored`` entries come from the scores, the rest from popularity.
    ``token`` names the :class:`ServingModel` that computed it. Compact, as the service keeps
    one per user: int32 items, float64 scores, uint8 codes into :data:`SOURCES` (about 1.3 kB
    for 100 entries).
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
        filled = m - self.n_scored
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


class TextNeighbours:
    """Nearest catalog items of a free text, by cosine of L2-normalised embeddings.

    Args:
        item_embeddings: float32 (n_items, dim), rows L2-normalised, aligned with the model's
            item indices.
        embed: texts -> float32 (n, dim) L2-normalised (an ``Embedder.embed``).
    """

    def __init__(
        self,
        item_embeddings: np.ndarray,
        embed: Callable[[list[str]], np.ndarray],
        cache_size: int = 4096,
    ) -> None:
        self.item_embeddings = np.ascontiguousarray(item_embeddings, dtype=np.float32)
        self.embed = embed
        self._cache: OrderedDict[str, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._cache_size = cache_size

    def neighbours(self, text: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(item_idx int32, cosine float64)`` of the ``k`` most similar items with cosine > 0."""
        key = f"{k}\x1f{text}"
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        vec = np.asarray(self.embed([text]), dtype=np.float32).reshape(-1)
        sims = self.item_embeddings @ vec
        m = min(k, len(sims))
        part = np.argpartition(-sims, m - 1)[:m] if 0 < m < len(sims) else np.arange(len(sims))
        part = part[sims[part] > 0]
        order = np.lexsort((part, -sims[part]))
        result = part[order].astype(np.int32), sims[part[order]].astype(np.float64)
        self._cache[key] = result
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return result

    @classmethod
    def from_model(cls, model: Any) -> TextNeighbours | None:
        """The index of a model that carries item text embeddings, else ``None``.

        A text model exposes ``item_embeddings_`` (n_items, dim) and ``text_embedder()``
        (an object with ``embed(texts)``).
        """
        emb = getattr(model, "item_embeddings_", None)
        make = getattr(model, "text_embedder", None)
        if emb is None or make is None:
            return None
        embedder = make()
        return cls(np.asarray(emb), embedder.embed)


class ServingModel:
    """A fitted model plus the precomputed structures a request needs (see module docstring).

    Args:
        model: a fitted llmcf model (loaded with :func:`llmcf.persist.load_model`).
        source: where it came from (a folder), for ``/readyz`` and logs.
        events_cutoff: events with ``seq`` <= this are already in the training data.
        text_index: optional text neighbours of the model's items.
    """

    def __init__(
        self,
        model: Any,
        *,
        source: str = "<memory>",
        events_cutoff: int = 0,
        text_index: TextNeighbours | None = None,
    ) -> None:
        import scipy.sparse as sp

        t0 = time.perf_counter()
        self.model = model
        self.source = source
        self.events_cutoff = int(events_cutoff)
        self.text_index = text_index if text_index is not None else TextNeighbours.from_model(model)
        self.users = model.users_
        self.items = model.items_
        self.n_users, self.n_items = len(self.users), len(self.items)
        self.item_ids_str = self.items.ids.astype(str)
        R = sp.csr_matrix(
            (model.rating_, (model.user_idx_, model.item_idx_)), shape=(self.n_users, self.n_items)
        )
        R.sum_duplicates()
        R.sort_indices()
        self.train = R
        pop = np.bincount(model.item_idx_, minlength=self.n_items).astype(np.float64)
        self.popularity = pop
        # most popular first, ties by lower index (the order of topn.top_n_rows)
        self.popular_order = np.lexsort((np.arange(self.n_items), -pop)).astype(np.int32)
        self.item_based = (
            hasattr(model, "neighbor_matrix") and getattr(model, "user_based", True) is False
        )
        self.history_matrix = R
        self.scoring = "model"
        if self.item_based:
            N, self.scoring = self._item_neighbour_matrix(model)
            self.k = int(N.getnnz(axis=1).max()) if N.nnz else 1
            NT = sp.csr_matrix(N.T)
            NT.sort_indices()
            self.nbr_t_indptr = NT.indptr.astype(np.int64)
            self.nbr_t_indices = NT.indices.astype(np.int32)
            self.nbr_t_data = NT.data.astype(np.float64)
        else:
            self.k = int(getattr(getattr(model, "config", None), "k", 40))
        self.token = next(_MODEL_TOKENS)  # names this model's rankings in the user cache
        self.loaded_at = time.time()
        self.prepare_seconds = time.perf_counter() - t0

    def _item_neighbour_matrix(self, model: Any) -> tuple[Any, str]:
        """S_k and the history matrix the model's own top-N uses.

        When the model ranks with the implicit ranking similarity of :mod:`llmcf.cf.topn`
        (``ranking_neighbors()`` on the weight matrix W), that is served, so the service and
        ``model.recommend`` agree; otherwise the model's rating neighbours
        ``neighbor_matrix()`` on the training values R.
        """
        scoring = getattr(model, "ranking_scoring", None)
        if callable(scoring) and scoring() == "implicit" and hasattr(model, "ranking_neighbors"):
            weights = getattr(model, "_weight_matrix", None)
            if callable(weights):
                W = weights().tocsr()
                W.sort_indices()
                self.history_matrix = W
                return model.ranking_neighbors(), "implicit ranking similarity"
        return model.neighbor_matrix(), "rating neighbours"

    # ------------------------------------------------------------------ info
    def info(self) -> dict[str, Any]:
        return {
            "class": type(self.model).__name__,
            "source": self.source,
            "n_users": self.n_users,
            "n_items": self.n_items,
            "fold_in": self.item_based,
            "scoring": self.scoring,
            "text_neighbours": self.text_index is not None,
            "events_cutoff": self.events_cutoff,
            "loaded_at": self.loaded_at,
        }

    def user_index(self, user_id: str) -> int:
        return int(lookup_ids(self.users, [user_id])[0])

    def item_index(self, item_ids: list[str] | np.ndarray) -> np.ndarray:
        return lookup_ids(self.items, item_ids)

    # ------------------------------------------------------------------ recommend
    def needs_store(self, history: UserHistory | None) -> bool:
        """Whether :meth:`recommend` may query the store (texts of items new to the model)."""
        if history is None or len(history) == 0 or self.text_index is None:
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
        """Top-``n`` for ``user_id`` with the user's stored events folded in (module docstring).

        ``item_texts`` maps unknown item ids to stored texts (only called when needed).
        """
        return self.rank(user_id, n, history, item_texts).take(self.item_ids_str, n)

    def rank(
        self,
        user_id: str,
        depth: int,
        history: UserHistory | None = None,
        item_texts: Callable[[list[str]], dict[str, str]] | None = None,
    ) -> Ranking:
        """The :class:`Ranking` of :meth:`recommend`, ``depth`` entries long (any shorter
        list is its prefix)."""
        u = self.user_index(user_id)
        if history is not None and len(history):
            new = history.after(self.events_cutoff)
        else:
            new = UserHistory.empty()
        if u >= 0:
            lo, hi = self.train.indptr[u], self.train.indptr[u + 1]
            seen_train = self.train.indices[lo:hi]
            H = self.history_matrix
            lo, hi = H.indptr[u], H.indptr[u + 1]
            train_idx, train_w = H.indices[lo:hi], H.data[lo:hi]
        else:
            seen_train = train_idx = np.zeros(0, np.int32)
            train_w = np.zeros(0)
        notes: list[str] = []
        if len(new):
            ev_idx = self.item_index(new.item_ids)
            known_ev = ev_idx >= 0
            seen = np.unique(np.concatenate([seen_train, ev_idx[known_ev]]).astype(np.int32))
            hist_idx = np.concatenate([train_idx, ev_idx[known_ev]]).astype(np.int64)
            hist_w = np.concatenate([train_w, new.weights[known_ev]])
            unknown_ids = [str(i) for i in new.item_ids[~known_ev]]
        else:  # the training row only: sorted, unique
            seen, hist_idx, hist_w, unknown_ids = seen_train, train_idx, train_w, []
            known_ev = np.zeros(0, bool)
        if not self.item_based:
            return self._rank_with_model(u, depth, seen, len(new), notes)

        text_cand = np.zeros(0, np.int32)
        if unknown_ids and self.text_index is not None and item_texts is not None:
            cand, score = self._neighbour_scores(hist_idx, hist_w)
            texts = item_texts(unknown_ids)
            extra_c, extra_s = [cand], [score]
            unknown_w = new.weights[~known_ev]
            for item_id, w in zip(unknown_ids, unknown_w, strict=True):
                text = texts.get(item_id)
                if not text:
                    continue
                nb, sim = self.text_index.neighbours(text, self.k)
                extra_c.append(nb.astype(np.int64))
                extra_s.append(w * sim)
                text_cand = np.concatenate([text_cand, nb])
            cand, score = _sum_by_index(np.concatenate(extra_c), np.concatenate(extra_s))
            if len(text_cand) == 0:
                notes.append("items unknown to the model have no stored text: not folded in")
            keep = score > 0
            cand, score = cand[keep], score[keep]
            if len(seen):
                keep = ~np.isin(cand, seen, assume_unique=False)
                cand, score = cand[keep], score[keep]
        else:
            if unknown_ids:
                notes.append(
                    "items unknown to the model are not folded in (the model has no text embeddings)"
                )
            cand, score = self._unseen_scores(hist_idx, hist_w, seen)
        top, top_scores = _top(cand, score, depth)
        sources = [SOURCE_NEIGHBOURS] * len(top)
        if len(text_cand):
            text_only = np.isin(top, text_cand) & ~np.isin(top, self._neighbour_only(hist_idx))
            sources = [SOURCE_TEXT if t else SOURCE_NEIGHBOURS for t in text_only]
        reason = None
        if len(top) == 0:
            if u < 0 and len(new) == 0:
                reason = "unknown user: most popular items"
            else:
                reason = "no neighbour scores: most popular items"
        return self._ranking(
            depth, seen, top, top_scores, sources, reason is not None, reason, notes
        )

    def _neighbour_only(self, hist_idx: np.ndarray) -> np.ndarray:
        """Items reached through the CF neighbour rows of ``hist_idx`` (for labelling)."""
        if len(hist_idx) == 0:
            return np.zeros(0, np.int32)
        starts, ends = self.nbr_t_indptr[hist_idx], self.nbr_t_indptr[hist_idx + 1]
        return self.nbr_t_indices[_gather_positions(starts, ends)]

    def _gather(self, hist_idx: np.ndarray, hist_w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The entries of ``h * S_k^T`` row by row: (item index, h[i] * S_k[j, i]) pairs, one
        per neighbour link of a history item (items repeat)."""
        starts, ends = self.nbr_t_indptr[hist_idx], self.nbr_t_indptr[hist_idx + 1]
        pos = _gather_positions(starts, ends)
        return self.nbr_t_indices[pos], self.nbr_t_data[pos] * np.repeat(hist_w, ends - starts)

    def _neighbour_scores(
        self, hist_idx: np.ndarray, hist_w: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Sparse ``h @ S_k^T``: the candidate items and their summed scores."""
        if len(hist_idx) == 0:
            return np.zeros(0, np.int64), np.zeros(0)
        cand, contrib = self._gather(hist_idx, hist_w)
        return _sum_by_index(cand.astype(np.int64), contrib, self.n_items)

    def _unseen_scores(
        self, hist_idx: np.ndarray, hist_w: np.ndarray, seen: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """The items of ``h @ S_k^T`` with a positive score that are not in ``seen``."""
        if len(hist_idx) == 0:
            return np.zeros(0, np.int64), np.zeros(0)
        cand, contrib = self._gather(hist_idx, hist_w)
        if len(cand) * 8 >= self.n_items:
            # many entries for the catalog: a dense sum, seen items zeroed (O(catalog) once,
            # cheaper than sorting the entries)
            dense = np.bincount(cand, weights=contrib, minlength=self.n_items)
            dense[seen] = 0.0
            items = np.flatnonzero(dense > 0)
            return items, dense[items]
        items, score = _sum_by_index(cand.astype(np.int64), contrib)
        keep = score > 0
        if len(seen):
            keep &= ~np.isin(items, seen)
        return items[keep], score[keep]

    def _rank_with_model(
        self, u: int, depth: int, seen: np.ndarray, n_new: int, notes: list[str]
    ) -> Ranking:
        if n_new:
            notes.append(
                f"{type(self.model).__name__} has no item neighbour matrix: recent events are "
                "excluded from the list but not folded into the scores"
            )
        if u < 0:
            empty = np.zeros(0, np.int32)
            unknown = "unknown user: most popular items"
            return self._ranking(depth, seen, empty, np.zeros(0), [], True, unknown, notes)
        extra = len(seen) - len(self.train.indices[self.train.indptr[u] : self.train.indptr[u + 1]])
        recs = self.model.recommend_many(np.array([u]), depth + max(extra, 0), exclude_seen=True)
        items, scores = recs.items[0], recs.scores[0]
        keep = (items >= 0) & ~np.isin(items, seen)
        items, scores = items[keep][:depth], scores[keep][:depth]
        fb = bool(recs.was_fallback[0])
        sources = [SOURCE_POPULAR if fb else SOURCE_MODEL] * len(items)
        reason = "no model scores: most popular items" if fb else None
        return self._ranking(depth, seen, items, scores, sources, fb, reason, notes)

    def _ranking(
        self,
        depth: int,
        seen: np.ndarray,
        top: np.ndarray,
        top_scores: np.ndarray,
        sources: list[str],
        was_fallback: bool,
        reason: str | None,
        notes: list[str],
    ) -> Ranking:
        """A :class:`Ranking` of ``top`` completed to ``depth`` with the most popular items
        that are neither seen nor already chosen."""
        items = np.asarray(top, dtype=np.int32)
        scores = np.asarray(top_scores, dtype=np.float64)
        missing = depth - len(items)
        if missing > 0:
            # only the first (missing + |seen| + |chosen|) popular items can be needed
            head = self.popular_order[: missing + len(seen) + len(items)]
            head = head[~np.isin(head, seen) & ~np.isin(head, items)][:missing]
            items = np.concatenate([items, head])
            scores = np.concatenate([scores, self.popularity[head]])
            sources = sources + [SOURCE_POPULAR] * len(head)
        return Ranking(
            self.token,
            depth,
            items,
            scores,
            np.array([_SOURCE_CODE[s] for s in sources], dtype=np.uint8),
            len(top),
            was_fallback,
            reason,
            tuple(notes),
        )

    def _fill_popular(
        self, result: RankedItems, n: int, seen: np.ndarray, chosen: np.ndarray
    ) -> None:
        """Complete ``result`` to ``n`` items with the most popular unseen ones."""
        missing = n - len(result.item_ids)
        if missing <= 0:
            return
        # only the first (missing + |seen| + |chosen|) popular items can be needed
        head = self.popular_order[: missing + len(seen) + len(chosen)]
        head = head[~np.isin(head, seen) & ~np.isin(head, chosen)][:missing]
        result.item_ids.extend(str(x) for x in self.item_ids_str[head])
        result.scores.extend(float(s) for s in self.popularity[head])
        result.sources.extend([SOURCE_POPULAR] * len(head))
        if not result.was_fallback and len(head):
            result.notes.append(f"{len(head)} item(s) completed from the most popular")

    # ------------------------------------------------------------------ similar
    def similar(
        self, item_id: str, n: int, item_text: Callable[[str], str | None] | None = None
    ) -> RankedItems:
        """The ``n`` items most similar to ``item_id``; text neighbours or popularity for an
        item unknown to the model (labelled)."""
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
            self._fill_popular(result, n, np.array([idx], np.int32), got.item_idx)
            return result
        text = item_text(item_id) if item_text is not None else None
        if text and self.text_index is not None:
            nb, sims = self.text_index.neighbours(text, n)
            result = RankedItems(
                [str(x) for x in self.item_ids_str[nb]],
                [float(s) for s in sims],
                [SOURCE_TEXT] * len(nb),
                reason="item unknown to the model: text neighbours",
            )
            self._fill_popular(result, n, np.zeros(0, np.int32), nb)
            return result
        result = RankedItems([], [], [], was_fallback=True)
        if text:
            result.reason = (
                "item unknown to the model and the model has no text embeddings: most popular items"
            )
        else:
            result.reason = "unknown item: most popular items"
        self._fill_popular(result, n, np.zeros(0, np.int32), np.zeros(0, np.int32))
        return result

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


def _gather_positions(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(starts[t], ends[t])`` over t, vectorised."""
    lengths = ends - starts
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, np.int64)
    offsets = np.cumsum(lengths) - lengths
    return np.repeat(starts - offsets, lengths) + np.arange(total)


def _sum_by_index(
    idx: np.ndarray, values: np.ndarray, n_items: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Unique indices and the sums of their values.

    A dense ``bincount`` when the entries are many compared with the catalog (cheaper), else a
    sort, so the cost follows the number of entries, not the catalog size.
    """
    if len(idx) == 0:
        return np.zeros(0, np.int64), np.zeros(0)
    if n_items is not None and len(idx) * 8 >= n_items:
        dense = np.bincount(idx, weights=values, minlength=n_items)
        touched = np.zeros(n_items, dtype=bool)
        touched[idx] = True
        cand = np.flatnonzero(touched)
        return cand, dense[cand]
    uniq, inverse = np.unique(idx, return_inverse=True)
    return uniq, np.bincount(inverse.ravel(), weights=values, minlength=len(uniq))


def _top(cand: np.ndarray, score: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``n`` best (score desc, index asc) of the candidates."""
    if len(cand) > n:
        part = np.argpartition(-score, n - 1)[:n]
        # keep every candidate tied with the n-th score so the index tie-break is exact
        cut = score[part].min()
        part = np.flatnonzero(score >= cut)
        cand, score = cand[part], score[part]
    order = np.lexsort((cand, -score))[:n]
    return cand[order].astype(np.int32), score[order]
