"""``llmcf serve`` as a real process on 127.0.0.1: kill -9 in the middle of ingestion loses no
acknowledged event; reloads under load fail no request."""

from __future__ import annotations

import threading
import time

import httpx
import pytest
from tests.serve.conftest import ServerProcess, auth

from llmcf.serve.store import EventStore

pytestmark = pytest.mark.slow


def test_kill9_loses_no_acknowledged_event(tmp_path, model_dir) -> None:
    db = str(tmp_path / "events.sqlite")
    server = ServerProcess(model_dir, db, tmp_path / "server.log")
    acknowledged: list[str] = []
    errors: list[str] = []
    stop = threading.Event()

    def stream(worker: int) -> None:
        batch_no = 0
        with httpx.Client(base_url=server.url, timeout=5) as client:
            while not stop.is_set():
                ids = [f"w{worker}-b{batch_no}-e{k}" for k in range(50)]
                events = [
                    {
                        "user_id": f"user{k % 13}",
                        "item_id": f"i{k % 40}",
                        "type": "purchase",
                        "event_id": e,
                    }
                    for k, e in enumerate(ids)
                ]
                try:
                    r = client.post("/v1/events", json={"events": events}, headers=auth())
                except httpx.TransportError:
                    return  # the server died under us: this batch was never acknowledged
                if r.status_code == 201:
                    acknowledged.extend(ids)
                else:
                    errors.append(f"{r.status_code} {r.text}")
                batch_no += 1

    threads = [threading.Thread(target=stream, args=(w,)) for w in range(3)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 20
    while len(acknowledged) < 3000 and time.monotonic() < deadline:
        time.sleep(0.05)
    server.kill9()  # in the middle of the stream
    stop.set()
    for t in threads:
        t.join(10)
    assert not errors
    assert len(acknowledged) >= 1000, "too few events acknowledged before the kill"

    # restart on the same store: it comes up, and every acknowledged event is there
    restarted = ServerProcess(model_dir, db, tmp_path / "server2.log")
    try:
        r = httpx.get(restarted.url + "/v1/users/user1/recommendations", timeout=5)
        assert r.status_code == 200 and not r.json()["was_fallback"]
    finally:
        restarted.stop()
    store = EventStore.open(db)
    stored = store.event_ids()
    store.close()
    missing = set(acknowledged) - stored
    assert not missing, f"{len(missing)} acknowledged events lost, e.g. {sorted(missing)[:3]}"


def test_reload_under_load_fails_no_request(tmp_path, model_dir, user_model_dir) -> None:
    server = ServerProcess(model_dir, str(tmp_path / "events.sqlite"), tmp_path / "server.log")
    statuses: list[int] = []
    failures: list[str] = []
    stop = threading.Event()

    def read(worker: int) -> None:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            k = 0
            while not stop.is_set():
                try:
                    r = client.get(f"/v1/users/u{(worker * 7 + k) % 60}/recommendations")
                    statuses.append(r.status_code)
                except httpx.TransportError as exc:
                    failures.append(repr(exc))
                k += 1

    threads = [threading.Thread(target=read, args=(w,)) for w in range(4)]
    try:
        for t in threads:
            t.start()
        classes = []
        with httpx.Client(base_url=server.url, timeout=30) as admin:
            for target in [user_model_dir, model_dir] * 3:
                r = admin.post("/v1/admin/reload", json={"model_dir": str(target)}, headers=auth())
                assert r.status_code == 200, r.text
                classes.append(r.json()["model"]["class"])
                time.sleep(0.1)
        stop.set()
        for t in threads:
            t.join(10)
    finally:
        stop.set()
        server.stop()
    assert classes == ["UserKNN", "ItemKNN"] * 3
    assert not failures
    assert len(statuses) > 50
    assert set(statuses) == {200}
