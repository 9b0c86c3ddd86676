"""Bodies of the CLI's ``recommend``, ``evaluate --task topn`` and the demo's re-rank part
(``llmcf.cli`` parses the arguments and calls these)."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import numpy as np

from llmcf.errors import ConfigError, LlmcfError


def _titles(dataset: Any) -> list[str]:
    fields = dataset.item_catalog.fields
    for key in ("title", "description"):
        if key in fields:
            return [str(v) if v is not None else "" for v in fields[key]]
    return [""] * dataset.n_items


def run_recommend(args: argparse.Namespace, model_options: dict[str, Any]) -> int:
    """``llmcf recommend``: fit on the whole data set, print the user's top N."""
    from llmcf.data.loaders import resolve_dataset
    from llmcf.models import make_model
    from llmcf.pipeline.build import build_pipeline, format_result

    dataset = resolve_dataset(args.data)
    idx = dataset.users.lookup(np.asarray([args.user]), missing="negative")
    if idx[0] < 0:
        # ids may be numeric in the vocabulary
        try:
            idx = dataset.users.lookup(np.asarray([int(args.user)]), missing="negative")
        except (ValueError, LlmcfError):
            pass
    user = int(idx[0])
    model = make_model(args.model, **model_options)
    t0 = time.perf_counter()
    model.fit(dataset)
    fit_s = time.perf_counter() - t0
    pipe = build_pipeline(
        model,
        dataset,
        rerank=args.rerank,
        explain=args.explain,
        weight=args.weight,
        n_candidates=args.n_candidates,
        llm_model=args.llm_model,
        n_threads=args.llm_threads,
        timeout=args.timeout,
    )
    t0 = time.perf_counter()
    result = pipe.recommend(user, args.n, explain=args.explain)
    rec_s = time.perf_counter() - t0
    who = f"user {args.user}" + (" (unknown: popular items)" if user < 0 else "")
    stage = (
        "CF"
        if args.rerank == "none"
        else f"CF top-{args.n_candidates} re-ranked by {args.rerank} (w={pipe.weight:g})"
    )
    print(f"{args.model} on {dataset.name}: top {args.n} for {who}; {stage}")
    print(format_result(result, _titles(dataset)))
    print(f"fit {fit_s:.2f} s, recommend {rec_s:.2f} s")
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


def run_demo_rerank(data: str, *, user_id: str = "196", n: int = 10, quiet: bool = False) -> None:
    """The demo's second part: one user's CF list next to its re-ranked versions (embedding
    re-ranker always; the local LLM when llama-cpp-python and its model are installed)."""
    from llmcf.data.loaders import resolve_dataset
    from llmcf.models import make_model
    from llmcf.pipeline.build import build_pipeline, llm_available

    dataset = resolve_dataset(data)
    titles = _titles(dataset)
    user = int(dataset.users.lookup(np.asarray([user_id]), missing="negative")[0])
    if user < 0:
        try:
            user = int(dataset.users.lookup(np.asarray([int(user_id)]), missing="negative")[0])
        except (ValueError, LlmcfError, ConfigError):
            user = 0
    model = make_model("item-knn").fit(dataset)
    print(f"\nTop-{n} for user {user_id}: item-kNN (implicit ranking) vs re-ranked top-20")
    columns: list[tuple[str, list[str], float]] = []
    for rerank in ["none", "embedding", *(["local"] if llm_available() else [])]:
        try:
            pipe = build_pipeline(model, dataset, rerank=rerank)
            t0 = time.perf_counter()
            result = pipe.recommend(user, n)
            seconds = time.perf_counter() - t0
        except LlmcfError as exc:
            print(f"  ({rerank} re-ranker unavailable: {exc})")
            continue
        label = "CF" if rerank == "none" else f"+{rerank} (w={pipe.weight:g})"
        columns.append((label, [titles[i][:34] for i in result.items.tolist()], seconds))
    width = 36
    print("  ".join(f"{label} [{sec:.2f}s]".ljust(width) for label, _, sec in columns))
    for rank in range(n):
        print(
            "  ".join((col[rank] if rank < len(col) else "").ljust(width) for _, col, _ in columns)
        )
