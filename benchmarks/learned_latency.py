"""Serve-time latency the learned second stage adds per user (no language model).

Fits ``learned`` (retriever ``ease`` by default) on a training fold, saves and reloads it as
the service does, then for a seeded sample of users times one request each (a batch of one
through the ranking path, ``ServingModel.recommend`` with external ids, as
``GET /v1/users/{id}/recommendations``) for the retriever alone and for the learned stage
over it. Reported: median and p95 of the per-user time of each, and of the difference
(what the second stage adds), after a warm-up of 20 requests; wall-clock time and the
process's CPU time (``cpu_*``: what the request costs, less sensitive to other load on the
machine).

    python benchmarks/learned_latency.py --data ml-100k --split u1 --users 300
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import numpy as np


def main() -> int:
    from llmcf.eval.runner import iter_folds
    from llmcf.models import load_model, make_model
    from llmcf.serve.engine import ServingModel

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="ml-100k")
    p.add_argument("--split", default="u1")
    p.add_argument("--retriever", default="ease")
    p.add_argument("--users", type=int, default=300)
    p.add_argument("--n", type=int, default=10)
    p.add_argument(
        "--feature-models", default=None, help="comma list (default: the stage's default)"
    )
    args = p.parse_args()
    fold = next(iter(iter_folds(args.data, args.split, seed=0)))
    train = fold.dataset.subset(fold.train)
    options: dict[str, object] = {"retriever": args.retriever}
    if args.feature_models:
        options["feature_models"] = tuple(args.feature_models.split(","))
    learned = make_model("learned", **options).fit(train)
    with tempfile.TemporaryDirectory() as tmp:
        learned.save(tmp)
        learned = load_model(tmp)
    retriever = learned.stage_.retriever
    rng = np.random.default_rng(0)
    users = rng.choice(train.n_users, min(args.users, train.n_users), replace=False)
    ids = [str(u) for u in train.users.external(users).tolist()]
    serving = {"retriever": ServingModel(retriever), "learned": ServingModel(learned)}
    for s in serving.values():  # warm-up: derived caches, the booster
        for uid in ids[:20]:
            s.recommend(uid, args.n)
    times: dict[str, list[float]] = {k: [] for k in serving}
    cpu: dict[str, list[float]] = {k: [] for k in serving}
    for uid in ids:
        for name, s in serving.items():
            t0, c0 = time.perf_counter(), time.process_time()
            s.recommend(uid, args.n)
            times[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    out: dict[str, object] = {}
    for label, table in (("", times), ("cpu_", cpu)):
        for name, vals in table.items():
            a = np.asarray(vals) * 1e3
            out[f"{label}{name}"] = {
                "median_ms": float(np.median(a)),
                "p95_ms": float(np.percentile(a, 95)),
            }
        diff = (np.asarray(table["learned"]) - np.asarray(table["retriever"])) * 1e3
        out[f"{label}added"] = {
            "median_ms": float(np.median(diff)),
            "p95_ms": float(np.percentile(diff, 95)),
        }
    out["users"] = len(ids)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
