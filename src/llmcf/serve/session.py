"""Lists for a session whose history travels with the request (``POST /v1/recommendations``).

The inline history becomes a :class:`~llmcf.serve.store.UserHistory` newer than the model's
events cutoff, so :meth:`ServingModel.rank <llmcf.serve.engine.ServingModel.rank>` folds it
in exactly as it folds in a user's stored events (same types, weights and value rules, same
text rows for items unknown to the model), and the list comes from the one ranking path.
Nothing is stored and the user's stored events are not read.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from llmcf.serve.engine import RankedItems, ServingModel
from llmcf.serve.schemas import HistoryEventIn
from llmcf.serve.store import UserHistory


def inline_history(model: ServingModel, events: Sequence[HistoryEventIn]) -> UserHistory:
    """``events`` (oldest first) as a history the model has not seen (``seq`` after its
    events cutoff)."""
    if not events:
        return UserHistory.empty()
    first = model.events_cutoff + 1
    return UserHistory(
        np.arange(first, first + len(events), dtype=np.int64),
        np.array([e.item_id for e in events], dtype=str),
        np.array([e.type for e in events], dtype=str),
        np.array([np.nan if e.value is None else e.value for e in events], dtype=np.float64),
    )


def check_history(model: ServingModel, events: Sequence[HistoryEventIn]) -> str | None:
    """Why the model cannot take one of ``events`` (naming it), else ``None``; the rules of
    ``POST /v1/events`` (:meth:`ServingModel.check_event`)."""
    for k, e in enumerate(events):
        problem = model.check_event(e.type, e.value)
        if problem:
            return f"history[{k}]: {problem}"
    return None


def session_ranking(
    model: ServingModel,
    user_id: str | None,
    n: int,
    history: UserHistory,
    item_texts: Callable[[list[str]], dict[str, str]] | None = None,
) -> RankedItems:
    """Top-``n`` for ``user_id`` (training row if the model knows it, else a new visitor)
    with ``history`` folded in; ``item_texts`` looks up the stored texts of history items
    unknown to the model (text models). Blocking when it queries the store."""
    ranking = model.rank(user_id or "", n, history, item_texts)
    return ranking.take(model.item_ids_str, n)
