"""download_movielens: unpacking, caching, checksum and zip-slip, all offline via file:// URLs."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from llmcf.data.download import MOVIELENS_ARCHIVES, download_movielens, safe_extract
from llmcf.errors import DataError


def _zip(path: Path, members: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in members.items():
            zf.writestr(name, text)
    return path


def test_registry_has_official_urls() -> None:
    for name in ("ml-100k", "ml-1m", "ml-10m", "ml-20m", "ml-25m", "ml-32m", "ml-latest-small"):
        entry = MOVIELENS_ARCHIVES[name]
        assert entry.url == f"https://files.grouplens.org/datasets/movielens/{name}.zip"


def test_download_unpacks_and_caches(tmp_path: Path) -> None:
    archive = _zip(
        tmp_path / "ml-100k.zip", {"ml-100k/u.data": "1\t1\t5\t1\n", "ml-100k/README": "x"}
    )
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    cache = tmp_path / "cache"
    folder = download_movielens("ml-100k", cache_dir=cache, url=archive.as_uri(), sha256=digest)
    assert folder == cache / "ml-100k"
    assert (folder / "u.data").read_text() == "1\t1\t5\t1\n"
    # second call does nothing: even a vanished source is not touched
    archive.unlink()
    assert download_movielens("ml-100k", cache_dir=cache, url=archive.as_uri()) == folder
    assert not [p for p in cache.iterdir() if p.name.startswith(".")]  # temp folders cleaned


def test_download_without_top_folder(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "flat.zip", {"ratings.csv": "userId,movieId,rating,timestamp\n"})
    folder = download_movielens("custom", cache_dir=tmp_path / "c", url=archive.as_uri())
    assert (folder / "ratings.csv").exists()


def test_checksum_mismatch(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "a.zip", {"ml-100k/u.data": "1\t1\t5\t1\n"})
    with pytest.raises(DataError, match="sha256 mismatch"):
        download_movielens(
            "ml-100k", cache_dir=tmp_path / "c", url=archive.as_uri(), sha256="0" * 64
        )
    assert not (tmp_path / "c" / "ml-100k").exists()


def test_zip_slip_rejected(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "evil.zip", {"ml-100k/u.data": "x", "../escaped.txt": "owned"})
    with pytest.raises(DataError, match="unsafe path"):
        download_movielens("ml-100k", cache_dir=tmp_path / "c", url=archive.as_uri())
    assert not (tmp_path / "escaped.txt").exists()
    assert not (tmp_path / "c" / "escaped.txt").exists()


def test_absolute_member_rejected(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "abs.zip", {"/etc/evil": "x"})
    with pytest.raises(DataError, match="unsafe path"):
        safe_extract(archive, tmp_path / "out")


def test_bad_zip_and_unknown_name_and_missing_url(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.zip"
    bogus.write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a valid zip"):
        download_movielens("ml-1m", cache_dir=tmp_path / "c", url=bogus.as_uri())
    with pytest.raises(DataError, match="unknown MovieLens archive"):
        download_movielens("ml-3m", cache_dir=tmp_path / "c")
    with pytest.raises(DataError, match="download failed"):
        download_movielens("ml-1m", cache_dir=tmp_path / "c", url=(tmp_path / "nope.zip").as_uri())


def test_frozen_releases_have_the_published_md5_pinned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llmcf.data.download import Archive

    for name in ("ml-100k", "ml-1m", "ml-10m", "ml-20m", "ml-25m"):
        assert len(MOVIELENS_ARCHIVES[name].md5 or "") == 32
    archive = _zip(tmp_path / "ml-100k.zip", {"ml-100k/u.data": "1\t1\t5\t1\n"})
    good = hashlib.md5(archive.read_bytes(), usedforsecurity=False).hexdigest()
    monkeypatch.setitem(
        MOVIELENS_ARCHIVES, "ml-100k", Archive(archive.as_uri(), None, "ml-100k", "f" * 32)
    )
    with pytest.raises(DataError, match="md5 mismatch with GroupLens"):
        download_movielens("ml-100k", cache_dir=tmp_path / "c")
    monkeypatch.setitem(
        MOVIELENS_ARCHIVES, "ml-100k", Archive(archive.as_uri(), None, "ml-100k", good)
    )
    assert (download_movielens("ml-100k", cache_dir=tmp_path / "c") / "u.data").exists()
