"""Rating-prediction experiments: models x folds x neighbour counts, with timings and fallbacks."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from llmcf.data.dataset import Dataset
from llmcf.errors import ConfigError
from llmcf.models import make_model


@dataclass
class FoldData:
    name: str
    dataset: Dataset
    train: np.ndarray
    test: np.ndarray


def iter_folds(data: str, split: str, seed: int = 0) -> Iterator[FoldData]:
    """Folds of ``data`` (a name under $LLMCF_DATA_DIR or a path) for a split spec.

    ``u1``..``u5``, ``u1-u5``, ``ua``, ``ub`` are MovieLens 100K's predefined files; other
    specs (``kfold:5``, ``random:0.2``, ``temporal:0.2``, ``coldstart``, ...) are computed by
    :func:`llmcf.eval.split.parse_split` with ``seed``.
    """
    from llmcf.data.loaders import load_movielens_100k_fold, resolve_data_path, resolve_dataset
    from llmcf.eval.split import is_file_split, parse_split

    file_folds = is_file_split(split)
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
            ds, train, test = load_movielens_100k_fold(path, fold_name)
            yield FoldData(fold_name, ds, train, test)
        return
    dataset = resolve_dataset(data)
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
    from tqdm.auto import tqdm

    from llmcf.eval.metrics import mae, rmse

    options = dict(options or {})
    ks = sorted(set(int(k) for k in ks))
    if not ks:
        raise ConfigError("at least one K is needed")
    rows: list[dict[str, Any]] = []
    kept: list[dict[str, Any]] = []
    fold_list = list(folds) if not isinstance(folds, list) else folds
    bar = tqdm(
        total=len(fold_list) * len(models), disable=not progress, desc="evaluate", unit="fit"
    )
    for fold in fold_list:
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
    bar.close()
    return rows, kept


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
