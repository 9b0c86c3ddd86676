"""Contract checks every llmcf model must pass (run by llmcf's tests for every registered
model; usable by plug-ins).

``check_model_contract(make_model, dataset)`` checks: ``NotFittedError`` before ``fit``;
``fit`` returns ``self``; predictions are finite, within the rating scale, batch == scalar;
unknown users/items are fallbacks (never errors); empty input gives empty output; top-N lists
are unique, exclude seen items, are ordered (scored items by score, then popularity padding);
a refit equals a fresh fit; a save/load round trip gives identical predictions and identical
full lists; and the **same full list comes from every surface**: ``recommend``,
``recommend_many``, the service's :class:`~llmcf.serve.engine.ServingModel` and the batch
backend (:func:`llmcf.backends.local.recommend_all`).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from typing import Any

import numpy as np

from llmcf.data.dataset import Dataset
from llmcf.errors import NotFittedError
from llmcf.ranking.lists import SOURCE_CODE, SOURCE_POPULAR


def full_lists(model: Any) -> Any:
    """Every training user's full list (all items) of a fitted model."""
    return model.recommend_many(np.arange(len(model.users_)), max(len(model.items_), 1))


def assert_same_lists(a: Any, b: Any, what: str) -> None:
    np.testing.assert_array_equal(a.items, b.items, err_msg=f"{what}: items differ")
    np.testing.assert_allclose(a.scores, b.scores, rtol=0, atol=1e-9, err_msg=f"{what}: scores")
    np.testing.assert_array_equal(a.was_fallback, b.was_fallback, err_msg=f"{what}: fallback")


def check_model_contract(make_model: Callable[[], Any], dataset: Dataset, n: int = 5) -> None:
    from llmcf.backends.local import recommend_all
    from llmcf.models import load_model
    from llmcf.persist import save_model
    from llmcf.serve.engine import ServingModel

    model = make_model()
    for call in (
        lambda: model.predict(np.array([0]), np.array([0])),
        lambda: model.recommend(0, n),
    ):
        try:
            call()
        except NotFittedError:
            pass
        else:  # pragma: no cover - a contract failure
            raise AssertionError("an unfitted model must raise NotFittedError")
    assert model.fit(dataset) is model, "fit must return self"
    users = np.repeat(np.arange(dataset.n_users), dataset.n_items)
    items = np.tile(np.arange(dataset.n_items), dataset.n_users)
    est, fallback = model.predict_detailed(users, items)
    assert est.shape == users.shape and fallback.shape == users.shape
    assert np.isfinite(est).all(), "predictions must be finite"
    if dataset.rating_scale is not None:
        lo, hi = dataset.rating_scale
        assert (est >= lo).all() and (est <= hi).all(), "predictions must be clipped to the scale"
    est_u, fb_u = model.predict_detailed(np.array([-1, 0]), np.array([0, -1]))
    assert fb_u.all() and np.isfinite(est_u).all(), "unknown ids are fallbacks, not errors"
    empty = model.predict(np.array([], dtype=np.int64), np.array([], dtype=np.int64))
    assert empty.shape == (0,)
    for u, i in [(0, 0), (dataset.n_users - 1, dataset.n_items - 1)]:
        single = model.predict(np.array([u]), np.array([i]))[0]
        assert single == est[u * dataset.n_items + i], "a scalar prediction must equal the batch"
    # top-N lists
    recs = model.recommend_many(np.arange(dataset.n_users), n)
    R = dataset.matrix()
    for u in range(dataset.n_users):
        row = recs.items[u][recs.items[u] >= 0]
        assert len(set(row.tolist())) == len(row), "no duplicates in a list"
        assert (row < dataset.n_items).all()
        seen = set(R.indices[R.indptr[u] : R.indptr[u + 1]].tolist())
        assert not seen & set(row.tolist()), "seen items must be excluded"
        assert len(row) == min(n, dataset.n_items - len(seen)), "lists are padded to n"
        m = int(recs.n_scored[u])
        scores = recs.scores[u][: len(row)]
        assert (np.diff(scores[:m]) <= 0).all(), "scored items: best first"
        assert (np.diff(scores[m:]) <= 0).all(), "padding: most popular first"
        assert (recs.sources[u][m : len(row)] == SOURCE_CODE[SOURCE_POPULAR]).all()
    unknown = model.recommend(-1, n)
    assert unknown.was_fallback and unknown.reason, "an unknown user gets a labelled fallback"
    # an empty history (a new visitor without events) is the same labelled fallback
    from llmcf.ranking.path import fold_in_histories, rank

    empty_h = rank(model, n, histories=fold_in_histories(model, np.array([-1]), [None]))
    assert empty_h.was_fallback[0] and empty_h.reasons[0] == unknown.reason
    np.testing.assert_array_equal(empty_h.items[0][empty_h.items[0] >= 0], unknown.item_idx)
    one = model.recommend(0, n)
    np.testing.assert_array_equal(one.item_idx, recs.items[0][recs.items[0] >= 0])
    full = full_lists(model)
    # a refit equals a fresh fit
    again = make_model().fit(dataset)
    assert_same_lists(full_lists(again), full, "fresh fit")
    model.fit(dataset)
    assert_same_lists(full_lists(model), full, "refit")
    np.testing.assert_array_equal(model.predict(users, items), est)
    # every surface: the service's view and the batch backend
    serving = ServingModel(model)
    for u in range(min(dataset.n_users, 20)):
        uid = str(model.users_.ids[u])
        ranked = serving.recommend(uid, dataset.n_items)
        row = full.items[u][full.items[u] >= 0]
        assert ranked.item_ids == [str(i) for i in model.items_.ids[row]], "service list"
        np.testing.assert_allclose(ranked.scores, full.scores[u][: len(row)], atol=1e-9)
    frame = recommend_all(model, dataset.n_items)
    for u in range(min(dataset.n_users, 20)):
        row = full.items[u][full.items[u] >= 0]
        got = frame[frame["user_id"] == model.users_.ids[u]].sort_values("rank")
        assert got["item_id"].tolist() == model.items_.ids[row].tolist(), "batch backend list"
    # save / load round trip
    with tempfile.TemporaryDirectory() as tmp:
        save_model(model, tmp)
        loaded = load_model(tmp)
        assert type(loaded) is type(model)
        np.testing.assert_array_equal(loaded.predict(users, items), est)
        assert_same_lists(full_lists(loaded), full, "save/load")
