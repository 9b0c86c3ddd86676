"""``llmcf evaluate``: MAE/RMSE across folds and neighbour counts, or ``--task topn``."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from llmcf.cli.parser import _data_options, _model_options
from llmcf.errors import ConfigError, LlmcfError


def run(args: argparse.Namespace) -> int:
    if getattr(args, "task", "ratings") == "topn":
        return run_evaluate_topn(args, _model_options(args))
    if (
        getattr(args, "candidates", "all") != "all"
        or getattr(args, "baselines", None)
        or getattr(args, "paired", None)
    ):
        raise LlmcfError("--candidates, --baselines and --paired apply to --task topn only")
    from llmcf.eval.runner import evaluate_ratings, iter_folds, write_predictions
    from llmcf.models import make_model

    for name in args.model:  # fail on a bad model name or option before loading any data
        make_model(name, **_model_options(args))
    folds = list(
        iter_folds(args.data, args.split, seed=args.seed, data_options=_data_options(args))
    )
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
    from llmcf.eval.report import format_chosen, format_table, write_json

    print(format_table(rows))
    print(f"{len(folds)} fold(s) x {len(args.model)} model(s), {elapsed:.2f} s")
    chosen = format_chosen(rows)
    if chosen:
        print(chosen)
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


def _baselines(args: argparse.Namespace) -> list[str]:
    """``--baselines``: names, ``none`` for no row; default random with --candidates cold."""
    from llmcf.eval.topn import BASELINES

    candidates = getattr(args, "candidates", "all")
    names = getattr(args, "baselines", None)
    if names is None:
        return ["random"] if candidates == "cold" else []
    if "none" in names:
        if len(names) > 1:
            raise LlmcfError(f"--baselines none cannot be combined with others: {names}")
        return []
    bad = [name for name in names if name not in BASELINES]
    if bad:
        raise LlmcfError(
            f"unknown baseline {bad[0]!r}; --baselines takes {', '.join(BASELINES)} or none"
        )
    return list(names)


def _paired_methods(args: argparse.Namespace) -> list[tuple[str, str]]:
    """``--paired A:B,...`` as pairs of method names (each a model or baseline of the run)."""
    pairs = []
    stages = [r for r in (args.rerank or []) if r != "none"]
    known = set(args.model) | set(_baselines(args))
    known |= {f"{m}+{r}" for m in args.model for r in stages}
    for text in getattr(args, "paired", None) or []:
        a, sep, b = text.partition(":")
        if not sep or not a or not b:
            raise LlmcfError(f"--paired: {text!r} is not A:B (e.g. item-knn:t-item-knn)")
        for name in (a, b):
            if name not in known:
                raise LlmcfError(
                    f"--paired: {name!r} is not a model or baseline of this run "
                    f"({', '.join(sorted(known))})"
                )
        pairs.append((a, b))
    return pairs


def _paired_tests(
    pairs: list[tuple[str, str]], per_user: dict[tuple[str, str], dict[str, Any]], n: int
) -> list[dict[str, Any]]:
    """Print and return the paired test of each ``--paired`` pair on NDCG@n and Recall@n."""
    from llmcf.eval.stats import align, paired_test

    out = []
    for a, b in pairs:
        for metric in (f"ndcg@{n}", f"recall@{n}"):
            try:
                va, vb = align(per_user, a, b, metric)
            except LlmcfError as exc:
                print(f"warning: --paired {a}:{b}: {exc}", file=sys.stderr)
                continue
            t = paired_test(va, vb)
            out.append({"a": a, "b": b, "metric": metric, **t})
            print(
                f"paired {b} - {a} {metric}: {t['diff']:+.4f} "
                f"[95% {t['ci95_low']:+.4f}, {t['ci95_high']:+.4f}] over {int(t['n'])} "
                f"(fold, user) pairs; p = {t['p_ttest']:.3g} (t), {t['p_wilcoxon']:.3g} (Wilcoxon)"
            )
    return out


def run_evaluate_topn(args: argparse.Namespace, model_options: dict[str, Any]) -> int:
    """``llmcf evaluate --task topn``."""
    from llmcf.eval.report import format_chosen, format_table, write_json
    from llmcf.eval.runner import iter_folds
    from llmcf.eval.topn import evaluate_topn, make_reranker_factory

    candidates = getattr(args, "candidates", "all")
    baselines = _baselines(args)
    if model_options.get("learned_options") and not (
        "learned" in (args.rerank or []) or "learned" in args.model
    ):
        raise ConfigError("--learned-option needs --rerank learned or --model learned")
    if list(getattr(args, "k", [40]) or [40]) != [40]:
        print(
            "warning: --k is the rating neighbour count; plain kNN ranks top-N with its ranking "
            "similarity (50 neighbours per item, 40 per user), so --k changes only models that "
            "rank with their rating neighbours",
            file=sys.stderr,
        )
    folds = list(
        iter_folds(args.data, args.split, seed=args.seed, data_options=_data_options(args))
    )
    rerankers = {
        name: make_reranker_factory(name, n_threads=args.llm_threads, mode=args.llm_mode)
        for name in (args.rerank or [])
        if name not in ("none", "learned")
    }
    relevance = None if args.relevance is not None and args.relevance <= 0 else args.relevance
    pairs = _paired_methods(args)
    per_user: dict[tuple[str, str], dict[str, Any]] | None = {} if pairs else None
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
        candidates=candidates,
        baselines=baselines,
        learned=(model_options.get("learned_options") or {})
        if "learned" in (args.rerank or [])
        else None,
        per_user=per_user,
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
        metrics += [
            f"retriever_recall@{m}",
            "n_cf_fallbacks",
            "weight",
            "rerank_p50_seconds",
            "rerank_p95_seconds",
        ]
    if baselines:
        metrics += [f"expected_ndcg@{n}", f"expected_recall@{n}"]
    # the learned stage's rows carry the recall of its own M (--rerank learned)
    metrics += sorted(
        {k for r in rows for k in r if k.startswith("retriever_recall@")} - set(metrics)
    )
    print(format_table(rows, metrics))
    if args.sampled is not None:
        protocol = f"SAMPLED: relevant items among {args.sampled} random unseen items"
    elif candidates == "cold":
        n_cold = sorted({r["n_cold_items"] for r in rows if "n_cold_items" in r})
        protocol = (
            f"ranking only the fold's cold items ({', '.join(map(str, n_cold))} item(s) with "
            "no training interaction); relevant = cold test items"
        )
    else:
        protocol = "full ranking over all unseen items"
    if baselines:
        protocol += (
            "; random = seeded random order of the same candidates "
            "(expected_* = its analytic expectation)"
        )
    rel = "all test interactions" if relevance is None else f"test rating >= {relevance:g}"
    print(f"{len(folds)} fold(s), relevant = {rel}, {protocol}; {elapsed:.1f} s")
    chosen = format_chosen(rows)
    if chosen:
        print(chosen)
    tests = _paired_tests(pairs, per_user or {}, n)
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
            "candidates": candidates,
            "baselines": baselines,
            "max_users": args.max_users,
            "seconds": elapsed,
            "paired": tests,
        }
        write_json(args.report, rows, meta)
        print(f"report: {args.report}")
    return 0
