"""The hot read path: the fast path answers exactly as the FastAPI route, each user's ranking
is kept until that user's next event (or a reload), and users without stored events need no
store query."""

from __future__ import annotations

import asyncio
import gc
import json

import pytest
from tests.serve.conftest import auth, wait_ready

from llmcf.serve import app as app_module
from llmcf.serve.app import fast_recommendations_args
from llmcf.serve.engine import ServingModel
from llmcf.serve.state import AppState, EventUsers, HistoryCache, ServeSettings, recommend
from llmcf.serve.store import Event, EventStore

FAST = [
    "/v1/users/u1/recommendations",
    "/v1/users/u1/recommendations?n=1",
    "/v1/users/u1/recommendations?n=100",
    "/v1/users/u1/recommendations?n=7&rerank=false&explain=0",
    "/v1/users/u1/recommendations?explain=false&n=3",
    "/v1/users/nobody-new/recommendations?n=4",
    "/v1/users/%C3%A9t%C3%A9/recommendations",  # unicode id, percent-encoded
    "/v1/users/u%20x/recommendations",
    "/v1/users/" + "x" * 256 + "/recommendations",
]
ROUTE = [  # valid or not, answered by FastAPI
    "/v1/users/u1/recommendations?n=101",
    "/v1/users/u1/recommendations?n=0",
    "/v1/users/u1/recommendations?n=010",
    "/v1/users/u1/recommendations?n=%2B5",
    "/v1/users/u1/recommendations?n=ten",
    "/v1/users/u1/recommendations?n=",
    "/v1/users/u1/recommendations?n",
    "/v1/users/u1/recommendations?n=5&n=6",
    "/v1/users/u1/recommendations?&n=3",
    "/v1/users/u1/recommendations?rerank=true",
    "/v1/users/u1/recommendations?rerank=False",
    "/v1/users/u1/recommendations?explain=no",
    "/v1/users/u1/recommendations?foo=bar",
    "/v1/users/a%01b/recommendations",
    "/v1/users/a%2Fb/recommendations",
    "/v1/users/" + "x" * 257 + "/recommendations",
    "/v1/users//recommendations",
    "/v1/users/u1/recommendations/",
    "/v1/users/recommendations",
]


def _scope(path: str, query: bytes = b"", method: str = "GET") -> dict:
    return {"type": "http", "method": method, "path": path, "query_string": query}


def test_fast_path_arguments() -> None:
    assert fast_recommendations_args(_scope("/v1/users/u1/recommendations")) == ("u1", 10)
    assert fast_recommendations_args(_scope("/v1/users/u1/recommendations", b"n=42")) == (
        "u1",
        42,
    )
    ok = b"n=5&rerank=0&explain=false"
    assert fast_recommendations_args(_scope("/v1/users/a b/recommendations", ok)) == ("a b", 5)
    declined = [
        _scope("/v1/users/u1/recommendations", method="HEAD"),
        _scope("/v1/users/u1/recommendations", b"n=5&n=5"),
        _scope("/v1/users/u1/recommendations", b"n=1000"),
        _scope("/v1/users/u1/recommendations", b"rerank=1"),
        _scope("/v1/users/a\x7fb/recommendations"),
        _scope("/v1/users/a/b/recommendations"),
        {**_scope("/v1/users/u1/recommendations"), "root_path": "/api"},
        {**_scope("/v1/users/u1/recommendations"), "type": "websocket"},
    ]
    for scope in declined:
        assert fast_recommendations_args(scope) is None, scope


def test_fast_path_answers_as_the_route(make_client, model_dir, tmp_path, monkeypatch) -> None:
    answered: list[str] = []
    original = app_module.fast_recommendations

    async def counting(state, send, user_id, n):
        done = await original(state, send, user_id, n)
        if done:
            answered.append(user_id)
        return done

    monkeypatch.setattr(app_module, "fast_recommendations", counting)
    fast = make_client(model_dir=model_dir, events_db=str(tmp_path / "fast.sqlite"))
    slow = make_client(
        model_dir=model_dir, events_db=str(tmp_path / "slow.sqlite"), fast_path=False
    )
    for path in FAST + ROUTE:
        before = len(answered)
        a = fast.get(path, follow_redirects=False)
        b = slow.get(path, follow_redirects=False)
        assert a.status_code == b.status_code, path
        assert a.headers.get("content-type") == b.headers.get("content-type"), path
        if a.headers.get("content-type") == "application/json":
            assert json.loads(a.content) == json.loads(b.content), path
        else:
            assert a.content == b.content, path
        assert (len(answered) > before) == (path in FAST), path
    assert len(answered) == len(FAST)
    # a second round comes from the users' cached rankings, still the same answers
    for path in FAST:
        assert json.loads(fast.get(path).content) == json.loads(slow.get(path).content), path
    # the fast path's requests are counted like the route's

    def counts(client) -> list[str]:
        text = client.get("/metrics", headers=auth()).text
        lines = text.splitlines()
        return sorted(
            x for x in lines if x.startswith("llmcf_http_requests_total") and "readyz" not in x
        )

    assert counts(fast) == counts(slow)
    assert any(
        'route="/v1/users/{user_id}/recommendations",status="200"' in x for x in counts(fast)
    )


def test_fast_path_leaves_cors_to_the_full_stack(make_client, model_dir) -> None:
    client = make_client(model_dir=model_dir, cors_origins=("https://shop.example",))
    r = client.get("/v1/users/u1/recommendations", headers={"Origin": "https://shop.example"})
    assert r.status_code == 200
    assert r.headers.get("access-control-allow-origin") == "https://shop.example"


def test_ranking_kept_until_the_users_next_event(client) -> None:
    state = client.app.state.llmcf
    first = client.get("/v1/users/u2/recommendations", params={"n": 3}).json()
    entry = state.history.cached("u2")
    assert entry is not None and entry.ranking is not None
    ranking = entry.ranking
    # any n up to the depth comes from the same ranking, as a prefix
    longer = client.get("/v1/users/u2/recommendations", params={"n": 20}).json()
    assert longer["items"][:3] == first["items"]
    assert state.history.cached("u2").ranking is ranking
    assert ranking.depth == state.settings.ranking_depth == 50
    # a longer list than that is computed, and kept instead
    deep = client.get("/v1/users/u2/recommendations", params={"n": 80}).json()
    assert deep["items"][:20] == longer["items"]
    ranking = state.history.cached("u2").ranking
    assert ranking.depth == 80
    assert client.get("/v1/users/u2/recommendations", params={"n": 3}).json() == first
    assert state.history.cached("u2").ranking is ranking
    # another user's event leaves it alone
    r = client.post(
        "/v1/events", json={"events": [{"user_id": "u3", "item_id": "i1", "type": "view"}]},
        headers=auth(),
    )  # fmt: skip
    assert r.status_code == 201
    assert state.history.cached("u2").ranking is ranking
    # the user's own event drops it, and the next list has the event folded in
    top = first["items"][0]["item_id"]
    r = client.post(
        "/v1/events",
        json={"events": [{"user_id": "u2", "item_id": top, "type": "purchase"}]},
        headers=auth(),
    )
    assert r.status_code == 201
    assert state.history.cached("u2") is None
    again = client.get("/v1/users/u2/recommendations", params={"n": 3}).json()
    assert top not in {it["item_id"] for it in again["items"]}
    assert state.history.cached("u2").ranking is not ranking
    # the same through the FastAPI route (a re-rank flag set to false goes the fast way, so
    # ask with an odd but valid spelling)
    r = client.post(
        "/v1/events",
        json={"events": [{"user_id": "u2", "item_id": again["items"][0]["item_id"],
                          "type": "cart"}]},
        headers=auth(),
    )  # fmt: skip
    assert r.status_code == 201
    routed = client.get("/v1/users/u2/recommendations?n=3&rerank=off").json()
    assert again["items"][0]["item_id"] not in {it["item_id"] for it in routed["items"]}


def test_reload_drops_the_rankings(client, model_dir) -> None:
    state = client.app.state.llmcf
    client.get("/v1/users/u4/recommendations")
    old_token = state.history.cached("u4").ranking.token
    r = client.post("/v1/admin/reload", json={"model_dir": str(model_dir)}, headers=auth())
    assert r.status_code == 200
    assert state.history.cached("u4") is None
    client.get("/v1/users/u4/recommendations")
    assert state.history.cached("u4").ranking.token != old_token


def test_a_ranking_of_another_model_is_not_reused(item_model, tmp_path) -> None:
    store = EventStore.open(tmp_path / "e.sqlite")
    state = AppState(ServeSettings(events_db=str(tmp_path / "e.sqlite")), store)
    a, b = ServingModel(item_model), ServingModel(item_model)

    async def go() -> None:
        first = await recommend(state, a, "u5", 5)
        entry = state.history.cached("u5")
        assert entry is not None and entry.ranking is not None
        assert entry.ranking.token == a.token and entry.ranking.depth == 50
        again = await recommend(state, b, "u5", 5)
        assert entry.ranking.token == b.token
        assert again == first

    try:
        asyncio.run(go())
    finally:
        state.close()
        store.close()


def test_events_stored_before_start_are_folded_in(make_client, model_dir, tmp_path) -> None:
    db = str(tmp_path / "early.sqlite")
    store = EventStore.open(db)
    store.add_events([Event("early-bird", "i3", "purchase"), Event("early-bird", "i8", "cart")])
    store.close()
    client = make_client(model_dir=model_dir, events_db=db)
    state = client.app.state.llmcf
    for _ in range(200):  # the start-up scan runs in the background
        if state.event_users.ready:
            break
        asyncio.run(asyncio.sleep(0.01))
    assert state.event_users.ready
    assert state.event_users.may_have_events("early-bird")
    assert not state.event_users.may_have_events("never-seen")
    body = client.get("/v1/users/early-bird/recommendations").json()
    assert not body["was_fallback"]
    assert {it["item_id"] for it in body["items"]}.isdisjoint({"i3", "i8"})
    # a user unknown to the store gets an empty history without a query
    client.get("/v1/users/never-seen/recommendations")
    assert len(state.history.cached("never-seen").history) == 0


def test_event_users(tmp_path) -> None:
    store = EventStore.open(tmp_path / "e.sqlite")
    try:
        users = EventUsers()
        assert users.may_have_events("anyone")  # before the scan: ask the store
        users.add({"written-during-scan"})
        store.add_events([Event("stored", "i1", "view")])
        users.scan(store, limit=10)
        assert users.ready
        assert users.may_have_events("stored")
        assert users.may_have_events("written-during-scan")
        assert not users.may_have_events("other")
        users.add({"later"})
        assert users.may_have_events("later")
        capped = EventUsers()
        store.add_events([Event("second", "i1", "view")])
        capped.scan(store, limit=1)  # more users than the limit: not kept
        assert not capped.ready and capped.may_have_events("other")
        off = EventUsers()
        off.scan(store, limit=0)
        assert not off.ready and off.may_have_events("other")
    finally:
        store.close()


def test_no_stale_empty_entry_when_a_write_races(tmp_path) -> None:
    store = EventStore.open(tmp_path / "e.sqlite")
    cache = HistoryCache(store, limit=500, size=100)

    class Racing(EventUsers):
        def may_have_events(self, user_id: str) -> bool:
            # a write for this user lands between the check and the cache insert
            store.add_events([Event(user_id, "i1", "view")])
            cache.invalidate({user_id})
            return False

    try:
        entry = cache.get_if_no_events("racer", Racing())
        assert entry is not None and len(entry.history) == 0  # this request's view
        assert cache.cached("racer") is None  # but not kept: the next one reads the store
        assert len(cache.get("racer").history) == 1
    finally:
        store.close()


def test_freeze_gc(make_client, model_dir, tmp_path) -> None:
    try:
        client = make_client(
            model_dir=model_dir, events_db=str(tmp_path / "gc.sqlite"), freeze_gc=True
        )
        wait_ready(client)
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


@pytest.mark.parametrize("fast_path", [True, False])
def test_unknown_user_then_first_event(make_client, model_dir, tmp_path, fast_path) -> None:
    client = make_client(
        model_dir=model_dir, events_db=str(tmp_path / f"{fast_path}.sqlite"), fast_path=fast_path
    )
    state = client.app.state.llmcf
    cold = client.get("/v1/users/newcomer/recommendations").json()
    assert cold["was_fallback"]
    assert state.history.cached("newcomer") is not None  # an empty history, cached
    r = client.post(
        "/v1/events",
        json={"events": [{"user_id": "newcomer", "item_id": "i5", "type": "purchase"}]},
        headers=auth(),
    )
    assert r.status_code == 201
    warm = client.get("/v1/users/newcomer/recommendations").json()
    assert not warm["was_fallback"] and "i5" not in {it["item_id"] for it in warm["items"]}


def test_reranker_runs_off_the_event_loop(model_dir, tmp_path) -> None:
    import threading

    from fastapi.testclient import TestClient

    from llmcf.serve.app import create_app

    threads: list[str] = []

    class Recording:
        def rerank(self, user_id, items, explain):
            threads.append(threading.current_thread().name)
            return items, []

    app = create_app(
        ServeSettings(model_dir=model_dir, events_db=str(tmp_path / "rr.sqlite")),
        reranker=Recording(),
    )
    with TestClient(app) as client:
        wait_ready(client)
        for _ in range(2):
            r = client.get("/v1/users/u1/recommendations", params={"rerank": True})
            assert r.status_code == 200
    assert len(threads) == 2 and all(t.startswith("llmcf-rerank") for t in threads)
