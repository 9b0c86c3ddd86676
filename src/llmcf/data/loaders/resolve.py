"""Data set names and paths -> the loader that reads them (:func:`resolve_dataset`)."""

from __future__ import annotations

from pathlib import Path

from llmcf import settings
from llmcf.data.dataset import Dataset
from llmcf.data.loaders.amazon import load_amazon2018
from llmcf.data.loaders.common import PathLike
from llmcf.data.loaders.movielens import _ML_LAYOUT_FILES, _movielens_layout, load_movielens
from llmcf.data.loaders.retail import load_online_retail
from llmcf.data.loaders.table import load_table
from llmcf.errors import DataError

__all__ = ["KNOWN_DATASETS", "resolve_data_path", "resolve_dataset"]

# known name -> folder under settings.data_dir(); ``amazon2018-<category>`` is accepted too.
KNOWN_DATASETS: dict[str, str] = {
    "ml-100k": "ml-100k",
    "ml-1m": "ml-1m",
    "ml-1m-partial": "ml-1m-partial",
    "ml-10m": "ml-10m",
    "ml-latest-small": "ml-latest-small",
    "ml-latest": "ml-latest",
    "ml-20m": "ml-20m",
    "ml-25m": "ml-25m",
    "ml-32m": "ml-32m",
    "amazon2018-gift-cards": "amazon2018-gift-cards",
    "uci-online-retail": "uci-online-retail",
}


def _known_names_text() -> str:
    return ", ".join([*KNOWN_DATASETS, "amazon2018-<category>"])


def resolve_data_path(spec: PathLike) -> Path:
    """Folder or file of a data set: a known name under ``settings.data_dir()``, or a path.

    Raises:
        DataError: the name is unknown and no such path exists, or the known name's folder is
            missing; the message names the folder searched and the known names.
    """
    text = str(spec)
    root = settings.data_dir()
    if text in KNOWN_DATASETS or (text.startswith("amazon2018-") and "/" not in text):
        folder = root / KNOWN_DATASETS.get(text, text)
        if not folder.exists():
            raise DataError(
                f"data set {text!r} not found in {root} (set LLMCF_DATA_DIR; known names: {_known_names_text()})",
                path=str(folder),
            )
        return folder
    candidate = Path(text).expanduser()
    if candidate.exists():
        return candidate
    raise DataError(
        f"{text!r} is neither a known data set name nor an existing path; searched {root} "
        f"(LLMCF_DATA_DIR); known names: {_known_names_text()}",
        value=text,
    )


def resolve_dataset(spec: PathLike, **kwargs: object) -> Dataset:
    """Load a data set by known name (under ``settings.data_dir()``) or by path, detecting the loader.

    Detection: a MovieLens layout (:func:`load_movielens`), Amazon 2018 JSON lines
    (:func:`load_amazon2018`), ``online_retail.*`` (:func:`load_online_retail`), else a single
    table file (:func:`load_table` with guessed columns; implicit feedback when it has no
    rating column). ``kwargs`` go to the chosen loader.
    """
    target = resolve_data_path(spec)
    folder = target if target.is_dir() else target.parent
    if target.is_dir() and _movielens_layout(folder) is not None:
        return load_movielens(folder, **kwargs)  # type: ignore[arg-type]
    name = target.name
    if (target.is_file() and name.startswith("online_retail")) or (
        target.is_dir() and any(folder.glob("online_retail.*"))
    ):
        return load_online_retail(target, **kwargs)  # type: ignore[arg-type]
    if (target.is_file() and name.endswith((".json", ".json.gz"))) or (
        target.is_dir() and any(folder.glob("*.json*"))
    ):
        return load_amazon2018(target, **kwargs)  # type: ignore[arg-type]
    if (
        target.is_file()
        and _movielens_layout(folder) is not None
        and name.startswith(("u.", "u1.", "ratings", "movies"))
    ):
        return load_movielens(folder, **kwargs)  # type: ignore[arg-type]
    if target.is_file():
        return load_table(target, **kwargs)  # type: ignore[arg-type]
    raise DataError(
        "cannot tell which loader reads this folder; expected a MovieLens layout "
        f"({', '.join(_ML_LAYOUT_FILES)}), Amazon 2018 *.json[.gz], or online_retail.*",
        path=str(target),
    )
