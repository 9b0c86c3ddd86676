"""Rating-prediction experiments: models x folds x neighbour counts, with timings and fallbacks."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import Any

import numpy as np

from llmcf.data.dataset import Dataset
from llmcf.errors import ConfigError
from llmcf.models import make_model


class FoldData:
    """One train/test fold: ``name``, ``dataset``, ``train`` and ``test`` (indices into it).

    A fold built with ``loader`` (MovieLens 100K's predefined files) reads its data on first
    use and forgets it on :meth:`release`, so a list of such folds holds no data until it is
    used and :func:`evaluate_ratings` keeps one fold in memory at a time.
    """

    def __init__(
        self,
        name: str,
        dataset: Dataset | None = None,
        train: np.ndarray | None = None,
        test: np.ndarray | None = None,
        *,
        loader: Callable[[], tuple[Dataset, np.ndarray, np.ndarray]] | None = None,
    ) -> None:
        if loader is None and (dataset is None or train is None or test is None):
            raise ValueError("FoldData needs dataset, train and test, or a loader")
        self.name = name
        self._loader = loader
        self._data: tuple[Dataset, np.ndarray, np.ndarray] | None = None
        if dataset is not None and train is not None and test is not None:
            self._data = (dataset, train, test)

    def _get(self) -> tuple[Dataset, np.ndarray, np.ndarray]:
        if self._data is None:
            assert self._loader is not None
            self._data = self._loader()
        return self._data

    @property
    def loaded(self) -> bool:
        """Whether the fold's data is in memory."""
        return self._data is not None

    @property
    def dataset(self) -> Dataset:
        return self._get()[0]

    @property
    def train(self) -> np.ndarray:
        return self._get()[1]

    @property
    def test(self) -> np.ndarray:
        return self._get()[2]

    def release(self) -> None:
        """Forget the loaded data (it is read again on the next use); no-op without a loader."""
        if self._loader is not None:
            self._data = None

    def __repr__(self) -> str:
        state = "loaded" if self.loaded else "not loaded"
        return f"FoldData({self.name!r}, {state})"


def load_data(data: str, data_options: dict[str, Any] | None = None) -> Dataset:
    """``resolve_dataset(data, **data_options)``; the table options (feedback, rating scale,
    duplicates, encoding) only apply to table files, and a named data set given them says so."""
    from llmcf.data.loaders import resolve_dataset

    if not data_options:
        return resolve_dataset(data)
    try:
        return resolve_dataset(data, **data_options)
    except TypeError:
        raise ConfigError(
            f"{data}: the options {sorted(data_options)} apply to table files (CSV, TSV, "
            "Parquet); this data set has a loader with its own rules"
        ) from None


def iter_folds(
    data: str, split: str, seed: int = 0, data_options: dict[str, Any] | None = None
) -> Iterator[FoldData]:
    """Folds of ``data`` (a name under $LLMCF_DATA_DIR or a path) for a split spec.

    ``u1``..``u5``, ``u1-u5``, ``ua``, ``ub`` are MovieLens 100K's predefined files; other
    specs (``kfold:5``, ``random:0.2``, ``temporal:0.2``, ``coldstart``, ...) are computed by
    :func:`llmcf.eval.split.parse_split` with ``seed``. Predefined-file folds are read when
    first used (see :class:`FoldData`).
    """
    from llmcf.data.loaders import load_movielens_100k_fold, resolve_data_path
    from llmcf.eval.split import is_file_split, parse_split

    file_folds = is_file_split(split)
    if file_folds and data_options:
        raise ConfigError(
            f"--split {split} reads MovieLens 100K's predefined files; the table options "
            f"{sorted(data_options)} apply to table files"
        )
    if file_folds:
        path = resolve_data_path(data)
        folder = path if path.is_dir() else path.parent
        missing = [f for f in file_folds if not (folder / f"{f}.base").exists()]
        if missing:
            raise ConfigError(
                f"--split {split} uses MovieLens 100K's predefined files, but {folder} has no "
                f"{missing[0]}.base; use a computed split such as kfold:5 or random:0.2"
            )
        for fold_name in file_folds:
            yield FoldData(fold_name, loader=partial(load_movielens_100k_fold, path, fold_name))
        return
    dataset = load_data(data, data_options)
    for fold in parse_split(split, seed=seed)(dataset):
        yield FoldData(fold.name, dataset, fold.train, fold.test)


def evaluate_ratings(
    folds: Sequence[FoldData] | Iterator[FoldData],
    models: Sequence[str],
    ks: Sequence[int],
    options: dict[str, Any] | None = None,
    *,
    progress: bool = True,
    keep_predictions: bool = False,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Fit every model on every fold and score the test ratings at every K.

    A kNN model is fitted once per fold; all K are predicted from that fit in one pass (its
    similarities do not depend on K). Returns ``(rows, predictions)`` where rows have model, k,
    fold, mae, rmse, fit_seconds, predict_seconds, n_predictions, n_fallbacks and predictions
    (when ``keep_predictions``) hold per-fold arrays for ``--predictions``.
    """
    from llmcf.eval.metrics import mae, rmse

    options = dict(options or {})
    ks = sorted(set(int(k) for k in ks))
    if not ks:
        raise ConfigError("at least one K is needed")
    rows: list[dict[str, Any]] = []
    kept: list[dict[str, Any]] = []
    fold_list = list(folds) if not isinstance(folds, list) else folds
    bar = _progress_bar(len(fold_list) * len(models), progress)
    for fold in fold_list:
        was_loaded = fold.loaded
        if fold.dataset.rating_scale is None:
            raise ConfigError(
                f"{fold.dataset.name}: MAE/RMSE need explicit ratings, and this data set is "
                "implicit feedback (no rating column or scale); rank with --task topn"
            )
        train = fold.dataset.subset(fold.train)
        test = fold.dataset.subset(fold.test)
        for name in models:
            bar.set_postfix_str(f"{name} {fold.name}")
            model = make_model(name, **options)
            t0 = time.perf_counter()
            model.fit(train)
            fit_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            if hasattr(model, "predict_k"):
                est, fallback, _ = model.predict_k(test.user_idx, test.item_idx, ks)
                k_values: list[int | None] = list(ks)
            else:
                e, fb = model.predict_detailed(test.user_idx, test.item_idx)
                est, fallback = e[:, None], fb[:, None]
                k_values = [None]
            pred_s = time.perf_counter() - t0
            chosen = model.chosen_settings() if hasattr(model, "chosen_settings") else {}
            del model  # free this fit before the next one is built
            for j, k in enumerate(k_values):
                rows.append(
                    {
                        "model": name,
                        "k": k,
                        "fold": fold.name,
                        "mae": mae(test.rating, est[:, j]),
                        "rmse": rmse(test.rating, est[:, j]),
                        "fit_seconds": fit_s,
                        "predict_seconds": pred_s / len(k_values),
                        "n_predictions": len(test),
                        "n_fallbacks": int(fallback[:, j].sum()),
                        "chosen": chosen,
                    }
                )
                if keep_predictions:
                    kept.append(
                        {
                            "model": name,
                            "k": k,
                            "fold": fold.name,
                            "user_id": test.users.external(test.user_idx),
                            "item_id": test.items.external(test.item_idx),
                            "rating": test.rating,
                            "prediction": est[:, j],
                        }
                    )
            bar.update(1)
        # one fold in memory at a time: drop this fold's data before the next one is read
        del train, test
        if not was_loaded:
            fold.release()
    bar.close()
    return rows, kept


class _NoBar:
    """Stands in for a tqdm bar when progress is off (tqdm is not imported then)."""

    def set_postfix_str(self, text: str) -> None:
        pass

    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def _progress_bar(total: int, progress: bool) -> Any:
    if not progress:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="evaluate", unit="fit")


def write_predictions(path: str, predictions: list[dict[str, Any]]) -> int:
    """Write ``user_id,item_id,rating,prediction`` CSV rows; returns the number of rows."""
    import csv

    n = 0
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["user_id", "item_id", "rating", "prediction"])
        for block in predictions:
            for u, i, r, p in zip(
                block["user_id"].tolist(),
                block["item_id"].tolist(),
                block["rating"].tolist(),
                block["prediction"].tolist(),
                strict=True,
            ):
                writer.writerow([u, i, f"{r:g}", f"{p:.6f}"])
                n += 1
    return n
