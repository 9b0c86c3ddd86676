"""LLM item profiles: the folder format, item-text modes, and the T-models reading them."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from llmcf.data.dataset import Catalog, Dataset
from llmcf.data.vocab import Vocabulary
from llmcf.errors import ConfigError
from llmcf.text.profiles import (
    PROFILES,
    ProfileRecord,
    catalog_digest,
    item_text_source,
    item_texts,
    open_for_append,
    read_profiles,
    sync,
    text_sha,
    write_manifest,
)

MODEL, PROMPT = "fake:llm", "profile-v1"
TITLES = ["Alien", "Heat", "Amelie", ""]  # the last item has no text


def catalog_dataset(titles: Sequence[str] = TITLES) -> Dataset:
    n = len(titles)
    users = Vocabulary(np.arange(3))
    items = Vocabulary(np.array([f"i{j}" for j in range(n)]))
    user_idx = np.array([0, 0, 1, 2, 2], dtype=np.int32)
    item_idx = np.array([0, 1, 1, 2, 0], dtype=np.int32) % n
    catalog = Catalog({"title": list(titles)})
    return Dataset(
        users,
        items,
        user_idx,
        item_idx,
        np.array([5.0, 3.0, 4.0, 2.0, 1.0]),
        item_catalog=catalog,
        name="tiny-catalog",
    )


def write_profiles(folder: Path, dataset: Dataset, skip: int | None = None) -> None:
    catalog = item_texts(dataset, "catalog")
    ids = [str(v) for v in dataset.items.ids.tolist()]
    with open_for_append(folder) as handle:
        for j, text in enumerate(catalog):
            if text and j != skip:
                record = ProfileRecord(MODEL, PROMPT, text_sha(text), ids[j], f"About {text}.")
                handle.write(record.to_json() + "\n")
        sync(handle)
    write_manifest(
        folder,
        {
            "model": MODEL,
            "prompt_version": PROMPT,
            "llm": "fake",
            "data": dataset.name,
            "n_items": dataset.n_items,
            "catalog_digest": catalog_digest(ids, catalog),
        },
    )


def test_catalog_mode_is_the_rendered_text() -> None:
    ds = catalog_dataset()
    assert item_texts(ds) == ["Alien.", "Heat.", "Amelie.", ""]
    source = item_text_source(ds, "catalog")
    assert source.provenance == {"mode": "catalog"} and source.version == "movielens-v1"


def test_profile_and_both_modes(tmp_path: Path) -> None:
    ds = catalog_dataset()
    write_profiles(tmp_path, ds)
    assert item_texts(ds, "profile", tmp_path) == [
        "About Alien..",
        "About Heat..",
        "About Amelie..",
        "",
    ]
    both = item_texts(ds, "both", tmp_path)
    assert both[0] == "Alien. About Alien.." and both[3] == ""
    source = item_text_source(ds, "profile", tmp_path)
    assert source.provenance["model"] == MODEL and source.provenance["prompt_version"] == PROMPT
    assert len(source.provenance["digest"]) == 64
    assert source.version != item_text_source(ds, "catalog").version


def test_digest_follows_the_profile_texts(tmp_path: Path) -> None:
    ds = catalog_dataset()
    write_profiles(tmp_path, ds)
    before = item_text_source(ds, "profile", tmp_path).provenance["digest"]
    # a later line for the same key wins (a re-profiled item)
    text = "Alien."
    with open_for_append(tmp_path) as handle:
        record = ProfileRecord(MODEL, PROMPT, text_sha(text), "i0", "Sci-fi horror.")
        handle.write(record.to_json() + "\n")
    after = item_text_source(ds, "profile", tmp_path)
    assert after.texts[0] == "Sci-fi horror." and after.provenance["digest"] != before


def test_unknown_mode_and_missing_folder(tmp_path: Path) -> None:
    ds = catalog_dataset()
    with pytest.raises(ConfigError, match="unknown item text mode 'summary'"):
        item_texts(ds, "summary")
    with pytest.raises(ConfigError, match="needs the folder"):
        item_texts(ds, "profile")
    with pytest.raises(ConfigError, match=f"no item profiles in {tmp_path}"):
        item_texts(ds, "both", tmp_path)


def test_incomplete_profiles_name_the_folder_and_the_resume_command(tmp_path: Path) -> None:
    ds = catalog_dataset()
    write_profiles(tmp_path, ds, skip=1)
    with pytest.raises(ConfigError) as info:
        item_texts(ds, "profile", tmp_path)
    message = str(info.value)
    assert str(tmp_path) in message and "cover 3 of the 4 items" in message
    assert "1 have none (e.g. item 'i1')" in message and "resume" in message


def test_profiles_of_another_catalog_are_refused(tmp_path: Path) -> None:
    write_profiles(tmp_path, catalog_dataset())
    other = catalog_dataset(["Alien", "Ronin", "Amelie", "Up"])
    with pytest.raises(ConfigError, match="made for another catalog") as info:
        item_texts(other, "profile", tmp_path)
    assert str(tmp_path) in str(info.value) and "'i1'" in str(info.value)
    # a catalog that differs but whose every text has a profile is served (same texts)
    subset = catalog_dataset(["Heat", "Alien", "Amelie", ""])
    assert item_texts(subset, "profile", tmp_path)[0] == "About Heat.."


def test_partial_last_line_is_ignored_and_cut_before_appending(tmp_path: Path) -> None:
    ds = catalog_dataset()
    write_profiles(tmp_path, ds)
    path = tmp_path / PROFILES
    complete = path.read_bytes()
    path.write_bytes(complete + b'{"model": "fake:llm", "prompt": "prof')  # kill -9 mid-write
    assert len(read_profiles(tmp_path)) == 3
    with open_for_append(tmp_path) as handle:
        handle.write(ProfileRecord(MODEL, PROMPT, text_sha("x"), "i9", "X.").to_json() + "\n")
    lines = path.read_bytes().splitlines()
    assert len(lines) == 4 and all(json.loads(line) for line in lines)


def test_a_damaged_middle_line_warns_with_file_and_line(tmp_path: Path) -> None:
    ds = catalog_dataset()
    write_profiles(tmp_path, ds)
    path = tmp_path / PROFILES
    lines = path.read_text().splitlines()
    lines.insert(1, "not json")
    path.write_text("\n".join(lines) + "\n")
    with pytest.warns(UserWarning, match=f"{PROFILES}:2: not a profile record"):
        assert len(read_profiles(tmp_path)) == 3


def test_manifest_damage_is_a_clear_error(tmp_path: Path) -> None:
    ds = catalog_dataset()
    write_profiles(tmp_path, ds)
    (tmp_path / "manifest.json").write_text("{")
    with pytest.raises(ConfigError, match="unreadable profile manifest"):
        item_texts(ds, "profile", tmp_path)
    (tmp_path / "manifest.json").write_text('{"format": 1, "model": 3}')
    with pytest.raises(ConfigError, match="'model' is missing or not a string"):
        item_texts(ds, "profile", tmp_path)


class WordEmbedder:
    """A bag of three words as a 3-d vector (sci-fi, crime, romance)."""

    name = "words"
    version = "1"
    dim = 3
    cacheable = False

    def embed(
        self, texts: Sequence[str], batch_size: int = 32, progress: bool | None = False
    ) -> np.ndarray:
        out = np.zeros((len(texts), 3), dtype=np.float32)
        for row, text in enumerate(texts):
            low = text.lower()
            out[row] = [low.count("space"), low.count("crime"), low.count("love")]
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return np.divide(out, norms, out=np.zeros_like(out), where=norms > 0)


def test_t_item_knn_embeds_the_profiles_and_saves_their_provenance(tmp_path: Path) -> None:
    from llmcf.models import load_model, make_model
    from llmcf.persist import save_model

    ds = catalog_dataset()
    folder = tmp_path / "profiles"
    write_profiles(folder, ds)
    # profiles that say what the titles do not: Alien and Amelie share "space"
    with open_for_append(folder) as handle:
        for j, (title, words) in enumerate(
            [("Alien.", "space"), ("Heat.", "crime"), ("Amelie.", "space love")]
        ):
            record = ProfileRecord(MODEL, PROMPT, text_sha(title), f"i{j}", words)
            handle.write(record.to_json() + "\n")
    catalog = make_model("t-item-knn", embedder=WordEmbedder(), rank_weight=0.5, k=2)
    with pytest.warns(UserWarning, match="no item has text"):
        catalog.fit(ds)
    assert not catalog.item_vectors_.any()  # titles hold none of the words
    profiled = make_model(
        "t-item-knn",
        embedder=WordEmbedder(),
        rank_weight=0.5,
        k=2,
        item_text="profile",
        profiles=str(folder),
    ).fit(ds)
    assert profiled.item_vectors_[0] @ profiled.item_vectors_[2] > 0.5
    save_model(profiled, tmp_path / "model")
    manifest = json.loads((tmp_path / "model" / "manifest.json").read_text())
    assert manifest["config"]["item_text"] == "profile"
    assert manifest["config"]["profiles"] == str(folder)
    saved = manifest["state"]["item_text"]
    assert saved["digest"] == profiled.item_text_provenance_["digest"]
    loaded = load_model(tmp_path / "model")
    assert loaded.item_text_provenance_ == profiled.item_text_provenance_
    assert np.array_equal(loaded.item_vectors_, profiled.item_vectors_)


def test_t_model_names_the_folder_when_profiles_are_missing(tmp_path: Path) -> None:
    from llmcf.models import make_model

    model = make_model(
        "t-item-knn", embedder=WordEmbedder(), item_text="both", profiles=str(tmp_path)
    )
    with pytest.raises(
        ConfigError, match=f"TItemKNN needs item text: no item profiles in {tmp_path}"
    ):
        model.fit(catalog_dataset())
    with pytest.raises(ConfigError, match="unknown item_text 'summary'"):
        make_model("t-item-knn", item_text="summary")
