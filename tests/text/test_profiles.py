"""LLM item profiles: the folder format, item-text modes, and the T-models reading them."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from tests.conftest import movielens_folder

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


# --------------------------------------------------------------------------- enrich


class FakeLLM:
    """Profiles from the item line of the prompt; records every batch it was asked for."""

    def __init__(self, name: str = MODEL, fail_after: int | None = None) -> None:
        self._name = name
        self.batches: list[list[str]] = []
        self.fail_after = fail_after

    @property
    def name(self) -> str:
        return self._name

    def complete_many(
        self, system: str, users: Sequence[str], max_tokens: int = 60, answer_prefix: str = ""
    ) -> list[str]:
        from llmcf.rerank.clients import LLMError

        if self.fail_after is not None and len(self.batches) >= self.fail_after:
            raise LLMError("http://127.0.0.1:9/v1/chat/completions: connection refused")
        self.batches.append(list(users))
        items = [u.rsplit("Item: ", 1)[1] for u in users]
        return [
            f"{answer_prefix} a film called {item}\nWho it is for: fans\nKey attributes: a, b"
            for item in items
        ]


def many_titles(n: int) -> list[str]:
    return [f"Film {j}" for j in range(n)]


def test_enrich_batches_parses_and_writes_the_manifest(tmp_path: Path) -> None:
    from llmcf.rerank.enrich import PROMPT_VERSION, enrich
    from llmcf.text.profiles import read_manifest

    ds = catalog_dataset([*many_titles(7), "Film 0", ""])  # a repeated text, an empty one
    llm = FakeLLM()
    result = enrich(ds, llm, tmp_path, batch_size=3, progress=False)
    assert [len(b) for b in llm.batches] == [3, 3, 1]  # 7 distinct texts
    assert result.counts["generated"] == 7 and result.counts["missing"] == 0
    manifest = read_manifest(tmp_path)
    assert manifest["complete"] is True and manifest["prompt_version"] == PROMPT_VERSION
    assert manifest["model"] == MODEL and manifest["n_items"] == 9
    assert manifest["counts"]["texts"] == 7 and manifest["counts"]["unstructured"] == 0
    profiles = item_texts(ds, "profile", tmp_path)
    assert profiles[0] == (
        "What it is: a film called Film 0. Who it is for: fans. Key attributes: a, b."
    )
    assert profiles[7] == profiles[0] and profiles[8] == ""
    assert "Item: Film 3." in llm.batches[1][0]  # the catalog text is in the prompt


def test_enrich_cache_keys_model_prompt_and_text(tmp_path: Path) -> None:
    from llmcf.rerank.enrich import enrich

    enrich(catalog_dataset(many_titles(5)), FakeLLM(), tmp_path, progress=False)
    again = FakeLLM()
    result = enrich(catalog_dataset(many_titles(5)), again, tmp_path, progress=False)
    assert again.batches == [] and result.counts["reused"] == 5  # nothing redone
    changed = catalog_dataset(["Film 0", "Film 1 (restored)", "Film 2", "Film 3", "Film 4"])
    one = FakeLLM()
    enrich(changed, one, tmp_path, progress=False)
    assert [len(b) for b in one.batches] == [1] and "restored" in one.batches[0][0]
    other_model = FakeLLM(name="fake:other")
    enrich(changed, other_model, tmp_path, progress=False)
    assert sum(len(b) for b in other_model.batches) == 5  # another model: its own profiles
    assert len(read_profiles(tmp_path)) == 6 + 5


def test_enrich_resumes_after_a_crash_that_left_a_partial_line(tmp_path: Path) -> None:
    from llmcf.rerank.clients import LLMError
    from llmcf.rerank.enrich import enrich

    ds = catalog_dataset(many_titles(10))
    with pytest.raises(LLMError, match="6 of 10 profiles are kept in"):
        enrich(ds, FakeLLM(fail_after=2), tmp_path, batch_size=3, progress=False)
    path = tmp_path / PROFILES
    assert len(path.read_text().splitlines()) == 6
    with path.open("ab") as handle:  # kill -9 in the middle of the next batch's write
        handle.write(b'{"model": "fake:llm", "prompt": "profile-v1", "text_sha": "ab')
    with pytest.raises(ConfigError, match="has not finished; resume it"):
        item_texts(ds, "profile", tmp_path)
    rest = FakeLLM()
    result = enrich(ds, rest, tmp_path, batch_size=3, progress=False)
    assert [len(b) for b in rest.batches] == [3, 1]  # only the 4 unfinished items
    assert result.counts["reused"] == 6 and result.counts["generated"] == 4
    lines = path.read_text().splitlines()
    assert len(lines) == 10 and all(json.loads(line) for line in lines)
    assert len(set(item_texts(ds, "profile", tmp_path))) == 10


def test_enrich_limit_and_bad_options(tmp_path: Path) -> None:
    from llmcf.rerank.enrich import enrich
    from llmcf.text.profiles import read_manifest

    ds = catalog_dataset(many_titles(5))
    result = enrich(ds, FakeLLM(), tmp_path, limit=2, progress=False)
    assert result.counts["generated"] == 2 and result.seconds_per_1000 is not None
    assert read_manifest(tmp_path)["complete"] is False
    for bad in ({"batch_size": 0}, {"max_tokens": 0}, {"limit": -1}):
        with pytest.raises(ConfigError):
            enrich(ds, FakeLLM(), tmp_path, progress=False, **bad)  # type: ignore[arg-type]


def test_parse_profile() -> None:
    from llmcf.rerank.enrich import parse_profile

    text, ok = parse_profile(
        "What it is: A <b>heist</b> film.\n- who it is for: adults\nKey attributes: crime, LA,\n"
        "What it is: ignored second line"
    )
    assert ok and text == (
        "What it is: A heist film. Who it is for: adults. Key attributes: crime, LA."
    )
    assert parse_profile("Just some words") == ("Just some words", False)
    assert parse_profile("  ") == ("", False)


def test_unknown_llm_and_endpoint_failure_name_the_problem(tmp_path: Path) -> None:
    from llmcf.rerank.clients import LLMError, OpenAIChatClient
    from llmcf.rerank.enrich import enrich, make_profile_client

    with pytest.raises(ConfigError, match=r"unknown --llm 'gpt-17'; valid: qwen2\.5-0\.5b"):
        make_profile_client("gpt-17")
    ds = catalog_dataset(many_titles(4))
    enrich(ds, FakeLLM(name="openai:http://127.0.0.1:9/v1#m"), tmp_path, limit=2, progress=False)
    client = OpenAIChatClient("http://127.0.0.1:9/v1", "m", max_retries=0, timeout=2.0)
    with pytest.raises(LLMError, match=r"127\.0\.0\.1:9.*2 of 4 profiles are kept"):
        enrich(ds, client, tmp_path, batch_size=2, progress=False)
    assert len((tmp_path / PROFILES).read_text().splitlines()) == 2


@pytest.fixture
def ml_synth(tmp_path: Path) -> str:
    return movielens_folder(tmp_path / "ml-synth", 40, 25, 500, seed=3)


def test_cli_enrich_then_evaluate_and_fit_with_profiles(
    ml_synth: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    import llmcf.rerank.enrich as enrich_module
    from llmcf.cli import main

    monkeypatch.setattr(enrich_module, "make_profile_client", lambda spec, **kw: FakeLLM())
    out = tmp_path / "profiles"
    assert main(["enrich", "--data", ml_synth, "--out", str(out), "--quiet"]) == 0
    assert "25 of 25 item texts profiled (25 now" in capsys.readouterr().out
    assert main(["enrich", "--data", ml_synth, "--out", str(out), "--quiet"]) == 0
    rerun = capsys.readouterr().out
    assert "(0 now" in rerun and "25 reused" in rerun
    base = ["--data", ml_synth, "--model", "t-item-knn", "--embedder", "tfidf"]
    code = main(
        ["evaluate", *base, "--split", "kfold:2", "--k", "5", "--item-text", "both",
         "--profiles", str(out), "--quiet"]
    )  # fmt: skip
    assert code == 0
    model_dir = tmp_path / "model"
    code = main(
        ["fit", *base, "--k", "5", "--item-text", "profile", "--profiles", str(out),
         "--out", str(model_dir), "--quiet"]
    )  # fmt: skip
    assert code == 0
    manifest = json.loads((model_dir / "manifest.json").read_text())
    assert manifest["config"]["item_text"] == "profile"
    assert manifest["state"]["item_text"]["model"] == MODEL
    capsys.readouterr()
    missing = tmp_path / "none"
    code = main(["fit", *base, "--item-text", "profile", "--profiles", str(missing),
                 "--out", str(tmp_path / "m2"), "--quiet"])  # fmt: skip
    assert code == 2 and f"no item profiles in {missing}" in capsys.readouterr().err
    code = main(["enrich", "--data", ml_synth, "--batch-size", "0"])
    assert code == 2 and "--batch-size must be >= 1" in capsys.readouterr().err


def test_cli_unknown_llm(ml_synth: str, capsys: pytest.CaptureFixture) -> None:
    from llmcf.cli import main

    assert main(["enrich", "--data", ml_synth, "--llm", "gpt-17", "--quiet"]) == 2
    assert "unknown --llm 'gpt-17'" in capsys.readouterr().err


def test_real_local_model_profiles_three_items_in_one_batch(tmp_path: Path) -> None:
    from tests.rerank.llm_fixtures import require_local_model

    require_local_model("qwen2.5-0.5b")
    from llmcf.rerank.clients import LlamaCppClient
    from llmcf.rerank.enrich import enrich

    ds = catalog_dataset(["Star Wars (1977)", "Toy Story (1995)", "Fargo (1996)"])
    client = LlamaCppClient("qwen2.5-0.5b", n_threads=1, n_ctx=2048)
    try:
        result = enrich(ds, client, tmp_path, batch_size=3, max_tokens=24, progress=False)
        assert client.stats["decodes"] <= 24  # the three replies grew together
    finally:
        client.close()
    assert result.counts["generated"] == 3
    records = list(read_profiles(tmp_path).values())
    assert len(records) == 3 and all(r.raw.startswith("What it is:") for r in records)
    assert all(len(r.profile) > len("What it is: .") for r in records)
    assert all(r.model == "llama.cpp:qwen2.5-0.5b" for r in records)
