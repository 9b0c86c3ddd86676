"""``llmcf evaluate``: MAE/RMSE across folds and neighbour counts, or ``--task topn``."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from llmcf.cli.parser import _model_options
from llmcf.errors import LlmcfError


def run(args: argparse.Namespace) -> int:
    if getattr(args, "task", "ratings") == "topn":
        return run_evaluate_topn(args, _model_options(args))
    from llmcf.eval.runner import evaluate_ratings, iter_folds, write_predictions
    from llmcf.models import make_model

    for name in args.model:  # fail on a bad model name or option before loading any data
        make_model(name, **_model_options(args))
    folds = list(iter_folds(args.data, args.split, seed=args.seed))
    if args.predictions and (len(folds) != 1 or len(args.k) != 1):
        raise LlmcfError(
            f"--predictions needs one fold and one K; got {len(folds)} fold(s) and K={args.k}. "
            "Name one fold, e.g. --split u1 --k 40"
        )
    t0 = time.perf_counter()
    rows, kept = evaluate_ratings(
        folds,
        args.model,
        args.k,
        _model_options(args),
        progress=not args.quiet,
        keep_predictions=bool(args.predictions),
    )
    elapsed = time.perf_counter() - t0
    from llmcf.eval.report import format_table, write_json

    print(format_table(rows))
    print(f"{len(folds)} fold(s) x {len(args.model)} model(s), {elapsed:.2f} s")
    meta = {
        "command": " ".join(["llmcf", *sys.argv[1:]]),
        "data": args.data,
        "split": args.split,
        "models": args.model,
        "k": args.k,
        "options": {k: v for k, v in _model_options(args).items() if v is not None},
        "seconds": elapsed,
    }
    if args.report:
        write_json(args.report, rows, meta)
        print(f"report: {args.report}")
    if args.plot:
        from llmcf.eval.report import plot_metric_vs_k

        plot_metric_vs_k(
            rows, args.plot, metric="mae", title=f"MAE vs K on {args.data} ({args.split})"
        )
        print(f"plot: {args.plot}")
    if args.predictions:
        n = write_predictions(args.predictions, kept)
        print(f"predictions: {args.predictions} ({n} rows)")
    return 0


def run_evaluate_topn(args: argparse.Namespace, model_options: dict[str, Any]) -> int:
    """``llmcf evaluate --task topn``."""
    from llmcf.eval.report import format_table, write_json
    from llmcf.eval.runner import iter_folds
    from llmcf.eval.topn import evaluate_topn, make_reranker_factory

    folds = list(iter_folds(args.data, args.split, seed=args.seed))
    rerankers = {
        name: make_reranker_factory(name, n_threads=args.llm_threads, mode=args.llm_mode)
        for name in (args.rerank or [])
        if name != "none"
    }
    relevance = None if args.relevance is not None and args.relevance <= 0 else args.relevance
    t0 = time.perf_counter()
    rows = evaluate_topn(
        folds,
        args.model,
        n=args.n,
        relevance=relevance,
        options=model_options,
        rerankers=rerankers,
        n_candidates=args.n_candidates,
        max_users=args.max_users,
        sampled=args.sampled,
        tune_users=args.tune_users,
        timeout=args.timeout,
        seed=args.seed,
        progress=not args.quiet,
        on_skip=lambda msg: print(f"warning: {msg}", file=sys.stderr),
    )
    elapsed = time.perf_counter() - t0
    if not rows:
        raise LlmcfError("no model could be evaluated")
    n, m = args.n, max(args.n, args.n_candidates)
    metrics = [
        f"ndcg@{n}",
        f"recall@{n}",
        f"precision@{n}",
        f"hit_rate@{n}",
        f"mrr@{n}",
        f"coverage@{n}",
    ]
    if args.sampled is None:
        metrics += [f"retriever_recall@{m}", "weight", "rerank_p50_seconds", "rerank_p95_seconds"]
    print(format_table(rows, metrics))
    protocol = (
        "full ranking over all unseen items"
        if args.sampled is None
        else f"SAMPLED: relevant items among {args.sampled} random unseen items"
    )
    rel = "all test interactions" if relevance is None else f"test rating >= {relevance:g}"
    print(f"{len(folds)} fold(s), relevant = {rel}, {protocol}; {elapsed:.1f} s")
    if args.report:
        meta = {
            "command": " ".join(["llmcf", *sys.argv[1:]]),
            "task": "topn",
            "data": args.data,
            "split": args.split,
            "models": args.model,
            "n": n,
            "relevance": relevance,
            "rerank": args.rerank,
            "n_candidates": args.n_candidates,
            "protocol": "full" if args.sampled is None else f"sampled-{args.sampled}",
            "max_users": args.max_users,
            "seconds": elapsed,
        }
        write_json(args.report, rows, meta)
        print(f"report: {args.report}")
    return 0
