"""The REST API through httpx against the real app (TestClient runs the ASGI app in-process)."""

from __future__ import annotations

import time

import pytest
from tests.serve.conftest import API_KEY, auth, wait_ready


def test_health_ready_and_openapi(client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready" and ready["model"]["class"] == "ItemKNN"
    schema = client.get("/openapi.json").json()
    paths = set(schema["paths"])
    assert {
        "/v1/users/{user_id}/recommendations",
        "/v1/items/{item_id}/similar",
        "/v1/predictions",
        "/v1/events",
        "/v1/admin/reload",
        "/healthz",
        "/readyz",
        "/metrics",
    } <= paths
    assert client.get("/docs").status_code == 200


def test_readyz_503_until_model_loaded(make_client, model_dir) -> None:
    client = make_client(model_dir=None)
    r = client.get("/readyz")
    assert r.status_code == 503 and r.json()["status"] == "loading"
    r = client.get("/v1/users/u1/recommendations")
    assert r.status_code == 503 and "no model loaded" in r.json()["detail"]
    r = client.post("/v1/admin/reload", headers=auth())
    assert r.status_code == 400 and "no model_dir" in r.json()["detail"]
    r = client.post("/v1/admin/reload", json={"model_dir": str(model_dir)}, headers=auth())
    assert r.status_code == 200 and r.json()["previous"] is None
    assert client.get("/readyz").status_code == 200
    assert client.get("/v1/users/u1/recommendations").status_code == 200


def test_bad_model_dir_reported_by_readyz(make_client, tmp_path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "manifest.json").write_text("{not json")
    client = make_client(model_dir=broken, wait=False)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        body = client.get("/readyz").json()
        if body.get("error"):
            break
        time.sleep(0.02)
    assert "corrupted manifest" in body["error"]
    assert client.get("/readyz").status_code == 503


def test_recommendations(client, dataset) -> None:
    r = client.get("/v1/users/u1/recommendations", params={"n": 7})
    assert r.status_code == 200
    body = r.json()
    assert body["user_id"] == "u1" and len(body["items"]) == 7
    assert not body["was_fallback"]
    scores = [it["score"] for it in body["items"] if it["source"] == "neighbours"]
    assert scores == sorted(scores, reverse=True)
    seen = {
        str(dataset.items.ids[i])
        for i in dataset.item_idx[dataset.user_idx == dataset.users.index("u1")]
    }
    assert not seen & {it["item_id"] for it in body["items"]}


def test_unknown_user_gets_labelled_fallback(client) -> None:
    body = client.get("/v1/users/somebody-new/recommendations", params={"n": 3}).json()
    assert body["was_fallback"] and body["reason"] == "unknown user: most popular items"
    assert [it["source"] for it in body["items"]] == ["popular"] * 3


def test_events_change_next_recommendations(client) -> None:
    before = client.get("/v1/users/shopper/recommendations", params={"n": 5}).json()
    assert before["was_fallback"]
    events = [
        {"user_id": "shopper", "item_id": "i3", "type": "purchase", "event_id": "p1"},
        {"user_id": "shopper", "item_id": "i8", "type": "rating", "value": 5},
        {"user_id": "shopper", "item_id": "i8", "type": "view", "timestamp": 1_700_000_000},
    ]
    r = client.post("/v1/events", json={"events": events}, headers=auth())
    assert r.status_code == 201 and r.json() == {"accepted": 3, "duplicates": 0}
    after = client.get("/v1/users/shopper/recommendations", params={"n": 5}).json()
    assert not after["was_fallback"]
    assert {it["item_id"] for it in after["items"]}.isdisjoint({"i3", "i8"})
    assert after["items"][0]["source"] == "neighbours"
    # a retry of the same event id is stored once
    r = client.post("/v1/events", json={"events": events[:1]}, headers=auth())
    assert r.json() == {"accepted": 0, "duplicates": 1}
    # an existing user: a new event shows up at once
    known = client.get("/v1/users/u2/recommendations", params={"n": 3}).json()
    top = known["items"][0]["item_id"]
    client.post(
        "/v1/events",
        json={"events": [{"user_id": "u2", "item_id": top, "type": "cart"}]},
        headers=auth(),
    )
    again = client.get("/v1/users/u2/recommendations", params={"n": 3}).json()
    assert top not in {it["item_id"] for it in again["items"]}


def test_integer_ids_accepted_in_bodies(client) -> None:
    r = client.post(
        "/v1/events",
        json={"events": [{"user_id": 42, "item_id": 7, "type": "view"}]},
        headers=auth(),
    )
    assert r.status_code == 201
    r = client.post("/v1/predictions", json={"pairs": [{"user_id": 42, "item_id": "i1"}]})
    assert r.json()["predictions"][0]["user_id"] == "42"


def test_similar_and_predictions(client) -> None:
    body = client.get("/v1/items/i0/similar", params={"n": 4}).json()
    assert body["item_id"] == "i0" and len(body["items"]) == 4
    assert "i0" not in {it["item_id"] for it in body["items"]}
    unknown = client.get("/v1/items/nope/similar").json()
    assert unknown["was_fallback"] and unknown["reason"] == "unknown item: most popular items"
    r = client.post(
        "/v1/predictions",
        json={"pairs": [{"user_id": "u1", "item_id": "i1"}, {"user_id": "ghost", "item_id": "i1"}]},
    )
    assert r.status_code == 200
    preds = r.json()["predictions"]
    assert 1 <= preds[0]["prediction"] <= 5
    assert preds[1]["was_fallback"] and preds[1]["reason"] == "unknown user"


def test_rerank_and_explain_not_available(client) -> None:
    for params in ({"rerank": "true"}, {"explain": "true"}, {"rerank": "1", "explain": "yes"}):
        r = client.get("/v1/users/u1/recommendations", params=params)
        assert r.status_code == 400
        assert "not available: no re-ranker is configured" in r.json()["detail"]
    r = client.get("/v1/users/u1/recommendations", params={"rerank": "maybe"})
    assert r.status_code == 422 and "rerank" in r.json()["detail"]


def test_reranker_hook(make_client, model_dir) -> None:
    class Reverse:
        def rerank(self, user_id, items, explain):
            return items[::-1], [f"reversed for {user_id} (explain={explain})"]

    from fastapi.testclient import TestClient

    from llmcf.serve.app import create_app
    from llmcf.serve.state import ServeSettings

    plain = make_client(model_dir=model_dir).get("/v1/users/u1/recommendations").json()
    app = create_app(
        ServeSettings(model_dir=model_dir, events_db=f"{model_dir.parent}/rr.sqlite"),
        reranker=Reverse(),
    )
    with TestClient(app) as rr:
        wait_ready(rr)
        body = rr.get(
            "/v1/users/u1/recommendations", params={"rerank": True, "explain": True}
        ).json()
    assert [it["item_id"] for it in body["items"]] == [it["item_id"] for it in plain["items"]][::-1]
    assert body["notes"] == ["reversed for u1 (explain=True)"]


@pytest.mark.parametrize(
    ("path", "params", "fragment"),
    [
        ("/v1/users/u1/recommendations", {"n": 0}, "greater than or equal to 1"),
        ("/v1/users/u1/recommendations", {"n": 101}, "less than or equal to 100"),
        ("/v1/users/u1/recommendations", {"n": "ten"}, "valid integer"),
        ("/v1/items/i1/similar", {"n": -1}, "greater than or equal to 1"),
        ("/v1/users/" + "x" * 300 + "/recommendations", {}, "at most 256"),
        ("/v1/users/a%01b/recommendations", {}, "match pattern"),
    ],
)
def test_query_validation(client, path, params, fragment) -> None:
    r = client.get(path, params=params)
    assert r.status_code == 422
    assert fragment in r.json()["detail"]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"events": []}, "at least 1"),
        ({"events": [{"user_id": "u", "item_id": "i", "type": "click"}]}, "type"),
        ({"events": [{"user_id": "u", "item_id": "i", "type": "rating"}]}, "needs a value"),
        ({"events": [{"user_id": "", "item_id": "i", "type": "view"}]}, "user_id"),
        ({"events": [{"user_id": "u\x00", "item_id": "i", "type": "view"}]}, "user_id"),
        (
            {"events": [{"user_id": "u", "item_id": "i", "type": "view", "timestamp": -5}]},
            "timestamp",
        ),
        ({"events": [{"user_id": "u", "item_id": "i", "type": "view", "value": 1e300}]}, "value"),
        ({"events": [{"user_id": "u", "item_id": "i", "type": "view", "extra": 1}]}, "extra"),
        ({"events": [{"user_id": "u", "item_id": "i", "type": "view"}] * 1001}, "at most 1000"),
        ({"nope": 1}, "events"),
    ],
)
def test_event_validation(client, body, fragment) -> None:
    r = client.post("/v1/events", json=body, headers=auth())
    assert r.status_code == 422, r.text
    assert fragment in r.text


def test_malformed_json_is_4xx(client) -> None:
    r = client.post(
        "/v1/events", content=b"{not json", headers={**auth(), "content-type": "application/json"}
    )
    assert r.status_code == 422
    r = client.post(
        "/v1/predictions", content=b"\xff\xfe", headers={"content-type": "application/json"}
    )
    assert 400 <= r.status_code < 500


def test_body_size_limit(make_client, model_dir) -> None:
    client = make_client(model_dir=model_dir, max_body_bytes=2_000)
    big = {"events": [{"user_id": "u", "item_id": f"i{k}", "type": "view"} for k in range(100)]}
    r = client.post("/v1/events", json=big, headers=auth())
    assert r.status_code == 413 and "over 2000 bytes" in r.json()["detail"]

    def chunks():  # no Content-Length: the limit applies while streaming
        yield b'{"events": ['
        for _ in range(200):
            yield b'{"user_id": "u", "item_id": "i", "type": "view"},'
        yield b"]}"

    r = client.post(
        "/v1/events", content=chunks(), headers={**auth(), "content-type": "application/json"}
    )
    assert r.status_code == 413


def test_api_key(make_client, model_dir) -> None:
    client = make_client(model_dir=model_dir)
    event = {"events": [{"user_id": "u", "item_id": "i", "type": "view"}]}
    assert client.post("/v1/events", json=event).status_code == 401
    assert (
        client.post("/v1/events", json=event, headers={"X-API-Key": API_KEY + "x"}).status_code
        == 401
    )
    assert (
        client.post("/v1/events", json=event, headers={"X-API-Key": "ключ".encode()}).status_code
        == 401
    )
    assert client.post("/v1/admin/reload").status_code == 401
    assert client.post("/v1/events", json=event, headers=auth()).status_code == 201
    # reads need no key
    assert client.get("/v1/users/u/recommendations").status_code == 200
    # no key configured on the server: writes are refused
    closed = make_client(
        model_dir=model_dir, api_key=None, events_db=str(model_dir.parent / "k.sqlite")
    )
    r = closed.post("/v1/events", json=event, headers=auth())
    assert r.status_code == 403 and "LLMCF_API_KEY" in r.json()["detail"]


def test_cors_off_by_default_and_on_when_asked(make_client, model_dir) -> None:
    headers = {"Origin": "https://shop.example", "Access-Control-Request-Method": "GET"}
    off = make_client(model_dir=model_dir)
    r = off.options("/v1/users/u1/recommendations", headers=headers)
    assert "access-control-allow-origin" not in r.headers
    on = make_client(model_dir=model_dir, cors_origins=("https://shop.example",))
    r = on.options("/v1/users/u1/recommendations", headers=headers)
    assert r.headers.get("access-control-allow-origin") == "https://shop.example"


def test_reload_swaps_model(client, user_model_dir, model_dir) -> None:
    r = client.post("/v1/admin/reload", json={"model_dir": str(user_model_dir)}, headers=auth())
    assert r.status_code == 200
    assert r.json()["model"]["class"] == "UserKNN" and r.json()["previous"]["class"] == "ItemKNN"
    assert client.get("/readyz").json()["model"]["class"] == "UserKNN"
    assert client.get("/v1/users/u1/recommendations").status_code == 200
    bad = client.post("/v1/admin/reload", json={"model_dir": "/no/such/dir"}, headers=auth())
    assert bad.status_code == 400 and "no manifest.json" in bad.json()["detail"]
    assert client.get("/readyz").json()["model"]["class"] == "UserKNN"  # old model kept
    r = client.post("/v1/admin/reload", json={"model_dir": str(model_dir)}, headers=auth())
    assert r.json()["model"]["class"] == "ItemKNN"


def test_pickle_is_never_loaded(client, model_dir, tmp_path) -> None:
    import shutil

    import numpy as np

    from llmcf.persist import arrays_path

    evil = tmp_path / "evil"
    shutil.copytree(model_dir, evil)
    with np.load(arrays_path(evil)) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["rating"] = np.array([object()], dtype=object)
    np.savez(arrays_path(evil), **arrays)
    r = client.post("/v1/admin/reload", json={"model_dir": str(evil)}, headers=auth())
    assert r.status_code == 400 and "corrupted or unreadable" in r.json()["detail"]


def test_metrics(client) -> None:
    client.get("/v1/users/u1/recommendations")
    client.get("/v1/users/nobody/recommendations")
    client.post(
        "/v1/events",
        json={"events": [{"user_id": "m", "item_id": "i1", "type": "view"}]},
        headers=auth(),
    )
    text = client.get("/metrics", headers=auth()).text
    assert (
        'llmcf_http_requests_total{method="GET",route="/v1/users/{user_id}/recommendations",status="200"} 2.0'
        in text
    )
    assert "llmcf_events_ingested_total 1.0" in text
    assert 'llmcf_fallback_lists_total{endpoint="recommendations"} 1.0' in text
    assert "llmcf_model_ready 1.0" in text
    assert "llmcf_http_request_duration_seconds_bucket" in text


def test_postgres_backed_app(make_client, model_dir, postgres_url) -> None:
    client = make_client(model_dir=model_dir, events_db=postgres_url)
    r = client.post(
        "/v1/events",
        json={
            "events": [{"user_id": "pg-user", "item_id": "i5", "type": "purchase", "event_id": "x"}]
            * 2
        },
        headers=auth(),
    )
    assert r.json() == {"accepted": 1, "duplicates": 1}
    body = client.get("/v1/users/pg-user/recommendations").json()
    assert not body["was_fallback"] and "i5" not in {it["item_id"] for it in body["items"]}


def test_rerank_learned_serves_the_learned_stage(make_client, dataset, tmp_path, client) -> None:
    """``rerank=learned`` on a learned model is its list; on another model a clear 400; an
    unknown value a 422."""
    pytest.importorskip("lightgbm")
    from llmcf.persist import save_model
    from llmcf.rerank.learned import LearnedConfig, LearnedRanker

    cfg = LearnedConfig(
        retriever="item-knn", n_candidates=15, n_estimators=20, min_child_samples=5, gate=False
    )
    learned = LearnedRanker(cfg).fit(dataset)
    folder = save_model(learned, tmp_path / "learned")
    served = make_client(model_dir=folder)
    plain = served.get("/v1/users/u1/recommendations?n=5")
    asked = served.get("/v1/users/u1/recommendations?n=5&rerank=learned")
    assert plain.status_code == asked.status_code == 200
    assert asked.json()["items"] == plain.json()["items"]
    expected = learned.recommend(learned.users_.index("u1"), 5).item_idx
    assert [it["item_id"] for it in asked.json()["items"]] == learned.items_.ids[expected].astype(
        str
    ).tolist()
    r = client.get("/v1/users/u1/recommendations?rerank=learned")
    assert r.status_code == 400 and "not a learned second stage" in r.json()["detail"]
    r = client.get("/v1/users/u1/recommendations?rerank=sometimes")
    assert r.status_code == 422 and "rerank must be" in r.json()["detail"]
    assert client.get("/v1/users/u1/recommendations?rerank=OFF").status_code == 200
