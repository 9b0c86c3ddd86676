"""How the T-model defaults were chosen: a grid scored on validation carves of the TRAINING folds.

For each canonical MovieLens 100K fold u1..u5 only ``u*.base`` is used: a seeded 10% of its
ratings (the same carve as ``--tune``) is held out as validation, the model is fitted on the
other 90%, and every setting of the grid is scored by validation MAE at K = 5, 10, 15, 20, 40.
The ``u*.test`` files are never read. Output: the mean over the five carves, best first.

Usage::

    python benchmarks/text_fused_validation.py [--model t-item-knn] [--top 15]

Grid: fit-level settings (ALS regularisation, text prior) x blend settings (alpha, shift,
amplify) x correction shrinkage. Each fit-level setting is fitted once per carve; blend settings
are re-applied to the stored components, as ``--tune`` does. Takes a few minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import itertools
from dataclasses import replace
from typing import Any

import numpy as np

KS = [5, 10, 15, 20, 40]
GRIDS: dict[str, dict[str, list[Any]]] = {
    "t-item-knn": {
        "fit": [(15.0, 10.0, 0.0), (5.0, 2.0, 0.0), (5.0, 2.0, 1.0)],  # reg_u, reg_i, bias_prior
        "alpha": [0.7, 0.75, 0.8, 0.9, 1.0],
        "shift": [0.0, 0.2, 0.3, 0.4],
        "amplify": [1.0, 2.0, 3.0, 3.5, 4.0],
        "gamma": [0.0, 8.0],
    },
    "t-user-knn": {
        "fit": [(15.0, 10.0, 0.0), (5.0, 2.0, 0.0), (5.0, 2.0, 1.0)],
        "alpha": [0.8, 0.85, 0.9, 1.0],
        "shift": [0.0, 0.2],
        "amplify": [1.0, 1.5, 2.0],
        "gamma": [0.0, 8.0],
    },
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", choices=sorted(GRIDS), default="t-item-knn")
    parser.add_argument("--data", default="ml-100k")
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--fraction", type=float, default=0.1)
    args = parser.parse_args()
    from llmcf.data.loaders import load_movielens_100k_fold, resolve_data_path
    from llmcf.eval.metrics import mae
    from llmcf.models import make_model

    grid = GRIDS[args.model]
    blends = list(itertools.product(grid["alpha"], grid["shift"], grid["amplify"], grid["gamma"]))
    totals: dict[tuple[float, ...], np.ndarray] = {}
    fits: list[tuple[float, float, float]] = grid["fit"]
    path = resolve_data_path(args.data)
    for fold in ("u1", "u2", "u3", "u4", "u5"):
        dataset, train_idx, _ = load_movielens_100k_fold(path, fold)  # the test part is unused
        train = dataset.subset(train_idx)
        held = np.random.default_rng(0).random(len(train)) < args.fraction
        fit, val = train.subset(np.flatnonzero(~held)), train.subset(np.flatnonzero(held))
        for reg_u, reg_i, prior in fits:
            model = make_model(args.model, reg_u=reg_u, reg_i=reg_i, bias_prior=prior)
            vectors = model.item_text_vectors(fit)
            components = model._fit_components(fit, vectors)
            config = model.config
            for alpha, shift, amplify, gamma in blends:
                params = {"alpha": alpha, "beta": 50.0, "shift": shift, "power": 1.0}
                model._apply(components, {**params, "amplify": amplify})
                model.config = replace(config, correction_shrinkage=gamma)
                est, _, _ = model.predict_k(val.user_idx, val.item_idx, KS)
                scores = np.array([mae(val.rating, est[:, j]) for j in range(len(KS))])
                key: tuple[float, ...] = (reg_u, reg_i, prior, alpha, shift, amplify, gamma)
                totals[key] = totals.get(key, np.zeros(len(KS))) + scores / 5
        print(f"{fold} done", flush=True)
    ranked = sorted(totals.items(), key=lambda kv: float(kv[1].min()))
    header = "reg_u reg_i prior alpha shift amplify gamma | " + " ".join(f"K={k}" for k in KS)
    print(f"{args.model}: mean validation MAE over the u1..u5 training carves")
    print(header)
    for key, scores in ranked[: args.top]:
        cells = " ".join(f"{v:5g}" for v in key)
        print(f"{cells} | " + " ".join(f"{s:.4f}" for s in scores))
    plain: tuple[float, ...] = (15.0, 10.0, 0.0, 1.0, 0.0, 1.0, 0.0)
    if plain in totals:
        print("plain kNN (library defaults):", " ".join(f"{s:.4f}" for s in totals[plain]))


if __name__ == "__main__":
    main()
