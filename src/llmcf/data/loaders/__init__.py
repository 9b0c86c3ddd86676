"""Loaders: files on disk (MovieLens, Amazon 2018, UCI Online Retail, any table) -> :class:`Dataset`.

Every loader turns bad input into a :class:`~llmcf.errors.DataError` naming the file, the line
(1-based, header counted), the column and the offending value. Nothing is cached: each call
reads the files.

Entry points
    :func:`load_movielens` (every official layout, detected from the files present),
    :func:`load_movielens_100k_fold`, :func:`load_amazon2018`, :func:`load_online_retail`,
    :func:`load_table` (generic CSV/TSV/Parquet/DataFrame) and :func:`resolve_dataset`
    (a known name under ``settings.data_dir()`` or a path whose loader is detected).

Modules
    :mod:`~llmcf.data.loaders.lines` (the one delimited-line parser
    :func:`~llmcf.data.loaders.lines.parse_delimited` and the JSON-lines reader every loader
    uses), :mod:`~llmcf.data.loaders.common` (duplicates, vocabularies, integer ids),
    :mod:`~llmcf.data.loaders.movielens`, :mod:`~llmcf.data.loaders.amazon`,
    :mod:`~llmcf.data.loaders.retail`, :mod:`~llmcf.data.loaders.table` and
    :mod:`~llmcf.data.loaders.resolve` (names and paths -> loader).
"""

from __future__ import annotations

from llmcf.data.loaders.amazon import load_amazon2018
from llmcf.data.loaders.common import DuplicatePolicy, PathLike
from llmcf.data.loaders.movielens import (
    ML100K_FOLDS,
    load_movielens,
    load_movielens_100k,
    load_movielens_100k_fold,
)
from llmcf.data.loaders.movielens import _movielens_layout as _movielens_layout
from llmcf.data.loaders.resolve import KNOWN_DATASETS, resolve_data_path, resolve_dataset
from llmcf.data.loaders.retail import load_online_retail
from llmcf.data.loaders.table import _COLUMN_GUESSES as _COLUMN_GUESSES
from llmcf.data.loaders.table import _guess_columns as _guess_columns  # llmcf.backends.artifact
from llmcf.data.loaders.table import load_table

__all__ = [
    "KNOWN_DATASETS",
    "ML100K_FOLDS",
    "DuplicatePolicy",
    "PathLike",
    "load_amazon2018",
    "load_movielens",
    "load_movielens_100k",
    "load_movielens_100k_fold",
    "load_online_retail",
    "load_table",
    "resolve_data_path",
    "resolve_dataset",
]
