"""``llmcf fit --events-db`` and the ``serve`` command's checks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from llmcf.cli import main
from llmcf.models import load_model
from llmcf.serve.state import load_serving_model
from llmcf.serve.store import Event, EventStore


def _fill(db: str) -> None:
    store = EventStore.open(db)
    rng = np.random.default_rng(1)
    events = [
        Event(f"c{int(u)}", f"p{int(i)}", str(t), None if t != "rating" else 4.0)
        for u, i, t in zip(
            rng.integers(0, 30, 600),
            rng.integers(0, 25, 600),
            rng.choice(["view", "cart", "purchase", "rating"], 600),
            strict=True,
        )
    ]
    store.add_events(events)
    store.close()


def test_fit_from_event_store(tmp_path, capsys) -> None:
    db = str(tmp_path / "events.sqlite")
    _fill(db)
    out = tmp_path / "model"
    code = main(
        ["fit", "--events-db", db, "--model", "item-knn", "--similarity", "cosine",
         "--prediction", "basic", "--k", "10", "--event-weights", "view=1,purchase=10", "--out", str(out)]
    )  # fmt: skip
    assert code == 0
    model = load_model(out)
    assert len(model.users_) == 30 and len(model.items_) == 25
    # weights: the stored events, summed per pair with view=1, cart=3 (default), purchase=10
    store = EventStore.open(db)
    max_seq = store.max_seq()
    store.close()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["state"]["events_cutoff"] == max_seq  # saved atomically with the arrays
    assert manifest["state"]["event_weights"] == {
        "view": 1.0,
        "cart": 3.0,
        "purchase": 10.0,
        "rating": 1.0,
    }
    assert model.event_weights().purchase == 10.0  # fold-in uses the weights of the fit
    serving = load_serving_model(out)
    assert serving.events_cutoff == max_seq
    assert serving.info()["class"] == "ItemKNN"
    # weights of one pair, recomputed by hand from the raw rows
    store = EventStore.open(db)
    rows = [r for chunk in store.iter_events() for r in chunk]
    store.close()
    w = {"view": 1.0, "cart": 3.0, "purchase": 10.0, "rating": 1.0}
    u, i = rows[0][1], rows[0][2]
    expected = sum(
        w[r[3]] * (r[4] if r[4] is not None else 1.0) for r in rows if (r[1], r[2]) == (u, i)
    )
    ui = model.users_.index(u), model.items_.index(i)
    R = serving.model.train_matrix().toarray()
    assert R[ui] == pytest.approx(expected)


def test_fit_needs_one_source(tmp_path, capsys) -> None:
    assert main(["fit", "--out", str(tmp_path / "m")]) == 2
    assert "exactly one of --data and --events-db" in capsys.readouterr().err
    assert (
        main(["fit", "--events-db", str(tmp_path / "empty.sqlite"), "--out", str(tmp_path / "m")])
        == 2
    )
    assert "holds no events" in capsys.readouterr().err
    assert (
        main(
            [
                "fit",
                "--events-db",
                str(tmp_path / "e.sqlite"),
                "--event-weights",
                "click=2",
                "--out",
                "x",
            ]
        )
        == 2
    )
    assert "bad event weight 'click=2'" in capsys.readouterr().err


def test_serve_rejects_missing_model_dir(tmp_path, capsys) -> None:
    assert main(["serve", "--model-dir", str(tmp_path / "nothing")]) == 2
    assert "no manifest.json" in capsys.readouterr().err


def test_serve_runs_uvicorn_lean(tmp_path, model_dir, monkeypatch) -> None:
    """uvloop + httptools, no access log unless asked, the fast path and a frozen GC."""
    import uvicorn

    calls: list[tuple[object, dict]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append((app, kw)))
    db = str(tmp_path / "e.sqlite")
    assert main(["serve", "--model-dir", str(model_dir), "--events-db", db, "--port", "0"]) == 0
    app, kw = calls[-1]
    assert kw["access_log"] is False
    assert kw["loop"] == "uvloop" and kw["http"] == "httptools"
    settings = app.state.llmcf.settings
    assert settings.fast_path and settings.freeze_gc
    args = ["serve", "--model-dir", str(model_dir), "--events-db", db, "--port", "0"]
    assert main([*args, "--access-log", "--no-fast-path"]) == 0
    app, kw = calls[-1]
    assert kw["access_log"] is True and not app.state.llmcf.settings.fast_path


def test_refit_into_a_folder_replaces_the_events_cutoff(tmp_path) -> None:
    """A folder fitted from the event store, then refitted from a data set, must not keep the
    old cutoff (else fold-in would silently skip every stored event)."""
    from tests.serve.conftest import small_dataset

    from llmcf import ItemKNN
    from llmcf.persist import save_model

    db = str(tmp_path / "events.sqlite")
    _fill(db)
    out = tmp_path / "model"
    assert (
        main(["fit", "--events-db", db, "--model", "item-knn", "--out", str(out), "--quiet"]) == 0
    )
    assert load_serving_model(out).events_cutoff > 0
    (out / "events_cutoff.json").write_text('{"max_seq": 999}')  # a file an older llmcf wrote
    save_model(ItemKNN(k=5).fit(small_dataset()), out)
    assert load_serving_model(out).events_cutoff == 0
    assert not (out / "events_cutoff.json").exists()
    assert len(list(out.glob("arrays-*.npz"))) == 1
