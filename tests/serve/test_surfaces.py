"""One list from every surface: model.recommend, ``llmcf recommend --format json``,
``GET /v1/users/{id}/recommendations``, ``llmcf fit --recommend --recs-out``; without and
with folded-in events (which ``llmcf recommend --events-db`` folds in as the service does)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from tests.serve.conftest import auth, small_dataset

from llmcf.cli import main
from llmcf.models import load_model, make_model
from llmcf.persist import save_model

MODELS = ["item-knn", "user-knn", "baseline", "global-mean"]
N = 30


def cli_json(capsys: Any, *argv: str) -> dict[str, Any]:
    capsys.readouterr()
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def model_list(model: Any, user_id: str, n: int) -> tuple[list[str], list[float]]:
    u = int(model.users_.lookup(np.array([user_id]), missing="negative")[0])
    got = model.recommend(u, n)
    return [str(i) for i in got.item_ids], got.scores.tolist()


@pytest.mark.parametrize("name", MODELS)
def test_same_list_from_every_surface(
    name: str, make_client: Any, tmp_path: Path, capsys: Any
) -> None:
    dataset = small_dataset(seed=3)
    folder = tmp_path / name
    recs = tmp_path / "recs.parquet"
    model = make_model(name, k=10).fit(dataset)
    save_model(model, folder)
    loaded = load_model(folder)
    from llmcf.backends.local import recommend_all, write_recommendations

    write_recommendations(recs, recommend_all(loaded, N))
    frame = pd.read_parquet(recs)
    client = make_client(model_dir=folder)
    users = [str(u) for u in dataset.users.ids[:15]] + ["nobody"]
    for uid in users:
        ids, scores = model_list(model, uid, N)
        doc = cli_json(
            capsys,
            "recommend",
            "--model-dir",
            str(folder),
            "--user",
            uid,
            "--n",
            str(N),
            "--format",
            "json",
        )
        http = client.get(f"/v1/users/{uid}/recommendations", params={"n": N}).json()
        for other, what in ((doc, "cli"), (http, "http")):
            assert [i["item_id"] for i in other["items"]] == ids, (what, uid)
            np.testing.assert_allclose([i["score"] for i in other["items"]], scores, atol=1e-9)
        assert doc == http, uid
        if uid != "nobody":
            batch = frame[frame["user_id"] == uid].sort_values("rank")
            assert batch["item_id"].astype(str).tolist() == ids, ("batch", uid)
            np.testing.assert_allclose(batch["score"].to_numpy(), scores, atol=1e-9)


@pytest.mark.parametrize("name", ["item-knn", "user-knn"])
def test_folded_in_events_same_from_service_and_cli(
    name: str, make_client: Any, tmp_path: Path, capsys: Any
) -> None:
    dataset = small_dataset(seed=5)
    folder = tmp_path / name
    save_model(make_model(name, k=10).fit(dataset), folder)
    db = tmp_path / "events.sqlite"
    client = make_client(model_dir=folder, events_db=str(db))
    rng = np.random.default_rng(0)
    users = [str(u) for u in dataset.users.ids[:10]] + ["visitor-1"]
    for uid in users:
        before = client.get(f"/v1/users/{uid}/recommendations", params={"n": N}).json()
        picks = rng.choice(dataset.items.ids, 5, replace=False)
        events = [
            {
                "user_id": uid,
                "item_id": str(i),
                "type": t,
                **({"value": 4.0} if t == "rating" else {}),
            }
            for i, t in zip(picks, ["view", "cart", "purchase", "rating", "rating"], strict=True)
        ]
        r = client.post("/v1/events", json={"events": events}, headers=auth())
        assert r.status_code == 201, r.text
        after = client.get(f"/v1/users/{uid}/recommendations", params={"n": N}).json()
        assert not {str(i) for i in picks} & {i["item_id"] for i in after["items"]}
        doc = cli_json(
            capsys,
            "recommend",
            "--model-dir",
            str(folder),
            "--events-db",
            str(db),
            "--user",
            uid,
            "--n",
            str(N),
            "--format",
            "json",
        )
        assert doc["items"] == after["items"], uid
        assert after["items"] != before["items"]


def test_put_item_text_serves_a_new_item_through_text(make_client: Any, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient
    from tests.serve.conftest import API_KEY
    from tests.text.test_fused import TITLES, FakeEmbedder, make_dataset

    from llmcf.serve.app import create_app
    from llmcf.serve.engine import ServingModel
    from llmcf.serve.state import ServeSettings
    from llmcf.text.fused import TItemKNN

    ds = make_dataset()
    model = TItemKNN(k=3, embedder=FakeEmbedder(), rank_weight=0.5).fit(ds)
    settings = ServeSettings(events_db=str(tmp_path / "e.sqlite"), api_key=API_KEY)
    with TestClient(create_app(settings, model=ServingModel(model))) as client:
        _put_item_journey(client, TITLES[0])


def _put_item_journey(client: Any, text: str) -> None:
    TITLES = [text]
    r = client.put("/v1/items/new-thing", json={"text": TITLES[0]})
    assert r.status_code == 401  # writes need the key
    r = client.put("/v1/items/new-thing", json={"text": TITLES[0]}, headers=auth())
    assert r.status_code == 200 and r.json() == {
        "item_id": "new-thing",
        "known_to_model": False,
        "text_neighbours": True,
    }
    sim = client.get("/v1/items/new-thing/similar", params={"n": 3}).json()
    assert sim["items"][0] == {"item_id": "m0", "score": sim["items"][0]["score"], "source": "text"}
    # an explicit model: a view only marks the item as seen; a rating is a rating
    ev = {"events": [{"user_id": "visitor", "item_id": "new-thing", "type": "view"}]}
    assert client.post("/v1/events", json=ev, headers=auth()).status_code == 201
    recs = client.get("/v1/users/visitor/recommendations", params={"n": 3}).json()
    assert recs["was_fallback"]
    ev = {"events": [{"user_id": "visitor", "item_id": "new-thing", "type": "rating", "value": 5}]}
    assert client.post("/v1/events", json=ev, headers=auth()).status_code == 201
    recs = client.get("/v1/users/visitor/recommendations", params={"n": 3}).json()
    assert not recs["was_fallback"] and recs["items"][0]["source"] == "text"
    assert client.put("/v1/items/x", json={"text": ""}, headers=auth()).status_code == 422


def test_event_values_are_checked_against_the_model(client: Any) -> None:
    """A rating off the model's scale or a negative quantity is refused (422, naming the
    event), and nothing of the batch is stored."""
    ok = {"user_id": "u1", "item_id": "i1", "type": "view"}
    for bad, word in (
        ({"user_id": "u1", "item_id": "i2", "type": "rating", "value": 1e9}, "rating scale"),
        ({"user_id": "u1", "item_id": "i2", "type": "rating", "value": 0.0}, "rating scale"),
        ({"user_id": "u1", "item_id": "i2", "type": "purchase", "value": -1e9}, "quantity"),
        ({"user_id": "u1", "item_id": "i2", "type": "cart", "value": 0}, "quantity"),
    ):
        r = client.post("/v1/events", json={"events": [ok, bad]}, headers=auth())
        assert r.status_code == 422 and "events[1]" in r.text and word in r.text, r.text
    r = client.post("/v1/events", json={"events": [ok]}, headers=auth())
    assert r.status_code == 201 and r.json()["accepted"] == 1  # nothing of the refused batches


def test_reused_event_id_with_another_payload_is_a_conflict(client: Any) -> None:
    first = {"user_id": "u1", "item_id": "i1", "type": "view", "event_id": "e-1"}
    assert client.post("/v1/events", json={"events": [first]}, headers=auth()).status_code == 201
    retry = client.post("/v1/events", json={"events": [first]}, headers=auth())
    assert retry.status_code == 201 and retry.json() == {"accepted": 0, "duplicates": 1}
    other = {**first, "item_id": "i2"}
    r = client.post("/v1/events", json={"events": [other]}, headers=auth())
    assert r.status_code == 409 and "e-1" in r.text
    same_batch = [{**first, "event_id": "e-2"}, {**other, "event_id": "e-2"}]
    r = client.post("/v1/events", json={"events": same_batch}, headers=auth())
    assert r.status_code == 409 and "e-2" in r.text


def test_invalid_utf8_in_the_path_is_a_client_error(client: Any) -> None:
    for path in ("/v1/users/%FF/recommendations", "/v1/items/%C3%28/similar"):
        r = client.get(path)
        assert r.status_code == 400 and "UTF-8" in r.text, path
    ok = client.get("/v1/users/%C3%A9/recommendations")  # é: valid, an unknown user
    assert ok.status_code == 200 and ok.json()["user_id"] == "é"


def test_ingest_and_admin_keys_are_separate(make_client: Any, model_dir: Path) -> None:
    client = make_client(model_dir=model_dir, api_key=None, ingest_key="i" * 24, admin_key="a" * 24)
    event = {"events": [{"user_id": "u1", "item_id": "i1", "type": "view"}]}
    ingest, admin = {"X-API-Key": "i" * 24}, {"X-API-Key": "a" * 24}
    assert client.post("/v1/events", json=event, headers=ingest).status_code == 201
    assert client.post("/v1/events", json=event, headers=admin).status_code == 401
    assert client.post("/v1/admin/reload", json={}, headers=ingest).status_code == 401
    assert client.post("/v1/admin/reload", json={}, headers=admin).status_code == 200
    assert client.get("/metrics").status_code == 401  # behind the admin key by default
    assert client.get("/metrics", headers=admin).status_code == 200
    public = make_client(model_dir=model_dir, public_metrics=True)
    assert public.get("/metrics").status_code == 200


def test_a_store_that_cannot_write_answers_503_json_with_retry_after(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.exc import OperationalError

    store = client.app.state.llmcf.store

    def full(batch: Any) -> Any:
        raise OperationalError("INSERT", {}, Exception("database or disk is full"))

    monkeypatch.setattr(store, "add_events", full)
    event = {"events": [{"user_id": "u1", "item_id": "i1", "type": "view"}]}
    r = client.post("/v1/events", json=event, headers=auth())
    assert r.status_code == 503 and r.headers["retry-after"] == "5"
    assert "disk is full" in r.json()["detail"] and "nothing of this batch" in r.json()["detail"]
