"""Choose the ranking defaults of RankingConfig on validation carves of training data only.

For each training fold (ml-100k ``u1.base`` .. ``u5.base``; their test folds are never read),
:func:`llmcf.eval.select.select` holds out a seeded 10% of the training interactions and
scores every (alpha, shrinkage, n_neighbors) by the validation NDCG@10 of plain item-kNN's
implicit ranking; the setting with the best mean over the folds becomes the default.

    python benchmarks/ranking_validation.py --data ml-100k
"""

from __future__ import annotations

import argparse
import itertools
import sys
from typing import Any

import numpy as np


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="ml-100k")
    p.add_argument("--model", default="item-knn")
    p.add_argument("--alpha", default="0.1,0.2,0.3,0.4,0.5,0.6")
    p.add_argument("--shrinkage", default="0,10,50")
    p.add_argument("--n-neighbors", default="50,100,200")
    args = p.parse_args()

    from llmcf.data.loaders import load_movielens_100k_fold, resolve_data_path
    from llmcf.eval.select import select
    from llmcf.models import make_model

    folder = resolve_data_path(args.data)
    grid = [
        {"alpha": a, "shrinkage": s, "n_neighbors": k}
        for a, s, k in itertools.product(
            [float(x) for x in args.alpha.split(",")],
            [float(x) for x in args.shrinkage.split(",")],
            [int(x) for x in args.n_neighbors.split(",")],
        )
    ]

    def fit(data: Any, setting: dict[str, Any]) -> Any:
        key = "user_neighbors" if args.model.startswith("user") else "n_neighbors"
        ranking = {
            "alpha": setting["alpha"],
            "shrinkage": setting["shrinkage"],
            key: setting["n_neighbors"],
        }
        return make_model(args.model, ranking=ranking).fit(data)

    scores = np.zeros((5, len(grid)))
    for f, fold in enumerate(["u1", "u2", "u3", "u4", "u5"]):
        dataset, train_idx, _ = load_movielens_100k_fold(folder, fold)
        train = dataset.subset(train_idx)  # the test rows are never passed on
        best, table = select(grid, fit, train, seed=f)
        scores[f] = [row["ndcg@10"] for row in table]
        print(f"{fold}.base: best {best} (validation NDCG@10 {scores[f].max():.4f})", flush=True)
    mean = scores.mean(axis=0)
    order = np.argsort(-mean)
    print("\nmean validation NDCG@10 over the five training folds (best first):")
    for k in order[:10]:
        print(f"  {grid[k]}  {mean[k]:.4f}")
    print(f"chosen: {grid[int(order[0])]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
