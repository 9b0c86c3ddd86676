"""Several server processes on one event store see each other's events in bounded time."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from tests.serve.conftest import API_KEY, ServerProcess


def _items(url: str, user: str) -> list[str]:
    deadline = time.monotonic() + 60
    while True:  # with --workers, a worker still loading its model answers 503 (by design)
        r = httpx.get(f"{url}/v1/users/{user}/recommendations", params={"n": 10}, timeout=5)
        if r.status_code != 503 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert r.status_code == 200, r.text
    return [i["item_id"] for i in r.json()["items"]]


def _reflected_within(url: str, user: str, item: str, limit: float) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        if item not in _items(url, user):
            return time.monotonic() - t0
        time.sleep(0.02)
    raise AssertionError(f"{item} still recommended to {user} after {limit} s")


@pytest.mark.parametrize("extra", [(), ("--workers", "2")], ids=["two-servers", "workers-2"])
def test_an_event_acknowledged_by_one_process_reaches_the_others(
    model_dir: Path, tmp_path: Path, extra: tuple[str, ...]
) -> None:
    db = str(tmp_path / "events.sqlite")  # a new store: the processes migrate it together
    servers = [ServerProcess(model_dir, db, tmp_path / f"s{k}.log", extra) for k in range(2)]
    try:
        a, b = servers[0].url, servers[1].url
        lags = []
        for user in ["u1", "u2", "u3", "u4", "u5"]:
            top = _items(b, user)[0]  # cached in b (and, with workers, in some worker)
            for _ in range(4):
                _items(b, user)
            r = httpx.post(
                f"{a}/v1/events",
                json={"events": [{"user_id": user, "item_id": top, "type": "purchase"}]},
                headers={"X-API-Key": API_KEY},
                timeout=5,
            )
            assert r.status_code == 201, r.text
            lags.append(_reflected_within(b, user, top, limit=2.0))
        assert max(lags) < 2.0
    finally:
        for server in servers:
            server.stop()
