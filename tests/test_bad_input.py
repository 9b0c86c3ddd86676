"""Bad input, one parametrised case each, every one with a CLEAR outcome.

* data files (Python API): a :class:`~llmcf.errors.DataError` whose message names the file and
  the line, column or value; the few valid-but-odd files must load;
* the command line: ``main`` answers 2 with ``llmcf <cmd>: error: ...`` naming the value (an
  argparse refusal exits with ``SystemExit(2)`` and the same prefix, which counts the same);
* model folders (:func:`llmcf.models.load_model`): a :class:`~llmcf.errors.ModelLoadError`
  naming the file, within bounded time and memory;
* options (Python API): a :class:`~llmcf.errors.ConfigError`;
* the service: a 4xx JSON body naming the problem, never a 5xx.

Every file is made in ``tmp_path``; the two ``real-ml100k-*`` cases read MovieLens 100K from
``$LLMCF_DATA_DIR/ml-100k`` and are skipped without it. A defect this suite finds is fixed
with the case that found it.
"""

from __future__ import annotations

import gzip
import io
import json
import shutil
import time
import tracemalloc
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from llmcf import ItemKNN, UserKNN
from llmcf.cli import main
from llmcf.data.dataset import Dataset
from llmcf.data.loaders import load_amazon2018, load_movielens, load_table
from llmcf.data.vocab import Vocabulary
from llmcf.errors import ConfigError, DataError, ModelLoadError
from llmcf.models import load_model, make_model
from llmcf.persist import digest, save_model

API_KEY = "bad-input-api-key-0123456789"
BODY_LIMIT = 200_000  # the service's max_body_bytes in these cases (1,000 events fit)


# ====================================================================== shared inputs
def _ratings(seed: int = 0, n_users: int = 30, n_items: int = 20, n: int = 300) -> Dataset:
    rng = np.random.default_rng(seed)
    pairs = rng.choice(n_users * n_items, size=n, replace=False)
    users, items = pairs // n_items, pairs % n_items
    return Dataset.from_arrays(
        [f"u{u}" for u in users],
        [f"i{i}" for i in items],
        rng.integers(1, 6, size=n).astype(float),
        rating_scale=(1, 5),
        name="bad-input",
    )


@dataclass
class Inputs:
    """Files shared by the cases (read only; a case that changes one copies it first)."""

    csv: Path  # user,item,rating
    implicit_csv: Path  # user,item
    item_dir: Path  # a saved ItemKNN
    user_dir: Path  # a saved UserKNN (same data, other shapes)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Inputs:
    root = tmp_path_factory.mktemp("bad-input")
    ds = _ratings()
    users, items = ds.users.ids[ds.user_idx], ds.items.ids[ds.item_idx]
    frame = pd.DataFrame({"user": users, "item": items, "rating": ds.rating.astype(int)})
    frame.to_csv(root / "ratings.csv", index=False)
    frame[["user", "item"]].to_csv(root / "implicit.csv", index=False)
    item_dir = save_model(ItemKNN(k=5, similarity="cosine").fit(ds), root / "item-knn")
    user_dir = save_model(UserKNN(k=5, similarity="cosine").fit(ds), root / "user-knn")
    return Inputs(root / "ratings.csv", root / "implicit.csv", item_dir, user_dir)


def _write(path: Path, data: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return path


# ====================================================================== model-folder damage
Mutator = Callable[[Path, Inputs], None]


def _manifest(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "manifest.json").read_text())


def _set_manifest(folder: Path, manifest: Any) -> None:
    (folder / "manifest.json").write_text(json.dumps(manifest))


def _arrays_file(folder: Path) -> Path:
    return folder / _manifest(folder)["arrays_file"]


def model_copy(src: Path, dst: Path, mutate: Mutator, inputs: Inputs) -> Path:
    shutil.copytree(src, dst)
    mutate(dst, inputs)
    return dst


def edit_manifest(**changes: Any) -> Mutator:
    """Set (value) or remove (``...``) manifest fields."""

    def mutate(folder: Path, _: Inputs) -> None:
        manifest = _manifest(folder)
        for key, value in changes.items():
            if value is ...:
                manifest.pop(key, None)
            else:
                manifest[key] = value
        _set_manifest(folder, manifest)

    return mutate


def edit_config(**changes: Any) -> Mutator:
    def mutate(folder: Path, _: Inputs) -> None:
        manifest = _manifest(folder)
        manifest["config"].update(changes)
        _set_manifest(folder, manifest)

    return mutate


def manifest_text(text: str | bytes) -> Mutator:
    def mutate(folder: Path, _: Inputs) -> None:
        _write(folder / "manifest.json", text)

    return mutate


def truncate_arrays(keep: float) -> Mutator:
    def mutate(folder: Path, _: Inputs) -> None:
        path = _arrays_file(folder)
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * keep)])

    return mutate


def remove_arrays(folder: Path, _: Inputs) -> None:
    _arrays_file(folder).unlink()


def _member_data_offset(data: bytes, name: str) -> tuple[int, int]:
    """(offset of the stored bytes, stored size) of a zip member."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        info = zf.getinfo(name)
    start = info.header_offset
    name_len = int.from_bytes(data[start + 26 : start + 28], "little")
    extra_len = int.from_bytes(data[start + 28 : start + 30], "little")
    return start + 30 + name_len + extra_len, info.compress_size


def flip_sim_byte(folder: Path, _: Inputs) -> None:
    """One flipped byte in the middle of the stored similarity matrix."""
    path = _arrays_file(folder)
    data = bytearray(path.read_bytes())
    offset, size = _member_data_offset(bytes(data), "sim.npy")
    data[offset + size // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def patch_central_directory(field_offset: int, value: bytes | None = None) -> Mutator:
    """Change the central-directory entry of ``sim.npy``: XOR one byte at ``field_offset``
    with 0xFF, or write ``value`` there."""

    def mutate(folder: Path, _: Inputs) -> None:
        path = _arrays_file(folder)
        data = bytearray(path.read_bytes())
        at = data.find(b"PK\x01\x02")
        while at >= 0:
            name_len = int.from_bytes(data[at + 28 : at + 30], "little")
            if bytes(data[at + 46 : at + 46 + name_len]) == b"sim.npy":
                if value is None:
                    data[at + field_offset] ^= 0xFF
                else:
                    data[at + field_offset : at + field_offset + len(value)] = value
                path.write_bytes(bytes(data))
                return
            at = data.find(b"PK\x01\x02", at + 4)
        raise AssertionError("no sim.npy in the arrays file")

    return mutate


def rewrite_arrays(
    change: Callable[[dict[str, np.ndarray], Inputs], None],
    *,
    compressed: bool = False,
    fix_vocabulary: bool = False,
) -> Mutator:
    """Change the arrays and write them back under the manifest's file name with their
    checksums recomputed, so that only the structure check can object."""

    def mutate(folder: Path, inputs: Inputs) -> None:
        path = _arrays_file(folder)
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
        change(arrays, inputs)
        path.unlink()
        with open(path, "wb") as fh:
            (np.savez_compressed if compressed else np.savez)(fh, **arrays)  # type: ignore[operator]
        manifest = _manifest(folder)
        manifest["arrays"] = {name: digest(a) for name, a in arrays.items()}
        if fix_vocabulary:
            manifest["vocabulary"] = {
                "users": Vocabulary(arrays["vocab_users"]).digest(),
                "items": Vocabulary(arrays["vocab_items"]).digest(),
            }
        _set_manifest(folder, manifest)

    return mutate


def arrays_of_user_knn(folder: Path, inputs: Inputs) -> None:
    """The UserKNN's arrays file (its own, valid checksums) under the ItemKNN manifest."""
    other = _manifest(inputs.user_dir)
    _arrays_file(folder).unlink()
    shutil.copy(inputs.user_dir / other["arrays_file"], folder / other["arrays_file"])
    manifest = _manifest(folder)
    manifest["arrays_file"], manifest["arrays"] = other["arrays_file"], other["arrays"]
    _set_manifest(folder, manifest)


def zeros_200mb_compressed(folder: Path, _: Inputs) -> None:
    """``sim`` replaced by 200 MB of zeros in np.savez_compressed (~200 kB on disk)."""
    path = _arrays_file(folder)
    with np.load(path, allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    arrays["sim"] = np.zeros(25_000_000)
    path.unlink()
    np.savez_compressed(path, **arrays)  # type: ignore[arg-type]


def _pickled_rating(arrays: dict[str, np.ndarray], _: Inputs) -> None:
    arrays["rating"] = np.array([{"x": 1}] * len(arrays["rating"]), dtype=object)


def _other_user_ids(arrays: dict[str, np.ndarray], _: Inputs) -> None:
    arrays["vocab_users"] = np.array([f"x{k}" for k in range(len(arrays["vocab_users"]))])


def drop_manifest_array(folder: Path, _: Inputs) -> None:
    manifest = _manifest(folder)
    manifest["arrays"].pop("bu")
    _set_manifest(folder, manifest)


DEEP_MANIFEST = "[" * 100_000 + "]" * 100_000
BIGINT_MANIFEST = '{"format_version": ' + "9" * 5000 + "}"

# (mutator, substrings of the ModelLoadError message); "{arrays}" / "{manifest}" stand for
# the file names
MODEL_CASES = [
    pytest.param(truncate_arrays(0.5), ["{arrays}", "corrupted or unreadable"], id="truncated-arrays"),
    pytest.param(truncate_arrays(0.999), ["{arrays}", "corrupted or unreadable"], id="arrays-missing-last-bytes"),
    pytest.param(truncate_arrays(0.0), ["{arrays}", "corrupted or unreadable"], id="empty-arrays-file"),
    pytest.param(remove_arrays, ["{arrays}", "missing"], id="arrays-file-removed"),
    pytest.param(flip_sim_byte, ["{arrays}"], id="flipped-byte-in-sim"),
    pytest.param(
        rewrite_arrays(lambda a, _: a.update(sim=np.zeros((10, 10)))),
        ["{manifest}", "sim has shape (10, 10), expected (20, 20)"],
        id="sim-10x10-recomputed-checksum",
    ),
    pytest.param(arrays_of_user_knn, ["{manifest}", "ItemKNN", "shape"], id="userknn-arrays-under-itemknn-manifest"),
    pytest.param(
        rewrite_arrays(_other_user_ids),
        ["{manifest}", "vocabulary digest mismatch"],
        id="vocabulary-swapped-recomputed-checksum",
    ),
    pytest.param(rewrite_arrays(_pickled_rating), ["{arrays}", "allow_pickle"], id="pickled-object-array"),
    pytest.param(drop_manifest_array, ["{arrays}", "do not match the manifest"], id="array-missing-from-manifest"),
    pytest.param(
        patch_central_directory(24, (0xFFFFFFF0).to_bytes(4, "little")),
        ["{arrays}", "'sim.npy'", "4294967280 bytes"],
        id="zip-member-header-claims-4GiB",
    ),
    # refused from the zip header (a compressed member) or after inflating, checksum: either
    # way within the time and memory bounds of test_model_folder
    pytest.param(zeros_200mb_compressed, ["{arrays}"], id="zip-bomb-200MB-zeros-compressed"),
    pytest.param(edit_config(bogus=1), ["{manifest}", "unknown kNN option(s) ['bogus']"], id="config-unknown-key"),
    pytest.param(edit_config(k=-1), ["{manifest}", "k must be >= 1, got -1"], id="config-k-negative"),
    pytest.param(edit_manifest(format_version=1), ["{manifest}", "model format 1", "Refit"], id="format-version-1"),
    pytest.param(
        patch_central_directory(6),
        ["{arrays}"],
        id="zip-version-needed-flipped",
    ),
    pytest.param(patch_central_directory(10), ["{arrays}", "compressed"], id="zip-compression-method-flipped"),
    pytest.param(
        patch_central_directory(8),
        ["{arrays}"],
        id="zip-flag-bits-flipped",
    ),
    pytest.param(
        manifest_text(DEEP_MANIFEST),
        ["{manifest}", "corrupted manifest"],
        id="manifest-nested-100000-deep",
    ),
    pytest.param(
        manifest_text(BIGINT_MANIFEST),
        ["{manifest}", "corrupted manifest"],
        id="manifest-5000-digit-integer",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("mutate", "expected"), MODEL_CASES)
def test_model_folder(mutate: Mutator, expected: list[str], inputs: Inputs, tmp_path: Path) -> None:
    folder = model_copy(inputs.item_dir, tmp_path / "model", mutate, inputs)
    names = {
        "{arrays}": str(folder / _manifest(inputs.item_dir)["arrays_file"]),
        "{manifest}": str(folder / "manifest.json"),
    }
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        with pytest.raises(ModelLoadError) as info:
            load_model(folder)
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    elapsed = time.perf_counter() - t0
    message = str(info.value)
    for part in expected:
        assert names.get(part, part) in message, message
    assert elapsed < 15, f"load_model took {elapsed:.1f} s"
    assert peak < 1 << 30, f"load_model peaked at {peak / 2**20:.0f} MiB"


# ====================================================================== data files
def _ml100k_layout(folder: Path, u_data: str | bytes) -> Path:
    _write(
        folder / "u.item",
        "1|Toy Story (1995)|01-Jan-1995||http://x|0|1\n"
        "2|GoldenEye (1995)|01-Jan-1995||http://x|1|0\n",
    )
    _write(folder / "u.data", u_data)
    return folder


def _amazon(folder: Path, reviews: str | bytes, meta: str | None = None) -> Path:
    _write(folder / "Gift_Cards_5.json", reviews)
    if meta is not None:
        _write(folder / "meta_Gift_Cards.json", meta)
    return folder


def _parquet(path: Path, **columns: Any) -> Path:
    pd.DataFrame(columns).to_parquet(path)
    return path


def _real_ml100k_head(tmp: Path, lines: int = 2000) -> tuple[Path, list[bytes]]:
    from tests.conftest import real_data_dir

    src = real_data_dir("ml-100k")
    folder = tmp / "ml-100k"
    folder.mkdir()
    for name in ("u.item", "u.genre"):
        if (src / name).exists():
            shutil.copy(src / name, folder / name)
    head = (src / "u.data").read_bytes().splitlines(keepends=True)[:lines]
    return folder, head


def _real_rating_7(tmp: Path) -> Callable[[], Any]:
    folder, head = _real_ml100k_head(tmp)
    fields = head[499].split(b"\t")
    head[499] = b"\t".join([fields[0], fields[1], b"7", fields[3]])
    (folder / "u.data").write_bytes(b"".join(head))
    return lambda: load_movielens(folder)


REVIEW = '{"reviewerID": "A1", "asin": "B1", "overall": 5.0, "unixReviewTime": 1500000000}\n'

# (make(tmp) -> a thunk that loads, substrings of the DataError message); "{path}" stands for
# the file at fault, given by the third element (relative to tmp)
DATA_CASES = [
    pytest.param(
        lambda t: lambda: load_table(_write(t / "r.csv", "user,item,rating\nu1,i1,4\nu2,i2,abc\n")),
        ["{path}", "line 3", "column 'rating'", "not a number", "'abc'"], "r.csv",
        id="csv-nonnumeric-rating",
    ),
    pytest.param(lambda t: lambda: load_table(_write(t / "r.csv", "")), ["{path}", "empty file"], "r.csv", id="csv-empty-file"),
    pytest.param(
        lambda t: lambda: load_table(_write(t / "r.csv", "\n  \n")),
        ["{path}", "empty file"], "r.csv", id="csv-only-blank-lines",
    ),
    pytest.param(
        lambda t: lambda: load_table(_write(t / "r.csv", "user,item,rating\n")),
        ["{path}", "line 1", "header only"], "r.csv", id="csv-header-only",
    ),
    pytest.param(
        lambda t: lambda: load_table(_write(t / "r.csv", "user,rating\nu1,4\n")),
        ["{path}", "no item column", "['user', 'rating']"], "r.csv", id="csv-missing-item-column",
    ),
    pytest.param(
        lambda t: lambda: load_table(_write(t / "r.csv", "user,item,rating\nu1,i1,4\nu2,i2\n")),
        ["{path}", "line 3", "expected 3 fields, found 2", "'u2,i2'"], "r.csv", id="csv-ragged-line-short",
    ),
    pytest.param(
        lambda t: lambda: load_table(_write(t / "r.csv", "user,item,rating\nu1,i1,4\nu2,i2,3,9\n")),
        ["{path}", "line 3", "expected 3 fields, found 4"], "r.csv", id="csv-ragged-line-long",
    ),
    pytest.param(
        lambda t: lambda: load_table(_write(t / "r.csv", "user;item;rating\nu1;i1;4\n")),
        ["{path}", "line 1", "no user column", "'user;item;rating'"], "r.csv", id="csv-wrong-separator",
    ),
    pytest.param(
        lambda t: lambda: load_table(_write(t / "r.csv", b"user,item,rating\nu1,i\xff1,4\n")),
        ["{path}", "line 2", "cannot decode as utf-8", "byte offset 21"], "r.csv", id="csv-invalid-utf8",
    ),
    pytest.param(
        lambda t: lambda: load_table(_write(t / "r.csv", "user,item,item,rating\nu1,i1,i2,4\n")),
        ["{path}", "line 1", "duplicate column name", "'item'"], "r.csv", id="csv-duplicate-header-names",
    ),
    pytest.param(
        lambda t: lambda: load_table(_write(t / "r.csv", "user,item,rating\nu1,i1,4\nu2,i2,9\n"), rating_scale=(1, 5)),
        ["{path}", "line 3", "column 'rating'", "outside rating_scale (1, 5)", "'9'"], "r.csv",
        id="csv-rating-outside-given-scale",
    ),
    pytest.param(
        lambda t: lambda: load_table(_write(t / "r.csv", "user,item,rating\nu1,i1,4\nu2,i2,nan\n")),
        ["{path}", "line 3", "not a number", "'nan'"], "r.csv", id="csv-nan-rating",
    ),
    pytest.param(
        lambda t: lambda: load_table(_write(t / "r.csv", "user,item,rating\nu1,i1,4\n,i2,3\n")),
        ["{path}", "line 3", "column 'user'", "empty user id"], "r.csv", id="csv-empty-user-id",
    ),
    pytest.param(
        lambda t: lambda: load_table(_write(t / "r.csv", "user,item,rating,timestamp\nu1,i1,4,yesterday\n")),
        ["{path}", "line 2", "column 'timestamp'", "'yesterday'"], "r.csv", id="csv-timestamp-not-a-time",
    ),
    pytest.param(
        lambda t: lambda: load_table(_write(t / "r.csv", "user,item,rating\nu1,i1,4\nu1,i1,3\n")),
        ["{path}", "lines 2 and 3", "('u1', 'i1')"], "r.csv", id="csv-duplicate-pair",
    ),
    pytest.param(
        lambda t: lambda: load_table(_write(t / "r.csv.gz", gzip.compress(b"user,item,rating\nu1,i1,4\n" * 50)[:40])),
        ["{path}", "cannot read file"], "r.csv.gz", id="csv-gz-truncated",
    ),
    pytest.param(
        lambda t: lambda: load_table(_write(t / "r.csv", "user,item\nu1,i1\n"), feedback="explicit"),
        ["{path}", "needs a rating column", "['user', 'item']"], "r.csv", id="table-explicit-without-rating",
    ),
    pytest.param(
        lambda t: lambda: load_table(_write(t / "r.csv", "user,item,rating,timestamp\nu1,i1,4,1e400\n")),
        ["{path}", "line 2", "column 'timestamp'", "1e400"], "r.csv",
        id="csv-timestamp-1e400",
    ),
    pytest.param(
        lambda t: lambda: load_table(_parquet(t / "r.parquet", user=[2.0**63, 1.0], item=[1.0, 2.0], rating=[1.0, 2.0])),
        ["{path}", "line 1", "column 'user'", "outside the 64-bit integer range", "9.223372036854776e+18"],
        "r.parquet", id="parquet-float-id-2**63",
    ),
    pytest.param(
        lambda t: lambda: load_table(_parquet(t / "r.parquet", user=np.array([2**64 - 1, 1], np.uint64), item=[1, 2], rating=[1.0, 2.0])),
        ["{path}", "column 'user'", "18446744073709551615"], "r.parquet", id="parquet-uint64-id",
    ),
    pytest.param(
        lambda t: lambda: load_table(_parquet(t / "r.parquet", user=[np.nan, 1.0], item=[1.0, 2.0], rating=[1.0, 2.0])),
        ["{path}", "line 1", "empty user id"], "r.parquet", id="parquet-nan-id",
    ),
    pytest.param(
        lambda t: lambda: load_table(_write(t / "r.parquet", b"PAR1 not really")),
        ["{path}", "cannot read Parquet"], "r.parquet", id="parquet-corrupt",
    ),
    pytest.param(
        lambda t: lambda: load_movielens(_ml100k_layout(t / "ml", "1\t1\t7\t881250949\n1\t2\t3\t881250949\n")),
        ["{path}", "line 1", "column 'rating'", "outside the scale (1, 5)", "(value: 7)"], "ml/u.data",
        id="udata-rating-7",
    ),
    pytest.param(
        lambda t: lambda: load_movielens(_ml100k_layout(t / "ml", "1\t1\tx\t881250949\n")),
        ["{path}", "line 1", "column 'rating'", "'x'"], "ml/u.data", id="udata-rating-not-integer",
    ),
    pytest.param(
        lambda t: lambda: load_movielens(_ml100k_layout(t / "ml", "1\t3\t5\t881250949\n")),
        ["{path}", "line 1", "column 'item'", "not in the item list", "(value: 3)"], "ml/u.data",
        id="udata-unknown-item",
    ),
    pytest.param(
        lambda t: lambda: load_movielens(_ml100k_layout(t / "ml", "1\t1\t5\t1\n\n1\t2\t3\t1\n")),
        ["{path}", "line 2", "empty line"], "ml/u.data", id="udata-blank-line-inside",
    ),
    pytest.param(
        lambda t: lambda: load_movielens(_write(t / "mlc" / "ratings.csv", "userId,movieId,rating,timestamp\n1,1,5.5,1\n").parent),
        ["{path}", "line 2", "column 'rating'", "outside the scale (0.5, 5)", "5.5"], "mlc/ratings.csv",
        id="ratings-csv-rating-5.5",
    ),
    pytest.param(
        lambda t: lambda: load_amazon2018(_amazon(t / "am", "[" * 200_000 + "\n")),
        ["{path}", "line 1", "invalid JSON", "nested too deeply"], "am/Gift_Cards_5.json",
        id="amazon-200000-open-brackets",
    ),
    pytest.param(
        lambda t: lambda: load_amazon2018(_amazon(t / "am", REVIEW.replace("1500000000", "1e400"))),
        ["{path}", "line 1", "column 'unixReviewTime'", "not an integer", "inf"], "am/Gift_Cards_5.json",
        id="amazon-unixReviewTime-1e400",
    ),
    pytest.param(
        lambda t: lambda: load_amazon2018(_amazon(t / "am", REVIEW + REVIEW.replace("5.0", '"abc"').replace("A1", "A2"))),
        ["{path}", "line 2", "column 'overall'", "'abc'"], "am/Gift_Cards_5.json", id="amazon-overall-not-a-number",
    ),
    pytest.param(
        lambda t: lambda: load_amazon2018(_amazon(t / "am", '{"reviewerID": "A1", "overall": 5}\n')),
        ["{path}", "line 1", "lacks field 'asin'"], "am/Gift_Cards_5.json", id="amazon-missing-asin",
    ),
    pytest.param(
        lambda t: lambda: load_amazon2018(_amazon(t / "am", REVIEW.replace("1500000000", "9" * 5000))),
        ["{path}", "line 1", "invalid JSON", "4300 digits"], "am/Gift_Cards_5.json", id="amazon-5000-digit-integer",
    ),
    pytest.param(
        lambda t: lambda: load_amazon2018(_amazon(t / "am", b'{"reviewerID": "A\xff"}\n')),
        ["{path}", "line 1", "cannot decode as utf-8"], "am/Gift_Cards_5.json", id="amazon-invalid-utf8",
    ),
    pytest.param(
        lambda t: lambda: load_amazon2018(_amazon(t / "am", REVIEW, meta='{"asin": "B1", "also_buy": 5}\n')),
        ["{path}", "line 1", "also_buy"], "am/meta_Gift_Cards.json",
        id="amazon-meta-also_buy-not-a-list",
    ),
    pytest.param(
        _real_rating_7,
        ["{path}", "line 500", "column 'rating'", "(value: 7)"], "ml-100k/u.data",
        id="real-ml100k-rating-7", marks=pytest.mark.realdata,
    ),
]  # fmt: skip


@pytest.mark.parametrize(("make", "expected", "culprit"), DATA_CASES)
def test_data_file_refused(
    make: Callable[[Path], Callable[[], Any]], expected: list[str], culprit: str, tmp_path: Path
) -> None:
    load = make(tmp_path)
    with pytest.raises(DataError) as info:
        load()
    message = str(info.value)
    for part in expected:
        assert part.replace("{path}", str(tmp_path / culprit)) in message, message


# ---------------------------------------------------------------- odd but valid: must load
def _real_trailing_blanks(tmp: Path) -> Path:
    folder, head = _real_ml100k_head(tmp)
    (folder / "u.data").write_bytes(b"".join(head) + b"\n\n\n")
    return folder


LOADS_CASES = [
    pytest.param(
        lambda t: load_movielens(_ml100k_layout(t / "ml", "1\t1\t5\t1\n1\t2\t3\t1\n2\t1\t3\t1\n\n\n\n")),
        3, id="udata-trailing-blank-lines",
    ),
    pytest.param(
        lambda t: load_movielens(_ml100k_layout(t / "ml", "1\t1\t5\t1\r\n1\t2\t3\t1\r\n")),
        2, id="udata-crlf-line-ends",
    ),
    pytest.param(
        lambda t: load_table(_write(t / "r.csv", "\ufeffuser,item,rating\nu1,i1,4\nu2,i1,3\n")),
        2, id="csv-utf8-bom",
    ),
    pytest.param(
        lambda t: load_movielens(_real_trailing_blanks(t)),
        2000, id="real-ml100k-trailing-blank-lines", marks=pytest.mark.realdata,
    ),
]  # fmt: skip


@pytest.mark.parametrize(("load", "n_ratings"), LOADS_CASES)
def test_odd_but_valid_file_loads(
    load: Callable[[Path], Dataset], n_ratings: int, tmp_path: Path
) -> None:
    ds = load(tmp_path)
    assert len(ds) == n_ratings
    assert ds.rating is not None and np.isfinite(ds.rating).all()


# ====================================================================== options (Python API)
CONFIG_CASES = [
    pytest.param(lambda: make_model("nope"), ["'nope'", "item-knn"], id="make-model-unknown-name"),
    pytest.param(lambda: make_model("item-knn", k=0), ["k must be >= 1, got 0"], id="make-model-k-0"),
    pytest.param(
        lambda: make_model("item-knn", similarity="nope"), ["unknown similarity 'nope'"], id="make-model-unknown-similarity"
    ),
    pytest.param(
        lambda: make_model("baseline", reg_u=-1.0).fit(_ratings()),
        ["reg_u", "-1"],
        id="baseline-reg_u-negative",
    ),
    pytest.param(
        lambda: make_model("item-knn", shrinkage=float("nan")),
        ["shrinkage", "nan"],
        id="knn-shrinkage-nan",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("build", "expected"), CONFIG_CASES)
def test_option_refused(build: Callable[[], Any], expected: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        build()
    for part in expected:
        assert part in str(info.value), str(info.value)


# ====================================================================== command line
@dataclass
class Ctx:
    tmp: Path
    inputs: Inputs

    @property
    def csv(self) -> str:
        return str(self.inputs.csv)

    def model(self, mutate: Mutator) -> str:
        return str(model_copy(self.inputs.item_dir, self.tmp / "model", mutate, self.inputs))

    def folder(self, files: dict[str, str]) -> str:
        for name, text in files.items():
            _write(self.tmp / "folder" / name, text)
        (self.tmp / "folder").mkdir(exist_ok=True)
        return str(self.tmp / "folder")


def _evaluate(c: Ctx, *more: str) -> list[str]:
    return ["evaluate", "--data", c.csv, "--quiet", *more]


def _recommend(model_dir: str, *more: str) -> list[str]:
    return ["recommend", "--model-dir", model_dir, "--user", "u1", *more]


def _synth(c: Ctx, users: str, items: str, interactions: str, *more: str) -> list[str]:
    out = str(c.tmp / "synth.parquet")
    return ["synth", "--users", users, "--items", items, "--interactions", interactions, "--out", out, "--quiet", *more]  # fmt: skip


# (argv(ctx), command, substrings of the error line); "{tmp}" stands for the case's tmp_path
CLI_CASES = [
    pytest.param(lambda c: _evaluate(c, "--split", "random:0.2", "--task", "topn", "--n", "0"), "evaluate", ["got 0"], id="evaluate-topn-n-0"),
    pytest.param(
        lambda c: _evaluate(c, "--split", "random:0.2", "--task", "topn", "--n", "1000000000"),
        "evaluate", ["n must be between 1 and", "1000000000"], id="evaluate-topn-n-1e9",
    ),
    pytest.param(lambda c: _recommend(str(c.inputs.item_dir), "--n", "0"), "recommend", ["n must be between 1 and", "got 0"], id="recommend-n-0"),
    pytest.param(
        lambda c: _recommend(str(c.inputs.item_dir), "--n", "1000000000"),
        "recommend", ["n must be between 1 and", "1000000000"], id="recommend-n-1e9",
    ),
    pytest.param(
        lambda c: ["recommend", "--data", c.csv, "--user", "u1", "--n", "1000000000"],
        "recommend", ["n must be between 1 and", "1000000000"], id="recommend-data-n-1e9",
    ),
    pytest.param(
        lambda c: ["fit", "--data", c.csv, "--out", str(c.tmp / "m"), "--recommend", "1000000000", "--recs-out", str(c.tmp / "r.parquet")],
        "fit", ["1000000000"], id="fit-recommend-1e9",
    ),
    pytest.param(lambda c: _evaluate(c, "--k", "-1"), "evaluate", ["argument --k", "'-1'"], id="evaluate-k-negative"),
    pytest.param(lambda c: _evaluate(c, "--k", "abc"), "evaluate", ["argument --k", "'abc'"], id="evaluate-k-abc"),
    pytest.param(lambda c: ["fit", "--data", c.csv, "--k", "-1", "--out", str(c.tmp / "m"), "--quiet"], "fit", ["k must be >= 1, got -1"], id="fit-k-negative"),
    pytest.param(lambda c: ["fit", "--data", c.csv, "--k", "abc", "--out", str(c.tmp / "m")], "fit", ["argument --k", "'abc'"], id="fit-k-abc"),
    pytest.param(lambda c: _evaluate(c, "--split", "random:0.2", "--model", "nope"), "evaluate", ["unknown model 'nope'"], id="unknown-model"),
    pytest.param(lambda c: _evaluate(c, "--split", "random:0.2", "--similarity", "nope"), "evaluate", ["unknown similarity 'nope'"], id="unknown-similarity"),
    pytest.param(lambda c: _evaluate(c, "--split", "random:0.2", "--prediction", "nope"), "evaluate", ["unknown prediction rule 'nope'"], id="unknown-prediction"),
    pytest.param(lambda c: _evaluate(c, "--split", "bogus:3"), "evaluate", ["unknown split 'bogus:3'"], id="unknown-split"),
    pytest.param(lambda c: _evaluate(c, "--split", "coldstart-items:1.5"), "evaluate", ["coldstart-items:1.5", "got 1.5"], id="split-coldstart-items-1.5"),
    pytest.param(lambda c: _evaluate(c, "--split", "kfold:1"), "evaluate", ["kfold:1", "got 1"], id="split-kfold-1"),
    pytest.param(lambda c: _evaluate(c, "--split", "random:nan"), "evaluate", ["random:nan", "got nan"], id="split-random-nan"),
    pytest.param(lambda c: _evaluate(c, "--split", "u1"), "evaluate", ["--split u1", "no u1.base"], id="split-u1-on-a-csv"),
    pytest.param(
        lambda c: _evaluate(c, "--split", "random:0.2", "--candidates", "cold", "--task", "ratings"),
        "evaluate", ["--candidates", "--task topn"], id="candidates-cold-with-task-ratings",
    ),
    pytest.param(
        lambda c: _evaluate(c, "--split", "random:0.2", "--task", "topn", "--candidates", "cold"),
        "evaluate", ["no cold items", "coldstart-items"], id="candidates-cold-without-cold-items",
    ),
    pytest.param(
        lambda c: ["evaluate", "--data", str(c.inputs.implicit_csv), "--split", "random:0.2", "--quiet"],
        "evaluate", ["need explicit ratings", "implicit"], id="evaluate-ratings-on-implicit-table",
    ),
    pytest.param(
        lambda c: ["evaluate", "--data", str(c.tmp / "nope.csv"), "--split", "random:0.2"],
        "evaluate", ["{tmp}/nope.csv", "neither a known data set name nor an existing path"], id="evaluate-missing-data-path",
    ),
    pytest.param(
        lambda c: _evaluate(c, "--split", "random:0.2", "--task", "topn", "--max-users", "-1"),
        "evaluate", ["--max-users", "-1"], id="evaluate-topn-max-users-negative",
    ),
    pytest.param(lambda c: _synth(c, "1000000000000", "5", "10"), "synth", ["n_users=1000000000000", "limit"], id="synth-absurd-users"),
    pytest.param(lambda c: _synth(c, "10", "5", "1000"), "synth", ["n_interactions=1000", "n_users * n_items = 50"], id="synth-more-interactions-than-pairs"),
    pytest.param(lambda c: _synth(c, "-5", "5", "10"), "synth", ["n_users must be >= 1, got -5"], id="synth-negative-users"),
    pytest.param(
        lambda c: _synth(c, "5", "5", "3", "--seed", "-1"),
        "synth", ["seed", "-1"], id="synth-negative-seed",
    ),
    pytest.param(lambda c: _recommend(c.folder({})), "recommend", ["{tmp}/folder", "no manifest.json"], id="model-dir-empty"),
    pytest.param(
        lambda c: _recommend(c.folder({"ratings.csv": "user,item,rating\nu1,i1,4\n", "README": "hi"})),
        "recommend", ["{tmp}/folder", "no manifest.json"], id="model-dir-holds-a-data-set",
    ),
    pytest.param(
        lambda c: _recommend(c.model(edit_manifest(**{"class": "UserKNN"}))),
        "recommend", ["{tmp}/model/manifest.json", "UserKNN"], id="manifest-class-swapped",
    ),
    pytest.param(
        lambda c: _recommend(c.model(edit_manifest(**{"class": "Nope"}))),
        "recommend", ["{tmp}/model/manifest.json", "unknown model class 'Nope'"], id="manifest-class-unknown",
    ),
    pytest.param(
        lambda c: _recommend(c.model(edit_manifest(config=[1, 2]))),
        "recommend", ["{tmp}/model/manifest.json", "'config' must be a dict", "[1, 2]"], id="manifest-config-a-list",
    ),
    pytest.param(
        lambda c: _recommend(c.model(edit_manifest(state=None))),
        "recommend", ["{tmp}/model/manifest.json", "'state' must be a dict", "None"], id="manifest-state-null",
    ),
    pytest.param(
        lambda c: _recommend(c.model(edit_manifest(vocabulary=...))),
        "recommend", ["{tmp}/model/manifest.json", "'vocabulary'"], id="manifest-vocabulary-missing",
    ),
    pytest.param(
        lambda c: _recommend(c.model(edit_manifest(arrays_file="../x.npz"))),
        "recommend", ["{tmp}/model/manifest.json", "bad arrays file name '../x.npz'"], id="manifest-arrays-file-dotdot",
    ),
    pytest.param(
        lambda c: _recommend(c.model(edit_manifest(arrays_file="arrays-../../x.npz"))),
        "recommend", ["bad arrays file name 'arrays-../../x.npz'"], id="manifest-arrays-file-prefixed-dotdot",
    ),
    pytest.param(
        lambda c: _recommend(c.model(manifest_text("{not json"))),
        "recommend", ["{tmp}/model/manifest.json", "corrupted manifest"], id="manifest-not-json",
    ),
    pytest.param(
        lambda c: _recommend(c.model(manifest_text("[1, 2]"))),
        "recommend", ["{tmp}/model/manifest.json", "not a JSON object"], id="manifest-a-list",
    ),
    pytest.param(
        lambda c: ["predict", "--model-dir", c.model(flip_sim_byte), "--user", "u1", "--item", "i1"],
        "predict", ["{tmp}/model/arrays-"], id="predict-flipped-byte",
    ),
    pytest.param(
        lambda c: _recommend(c.model(manifest_text(DEEP_MANIFEST))),
        "recommend", ["{tmp}/model/manifest.json", "corrupted manifest"], id="manifest-nested-100000-deep",
    ),
    pytest.param(
        lambda c: _recommend(c.model(patch_central_directory(6))),
        "recommend", ["{tmp}/model/arrays-"], id="arrays-zip-version-flipped",
    ),
]  # fmt: skip


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """``main(argv)``'s answer and the stderr text; an argparse refusal (SystemExit) counts
    as its exit code."""
    try:
        rc = main(argv)
    except SystemExit as exc:
        rc = exc.code if isinstance(exc.code, int) else 1
    return rc, capsys.readouterr().err


@pytest.mark.parametrize(("argv", "command", "expected"), CLI_CASES)
def test_cli_refuses(
    argv: Callable[[Ctx], list[str]],
    command: str,
    expected: list[str],
    inputs: Inputs,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = argv(Ctx(tmp_path, inputs))
    t0 = time.perf_counter()
    rc, err = run_cli(args, capsys)
    elapsed = time.perf_counter() - t0
    assert rc == 2, err
    line = err.strip().splitlines()[-1]
    assert line.startswith(f"llmcf {command}: error: "), err
    assert "Traceback" not in err
    for part in expected:
        assert part.replace("{tmp}", str(tmp_path)) in line, line
    assert elapsed < 10, f"{elapsed:.1f} s to refuse"


# ====================================================================== service
@dataclass
class Service:
    client: Any
    tmp: Path
    inputs: Inputs


@pytest.fixture
def service(inputs: Inputs, tmp_path: Path) -> Any:
    pytest.importorskip("fastapi", reason="the serve extra is not installed")
    pytest.importorskip("sqlalchemy", reason="the serve extra is not installed")
    from fastapi.testclient import TestClient

    from llmcf.serve.app import create_app
    from llmcf.serve.state import ServeSettings

    settings = ServeSettings(
        model_dir=inputs.item_dir,
        events_db=str(tmp_path / "events.sqlite"),
        api_key=API_KEY,
        max_body_bytes=BODY_LIMIT,
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        deadline = time.monotonic() + 30
        while client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, client.get("/readyz").text
            time.sleep(0.01)
        yield Service(client, tmp_path, inputs)


KEY = {"X-API-Key": API_KEY}
JSON = {"content-type": "application/json"}


def _event(**fields: Any) -> dict[str, Any]:
    return {"events": [{"user_id": "u1", "item_id": "i1", "type": "rating", "value": 3, **fields}]}


def _post_events(s: Service, body: Any, headers: dict[str, str] | None = None) -> Any:
    return s.client.post("/v1/events", json=body, headers=KEY if headers is None else headers)


def _reused_event_id(s: Service) -> Any:
    first = _post_events(s, _event(event_id="e-1"))
    assert first.status_code == 201, first.text
    same = _post_events(s, _event(event_id="e-1"))
    assert same.status_code == 201 and same.json()["duplicates"] == 1, same.text
    return _post_events(s, _event(event_id="e-1", value=4))


def _chunked_body() -> Any:
    yield b'{"events": ['
    for _ in range(BODY_LIMIT // 1000 + 5):
        yield b" " * 1000
    yield b"]}"


def _reload(mutate: Mutator) -> Callable[[Service], Any]:
    def send(s: Service) -> Any:
        folder = model_copy(s.inputs.item_dir, s.tmp / "bad-model", mutate, s.inputs)
        return s.client.post("/v1/admin/reload", json={"model_dir": str(folder)}, headers=KEY)

    return send


def _still_serves_old_model(s: Service, _body: dict[str, Any]) -> None:
    ready = s.client.get("/readyz").json()
    assert ready["status"] == "ready" and ready["model"]["source"] == str(s.inputs.item_dir)
    r = s.client.get("/v1/users/u1/recommendations", params={"n": 3})
    assert r.status_code == 200 and len(r.json()["items"]) == 3, r.text


def _fallback_with_reason(_s: Service, body: dict[str, Any]) -> None:
    assert body["was_fallback"] is True
    assert body["reason"] and "unknown item" in body["reason"]
    assert body["items"] and all(item["source"] == "popular" for item in body["items"])


# (send(service) -> response, status, substring of the JSON body, then(service, body) or None)
SERVICE_CASES = [
    pytest.param(lambda s: _post_events(s, _event(), headers={}), 401, "missing X-API-Key", None, id="events-missing-api-key"),
    pytest.param(lambda s: _post_events(s, _event(), headers={"X-API-Key": "wrong"}), 401, "wrong API key", None, id="events-wrong-api-key"),
    pytest.param(
        lambda s: s.client.post("/v1/admin/reload", headers={"X-API-Key": "wrong"}), 401, "wrong API key", None,
        id="reload-wrong-api-key",
    ),
    pytest.param(lambda s: _post_events(s, _event(value=1e9)), 422, "rating 1e+09 is outside the model's rating scale 1..5", None, id="rating-1e9"),
    pytest.param(lambda s: _post_events(s, _event(value=0)), 422, "rating 0 is outside the model's rating scale 1..5", None, id="rating-0"),
    pytest.param(lambda s: _post_events(s, _event(value=1e10)), 422, "events.0.value", None, id="rating-1e10-schema-limit"),
    pytest.param(
        lambda s: s.client.post("/v1/events", content=b'{"events": [{"user_id": "u1", "item_id": "i1", "type": "rating", "value": NaN}]}', headers={**KEY, **JSON}),
        422, "finite number", None, id="rating-NaN-literal",
    ),
    pytest.param(lambda s: _post_events(s, _event(type="purchase", value=-5)), 422, "got -5", None, id="purchase-value-negative"),
    pytest.param(lambda s: _post_events(s, _event(type="rating", value=None)), 422, "a rating event needs a value", None, id="rating-without-value"),
    pytest.param(lambda s: _post_events(s, _event(type="click")), 422, "events.0.type", None, id="unknown-event-type"),
    pytest.param(lambda s: _post_events(s, _event(timestamp=-1)), 422, "events.0.timestamp", None, id="negative-timestamp"),
    pytest.param(lambda s: _post_events(s, _event(user_id="u\u0001")), 422, "events.0.user_id", None, id="control-character-in-id"),
    pytest.param(
        lambda s: _post_events(s, {"events": [{"user_id": "u1", "item_id": "i1", "type": "view"}] * 1001}),
        422, "at most 1000 items", None, id="batch-of-1001-events",
    ),
    pytest.param(_reused_event_id, 409, "event_id 'e-1' is already used", None, id="reused-event-id-other-payload"),
    pytest.param(
        lambda s: s.client.post("/v1/events", content=b'{"events": [' + b" " * BODY_LIMIT + b"]}", headers={**KEY, **JSON}),
        413, f"over {BODY_LIMIT} bytes", None, id="body-over-limit",
    ),
    pytest.param(
        lambda s: s.client.post("/v1/events", content=_chunked_body(), headers={**KEY, **JSON}),
        413, f"over {BODY_LIMIT} bytes", None, id="chunked-body-over-limit",
    ),
    pytest.param(
        lambda s: s.client.post("/v1/events", content=b'{"events": [', headers={**KEY, **JSON}),
        422, "JSON decode error", None, id="malformed-json",
    ),
    pytest.param(lambda s: s.client.get("/v1/users/u1/recommendations", params={"n": 0}), 422, "query.n", None, id="recommendations-n-0"),
    pytest.param(lambda s: s.client.get("/v1/users/u1/recommendations", params={"n": 10**9}), 422, "query.n", None, id="recommendations-n-1e9"),
    pytest.param(lambda s: s.client.get("/v1/users/u1/recommendations?n=abc"), 422, "query.n", None, id="recommendations-n-abc"),
    pytest.param(lambda s: s.client.get("/v1/users/" + "x" * 300 + "/recommendations"), 422, "at most 256 characters", None, id="user-id-300-chars"),
    pytest.param(lambda s: s.client.get("/v1/users/%FF/recommendations"), 400, "not valid UTF-8", None, id="invalid-utf8-in-path"),
    pytest.param(
        lambda s: s.client.get("/v1/users/u1/recommendations", params={"rerank": "true"}), 400, "no re-ranker", None,
        id="rerank-without-reranker",
    ),
    pytest.param(lambda s: s.client.put("/v1/items/i1", json={"text": ""}, headers=KEY), 422, "body.text", None, id="put-item-empty-text"),
    pytest.param(lambda s: s.client.get("/v1/items/no-such-item/similar"), 200, "unknown item", _fallback_with_reason, id="similar-unknown-item"),
    pytest.param(_reload(manifest_text("{oops")), 400, "corrupted manifest", _still_serves_old_model, id="reload-malformed-manifest"),
    pytest.param(
        _reload(edit_manifest(arrays_file="../x.npz")), 400, "bad arrays file name", _still_serves_old_model,
        id="reload-arrays-file-dotdot",
    ),
    pytest.param(
        _reload(rewrite_arrays(lambda a, _: a.update(sim=np.zeros((10, 10))))), 400, "sim has shape (10, 10)", _still_serves_old_model,
        id="reload-sim-10x10",
    ),
    pytest.param(
        _reload(manifest_text(DEEP_MANIFEST)), 400, "corrupted manifest", _still_serves_old_model,
        id="reload-manifest-nested-100000-deep",
    ),
    pytest.param(
        _reload(patch_central_directory(6)), 400, "arrays-", _still_serves_old_model,
        id="reload-arrays-zip-version-flipped",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("send", "status", "expected", "then"), SERVICE_CASES)
def test_service_answers(
    send: Callable[[Service], Any],
    status: int,
    expected: str,
    then: Callable[[Service, dict[str, Any]], None] | None,
    service: Service,
) -> None:
    r = send(service)
    assert r.status_code < 500, f"{r.status_code}: {r.text[:300]}"
    assert r.status_code == status, r.text[:300]
    body = r.json()
    assert isinstance(body, dict)
    assert expected in json.dumps(body), body
    if then is not None:
        then(service, body)
