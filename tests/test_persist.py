"""Saved models: manifest + npz round trip, and clear errors for damaged or foreign files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tests.conftest import random_dataset

from llmcf import ItemKNN, ModelLoadError, UserKNN, load_model
from llmcf.persist import arrays_path, save_model


@pytest.fixture
def saved(tmp_path: Path) -> tuple[ItemKNN, Path]:
    model = ItemKNN(k=5).fit(random_dataset(1))
    model.save(str(tmp_path / "m"))
    return model, tmp_path / "m"


def test_round_trip_keeps_config_and_predictions(saved) -> None:  # type: ignore[no-untyped-def]
    model, path = saved
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["class"] == "ItemKNN" and manifest["config"]["k"] == 5
    assert set(manifest["vocabulary"]) == {"users", "items"}
    loaded = ItemKNN.load(str(path))
    assert loaded.config == model.config
    u = np.arange(5)
    np.testing.assert_array_equal(loaded.predict(u, u), model.predict(u, u))
    assert loaded.users_ == model.users_


def test_npz_has_no_pickled_objects(saved) -> None:  # type: ignore[no-untyped-def]
    _, path = saved
    with np.load(arrays_path(path), allow_pickle=False) as npz:
        for name in npz.files:
            assert npz[name].dtype != object


def test_wrong_class_is_refused(saved) -> None:  # type: ignore[no-untyped-def]
    _, path = saved
    with pytest.raises(ModelLoadError, match="not a UserKNN"):
        UserKNN.load(str(path))


def test_corrupted_array_file(saved) -> None:  # type: ignore[no-untyped-def]
    _, path = saved
    data = bytearray((arrays_path(path)).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (arrays_path(path)).write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match=r"arrays-[0-9a-f]+\.npz"):
        load_model(path)


def test_truncated_array_file(saved) -> None:  # type: ignore[no-untyped-def]
    _, path = saved
    data = (arrays_path(path)).read_bytes()
    (arrays_path(path)).write_bytes(data[:100])
    with pytest.raises(ModelLoadError, match=r"corrupted|unreadable"):
        load_model(path)


def test_other_format_version(saved) -> None:  # type: ignore[no-untyped-def]
    _, path = saved
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["format_version"] = 99
    manifest["llmcf_version"] = "9.0"
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelLoadError, match=r"format 99 written by llmcf '9.0'"):
        load_model(path)


def test_damaged_manifest_and_missing_folder(saved, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, path = saved
    (path / "manifest.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="corrupted manifest"):
        load_model(path)
    with pytest.raises(ModelLoadError, match=r"no manifest\.json"):
        load_model(tmp_path / "nothing")


def test_unknown_class(saved) -> None:  # type: ignore[no-untyped-def]
    _, path = saved
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["class"] = "os.system"
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelLoadError, match="unknown model class"):
        load_model(path)


def test_unfitted_model_cannot_be_saved(tmp_path: Path) -> None:
    from llmcf import NotFittedError

    with pytest.raises(NotFittedError):
        save_model(ItemKNN(), tmp_path / "x")


def test_sparse_mode_round_trip(tmp_path: Path) -> None:
    ds = random_dataset(9, n_users=20, n_items=15)
    model = UserKNN(k=4, dense_max=0, n_neighbors=5).fit(ds)
    model.save(str(tmp_path / "s"))
    loaded = load_model(tmp_path / "s")
    assert loaded.sim_ is None and loaded.nbr_idx_ is not None
    u = np.repeat(np.arange(20), 15)
    i = np.tile(np.arange(15), 20)
    np.testing.assert_array_equal(loaded.predict(u, i), model.predict(u, i))


@pytest.mark.parametrize("crash_at", range(8))
def test_a_crash_at_any_step_of_a_save_leaves_a_loadable_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, crash_at: int
) -> None:
    """Refitting into a folder: the writer dies at its n-th file operation (a write, fsync,
    replace or unlink); the folder then loads as the old model or the new one, whole."""
    import os as os_module

    from tests.conftest import random_dataset

    from llmcf import persist

    old = ItemKNN(k=3).fit(random_dataset(1, n_users=12, n_items=9))
    new = ItemKNN(k=5).fit(random_dataset(2, n_users=14, n_items=10))
    folder = tmp_path / "m"
    save_model(old, folder)
    calls = {"n": 0}

    class Crash(BaseException):
        pass

    def hook(real):  # type: ignore[no-untyped-def]
        def wrapped(*args, **kwargs):  # type: ignore[no-untyped-def]
            calls["n"] += 1
            if calls["n"] > crash_at:
                raise Crash
            return real(*args, **kwargs)

        return wrapped

    for name in ("replace", "fsync"):
        monkeypatch.setattr(persist.os, name, hook(getattr(os_module, name)))
    monkeypatch.setattr(persist.np, "savez", hook(persist.np.savez))
    try:
        save_model(new, folder)
        finished = True
    except Crash:
        finished = False
    monkeypatch.undo()
    loaded = load_model(folder)
    assert loaded.config.k in (3, 5)
    if finished:
        assert loaded.config.k == 5
    want = new if loaded.config.k == 5 else old
    np.testing.assert_array_equal(
        loaded.recommend_many(np.arange(4), 3).items, want.recommend_many(np.arange(4), 3).items
    )


def test_a_compressed_member_is_refused_before_decompressing(tmp_path: Path) -> None:
    """A zip bomb: a small file whose member inflates to 200 MB is refused from its header."""
    import json as json_module

    from tests.conftest import random_dataset

    from llmcf import persist

    folder = save_model(ItemKNN(k=3).fit(random_dataset(1, n_users=12, n_items=9)), tmp_path / "m")
    path = arrays_path(folder)
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["rating"] = np.zeros(25_000_000)  # 200 MB of zeros, a few hundred kB compressed
    np.savez_compressed(path, **arrays)
    manifest = json_module.loads((folder / "manifest.json").read_text())
    manifest["arrays"] = {k: persist.digest(v) for k, v in arrays.items()}
    (folder / "manifest.json").write_text(json_module.dumps(manifest))
    assert path.stat().st_size < 5_000_000
    with pytest.raises(ModelLoadError, match="compressed"):
        load_model(folder)
