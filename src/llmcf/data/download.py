"""Download, verify and unpack the official MovieLens archives (GroupLens).

``download_movielens("ml-100k")`` fetches ``https://files.grouplens.org/datasets/movielens/ml-100k.zip``
into ``settings.data_dir()`` (where ``--data NAME`` looks; or ``cache_dir``), checks its sha256, unzips it
safely and returns the folder of the data set (e.g. ``~/.cache/llmcf/data/ml-100k``). A second call
finds the completed folder and does nothing.

Checksums: GroupLens publishes MD5 sums next to the archives (not sha256); the registry pins
those published MD5s for the frozen releases (100K, 1M, 10M, 20M, 25M) and every download
of them is checked. ``ml-latest-small`` and ``ml-32m`` have no pinned digest (the "latest"
archive changes between releases). The sha256 of every archive is computed and recorded in
the cache marker (``.llmcf-complete``); pass ``sha256=`` to pin one yourself.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from llmcf import settings
from llmcf.errors import DataError

__all__ = ["MOVIELENS_ARCHIVES", "Archive", "download_movielens", "safe_extract"]

GROUPLENS_BASE_URL = "https://files.grouplens.org/datasets/movielens/"
_MARKER = ".llmcf-complete"


@dataclass(frozen=True)
class Archive:
    """An official archive: where it is, its sha256 if known, and its top folder inside the zip."""

    url: str
    sha256: str | None
    folder: str
    md5: str | None = None  # as GroupLens publishes it


MOVIELENS_ARCHIVES: dict[str, Archive] = {
    "ml-100k": Archive(
        GROUPLENS_BASE_URL + "ml-100k.zip", None, "ml-100k", "0e33842e24a9c977be4e0107933c0723"
    ),
    "ml-1m": Archive(
        GROUPLENS_BASE_URL + "ml-1m.zip", None, "ml-1m", "c4d9eecfca2ab87c1945afe126590906"
    ),
    "ml-10m": Archive(
        GROUPLENS_BASE_URL + "ml-10m.zip", None, "ml-10M100K", "ce571fd55effeba0271552578f2648bd"
    ),
    "ml-20m": Archive(
        GROUPLENS_BASE_URL + "ml-20m.zip", None, "ml-20m", "cd245b17a1ae2cc31bb14903e1204af3"
    ),
    "ml-25m": Archive(
        GROUPLENS_BASE_URL + "ml-25m.zip", None, "ml-25m", "6b51fb2759a8657d3bfcbfc42b592ada"
    ),
    "ml-32m": Archive(GROUPLENS_BASE_URL + "ml-32m.zip", None, "ml-32m"),
    "ml-latest-small": Archive(GROUPLENS_BASE_URL + "ml-latest-small.zip", None, "ml-latest-small"),
}


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def safe_extract(archive: Path, dest: Path) -> None:
    """Extract a zip into ``dest``, refusing members that would land outside it.

    Absolute names, ``..`` components, drive letters and symbolic links are rejected before
    anything is written (zip-slip).
    """
    dest = dest.resolve()
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile as exc:
        raise DataError(f"not a valid zip archive: {exc}", path=str(archive)) from None
    with zf:
        for member in zf.infolist():
            name = member.filename.replace("\\", "/")
            parts = PurePosixPath(name).parts
            is_link = (member.external_attr >> 16) & 0o170000 == 0o120000
            target = (dest / name).resolve()
            if (
                name.startswith("/")
                or ".." in parts
                or (parts and ":" in parts[0])
                or is_link
                or not target.is_relative_to(dest)
            ):
                raise DataError(
                    "unsafe path in archive (would escape the target folder)",
                    path=str(archive),
                    value=member.filename,
                )
        zf.extractall(dest)


def download_movielens(
    name: str,
    cache_dir: str | Path | None = None,
    url: str | None = None,
    sha256: str | None = None,
) -> Path:
    """Fetch, verify and unpack an official MovieLens archive; return the data set's folder.

    Args:
        name: a key of :data:`MOVIELENS_ARCHIVES` (``ml-100k``, ``ml-1m``, ``ml-10m``,
            ``ml-20m``, ``ml-25m``, ``ml-32m``, ``ml-latest-small``), or any name with ``url``.
        cache_dir: where archives are unpacked; default ``settings.data_dir()``, the folder ``--data NAME`` reads.
        url: override the download URL (mirrors, ``file://`` in tests).
        sha256: expected digest of the archive; default the registry's (``None`` = not checked).

    Returns:
        ``cache_dir / name``, holding the archive's files (its single top folder is unwrapped).

    Raises:
        DataError: unknown name, download failure, checksum mismatch, bad or unsafe archive.
    """
    entry = MOVIELENS_ARCHIVES.get(name)
    if entry is None and url is None:
        raise DataError(
            f"unknown MovieLens archive; known: {', '.join(MOVIELENS_ARCHIVES)} (or pass url=)",
            value=name,
        )
    source = url or (entry.url if entry else "")
    expected = (sha256 or (entry.sha256 if entry else None) or "").lower() or None
    root = Path(cache_dir) if cache_dir is not None else settings.data_dir()
    target = root / name
    if (target / _MARKER).exists():
        return target
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root, prefix=f".{name}-") as tmp:
        archive = Path(tmp) / "archive.zip"
        try:
            with urllib.request.urlopen(source) as response, archive.open("wb") as out:
                shutil.copyfileobj(response, out, length=1 << 20)
        except (OSError, ValueError) as exc:
            raise DataError(f"download failed: {exc}", path=source) from None
        actual = _sha256_of(archive)
        if expected is not None and actual != expected:
            raise DataError(
                f"sha256 mismatch: expected {expected}, got {actual}", path=source, value=name
            )
        md5 = entry.md5 if entry is not None and url is None and sha256 is None else None
        if md5 is not None:
            got = hashlib.md5(archive.read_bytes(), usedforsecurity=False).hexdigest()
            if got != md5:
                raise DataError(
                    f"md5 mismatch with GroupLens' published {md5}: got {got}",
                    path=source,
                    value=name,
                )
        unpacked = Path(tmp) / "unpacked"
        unpacked.mkdir()
        safe_extract(archive, unpacked)
        entries = [p for p in unpacked.iterdir() if not p.name.startswith("__MACOSX")]
        content = entries[0] if len(entries) == 1 and entries[0].is_dir() else unpacked
        (content / _MARKER).write_text(f"{source}\nsha256 {actual}\n", encoding="utf-8")
        if target.exists():  # an earlier, interrupted attempt
            shutil.rmtree(target)
        content.rename(target)
    return target
