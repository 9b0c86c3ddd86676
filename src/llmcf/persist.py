"""Saving and loading models without pickle.

A saved model is a folder with ``manifest.json`` (format version, class, config, package
version, vocabulary digests, per-array sha256) and ``arrays.npz`` (loaded with
``allow_pickle=False``). Loading checks every checksum and the format version, so a corrupted
file or a model from an incompatible version gives a clear :class:`ModelLoadError`.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from llmcf.data.vocab import Vocabulary
from llmcf.errors import ModelLoadError

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
ARRAYS = "arrays.npz"


def _registry() -> dict[str, type]:
    from llmcf.cf.baselines import BaselineOnly, GlobalMean
    from llmcf.cf.knn import ItemKNN, UserKNN

    classes: dict[str, type] = {c.__name__: c for c in (UserKNN, ItemKNN, BaselineOnly, GlobalMean)}
    try:  # text-fused models register themselves when their module is importable
        from llmcf.text import fused

        classes.update(fused.MODEL_CLASSES)
    except ImportError:
        pass
    return classes


def _digest(a: np.ndarray) -> str:
    h = hashlib.sha256()
    h.update(str(a.dtype).encode() + str(a.shape).encode())
    h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def load_checked_arrays(apath: Path, expected: dict[str, str]) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` file (no pickle), each checked against its manifest sha256.

    Raises :class:`ModelLoadError` naming the file when it is missing, unreadable, holds other
    arrays than ``expected`` lists, or an array fails its checksum.
    """
    try:
        with np.load(apath, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except FileNotFoundError:
        raise ModelLoadError(f"{apath}: missing") from None
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise ModelLoadError(f"{apath}: corrupted or unreadable ({exc})") from None
    if set(expected) != set(arrays):
        raise ModelLoadError(
            f"{apath}: arrays {sorted(arrays)} do not match the manifest {sorted(expected)}"
        )
    for name, a in arrays.items():
        if _digest(a) != expected[name]:
            raise ModelLoadError(f"{apath}: array {name!r} fails its checksum (corrupted file)")
    return arrays


def save_model(model: Any, path: str | os.PathLike[str]) -> Path:
    """Write ``model`` to the folder ``path`` (created if needed) and return it."""
    from llmcf import __version__

    model._check_fitted()
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = dict(model._arrays()) if hasattr(model, "_arrays") else {}
    arrays["vocab_users"] = model.users_.ids
    arrays["vocab_items"] = model.items_.ids
    for name, a in arrays.items():
        if a.dtype == object:
            raise TypeError(
                f"array {name!r} has dtype object, which cannot be saved without pickle"
            )
    manifest = {
        "format_version": FORMAT_VERSION,
        "class": type(model).__name__,
        "llmcf_version": __version__,
        "config": model.get_config(),
        "state": model._state() if hasattr(model, "_state") else {},
        "vocabulary": {"users": model.users_.digest(), "items": model.items_.digest()},
        "arrays": {name: _digest(a) for name, a in arrays.items()},
    }
    tmp = folder / (ARRAYS + ".tmp")
    with open(tmp, "wb") as fh:
        np.savez(fh, **arrays)  # type: ignore[arg-type]
    os.replace(tmp, folder / ARRAYS)
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True, default=float))
    return folder


def load_model(path: str | os.PathLike[str]) -> Any:
    """Load a model saved by :func:`save_model`; raises :class:`ModelLoadError` on any problem."""
    from llmcf import __version__

    folder = Path(path)
    mpath = folder / MANIFEST
    if not mpath.is_file():
        raise ModelLoadError(f"{folder}: no {MANIFEST}; is this a folder written by `llmcf fit`?")
    try:
        manifest = json.loads(mpath.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelLoadError(f"{mpath}: corrupted manifest ({exc})") from None
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise ModelLoadError(
            f"{mpath}: model format {version!r} written by llmcf {manifest.get('llmcf_version')!r}; "
            f"this llmcf ({__version__}) reads format {FORMAT_VERSION}. Refit the model."
        )
    cls = _registry().get(manifest.get("class", ""))
    if cls is None:
        raise ModelLoadError(f"{mpath}: unknown model class {manifest.get('class')!r}")
    apath = folder / ARRAYS
    arrays = load_checked_arrays(apath, manifest.get("arrays", {}))
    users = Vocabulary(arrays.pop("vocab_users"), name="user")
    items = Vocabulary(arrays.pop("vocab_items"), name="item")
    if (
        users.digest() != manifest["vocabulary"]["users"]
        or items.digest() != manifest["vocabulary"]["items"]
    ):
        raise ModelLoadError(f"{mpath}: vocabulary digest mismatch")
    config = manifest.get("config") or {}
    model = cls(**config) if config else cls()
    model.users_, model.items_ = users, items
    model._restore(arrays, manifest.get("state", {}))
    return model
