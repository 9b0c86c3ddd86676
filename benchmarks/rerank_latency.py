"""Local LLM re-ranking of CF candidates: latency per user and ranking quality.

Protocol (issue 4): MovieLens 100K fold u1, relevant = test ratings >= 4, full ranking (the CF
model ranks every unseen item; its top M = 20 are re-ranked). For a seeded sample of test users
with a relevant item:

* **latency**: one :func:`llmcf.rerank.reranker.rerank` call per user (prompt building,
  tokenising, scoring, fusion), the model loaded once beforehand (load time and the first call,
  which evaluates the fixed instruction prefix, are reported separately); wall seconds,
  process CPU seconds, tokens evaluated / reused from the KV cache per user, and the load
  average (the machine is shared: read the latency next to it);
* **quality**: NDCG@10 / Recall@10 of CF alone, CF + LLM fused with the weight chosen on a
  validation split of the *training* data (:func:`llmcf.pipeline.tune_weight`, never the test
  set), the LLM order alone (w = 1) and, for scale, a random order of the same candidates.

The pointwise latency is also the cost of the learned stage's ``llm`` feature family (the same
``yes_no`` call over the top 20); ``python benchmarks/learned_latency.py --llm
local:qwen2.5-0.5b`` measures it inside the stage (docs/benchmarks.md).

Example::

    export LLMCF_DATA_DIR=/work/shared/data
    python benchmarks/rerank_latency.py --users 150 --tune-users 150 --threads 2
    python benchmarks/rerank_latency.py --mode choice --users 150 --tune-users 150
    python benchmarks/rerank_latency.py --users 20 --tune-users 0     # latency only
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

import numpy as np


def _load() -> float:
    return float(os.getloadavg()[0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="ml-100k")
    parser.add_argument("--split", default="u1")
    parser.add_argument("--model", default="item-knn", help="CF retriever (llmcf model name)")
    parser.add_argument(
        "--llm",
        default="qwen2.5-0.5b@q8_0",
        help="packaged model or .gguf path, optionally @q8_0 / @q4_0",
    )
    parser.add_argument("--mode", choices=["pointwise", "choice"], default="pointwise")
    parser.add_argument("--orders", type=int, default=1, help="choice mode: 1 or 2 orders")
    parser.add_argument("--history", type=int, default=5, help="history items in the prompt")
    parser.add_argument("--words", type=int, default=5, help="words per item name")
    parser.add_argument("--threads", type=int, default=2, help="llama.cpp threads")
    parser.add_argument("--n-candidates", type=int, default=20)
    parser.add_argument("--n", type=int, default=10)
    parser.add_argument("--users", type=int, default=150, help="test users sampled")
    parser.add_argument("--tune-users", type=int, default=150, help="validation users (0: w=1)")
    parser.add_argument("--relevance", type=float, default=4.0)
    parser.add_argument("--timeout", type=float, default=None, help="seconds per re-rank call")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="write the per-user records here")
    args = parser.parse_args(argv)

    from llmcf.eval.metrics import ranking_report, relevance_matrix
    from llmcf.eval.runner import iter_folds
    from llmcf.eval.topn import relevant_pairs
    from llmcf.models import make_model
    from llmcf.pipeline.core import item_texts, tune_weight, user_histories
    from llmcf.rerank.clients import LlamaCppClient
    from llmcf.rerank.reranker import LLMReranker, fuse_scores, rerank

    print(f"command: python {' '.join(sys.argv)}")
    print(f"load average at start: {os.getloadavg()}")
    fold = next(iter(iter_folds(args.data, args.split, seed=args.seed)))
    train = fold.dataset.subset(fold.train)
    test = fold.dataset.subset(fold.test)
    rel_u, rel_i = relevant_pairs(test, args.relevance)
    relevant = relevance_matrix(rel_u, rel_i, train.n_users, train.n_items)
    users = np.unique(rel_u)
    if args.users < len(users):
        users = np.sort(np.random.default_rng(args.seed).choice(users, args.users, replace=False))
    rel_rows = relevant[users]
    texts = item_texts(fold.dataset)
    model = make_model(args.model).fit(train)
    m = max(args.n, args.n_candidates)
    recs = model.recommend_many(users, m)
    histories = user_histories(train, 10)

    t0 = time.perf_counter()
    client = LlamaCppClient(args.llm, n_threads=args.threads, timeout=args.timeout)
    load_s = time.perf_counter() - t0
    reranker = LLMReranker(
        client,
        texts,
        mode=args.mode,
        history_size=args.history,
        item_words=args.words,
        orders=args.orders,
    )
    # first call: evaluates the fixed system + instruction prefix once (reported apart)
    first_cands = recs.items[0][recs.items[0] >= 0].astype(np.int64)
    t0 = time.perf_counter()
    reranker.score(histories[int(users[0])], first_cands)
    first_s = time.perf_counter() - t0
    first_tokens = client.total_stats["evaluated"]
    print(
        f"LLM {client.name} mode={args.mode} orders={args.orders} threads={args.threads} "
        f"version={reranker.version}: model load {load_s:.2f} s (excluded), first call "
        f"{first_s:.2f} s / {first_tokens:.0f} tokens (fixed prefix, excluded)"
    )

    records: list[dict[str, Any]] = []
    llm_scores: list[np.ndarray | None] = []
    cands_list, cf_list = [], []
    for row, u in enumerate(users.tolist()):
        keep = recs.items[row] >= 0
        cands = recs.items[row][keep].astype(np.int64)
        cf = recs.scores[row][keep].astype(np.float64)
        load = _load()
        before = client.total_stats
        t0, c0 = time.perf_counter(), time.process_time()
        res = rerank(reranker, histories[u], cands, cf, 1.0, timeout=args.timeout)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        after = client.total_stats
        stats = {key: after[key] - before[key] for key in after}  # all calls of this user
        records.append(
            {
                "user": int(u),
                "seconds": wall,
                "cpu_seconds": cpu,
                "tokens": stats["evaluated"],
                "reused": stats["reused"],
                "decodes": stats["decodes"],
                "load": load,
                "fallback": res.was_fallback,
                "reason": res.reason,
            }
        )
        position = {int(item): j for j, item in enumerate(res.items.tolist())}
        llm_scores.append(
            None
            if res.was_fallback
            else np.array([res.rerank_scores[position[int(c)]] for c in cands])
        )
        cands_list.append(cands)
        cf_list.append(cf)
        records[-1]["candidates"] = cands.tolist()
        records[-1]["llm_scores"] = None if llm_scores[-1] is None else llm_scores[-1].tolist()
    secs = np.array([r["seconds"] for r in records])
    cpus = np.array([r["cpu_seconds"] for r in records])
    toks = np.array([r["tokens"] for r in records])
    loads = np.array([r["load"] for r in records])
    n_fb = sum(r["fallback"] for r in records)
    print(
        f"latency per user ({len(records)} users, {args.n_candidates} candidates): "
        f"p50 {np.percentile(secs, 50):.3f} s, p95 {np.percentile(secs, 95):.3f} s, "
        f"mean {secs.mean():.3f} s; CPU p50 {np.percentile(cpus, 50):.3f} s; tokens evaluated "
        f"p50 {np.percentile(toks, 50):.0f} (reused p50 "
        f"{np.percentile([r['reused'] for r in records], 50):.0f}); fallbacks {n_fb}; "
        f"load average 1-min min/median/max {loads.min():.2f}/{np.median(loads):.2f}/"
        f"{loads.max():.2f}"
    )

    weight, table = 1.0, {}
    if args.tune_users > 0:
        t0 = time.perf_counter()
        weight, table = tune_weight(
            lambda: make_model(args.model),
            train,
            reranker,
            relevance=args.relevance,
            n=args.n,
            n_candidates=args.n_candidates,
            max_users=args.tune_users,
            seed=args.seed,
            timeout=args.timeout,
        )
        print(
            f"validation ({args.tune_users} users of the training part, "
            f"{time.perf_counter() - t0:.0f} s): NDCG@{args.n} by w: "
            + ", ".join(f"{w:g}: {v:.4f}" for w, v in sorted(table.items()))
            + f" -> w = {weight:g}"
        )

    def top_n(w: float, scores: list[np.ndarray | None] = llm_scores) -> np.ndarray:
        out = np.full((len(users), args.n), -1, dtype=np.int32)
        for row, (cands, cf, rr) in enumerate(zip(cands_list, cf_list, scores, strict=True)):
            final = fuse_scores(cf, rr if rr is not None else np.zeros(len(cf)), w)
            order = np.lexsort((np.arange(len(final)), -final))[: args.n]
            out[row, : len(order)] = cands[order]
        return out

    rng = np.random.default_rng(args.seed)
    chance: list[np.ndarray | None] = [rng.random(len(c)) for c in cands_list]
    n = args.n
    rows = [
        ("CF alone", recs.items[:, :n]),
        (f"CF + LLM (w = {weight:g}, validation)", top_n(weight)),
        ("LLM order alone (w = 1)", top_n(1.0)),
        ("random order of the candidates", top_n(1.0, chance)),
    ]
    print(f"\ntest users: {len(users)} (seed {args.seed}), relevant = rating >= {args.relevance:g}")
    print(f"{'method':40s} NDCG@{n}  Recall@{n}")
    summary: dict[str, Any] = {}
    for label, items in rows:
        rep = ranking_report(items, rel_rows, n)
        summary[label] = rep
        print(f"{label:40s} {rep[f'ndcg@{n}']:.4f}   {rep[f'recall@{n}']:.4f}")
    retr = ranking_report(recs.items, rel_rows, m)[f"recall@{m}"]
    print(f"retriever recall@{m} (ceiling of any re-ranker): {retr:.4f}")
    print(f"load average at end: {os.getloadavg()}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(
                {
                    "args": vars(args),
                    "load_seconds": load_s,
                    "first_call_seconds": first_s,
                    "weight": weight,
                    "validation": {str(k): v for k, v in table.items()},
                    "summary": summary,
                    "records": records,
                },
                fh,
                indent=1,
            )
    client.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
