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
    python benchmarks/learned_latency.py --users 300 --llm local:qwen2.5-0.5b --llm-users 50

``--llm``: also what the ``llm`` family adds per user when its judgement is not cached (the
language model's yes/no logits of the top 20 candidates, ``LLMFeature.scores``).
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
    p.add_argument("--llm", default=None, help="also time the llm family with this client")
    p.add_argument("--llm-users", type=int, default=50)
    p.add_argument("--llm-candidates", type=int, default=20)
    p.add_argument("--llm-threads", type=int, default=2)
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
    if args.llm:
        out["llm_feature"] = llm_feature_latency(args, learned, train, users[: args.llm_users])
    print(json.dumps(out, indent=2))
    return 0


def llm_feature_latency(args: argparse.Namespace, learned, train, users) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """What the ``llm`` family adds per user when its judgement is not cached: one
    ``LLMFeature.scores`` call over the stage's top ``--llm-candidates`` candidates (the model
    loaded and its fixed prefix evaluated beforehand), wall and CPU seconds."""
    import os

    from llmcf.pipeline.core import item_texts
    from llmcf.ranking.path import training_histories
    from llmcf.rerank.clients import make_llm_client
    from llmcf.rerank.llm_feature import LLMFeature

    t0 = time.perf_counter()
    client = make_llm_client(args.llm, n_threads=args.llm_threads)
    feat = LLMFeature(client, item_texts(train), n_candidates=args.llm_candidates)
    load_s = time.perf_counter() - t0
    h = training_histories(learned, users)
    items, _ = learned.stage_.candidates(h, learned.config.n_candidates)
    feat.scores(h.block(0, 1), items[:1])  # the fixed instruction prefix, once per process
    wall, cpu = [], []
    for t in range(1, len(users)):
        t0, c0 = time.perf_counter(), time.process_time()
        feat.scores(h.block(t, t + 1), items[t : t + 1])
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    feat.close()
    w, c = np.asarray(wall), np.asarray(cpu)
    return {
        "model": args.llm,
        "threads": args.llm_threads,
        "candidates": args.llm_candidates,
        "users": len(wall),
        "load_seconds": load_s,
        "median_s": float(np.median(w)),
        "p95_s": float(np.percentile(w, 95)),
        "cpu_median_s": float(np.median(c)),
        "load_average": os.getloadavg()[0],
    }


if __name__ == "__main__":
    raise SystemExit(main())
