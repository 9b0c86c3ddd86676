"""Online evaluation: impressions logged off the request path, events attributed to them,
CTR@N and conversion per arm; the A/B split of two loaded models."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests.serve.conftest import auth

from llmcf.serve.impressions import ArmMetrics, ImpressionLog, attribute, difference, wilson
from llmcf.serve.state import ab_bucket


def test_attribution_by_hand() -> None:
    # three lists: u1 at t=1000 [a, b], u1 at t=5000 [c], u2 at t=1000 [a]
    users = np.array(["u1", "u1", "u2"], dtype=object)
    items = [["a", "b"], ["c"], ["a"]]
    times = np.array([1000, 5000, 1000])
    ev = [
        ("u1", "b", "view", 1500),  # list 0: a click inside its window
        ("u1", "a", "purchase", 3000),  # list 0: a purchase, 2000 ms after (inside 2500)
        ("u1", "c", "view", 4000),  # before list 1 was shown: not attributed
        ("u1", "c", "rating", 5100),  # a rating is not a click
        ("u2", "b", "view", 1100),  # u2 was not shown b
        ("u2", "a", "cart", 4000),  # 3000 ms after: outside the 2500 ms window
    ]
    clicked, bought = attribute(
        users,
        items,
        times,
        np.array([e[0] for e in ev], dtype=object),
        np.array([e[1] for e in ev], dtype=object),
        np.array([e[2] for e in ev], dtype=object),
        np.array([e[3] for e in ev]),
        window_ms=2500,
    )
    assert clicked.tolist() == [True, False, False]
    assert bought.tolist() == [True, False, False]
    none = attribute(users, items, times, *(np.zeros(0, dtype=object),) * 3, np.zeros(0), 10)
    assert not none[0].any() and not none[1].any()


def test_wilson_and_difference_by_hand() -> None:
    lo, hi = wilson(5, 10)
    assert lo == pytest.approx(0.2366, abs=1e-4) and hi == pytest.approx(0.7634, abs=1e-4)
    assert wilson(0, 0) == (0.0, 1.0)
    assert wilson(0, 20)[0] == 0.0
    a, b = ArmMetrics("A", "m1", 1000, 100, 10), ArmMetrics("B", "m2", 1000, 150, 12)
    d = difference(a, b)
    half = 1.959963984540054 * np.sqrt(0.1 * 0.9 / 1000 + 0.15 * 0.85 / 1000)
    assert d["value"] == pytest.approx(0.05)
    assert d["ci"] == pytest.approx([0.05 - half, 0.05 + half])
    assert a.as_dict()["ctr"] == 0.1 and a.as_dict()["conversion"] == 0.01


def test_impression_log_batches_and_bounds(tmp_path: Path) -> None:
    from sqlalchemy import func, select

    from llmcf.serve.impressions import impressions
    from llmcf.serve.store import EventStore

    store = EventStore.open(tmp_path / "e.sqlite")
    log = ImpressionLog(store, interval=60, batch=7, max_pending=50)
    for k in range(60):
        log.log(f"u{k}", "A", "m", "recommendations", ["i1", "i2"])
    assert log.stats()["dropped"] == 10 and log.stats()["pending"] == 50
    assert log.flush() == 50
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(impressions)).scalar() == 50
    log.close()
    assert log.stats() == {"logged": 50, "written": 50, "pending": 0, "dropped": 10, "errors": 0}
    store.close()


def test_ab_bucket_is_stable_and_splits() -> None:
    buckets = np.array([ab_bucket(f"user-{k}") for k in range(4000)])
    assert ((buckets >= 0) & (buckets < 1)).all()
    assert abs((buckets < 0.5).mean() - 0.5) < 0.03
    assert ab_bucket("user-7") == ab_bucket("user-7")


def test_two_arms_online_metrics(
    make_client: Any, model_dir: Path, user_model_dir: Path, tmp_path: Path
) -> None:
    """Users split by their hash between item-kNN (A) and user-kNN (B); each arm serves its
    own model's list; lists are impressions and views of listed items are clicks."""
    ab = make_client(model_dir=model_dir, model_dir_b=user_model_dir)
    only_a = make_client(model_dir=model_dir, events_db=str(tmp_path / "a.sqlite"))
    only_b = make_client(model_dir=user_model_dir, events_db=str(tmp_path / "b.sqlite"))
    state = ab.app.state.llmcf
    deadline = time.monotonic() + 30
    while state.model_b is None and time.monotonic() < deadline:  # B loads after A
        time.sleep(0.01)
    assert state.model_b is not None
    users = [f"u{k}" for k in range(60)]
    arms = {u: state.model_for(u)[0] for u in users}
    assert set(arms.values()) == {"A", "B"}
    clicks = {"A": 0, "B": 0}
    for u in users:
        got = ab.get(f"/v1/users/{u}/recommendations", params={"n": 5}).json()
        ref = (only_a if arms[u] == "A" else only_b).get(
            f"/v1/users/{u}/recommendations", params={"n": 5}
        )
        assert got == ref.json(), u
        if int(u[1:]) % 3 == 0:  # a third of the users view their first item
            ev = {"events": [{"user_id": u, "item_id": got["items"][0]["item_id"], "type": "view"}]}
            assert ab.post("/v1/events", json=ev, headers=auth()).status_code == 201
            clicks[arms[u]] += 1
    session = ab.post("/v1/recommendations", json={"user_id": "u0", "history": []}).json()
    assert session["user_id"] == "u0"
    anon = ab.post("/v1/recommendations", json={"history": []})
    assert anon.status_code == 200
    online = ab.get("/v1/admin/online", headers=auth()).json()
    by_arm = {a["arm"]: a for a in online["arms"]}
    n_a = sum(1 for u in users if arms[u] == "A") + (arms["u0"] == "A")
    assert by_arm["A"]["impressions"] + by_arm["B"]["impressions"] == len(users) + 1
    assert by_arm["A"]["impressions"] == n_a
    assert by_arm["A"]["clicks"] == clicks["A"] and by_arm["B"]["clicks"] == clicks["B"]
    assert "ItemKNN" in by_arm["A"]["model"] and "UserKNN" in by_arm["B"]["model"]
    lo, hi = by_arm["A"]["ctr_ci"]
    assert lo <= by_arm["A"]["ctr"] <= hi
    assert online["difference"]["of"] == "B - A"
    assert online["log"]["written"] == len(users) + 2  # the anonymous list too, unattributed
    status = ab.get("/v1/admin/status", headers=auth()).json()
    assert [m["arm"] for m in status["models"]] == ["A", "B"]
    assert status["online"]["arms"] == online["arms"]
    assert ab.get("/v1/admin/online").status_code == 401
    assert ab.get("/v1/admin/online", params={"window": 0}, headers=auth()).status_code == 422


def test_impressions_can_be_turned_off(make_client: Any, model_dir: Path) -> None:
    client = make_client(model_dir=model_dir, impressions=False)
    client.get("/v1/users/u1/recommendations")
    assert client.get("/v1/admin/online", headers=auth()).json()["log"]["logged"] == 0
