"""Saving and loading models without pickle: the one artifact format.

A saved model is a folder with ``manifest.json`` and one arrays file ``arrays-<digest>.npz``
(read with ``allow_pickle=False``). The manifest holds the format version, the class, its
config, the ranking config, the learned scalar state (including the event weights and the
events cutoff that fold-in needs), the vocabulary digests, the name of the arrays file and
each array's sha256: everything that changes the model's outputs.

Writing is atomic: the arrays go to a new file first, then the manifest that names it
replaces the old manifest with one ``os.replace``; files of earlier saves are removed
afterwards. A crash at any point leaves either the old model or the new one, whole.
Loading checks the format, every checksum and the structure (class known, config a mapping,
arrays consistent with each other), so a damaged or hand-edited folder gives a clear
:class:`ModelLoadError`, never a wrong model.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from llmcf import registry
from llmcf._version import __version__
from llmcf.data.vocab import Vocabulary
from llmcf.errors import ConfigError, LlmcfError, ModelLoadError

FORMAT_VERSION = 2
MANIFEST = "manifest.json"
ARRAYS_PREFIX = "arrays-"
#: files an older llmcf wrote beside the manifest; a save removes them (their content is in
#: the manifest now)
STALE_FILES = ("arrays.npz", "events_cutoff.json")


def digest(a: np.ndarray) -> str:
    """sha256 of an array's dtype, shape and bytes."""
    h = hashlib.sha256()
    h.update(str(a.dtype).encode() + str(a.shape).encode())
    h.update(memoryview(np.ascontiguousarray(a)).cast("B"))  # type: ignore[arg-type]  # no copy
    return h.hexdigest()


def load_checked_arrays(apath: Path, expected: dict[str, str]) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` file (no pickle), each checked against its manifest sha256.

    The member names (and their sizes) are checked before anything is decompressed. Raises
    :class:`ModelLoadError` naming the file when it is missing, unreadable, holds other
    arrays than ``expected`` lists, or an array fails its checksum.
    """
    if not isinstance(expected, dict):
        raise ModelLoadError(f"{apath}: the manifest's array list is not a mapping")
    try:
        with zipfile.ZipFile(apath) as zf:
            infos = zf.infolist()
    except FileNotFoundError:
        raise ModelLoadError(f"{apath}: missing") from None
    except (OSError, zipfile.BadZipFile, EOFError, NotImplementedError, ValueError) as exc:
        raise ModelLoadError(f"{apath}: corrupted or unreadable ({exc})") from None
    names = {info.filename.removesuffix(".npy") for info in infos}
    if names != set(expected):
        raise ModelLoadError(
            f"{apath}: arrays {sorted(names)} do not match the manifest {sorted(expected)}"
        )
    size = apath.stat().st_size
    for info in infos:
        # save_model stores arrays uncompressed: a compressed member is not ours (and could
        # inflate without bound), and a stored one cannot be larger than the file
        if info.compress_type != zipfile.ZIP_STORED or info.file_size > size:
            raise ModelLoadError(
                f"{apath}: member {info.filename!r} is compressed or claims {info.file_size} "
                f"bytes in a {size}-byte file; llmcf writes arrays uncompressed (refit and save)"
            )
    try:
        with np.load(apath, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError, NotImplementedError) as exc:
        raise ModelLoadError(f"{apath}: corrupted or unreadable ({exc})") from None
    for name, a in arrays.items():
        if digest(a) != expected[name]:
            raise ModelLoadError(f"{apath}: array {name!r} fails its checksum (corrupted file)")
    return arrays


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_model(model: Any, path: str | os.PathLike[str]) -> Path:
    """Write ``model`` to the folder ``path`` (created if needed), atomically; return it."""
    model._check_fitted()
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = dict(model._arrays())
    arrays["vocab_users"] = model.users_.ids
    arrays["vocab_items"] = model.items_.ids
    for name, a in arrays.items():
        if a.dtype == object:
            raise TypeError(
                f"array {name!r} has dtype object, which cannot be saved without pickle"
            )
    digests = {name: digest(a) for name, a in sorted(arrays.items())}
    tag = hashlib.sha256(json.dumps(digests, sort_keys=True).encode()).hexdigest()[:16]
    arrays_name = f"{ARRAYS_PREFIX}{tag}.npz"
    manifest = {
        "format_version": FORMAT_VERSION,
        "class": type(model).__name__,
        "model": getattr(model, "name", type(model).__name__),
        "llmcf_version": __version__,
        "config": model.get_config(),
        "ranking": model.ranking.as_dict(),
        "state": model._state(),
        "vocabulary": {"users": model.users_.digest(), "items": model.items_.digest()},
        "arrays_file": arrays_name,
        "arrays": digests,
        "artifact": tag,
    }
    text = json.dumps(manifest, indent=2, sort_keys=True, default=float)
    tmp = folder / (arrays_name + ".tmp")
    with open(tmp, "wb") as fh:
        np.savez(fh, **arrays)  # type: ignore[arg-type]
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, folder / arrays_name)
    mtmp = folder / (MANIFEST + ".tmp")
    with open(mtmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(mtmp, folder / MANIFEST)
    _fsync_dir(folder)
    for old in folder.glob(f"{ARRAYS_PREFIX}*.npz"):
        if old.name != arrays_name:
            old.unlink(missing_ok=True)
    for name in STALE_FILES:
        (folder / name).unlink(missing_ok=True)
    return folder


def read_manifest(folder: Path) -> dict[str, Any]:
    """The checked manifest of a model folder (format and field types)."""
    mpath = folder / MANIFEST
    if not mpath.is_file():
        raise ModelLoadError(f"{folder}: no {MANIFEST}; is this a folder written by `llmcf fit`?")
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # JSONDecodeError too
        raise ModelLoadError(f"{mpath}: corrupted manifest ({str(exc)[:200]})") from None
    if not isinstance(manifest, dict):
        raise ModelLoadError(f"{mpath}: the manifest is not a JSON object")
    if manifest.get("format") == "llmcf.neighbor-artifact":
        raise ModelLoadError(
            f"{folder}: holds a neighbour artifact (llmcf.backends build_neighbors), not a "
            "model; `llmcf fit` writes servable model folders"
        )
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise ModelLoadError(
            f"{mpath}: model format {version!r} written by llmcf {manifest.get('llmcf_version')!r}; "
            f"this llmcf ({__version__}) reads format {FORMAT_VERSION}. Refit the model."
        )
    for key, kind in (
        ("class", str),
        ("config", dict),
        ("ranking", dict),
        ("state", dict),
        ("vocabulary", dict),
        ("arrays", dict),
        ("arrays_file", str),
    ):
        if not isinstance(manifest.get(key), kind):
            raise ModelLoadError(
                f"{mpath}: field {key!r} must be a {kind.__name__}, got {manifest.get(key)!r:.80}"
            )
    vocab = manifest["vocabulary"]
    if not all(isinstance(vocab.get(k), str) for k in ("users", "items")):
        raise ModelLoadError(f"{mpath}: field 'vocabulary' needs 'users' and 'items' digests")
    name = manifest["arrays_file"]
    if Path(name).name != name or not name.startswith(ARRAYS_PREFIX):
        raise ModelLoadError(f"{mpath}: bad arrays file name {name!r}")
    return manifest


def read_model(path: str | os.PathLike[str]) -> Any:
    """Load a model saved by :func:`save_model`; :class:`ModelLoadError` on any problem.

    The class must be registered (:mod:`llmcf.models` imports every model module;
    :func:`llmcf.models.load_model` is the public entry point)."""
    folder = Path(path)
    manifest = read_manifest(folder)
    mpath = folder / MANIFEST
    cls = registry.by_class(manifest["class"])
    if cls is None:
        raise ModelLoadError(f"{mpath}: unknown model class {manifest['class']!r}")
    arrays = load_checked_arrays(folder / manifest["arrays_file"], manifest["arrays"])
    for key in ("vocab_users", "vocab_items"):
        if key not in arrays:
            raise ModelLoadError(f"{mpath}: no {key} array")
    try:
        users = Vocabulary(arrays.pop("vocab_users"), name="user")
        items = Vocabulary(arrays.pop("vocab_items"), name="item")
    except (LlmcfError, ValueError, TypeError) as exc:
        raise ModelLoadError(f"{mpath}: bad vocabulary ({exc})") from None
    if (
        users.digest() != manifest["vocabulary"]["users"]
        or items.digest() != manifest["vocabulary"]["items"]
    ):
        raise ModelLoadError(f"{mpath}: vocabulary digest mismatch")
    try:
        config = manifest["config"]
        model = cls(**config) if config else cls()
        model.users_, model.items_ = users, items
        model._restore(arrays, manifest["state"])
        model.set_ranking(**manifest["ranking"])
    except (ConfigError, ModelLoadError) as exc:
        raise ModelLoadError(f"{mpath}: {exc}") from None
    except (TypeError, ValueError, KeyError, AttributeError, IndexError) as exc:
        raise ModelLoadError(
            f"{mpath}: the manifest and arrays do not make a valid {manifest['class']} "
            f"({type(exc).__name__}: {exc})"
        ) from None
    return model


def model_digest(path: str | os.PathLike[str]) -> str:
    """The artifact tag of a saved model (changes whenever its arrays change)."""
    return str(read_manifest(Path(path)).get("artifact", ""))


def arrays_path(path: str | os.PathLike[str]) -> Path:
    """The arrays file a model folder's manifest names."""
    folder = Path(path)
    return folder / read_manifest(folder)["arrays_file"]
