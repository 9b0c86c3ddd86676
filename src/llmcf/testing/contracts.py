"""Contract checks every llmcf model must pass (used by llmcf's tests; usable by plug-ins).

``check_model_contract(make_model, dataset)`` fits a fresh model and checks: predictions are
finite and within the rating scale, unknown users/items are fallbacks (never errors), empty
input gives empty output, the batch call equals scalar calls, recommendations are sorted,
unique, exclude seen items and never contain unknown ids, and a save/load round trip gives
identical predictions and recommendations.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from typing import Any

import numpy as np

from llmcf.data.dataset import Dataset


def check_model_contract(make_model: Callable[[], Any], dataset: Dataset, n: int = 5) -> None:
    from llmcf.persist import load_model, save_model

    model = make_model()
    assert model.fit(dataset) is model, "fit must return self"
    users = np.repeat(np.arange(dataset.n_users), dataset.n_items)
    items = np.tile(np.arange(dataset.n_items), dataset.n_users)
    est, fallback = model.predict_detailed(users, items)
    assert est.shape == users.shape and fallback.shape == users.shape
    assert np.isfinite(est).all(), "predictions must be finite"
    if dataset.rating_scale is not None:
        lo, hi = dataset.rating_scale
        assert (est >= lo).all() and (est <= hi).all(), "predictions must be clipped to the scale"
    # unknown ids are fallbacks, not errors
    est_u, fb_u = model.predict_detailed(np.array([-1, 0]), np.array([0, -1]))
    assert fb_u.all() and np.isfinite(est_u).all()
    # empty input
    empty = model.predict(np.array([], dtype=np.int64), np.array([], dtype=np.int64))
    assert empty.shape == (0,)
    # batch equals scalar calls
    for u, i in [(0, 0), (dataset.n_users - 1, dataset.n_items - 1)]:
        single = model.predict(np.array([u]), np.array([i]))[0]
        batch = est[u * dataset.n_items + i]
        assert single == batch, "a scalar prediction must equal the batch prediction"
    # recommendations
    recs = model.recommend_many(np.arange(dataset.n_users), n)
    R = dataset.matrix()
    for u in range(dataset.n_users):
        row = recs.items[u][recs.items[u] >= 0]
        assert len(set(row.tolist())) == len(row), "no duplicates in a list"
        assert (row < dataset.n_items).all()
        seen = set(R.indices[R.indptr[u] : R.indptr[u + 1]].tolist())
        assert not seen & set(row.tolist()), "seen items must be excluded"
        scores = recs.scores[u][: len(row)]
        assert (np.diff(scores) <= 1e-12).all(), "scores must be sorted, best first"
    unknown = model.recommend(-1, n)
    assert unknown.was_fallback and unknown.reason
    one = model.recommend(0, n)
    np.testing.assert_array_equal(one.item_idx, recs.items[0][recs.items[0] >= 0])
    # save / load round trip
    with tempfile.TemporaryDirectory() as tmp:
        save_model(model, tmp)
        loaded = load_model(tmp)
        assert type(loaded) is type(model)
        np.testing.assert_array_equal(loaded.predict(users, items), est)
        again = loaded.recommend_many(np.arange(dataset.n_users), n)
        np.testing.assert_array_equal(again.items, recs.items)
