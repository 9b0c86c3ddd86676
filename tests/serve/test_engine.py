"""Scoring with fold-in, checked against a dense numpy oracle and the model's own top-N."""

from __future__ import annotations

import numpy as np
import pytest

from llmcf import ItemKNN, UserKNN
from llmcf.serve.engine import Ranking, ServingModel, TextNeighbours, lookup_ids
from llmcf.serve.store import UserHistory


def _history(item_ids: list[str], weights: list[float], start: int = 1) -> UserHistory:
    return UserHistory(
        np.arange(start, start + len(item_ids), dtype=np.int64),
        np.array(item_ids, dtype=str),
        np.array(weights, dtype=np.float64),
    )


def _neighbour_and_history(sm: ServingModel, model: ItemKNN):
    """The S_k and history matrix the engine should use (the model's own top-N ones)."""
    if sm.scoring == "implicit ranking similarity":
        return model.ranking_neighbors().toarray(), model._weight_matrix().toarray()
    return model.neighbor_matrix().toarray(), sm.train.toarray()


def _oracle(sm: ServingModel, model: ItemKNN, user: int | None, events: dict[int, float], n: int):
    """Dense reference: h = H[u] + events; score = S_k @ h; seen excluded; positive only."""
    S, H = _neighbour_and_history(sm, model)
    h = H[user].copy() if user is not None else np.zeros(sm.n_items)
    seen = set(np.flatnonzero(sm.train.toarray()[user])) if user is not None else set()
    for i, w in events.items():
        h[i] += w
        seen.add(i)
    score = S @ h
    cand = [j for j in range(sm.n_items) if j not in seen and score[j] > 0]
    cand.sort(key=lambda j: (-score[j], j))
    return [str(model.items_.ids[j]) for j in cand[:n]], [score[j] for j in cand[:n]]


def test_known_user_matches_model_recommend(dataset, item_model) -> None:
    sm = ServingModel(item_model)
    assert sm.item_based
    for u in range(0, dataset.n_users, 3):
        got = sm.recommend(str(dataset.users.ids[u]), 8)
        ref = item_model.recommend(u, 8)
        k = sum(s == "neighbours" for s in got.sources)
        assert got.item_ids[:k] == [str(x) for x in ref.item_ids[:k]]
        assert np.allclose(got.scores[:k], ref.scores[:k])
        exp_ids, exp_scores = _oracle(sm, item_model, u, {}, 8)
        assert got.item_ids[:k] == exp_ids[:k]
        assert np.allclose(got.scores[:k], exp_scores[:k])
        assert len(got.item_ids) == 8


def test_events_fold_in(dataset, item_model) -> None:
    sm = ServingModel(item_model)
    u = 5
    user_id = str(dataset.users.ids[u])
    seen = set(sm.train[u].indices)
    fresh = [i for i in range(sm.n_items) if i not in seen][:3]
    events = {fresh[0]: 5.0, fresh[1]: 1.0, fresh[2]: 3.0}
    history = _history([str(dataset.items.ids[i]) for i in events], list(events.values()))
    before = sm.recommend(user_id, 10)
    after = sm.recommend(user_id, 10, history)
    exp_ids, exp_scores = _oracle(sm, item_model, u, events, 10)
    k = sum(s == "neighbours" for s in after.sources)
    assert after.item_ids[:k] == exp_ids[:k]
    assert np.allclose(after.scores[:k], exp_scores[:k])
    assert not set(after.item_ids) & {str(dataset.items.ids[i]) for i in events}
    assert after.item_ids != before.item_ids
    # events already in the training data (seq <= cutoff) are not counted twice
    trained = ServingModel(item_model, events_cutoff=10)
    assert trained.recommend(user_id, 10, history).item_ids == before.item_ids


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
    exp_ids, _ = _oracle(sm, item_model, None, {i3: 5.0, i7: 1.0}, 5)
    k = sum(s == "neighbours" for s in warm.sources)
    assert k > 0 and warm.item_ids[:k] == exp_ids[:k]
    assert "i3" not in warm.item_ids and "i7" not in warm.item_ids


def test_unknown_items_without_text_are_labelled(item_model) -> None:
    sm = ServingModel(item_model)
    got = sm.recommend("new-user", 5, _history(["brand-new"], [1.0]), lambda ids: {})
    assert got.was_fallback and "most popular" in (got.reason or "")
    assert any("not folded in" in note for note in got.notes)
    sim = sm.similar("brand-new", 4, lambda item_id: "a scarf")
    assert sim.was_fallback and "no text embeddings" in (sim.reason or "")
    assert sim.sources == ["popular"] * 4


def test_text_neighbours_for_new_items(dataset, item_model) -> None:
    from llmcf.text.embedders import TfidfEmbedder

    words = ["red", "blue", "green", "wool", "silk", "cotton", "scarf", "hat", "glove", "sock"]
    titles = [f"{words[k % 10]} {words[(k * 3 + 1) % 10]} item{k}" for k in range(dataset.n_items)]
    embedder = TfidfEmbedder(dim=None).fit(titles)
    index = TextNeighbours(embedder.embed(titles), embedder.embed)
    sm = ServingModel(item_model, text_index=index)
    assert sm.info()["text_neighbours"]
    text = titles[dataset.items.index("i4")]  # a new item with the same words as i4
    sim = sm.similar("new-scarf", 3, lambda _id: text)
    assert not sim.was_fallback and sim.sources == ["text"] * len(sim.sources)
    assert sim.item_ids[0] == "i4"
    got = sm.recommend(
        "new-user", 5, _history(["new-scarf"], [5.0]), lambda ids: {"new-scarf": text}
    )
    assert not got.was_fallback
    assert "text" in got.sources
    # the neighbours of i4 (text) carry the score: i4 itself ranks first
    assert got.item_ids[0] == "i4"


def test_other_models_exclude_events(dataset, user_model_dir) -> None:
    from llmcf.persist import load_model

    model: UserKNN = load_model(user_model_dir)
    sm = ServingModel(model)
    assert not sm.item_based
    u = 2
    user_id = str(dataset.users.ids[u])
    ref = model.recommend(u, 6)
    got = sm.recommend(user_id, 6)
    k = sum(s == "model" for s in got.sources)
    assert got.item_ids[:k] == [str(x) for x in ref.item_ids[:k]]
    top = got.item_ids[0]
    after = sm.recommend(user_id, 6, _history([top], [1.0]))
    assert top not in after.item_ids
    assert any("not folded into the scores" in note for note in after.notes)
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
    from llmcf.persist import load_model

    sm = ServingModel(item_model)
    cases = [(str(dataset.users.ids[u]), None) for u in range(0, dataset.n_users, 4)]
    cases += [
        ("new-user", None),  # popularity fallback
        ("new-user", _history(["i3", "i7"], [5.0, 1.0])),  # first events
        ("new-user", _history(["brand-new"], [1.0])),  # an item unknown to the model
        (str(dataset.users.ids[2]), _history(["i1", "i2", "i1"], [1.0, -2.0, 3.0])),
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
