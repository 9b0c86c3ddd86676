"""EASE: accuracy of the bounded (pruned-Gram) model against the exact one, and fit time and
peak memory of either on large synthetic catalogs.

Two commands::

    # exact vs bounded on ml-100k u1 (needs $LLMCF_DATA_DIR) or on a synthetic catalog split
    # 80/20 at random: top-10 overlap with the exact lists, NDCG@10 of each, fit seconds
    python benchmarks/bench_ease.py approx --data ml-100k --k 50,100,200,400
    python benchmarks/bench_ease.py approx --synth 20000,5000,400000 --k 50,100,200

    # fit one model (dense below --dense-max items, bounded above), report wall/CPU seconds
    # and peak RSS; --data takes a name or path (e.g. a `llmcf synth` Parquet file)
    python benchmarks/bench_ease.py fit --synth 200000,100000,2000000 --dense-max 0 --k 200
    python benchmarks/bench_ease.py fit --data /tmp/s.parquet --dense-max 20000 --save /tmp/m

Relevant test items: rating >= --relevance (4). Top-N lists exclude training items and come
from the one ranking path (``recommend_many``). Lists of users the model has no score for
(popularity fallback) are compared as well.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from typing import Any

import numpy as np


def _synth(spec: str, seed: int) -> Any:
    from llmcf.data.synth import generate

    users, items, interactions = (int(v) for v in spec.split(","))
    return generate(users, items, interactions, seed=seed)


def _split(args: argparse.Namespace) -> tuple[Any, Any, str]:
    """(train, test, label) of the command's data."""
    if args.synth:
        from llmcf.eval.split import random_split

        ds = _synth(args.synth, args.seed)
        fold = random_split(ds, 0.2, seed=args.seed)[0]
        return ds.subset(fold.train), ds.subset(fold.test), f"synth {args.synth} random 80/20"
    from llmcf.eval.runner import iter_folds

    fold = next(iter(iter_folds(args.data, args.split, seed=args.seed)))
    ds = fold.dataset
    return ds.subset(fold.train), ds.subset(fold.test), f"{args.data} {fold.name}"


def _fit(model: Any, train: Any) -> tuple[Any, float, float]:
    cpu0, t0 = time.process_time(), time.perf_counter()
    model.fit(train)
    return model, time.perf_counter() - t0, time.process_time() - cpu0


def approx(args: argparse.Namespace) -> dict[str, Any]:
    from llmcf.cf.ease import EASE
    from llmcf.eval.metrics import ranking_report, relevance_matrix
    from llmcf.eval.topn import relevant_pairs

    train, test, label = _split(args)
    rel_u, rel_i = relevant_pairs(test, args.relevance)
    relevant = relevance_matrix(rel_u, rel_i, train.n_users, train.n_items)
    users = np.unique(rel_u)
    if args.max_users and len(users) > args.max_users:
        users = np.sort(np.random.default_rng(args.seed).choice(users, args.max_users, False))
    n = args.n
    exact, fit_s, fit_cpu = _fit(EASE(lam=args.lam, dense_max=train.n_items), train)
    ref = exact.recommend_many(users, n)
    rows = [
        {
            "model": "exact",
            "fit_seconds": fit_s,
            "fit_cpu_seconds": fit_cpu,
            f"ndcg@{n}": ranking_report(ref.items, relevant[users], n)[f"ndcg@{n}"],
            f"overlap@{n}": 1.0,
        }
    ]
    for k in args.k or [50, 100, 200]:
        model, fit_s, fit_cpu = _fit(EASE(lam=args.lam, dense_max=0, n_neighbors=k), train)
        recs = model.recommend_many(users, n)
        overlap = np.mean(
            [
                len(set(a[a >= 0].tolist()) & set(b[b >= 0].tolist())) / n
                for a, b in zip(ref.items, recs.items, strict=True)
            ]
        )
        rows.append(
            {
                "model": f"bounded k={k} m={model.config.gram_size}",
                "fit_seconds": fit_s,
                "fit_cpu_seconds": fit_cpu,
                f"ndcg@{n}": ranking_report(recs.items, relevant[users], n)[f"ndcg@{n}"],
                f"overlap@{n}": float(overlap),
            }
        )
        print(json.dumps(rows[-1]), file=sys.stderr)
    return {
        "data": label,
        "train": repr(train),
        "lam": args.lam,
        "users": len(users),
        "rows": rows,
    }


def fit(args: argparse.Namespace) -> dict[str, Any]:
    from llmcf.cf.ease import EASE

    t0 = time.perf_counter()
    if args.synth:
        ds = _synth(args.synth, args.seed)
    else:
        from llmcf.data.loaders import resolve_dataset

        ds = resolve_dataset(args.data)
    load_s = time.perf_counter() - t0
    rss_data = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    options: dict[str, Any] = {"lam": args.lam}
    if args.k:
        options["n_neighbors"] = args.k[0]
    if args.dense_max is not None:
        options["dense_max"] = args.dense_max
    model, fit_s, fit_cpu = _fit(EASE(**options), ds)
    rss_fit = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    save_s = None
    if args.save:
        from llmcf.persist import save_model

        t0 = time.perf_counter()
        save_model(model, args.save)
        save_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    recs = model.recommend_many(np.arange(min(ds.n_users, 1000)), 10)
    rec_s = time.perf_counter() - t0
    stored = model.B_ if model.B_ is not None else model.nbr_weight_
    return {
        "data": repr(ds),
        "variant": "dense" if model.B_ is not None else "bounded",
        "config": model.get_config(),
        "load_seconds": load_s,
        "fit_seconds": fit_s,
        "fit_cpu_seconds": fit_cpu,
        "recommend_1000_users_seconds": rec_s,
        "fallback_users_of_1000": int(recs.was_fallback.sum()),
        "model_bytes": int(stored.nbytes) if stored is not None else 0,
        "peak_rss_gib_after_load": rss_data,
        "peak_rss_gib": rss_fit,
        "save_seconds": save_s,
        "peak_rss_gib_after_save": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["approx", "fit"])
    parser.add_argument("--data", default="ml-100k", help="name under $LLMCF_DATA_DIR or path")
    parser.add_argument("--split", default="u1", help="approx on --data: the fold (default u1)")
    parser.add_argument("--synth", default=None, help="USERS,ITEMS,INTERACTIONS synthetic data")
    parser.add_argument("--lam", type=float, default=500.0)
    parser.add_argument(
        "--k",
        type=lambda s: [int(v) for v in s.split(",")],
        default=None,
        help="bounded model: neighbours per column (approx: a comma list, default 50,100,200; "
        "fit: default EASEConfig's)",
    )
    parser.add_argument("--dense-max", type=int, default=None, help="fit: EASEConfig.dense_max")
    parser.add_argument("--save", default=None, help="fit: also save the model to this folder")
    parser.add_argument("--relevance", type=float, default=4.0)
    parser.add_argument("--n", type=int, default=10)
    parser.add_argument("--max-users", type=int, default=None, help="approx: sample users")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="also write the JSON here")
    args = parser.parse_args()
    result = approx(args) if args.command == "approx" else fit(args)
    result.update(
        {
            "machine": f"{platform.machine()}, {os.cpu_count()} cores",
            "load_average": os.getloadavg(),
            "command": " ".join(sys.argv),
        }
    )
    print(json.dumps(result, indent=2, default=float))
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(result, fh, indent=2, default=float)


if __name__ == "__main__":
    main()
