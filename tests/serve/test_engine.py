"""Scoring with fold-in, checked against a dense numpy oracle and the model's own top-N."""

from __future__ import annotations

import numpy as np
import pytest

from llmcf import ItemKNN, UserKNN
from llmcf.serve.engine import Ranking, ServingModel, lookup_ids
from llmcf.serve.store import UserHistory


def _history(
    item_ids: list[str], values: list[float], types: list[str] | None = None, start: int = 1
) -> UserHistory:
    """Events oldest first; by default ``rating`` events with these values."""
    return UserHistory(
        np.arange(start, start + len(item_ids), dtype=np.int64),
        np.array(item_ids, dtype=str),
        np.array(types or ["rating"] * len(item_ids), dtype=str),
        np.array(values, dtype=np.float64),
    )


def _oracle(
    model: ItemKNN, user: int | None, ratings: dict[int, float], seen_only: set[int], n: int
):
    """Dense reference of an explicit item-knn: h = R[u] with the rated events replacing the
    training ratings; score = S_k @ h (rating weighting); seen excluded; positive only; then
    the most popular unseen items."""
    S = model.ranking_neighbors().toarray()
    R = model.train_matrix().toarray()
    h = R[user].copy() if user is not None else np.zeros(R.shape[1])
    seen = set(np.flatnonzero(R[user])) if user is not None else set()
    for i, r in ratings.items():
        h[i] = r
        seen.add(i)
    seen |= seen_only
    score = S @ h
    cand = [j for j in range(R.shape[1]) if j not in seen and score[j] > 0]
    cand.sort(key=lambda j: (-score[j], j))
    pop = model.popularity()
    rest = [j for j in range(R.shape[1]) if j not in seen and j not in cand]
    rest.sort(key=lambda j: (-pop[j], j))
    order = (cand + rest)[:n]
    return [str(model.items_.ids[j]) for j in order], [
        score[j] if j in cand else pop[j] for j in order
    ]


def test_known_user_matches_model_recommend(dataset, item_model) -> None:
    sm = ServingModel(item_model)
    assert sm.item_based and sm.fold_in
    for u in range(0, dataset.n_users, 3):
        got = sm.recommend(str(dataset.users.ids[u]), 8)
        ref = item_model.recommend(u, 8)
        assert got.item_ids == [str(x) for x in ref.item_ids]
        assert np.allclose(got.scores, ref.scores)
        assert got.sources == ref.sources
        exp_ids, exp_scores = _oracle(item_model, u, {}, set(), 8)
        assert got.item_ids == exp_ids and np.allclose(got.scores, exp_scores)


def test_events_fold_in_in_rating_units(dataset, item_model) -> None:
    """Explicit model: a rating event is a rating (the latest wins); views, carts and
    purchases are top-of-scale ratings; views only exclude their items."""
    sm = ServingModel(item_model)
    u = 5
    user_id = str(dataset.users.ids[u])
    R = item_model.train_matrix()
    seen = set(R[u].indices)
    fresh = [i for i in range(sm.n_items) if i not in seen][:4]
    rerated = int(R[u].indices[0])
    ids = [str(dataset.items.ids[i]) for i in (*fresh, rerated)]
    history = _history(
        ids, [5.0, 1.0, np.nan, 2.0, 1.0], ["rating", "rating", "view", "rating", "rating"]
    )
    before = sm.recommend(user_id, 10)
    after = sm.recommend(user_id, 10, history)
    ratings = {fresh[0]: 5.0, fresh[1]: 1.0, fresh[3]: 2.0, rerated: 1.0}
    exp_ids, exp_scores = _oracle(item_model, u, ratings, {fresh[2]}, 10)
    assert after.item_ids == exp_ids and np.allclose(after.scores, exp_scores)
    assert not set(after.item_ids) & set(ids)
    assert after.item_ids != before.item_ids
    # events already in the training data (seq <= cutoff) are not counted twice
    trained = ServingModel(item_model, events_cutoff=10)
    assert trained.recommend(user_id, 10, history).item_ids == before.item_ids


def test_implicit_fold_in_adds_training_units() -> None:
    """Implicit model (log1p of counts): one purchase adds one interaction to the item's
    count, and the weighting applies to the total (log1p(count + 1)), not to each event."""
    from llmcf.data.dataset import Dataset
    from llmcf.ranking.events import DATASET_EVENT_WEIGHTS

    rng = np.random.default_rng(2)
    users = rng.integers(0, 30, 400)
    items = rng.integers(0, 20, 400)
    ds = Dataset.from_arrays(
        [f"u{x}" for x in users], [f"i{x}" for x in items], np.ones(400),
        duplicates="sum", feedback="implicit",
    )  # fmt: skip
    model = ItemKNN(k=10).fit(ds)
    assert model.rating_scale_ is None and model.event_weights() == DATASET_EVENT_WEIGHTS
    sm = ServingModel(model)
    u = 3
    R = model.train_matrix()
    item = int(R[u].indices[0])
    history = _history([str(ds.items.ids[item])], [np.nan], ["purchase"])
    got = sm.recommend(str(ds.users.ids[u]), 8, history)
    h = R[u].toarray().ravel()
    h[item] += 1.0
    score = model.ranking_neighbors().toarray() @ np.log1p(h)
    seen = set(R[u].indices)
    cand = sorted(
        (j for j in range(len(h)) if j not in seen and score[j] > 0), key=lambda j: (-score[j], j)
    )
    assert got.item_ids[: len(cand[:8])] == [str(ds.items.ids[j]) for j in cand[:8]]


def test_new_user_served_from_first_events(dataset, item_model) -> None:
    sm = ServingModel(item_model)
    cold = sm.recommend("new-user", 5)
    assert cold.was_fallback and cold.reason == "unknown user: most popular items"
    assert set(cold.sources) == {"popular"}
    pop = np.bincount(dataset.item_idx, minlength=dataset.n_items)
    assert cold.scores == sorted(cold.scores, reverse=True)
    assert cold.scores[0] == pop.max()
    history = _history(["i3", "i7"], [5.0, 1.0])
    warm = sm.recommend("new-user", 5, history)
    assert not warm.was_fallback
    i3, i7 = dataset.items.index("i3"), dataset.items.index("i7")
    exp_ids, _ = _oracle(item_model, None, {i3: 5.0, i7: 1.0}, set(), 5)
    assert warm.item_ids == exp_ids
    assert "i3" not in warm.item_ids and "i7" not in warm.item_ids


def test_unknown_items_without_text_are_labelled(item_model) -> None:
    sm = ServingModel(item_model)
    got = sm.recommend("new-user", 5, _history(["brand-new"], [1.0]), lambda ids: {})
    assert got.was_fallback and "most popular" in (got.reason or "")
    assert any("not folded in" in note for note in got.notes)
    sim = sm.similar("brand-new", 4, lambda item_id: "a scarf")
    assert sim.was_fallback and "no text embeddings" in (sim.reason or "")
    assert sim.sources == ["popular"] * 4


def test_text_neighbours_for_new_items() -> None:
    """A text model serves an item new to it through its text neighbours (fused similarity
    with no co-ratings), in recommendations and in similar items."""
    from tests.text.test_fused import TITLES, FakeEmbedder, make_dataset

    from llmcf.text.fused import TItemKNN

    ds = make_dataset()
    model = TItemKNN(k=3, embedder=FakeEmbedder(), rank_weight=0.5).fit(ds)
    sm = ServingModel(model)
    assert sm.info()["text_neighbours"]
    text = TITLES[0]  # a new item described like m0
    sim = sm.similar("new-thing", 3, lambda _id: text)
    assert not sim.was_fallback and sim.sources[0] == "text"
    assert sim.item_ids[0] == "m0"
    got = sm.recommend(
        "new-user", 3, _history(["new-thing"], [5.0]), lambda ids: {"new-thing": text}
    )
    assert not got.was_fallback and got.sources[0] == "text"
    nb, fused = model.text_similarities(text)
    assert got.item_ids[0] == str(ds.items.ids[nb[0]])
    assert got.scores[0] == pytest.approx(5.0 * fused[0])


def test_other_models_exclude_events(dataset, user_model_dir) -> None:
    from llmcf.models import load_model

    model: UserKNN = load_model(user_model_dir)
    sm = ServingModel(model)
    assert not sm.item_based
    u = 2
    user_id = str(dataset.users.ids[u])
    ref = model.recommend(u, 6)
    got = sm.recommend(user_id, 6)
    assert got.item_ids == [str(x) for x in ref.item_ids]
    top = got.item_ids[0]
    after = sm.recommend(user_id, 6, _history([top], [1.0]))
    assert top not in after.item_ids
    assert sm.recommend("nobody", 3).was_fallback


def test_similar_and_predict(dataset, item_model) -> None:
    sm = ServingModel(item_model)
    got = sm.similar("i0", 5)
    ref = item_model.similar_items(dataset.items.index("i0"), 5)
    k = sum(s == "neighbours" for s in got.sources)
    assert got.item_ids[:k] == [str(x) for x in ref.item_ids[:k]]
    assert "i0" not in got.item_ids
    out = sm.predict(["u1", "u1", "ghost"], ["i1", "ghost", "i1"])
    est, fb = item_model.predict_detailed(
        np.array([dataset.users.index("u1")]), np.array([dataset.items.index("i1")])
    )
    assert out[0] == (
        pytest.approx(float(est[0])),
        bool(fb[0]),
        "no usable neighbour" if fb[0] else None,
    )
    assert out[1][1:] == (True, "unknown item")
    assert out[2][1:] == (True, "unknown user")


def test_lookup_ids_per_id() -> None:
    from llmcf.data.vocab import Vocabulary

    ints = Vocabulary(np.array([10, 20, 30]))
    assert lookup_ids(ints, ["20", "abc", "010", "30", "99999999999999999999"]).tolist() == [
        1, -1, -1, 2, -1,
    ]  # fmt: skip
    strs = Vocabulary(np.array(["a", "b"]))
    assert lookup_ids(strs, ["b", "zz"]).tolist() == [1, -1]
    assert lookup_ids(strs, []).tolist() == []


def test_one_ranking_serves_every_n(dataset, item_model, user_model_dir) -> None:
    """``rank(depth).take(n)`` is ``recommend(n)`` for every n <= depth: what lets the service
    keep one ranking per user (scores, sources, fallback labels and notes alike)."""
    from llmcf.models import load_model

    sm = ServingModel(item_model)
    cases = [(str(dataset.users.ids[u]), None) for u in range(0, dataset.n_users, 4)]
    cases += [
        ("new-user", None),  # popularity fallback
        ("new-user", _history(["i3", "i7"], [5.0, 1.0])),  # first events
        ("new-user", _history(["brand-new"], [1.0])),  # an item unknown to the model
        (str(dataset.users.ids[2]), _history(["i1", "i2", "i1"], [1.0, 2.0, 3.0])),
    ]
    for user_id, history in cases:
        ranking = sm.rank(user_id, sm.n_items, history)
        for n in (1, 3, 10, 25, sm.n_items):
            assert ranking.take(sm.item_ids_str, n) == sm.recommend(user_id, n, history), (
                user_id,
                n,
            )
    # a list completed from the most popular items says how many, for the n asked
    ids = np.array(["a", "b", "c", "d", "e"])
    codes = np.array([0, 0, 2, 2, 2], np.uint8)  # neighbours x 2, popular x 3
    filled = Ranking(0, 5, np.arange(5), np.ones(5), codes, 2, False, None, ("a note",))
    assert filled.take(ids, 2).notes == ["a note"]
    assert filled.take(ids, 4).notes == ["a note", "2 item(s) completed from the most popular"]
    assert filled.take(ids, 4).item_ids == ["a", "b", "c", "d"]
    assert filled.take(ids, 4).sources == ["neighbours", "neighbours", "popular", "popular"]
    popular = np.full(5, 2, np.uint8)
    fallback = Ranking(0, 5, np.arange(5), np.ones(5), popular, 0, True, "why", ())
    assert fallback.take(ids, 3).notes == [] and fallback.take(ids, 3).reason == "why"
    # other models: recomputed for each n, the same lists
    other = ServingModel(load_model(user_model_dir))
    got = other.recommend(str(dataset.users.ids[1]), 5)
    assert got == other.rank(str(dataset.users.ids[1]), 5).take(other.item_ids_str, 5)
