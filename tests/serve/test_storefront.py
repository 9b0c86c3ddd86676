"""The storefront's API: session lists (``POST /v1/recommendations``), the catalog, the pages
and the dashboard's status, through a real app (TestClient) on the small fixture models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests.serve.conftest import API_KEY, auth

from llmcf.serve.schemas import MAX_HISTORY, RecommendationsOut
from llmcf.serve.web import histogram_quantiles, parse_text

HISTORY = [
    {"item_id": "i3", "type": "view"},
    {"item_id": "i8", "type": "rating", "value": 5},
    {"item_id": "i11", "type": "cart"},
    {"item_id": "i3", "type": "purchase", "value": 2},
]


def ids(body: dict[str, Any]) -> list[str]:
    return [it["item_id"] for it in body["items"]]


# ---------------------------------------------------------------------- pages
def test_storefront_and_static_files(client: Any) -> None:
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "Recommended for you" in r.text and 'src="/static/store.js"' in r.text
    for name, kind in (
        ("store.js", "javascript"),
        ("admin.js", "javascript"),
        ("style.css", "css"),
    ):
        r = client.get(f"/static/{name}")
        assert r.status_code == 200 and kind in r.headers["content-type"], name
    for bad in ("nothing.js", "..%2Fapp.py", ".hidden.css", "index.txt"):
        assert client.get(f"/static/{bad}").status_code == 404, bad
    assert "//cdn" not in client.get("/").text  # works offline: no third-party assets


def test_admin_page_needs_the_admin_key(make_client: Any, model_dir: Path) -> None:
    client = make_client(model_dir=model_dir, api_key=None, admin_key="adm-1", ingest_key="ing")
    r = client.get("/admin")
    assert r.status_code == 401 and r.headers["content-type"].startswith("text/html")
    assert r.headers["www-authenticate"] == "ApiKey"
    assert client.get("/admin", headers={"X-API-Key": "ing"}).status_code == 401
    ok = client.get("/admin", headers={"X-API-Key": "adm-1"})
    assert ok.status_code == 200 and "llmcf dashboard" in ok.text
    assert client.get("/v1/admin/status").status_code == 401
    assert client.get("/v1/admin/status", headers={"X-API-Key": "ing"}).status_code == 401
    unset = make_client(model_dir=model_dir, api_key=None, admin_key=None)
    assert unset.get("/admin").status_code == 403


# ---------------------------------------------------------------------- session lists
def test_session_list_matches_stored_events_and_stores_nothing(client: Any) -> None:
    """An inline history ranks as the same events stored for a new user; none is listed and
    nothing is stored."""
    store = client.app.state.llmcf.store
    r = client.post("/v1/recommendations", json={"history": HISTORY, "n": 10})
    assert r.status_code == 200, r.text
    body = RecommendationsOut.model_validate(r.json()).model_dump()
    assert body["user_id"] == "" and not body["was_fallback"] and len(body["items"]) == 10
    assert not {e["item_id"] for e in HISTORY} & set(ids(body))
    assert store.count() == 0
    events = [{"user_id": "stored-twin", **e} for e in HISTORY]
    assert client.post("/v1/events", json={"events": events}, headers=auth()).status_code == 201
    stored = client.get("/v1/users/stored-twin/recommendations", params={"n": 10}).json()
    assert ids(stored) == ids(body)
    assert [it["score"] for it in stored["items"]] == pytest.approx(
        [it["score"] for it in body["items"]]
    )
    assert [it["source"] for it in stored["items"]] == [it["source"] for it in body["items"]]


def test_session_list_of_a_known_user_adds_the_training_row(client: Any, dataset: Any) -> None:
    plain = client.get("/v1/users/u1/recommendations", params={"n": 8}).json()
    inline = client.post("/v1/recommendations", json={"user_id": "u1", "history": [], "n": 8})
    assert inline.status_code == 200 and inline.json()["user_id"] == "u1"
    assert ids(inline.json()) == ids(plain)
    top = ids(plain)[0]
    more = client.post(
        "/v1/recommendations",
        json={"user_id": "u1", "history": [{"item_id": top, "type": "view"}], "n": 8},
    ).json()
    assert top not in ids(more)


def test_empty_history_is_the_labelled_popularity_fallback(client: Any) -> None:
    body = client.post("/v1/recommendations", json={"history": [], "n": 3}).json()
    assert body["was_fallback"] and [it["source"] for it in body["items"]] == ["popular"] * 3
    plain = client.get("/v1/users/nobody-here/recommendations", params={"n": 3}).json()
    assert ids(body) == ids(plain)


@pytest.mark.parametrize(
    ("payload", "status", "words"),
    [
        ({"history": [{"item_id": "i1", "type": "like"}]}, 422, "history.0.type"),
        ({"history": [{"item_id": "i1", "type": "rating"}]}, 422, "needs a value"),
        ({"history": [{"item_id": "i1", "type": "rating", "value": 9}]}, 422, "history[0]"),
        ({"history": [{"item_id": "i1", "type": "cart", "value": -1}]}, 422, "quantity"),
        ({"history": [{"item_id": "", "type": "view"}]}, 422, "item_id"),
        ({"history": [], "n": 0}, 422, "n"),
        ({"history": [], "n": 101}, 422, "n"),
        ({"history": [], "n": "ten"}, 422, "n"),
        ({"history": [], "n": 5, "extra": 1}, 422, "extra"),
        ({"n": 5}, 422, "history"),
        ({"history": "i1"}, 422, "history"),
        (
            {"history": [{"item_id": "i1", "type": "view"}] * (MAX_HISTORY + 1)},
            422,
            "at most 500",
        ),
    ],
)
def test_session_client_mistakes_are_4xx(
    client: Any, payload: dict[str, Any], status: int, words: str
) -> None:
    r = client.post("/v1/recommendations", json=payload)
    assert r.status_code == status and words in r.text, r.text


def test_session_bad_bodies(client: Any) -> None:
    r = client.post(
        "/v1/recommendations", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 422
    huge = b'{"history": [' + b'{"item_id": "i1", "type": "view"},' * 40_000 + b"]}"
    assert client.post("/v1/recommendations", content=huge).status_code == 413


def test_session_text_rows_for_items_new_to_a_text_model(tmp_path: Path) -> None:
    """A visitor's inline history with a product new to the model (stored text) is folded in
    through its text neighbours, as the same stored events are."""
    from fastapi.testclient import TestClient
    from tests.text.test_fused import TITLES, FakeEmbedder, make_dataset

    from llmcf.serve.app import create_app
    from llmcf.serve.engine import ServingModel
    from llmcf.serve.state import ServeSettings
    from llmcf.text.fused import TItemKNN

    model = TItemKNN(k=3, embedder=FakeEmbedder(), rank_weight=0.5).fit(make_dataset())
    settings = ServeSettings(events_db=str(tmp_path / "e.sqlite"), api_key=API_KEY)
    with TestClient(create_app(settings, model=ServingModel(model))) as client:
        assert client.put(
            "/v1/items/new-alien", json={"text": TITLES[0]}, headers=auth()
        ).is_success
        hist = [{"item_id": "new-alien", "type": "rating", "value": 5}]
        body = client.post("/v1/recommendations", json={"history": hist, "n": 3}).json()
        assert not body["was_fallback"] and body["items"][0]["source"] == "text"
        ev = [{"user_id": "twin", **hist[0]}]
        assert client.post("/v1/events", json={"events": ev}, headers=auth()).status_code == 201
        stored = client.get("/v1/users/twin/recommendations", params={"n": 3}).json()
        assert ids(stored) == ids(body)
        # the catalog lists the new product as new to the model
        cat = client.get("/v1/items", params={"q": "alien"}).json()
        assert "new-alien" in ids(cat)
        new = client.get("/v1/items/new-alien").json()
        assert new["known_to_model"] is False and new["popularity"] == 0
        # a known item's neighbours by its text alone (itself left out)
        assert client.get("/v1/items/m0/text-neighbours").status_code == 404  # no text yet
        assert client.put("/v1/items/m0", json={"text": "Alien"}, headers=auth()).is_success
        assert client.get("/v1/items/m0").json()["text_neighbours"] is True
        near = client.get("/v1/items/m0/text-neighbours", params={"n": 2}).json()
        assert ids(near) == ["m5", "m1"]  # Alien 2, Aliens
        assert {it["source"] for it in near["items"]} == {"text"}


# ---------------------------------------------------------------------- catalog
def test_catalog_pages_search_and_genres(client: Any) -> None:
    texts = {
        "i1": "Space Heist\nGenres: Sci-Fi, Crime\nA crew robs a moon.",
        "i2": "Quiet Garden\nGenres: Drama\nA story of roses.",
        "i3": "Moon Garden\nCategories: Drama | Sci-Fi",
    }
    for item_id, text in texts.items():
        assert client.put(f"/v1/items/{item_id}", json={"text": text}, headers=auth()).is_success
    page = client.get("/v1/items", params={"limit": 5}).json()
    assert page["total"] == 40 and page["offset"] == 0 and len(page["items"]) == 5
    pops = [it["popularity"] for it in page["items"]]
    assert pops == sorted(pops, reverse=True)
    nxt = client.get("/v1/items", params={"limit": 5, "offset": 5}).json()
    assert not set(ids(page)) & set(ids(nxt))
    assert set(ids(client.get("/v1/items", params={"q": "garden"}).json())) == {"i2", "i3"}
    assert ids(client.get("/v1/items", params={"q": "moon garden"}).json()) == ["i3"]
    assert set(ids(client.get("/v1/items", params={"genre": "sci-fi"}).json())) == {"i1", "i3"}
    item = client.get("/v1/items/i1").json()
    assert item["title"] == "Space Heist" and item["genres"] == ["Sci-Fi", "Crime"]
    assert item["known_to_model"] is True and item["popularity"] > 0
    assert client.get("/v1/genres").json()["genres"][:2] == ["Drama", "Sci-Fi"]
    assert client.get("/v1/items/no-such-item").status_code == 404
    assert item["text_neighbours"] is False  # plain item-kNN: no text embeddings
    r = client.get("/v1/items/i1/text-neighbours")
    assert r.status_code == 400 and "no text embeddings" in r.text
    for bad in ({"limit": 0}, {"limit": 1000}, {"offset": -1}, {"q": "x" * 201}):
        assert client.get("/v1/items", params=bad).status_code == 422, bad


def test_parse_text() -> None:
    assert parse_text("x", None) == ("x", ())
    assert parse_text("x", "  \n Title  \nGenre: a|b, c\nbody") == ("Title", ("a", "b", "c"))
    assert parse_text("x", "One line only") == ("One line only", ())


# ---------------------------------------------------------------------- dashboard data
def test_admin_status_reports_model_metrics_and_store(client: Any) -> None:
    first = client.get("/v1/admin/status", headers=auth())
    assert first.status_code == 200
    st = first.json()
    (m,) = st["models"]
    assert m["class"] == "ItemKNN" and m["arm"] == "A" and len(m["artifact"]) == 16
    assert m["config"]["k"] == 10 and m["n_interactions"] == 700 and m["n_items"] == 40
    assert st["store"]["events"] == 0 and st["ready"] is True
    for _ in range(3):
        client.get("/v1/users/u1/recommendations")
    ev = {"events": [{"user_id": "u1", "item_id": "i2", "type": "view"}]}
    client.post("/v1/events", json=ev, headers=auth())
    later = client.get("/v1/admin/status", headers=auth()).json()
    assert later["metrics"]["requests"] >= st["metrics"]["requests"] + 4
    assert later["metrics"]["counters"]["llmcf_events_ingested"] == 1
    assert later["store"]["events"] == 1
    route = later["metrics"]["routes"]["/v1/users/{user_id}/recommendations"]
    assert route["requests"] == 3 and route["errors"] == 0
    assert 0 < route["latency_s"]["p50"] <= route["latency_s"]["p99"] <= 2.5


def test_histogram_quantiles_by_hand() -> None:
    inf = float("inf")
    # 10 requests: 4 under 1 ms, 4 more under 5 ms, 2 above 2.5 s
    b = [(0.001, 4.0), (0.005, 8.0), (2.5, 8.0), (inf, 10.0)]
    q = histogram_quantiles(b, (0.2, 0.5, 0.95))
    assert q["p20"] == pytest.approx(0.0005)  # rank 2 of the 4 in [0, 1 ms]
    assert q["p50"] == pytest.approx(0.001 + 0.004 * 0.25)  # rank 5: 1 of 4 in (1, 5] ms
    assert q["p95"] == pytest.approx(2.5)  # above the last finite bound: that bound
    assert histogram_quantiles([(0.001, 0.0), (inf, 0.0)]) == {
        "p50": None,
        "p95": None,
        "p99": None,
    }


def test_session_fast_path_answers_as_the_route(make_client: Any, model_dir: Path) -> None:
    """The fast path in front of FastAPI and the route give the same bytes; bodies it does not
    take (errors, a query, another content type) reach the route unchanged."""
    fast = make_client(model_dir=model_dir)
    slow = make_client(model_dir=model_dir, fast_path=False)
    for body in (
        {"history": HISTORY, "n": 7},
        {"history": [], "n": 3},
        {"user_id": "u1", "history": HISTORY[:2]},
        {"user_id": 5, "history": [{"item_id": 3, "type": "view"}]},
    ):
        a, b = (
            fast.post("/v1/recommendations", json=body),
            slow.post("/v1/recommendations", json=body),
        )
        assert a.status_code == b.status_code == 200 and a.json() == b.json(), body
    bad = {"history": [{"item_id": "i1", "type": "rating", "value": 99}]}
    a, b = fast.post("/v1/recommendations", json=bad), slow.post("/v1/recommendations", json=bad)
    assert a.status_code == b.status_code == 422 and a.json() == b.json()
    text = fast.post(
        "/v1/recommendations", content=b'{"history": []}', headers={"Content-Type": "text/plain"}
    )
    assert (
        text.status_code
        == slow.post(
            "/v1/recommendations",
            content=b'{"history": []}',
            headers={"Content-Type": "text/plain"},
        ).status_code
    )
    counted = fast.get("/v1/admin/status", headers=auth()).json()["metrics"]["routes"]
    assert counted["/v1/recommendations"]["requests"] >= 6


def test_refit_catalog_needs_a_text_model(client: Any) -> None:
    assert client.post("/v1/admin/refit-catalog").status_code == 401
    r = client.post("/v1/admin/refit-catalog", headers=auth())
    assert r.status_code == 400 and "has no text" in r.text


def test_catalog_dataset_extends_the_vocabulary(item_model: Any) -> None:
    from llmcf.errors import ConfigError
    from llmcf.serve.engine import ServingModel
    from llmcf.serve.refit import catalog_dataset

    serving = ServingModel(item_model)
    ds: Any = catalog_dataset(serving, {"i1": "Old one", "a-much-longer-new-id": "New one"})
    assert [str(x) for x in ds.items.ids[-1:]] == ["a-much-longer-new-id"]  # not cut to <U3
    assert len(ds.items) == serving.n_items + 1 and len(ds) == len(item_model.rating_)
    texts = ds.item_catalog.fields["description"]
    assert texts[ds.items.index("i1")] == "Old one" and texts[-1] == "New one"
    assert texts[ds.items.index("i2")] is None
    assert np.array_equal(ds.item_idx, item_model.item_idx_)  # same interactions, same order

    from llmcf import ItemKNN
    from llmcf.data.dataset import Dataset

    ints = Dataset.from_arrays([1, 2, 2], [10, 10, 20], np.array([4.0, 5.0, 3.0]))
    model = ServingModel(ItemKNN(k=2).fit(ints))
    assert len(catalog_dataset(model, {"30": "x"}).items) == 3  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="integers"):
        catalog_dataset(model, {"sku-1": "x"})


def test_catalog_texts_of_a_dataset(tmp_path: Path) -> None:
    from llmcf.data.dataset import Catalog, Dataset
    from llmcf.serve.web import catalog_texts

    ds = Dataset.from_arrays(
        ["u1", "u1"],
        ["a", "b"],
        np.array([4.0, 5.0]),
        item_catalog=Catalog(
            {
                "title": ["Heat", "Alien"],
                "year": [1995, 1979],
                "genres": [["Crime", "Thriller"], ["Sci-Fi"]],
            }
        ),
    )
    texts = catalog_texts(ds)
    assert texts == {
        "a": "Heat (1995)\nGenres: Crime, Thriller",
        "b": "Alien (1979)\nGenres: Sci-Fi",
    }
    assert parse_text("a", texts["a"]) == ("Heat (1995)", ("Crime", "Thriller"))
    from llmcf.serve.store import EventStore

    store = EventStore.open(tmp_path / "e.sqlite")
    assert store.put_item_texts({**texts, "empty": ""}, chunk=1) == 2
    assert store.put_item_texts({"a": "Heat"}) == 1  # replaced
    assert store.all_item_texts() == {"a": "Heat", "b": texts["b"]}
    assert store.count_item_texts() == 2
    store.close()
