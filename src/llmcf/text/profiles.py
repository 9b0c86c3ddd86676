"""LLM-written item profiles on disk, and the one function that says which text an item has.

``llmcf enrich`` (:mod:`llmcf.rerank.enrich`) asks a language model, once per item, for a
short structured profile of the item from its catalog text (what it is, who it is for, key
attributes). This module owns the folder it writes and reads it back; everything that embeds
or compares item text asks :func:`item_texts` (or :func:`item_text_source`) for it.

Folder layout (``DIR`` = ``llmcf enrich --out``)::

    profiles.jsonl   append-only, one JSON object per profiled text:
                     {"model": "llama.cpp:qwen2.5-0.5b", "prompt": "profile-v1",
                      "text_sha": "<sha256 of the catalog text>", "item_id": "...",
                      "profile": "What it is: ... Who it is for: ... Key attributes: ...",
                      "raw": "<the model's reply>", "structured": true}
    manifest.json    {"format": 1, "model": ..., "prompt_version": ..., "data": ...,
                      "n_items": ..., "catalog_digest": ..., "counts": {...}, "complete": ...}

A profile is keyed by (model, prompt version, sha256 of the item's catalog text), so an item
whose catalog text did not change is never profiled twice, and two items with the same text
share one. The JSONL file is flushed and fsync'ed after every batch; a run killed mid-write
leaves at most one partial last line, which :func:`read_profiles` ignores and
:func:`open_for_append` cuts off before appending.

Item-text modes (:data:`ITEM_TEXT_MODES`):

``catalog``  the rendered catalog text (:func:`llmcf.text.render.render_item_texts`);
``profile``  the item's profile (``""`` for an item without catalog text, as for catalog);
``both``     ``"<catalog text> <profile>"``.

``profile`` and ``both`` read the profiles of the model and prompt version named in
``DIR/manifest.json``; they raise :class:`~llmcf.errors.ConfigError` naming the folder when it
has no manifest, or when some item of the catalog has no profile there (the message says
whether the profiles were made for another catalog or the run that wrote them stopped early,
and the command that completes them).
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from llmcf.errors import ConfigError

if TYPE_CHECKING:
    from llmcf.data.dataset import Dataset

__all__ = [
    "ITEM_TEXT_MODES",
    "MANIFEST",
    "PROFILES",
    "ItemTexts",
    "ProfileRecord",
    "catalog_digest",
    "default_profiles_dir",
    "item_text_source",
    "item_texts",
    "open_for_append",
    "profile_key",
    "read_manifest",
    "read_profiles",
    "text_sha",
    "write_manifest",
]

ITEM_TEXT_MODES = ("catalog", "profile", "both")
PROFILES = "profiles.jsonl"
MANIFEST = "manifest.json"
FORMAT = 1


def text_sha(text: str) -> str:
    """sha256 hex digest of the UTF-8 text (the catalog-text part of a profile's key)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def profile_key(model: str, prompt_version: str, catalog_text_sha: str) -> tuple[str, str, str]:
    """The cache key of a profile: (model id, prompt version, catalog text sha256)."""
    return (model, prompt_version, catalog_text_sha)


def catalog_digest(item_ids: list[str], texts: list[str]) -> str:
    """sha256 over the (item id, catalog text) pairs in item-index order: which catalog a
    profile folder was made for."""
    digest = hashlib.sha256()
    for item_id, text in zip(item_ids, texts, strict=True):
        digest.update(f"{item_id}\x00{text_sha(text)}\n".encode())
    return digest.hexdigest()


def default_profiles_dir(data: str) -> Path:
    """Where ``llmcf enrich`` writes and ``--item-text profile`` reads by default:
    ``$LLMCF_CACHE_DIR/profiles/<name of --data>``."""
    from llmcf.settings import cache_dir

    name = Path(str(data).rstrip("/")).name or "data"
    return cache_dir() / "profiles" / name


@dataclass(frozen=True)
class ProfileRecord:
    """One line of ``profiles.jsonl``."""

    model: str
    prompt: str
    text_sha: str
    item_id: str
    profile: str
    raw: str = ""
    structured: bool = True

    @property
    def key(self) -> tuple[str, str, str]:
        return profile_key(self.model, self.prompt, self.text_sha)

    def to_json(self) -> str:
        return json.dumps(
            {
                "model": self.model,
                "prompt": self.prompt,
                "text_sha": self.text_sha,
                "item_id": self.item_id,
                "profile": self.profile,
                "raw": self.raw,
                "structured": self.structured,
            },
            ensure_ascii=False,
        )

    @classmethod
    def from_json(cls, data: Any) -> ProfileRecord:
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        values = {}
        for name in ("model", "prompt", "text_sha", "item_id", "profile"):
            value = data.get(name)
            if not isinstance(value, str):
                raise ValueError(f"field {name!r} is not a string")
            values[name] = value
        return cls(
            **values,
            raw=str(data.get("raw", "")),
            structured=bool(data.get("structured", True)),
        )


def _lines(path: Path) -> Iterator[tuple[int, bytes, bool]]:
    """(line number, bytes, ends with a newline) of every line of ``path``."""
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            yield number, line, line.endswith(b"\n")


def read_profiles(folder: str | Path) -> dict[tuple[str, str, str], ProfileRecord]:
    """Every profile in ``folder/profiles.jsonl`` by key (a later line wins).

    A last line without its newline (a run killed mid-write) is ignored silently; any other
    line that is not a valid record is skipped with a warning naming the file and line.
    A missing file gives ``{}``.
    """
    path = Path(folder) / PROFILES
    records: dict[tuple[str, str, str], ProfileRecord] = {}
    if not path.exists():
        return records
    for number, line, complete in _lines(path):
        try:
            record = ProfileRecord.from_json(json.loads(line.decode("utf-8")))
        except (ValueError, UnicodeDecodeError) as exc:
            if complete:
                warnings.warn(
                    f"{path}:{number}: not a profile record ({exc}); skipped",
                    stacklevel=2,
                )
            continue
        records[record.key] = record
    return records


def open_for_append(folder: str | Path) -> IO[str]:
    """``folder/profiles.jsonl`` opened for appending, after cutting off a partial last line
    (what a run killed mid-write leaves). The caller writes whole lines and calls
    :func:`sync` after each batch."""
    path = Path(folder) / PROFILES
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        size = path.stat().st_size
        if size:
            with path.open("rb+") as handle:
                handle.seek(max(0, size - 1))
                if handle.read(1) != b"\n":
                    handle.seek(0)
                    data = handle.read()
                    handle.truncate(data.rfind(b"\n") + 1)
    return path.open("a", encoding="utf-8")


def sync(handle: IO[str]) -> None:
    """Flush ``handle`` to disk (a batch survives ``kill -9`` and power loss)."""
    handle.flush()
    os.fsync(handle.fileno())


def read_manifest(folder: str | Path) -> dict[str, Any]:
    """``folder/manifest.json``; :class:`ConfigError` naming the folder when it is missing or
    unreadable."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise ConfigError(
            f"no item profiles in {folder} (no {MANIFEST}); write them with "
            f"`llmcf enrich --data DATA --llm MODEL --out {folder}`"
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: unreadable profile manifest ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ConfigError(f"{path}: not a profile manifest of format {FORMAT}")
    for name in ("model", "prompt_version"):
        if not isinstance(manifest.get(name), str):
            raise ConfigError(f"{path}: field {name!r} is missing or not a string")
    return manifest


def write_manifest(folder: str | Path, manifest: dict[str, Any]) -> None:
    """Write ``folder/manifest.json`` atomically (temporary file, then rename)."""
    path = Path(folder) / MANIFEST
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(json.dumps({"format": FORMAT, **manifest}, indent=1, sort_keys=True))
    os.replace(tmp, path)


@dataclass(frozen=True)
class ItemTexts:
    """The texts of a catalog's items in one mode, with where they came from.

    ``texts``: one string per item index. ``version``: the embedding-cache version of these
    texts (the render template's, plus the mode). ``provenance``: ``{"mode": ...}`` for
    catalog text; with profiles also the folder, model, prompt version and ``digest`` (sha256
    of the profile texts used, in item order), which a fitted model saves in its manifest.
    """

    mode: str
    texts: list[str]
    version: str
    provenance: dict[str, Any] = field(default_factory=dict)


def _item_ids(dataset: Dataset) -> list[str]:
    return [str(v) for v in dataset.items.ids.tolist()]


def item_text_source(
    dataset: Dataset,
    mode: str = "catalog",
    profiles_dir: str | Path | None = None,
    *,
    template: str = "auto",
    max_chars: int = 512,
) -> ItemTexts:
    """The item texts of ``dataset`` in ``mode`` (see the module docstring), with provenance.

    Raises :class:`ConfigError` for an unknown mode, a catalog without text, ``profile`` /
    ``both`` without ``profiles_dir``, a folder without profiles, or an item of the catalog
    without a profile there.
    """
    from llmcf.text.render import render_item_texts, template_version

    if mode not in ITEM_TEXT_MODES:
        raise ConfigError(f"unknown item text mode {mode!r}; valid: {', '.join(ITEM_TEXT_MODES)}")
    catalog = render_item_texts(dataset, template, max_chars)
    version = template_version(dataset.item_catalog.fields, template)
    if mode == "catalog":
        return ItemTexts(mode, catalog, version, {"mode": mode})
    if profiles_dir is None:
        raise ConfigError(
            f"item text {mode!r} needs the folder of the item profiles (--profiles DIR, "
            "written by `llmcf enrich`)"
        )
    folder = Path(profiles_dir)
    manifest = read_manifest(folder)
    model, prompt = manifest["model"], manifest["prompt_version"]
    records = read_profiles(folder)
    profiles: list[str] = []
    missing: list[int] = []
    for idx, text in enumerate(catalog):
        if not text:
            profiles.append("")
            continue
        record = records.get(profile_key(model, prompt, text_sha(text)))
        if record is None:
            missing.append(idx)
            profiles.append("")
        else:
            profiles.append(record.profile)
    if missing:
        ids = _item_ids(dataset)
        example = ids[missing[0]] if missing[0] < len(ids) else str(missing[0])
        data = getattr(dataset, "name", "DATA")
        head = (
            f"item profiles in {folder} ({model}, {prompt}) cover "
            f"{len(catalog) - len(missing)} of the {len(catalog)} items of {data!r}; "
            f"{len(missing)} have none (e.g. item {example!r}): "
        )
        same = manifest.get("catalog_digest") == catalog_digest(ids, catalog)
        if not same:
            raise ConfigError(
                head + f"they were made for another catalog ({manifest.get('data')!r}, "
                f"{manifest.get('n_items')} items); write profiles for this one with "
                f"`llmcf enrich --data DATA --llm {manifest.get('llm', 'MODEL')} --out DIR`"
            )
        raise ConfigError(
            head + "the enrich run that writes them has not finished; resume it with "
            f"`llmcf enrich --data {manifest.get('data', 'DATA')} "
            f"--llm {manifest.get('llm', 'MODEL')} --out {folder}`"
        )
    if mode == "profile":
        texts = profiles
    else:
        texts = [" ".join(t for t in pair if t) for pair in zip(catalog, profiles, strict=True)]
    digest = hashlib.sha256(f"{model}\x00{prompt}\n".encode())
    for text in profiles:
        digest.update(text_sha(text).encode() + b"\n")
    provenance = {
        "mode": mode,
        "profiles": str(folder),
        "model": model,
        "prompt_version": prompt,
        "digest": digest.hexdigest(),
    }
    return ItemTexts(mode, texts, f"{version}+{mode}:{prompt}", provenance)


def item_texts(
    dataset: Dataset,
    mode: str = "catalog",
    profiles_dir: str | Path | None = None,
    *,
    template: str = "auto",
    max_chars: int = 512,
) -> list[str]:
    """One text per item index of ``dataset`` in ``mode`` (``"catalog"``, ``"profile"``,
    ``"both"``); see :func:`item_text_source` for the errors."""
    return item_text_source(
        dataset, mode, profiles_dir, template=template, max_chars=max_chars
    ).texts
