"""``llmcf demo``: fit and evaluate on MovieLens 100K, print the table, write the plot, then
show one user's CF list next to its re-ranked versions."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from llmcf.cli.evaluate import run as run_evaluate
from llmcf.cli.recommend import _titles
from llmcf.errors import ConfigError, LlmcfError


def run(args: argparse.Namespace) -> int:
    from llmcf.data.loaders import resolve_data_path
    from llmcf.settings import data_dir

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        resolve_data_path("ml-100k")
        data = "ml-100k"
    except LlmcfError:
        from llmcf.data.download import download_movielens

        print(f"ml-100k not found under {data_dir()}; downloading it once")
        data = str(download_movielens("ml-100k"))
    print("llmcf demo: user- and item-kNN (pearson_baseline similarity, baseline prediction)")
    print("on MovieLens 100K, canonical folds u1-u5, K = 5, 10, 15, 20, 40\n")
    ns = argparse.Namespace(
        data=data,
        split="u1-u5",
        model=["user-knn", "item-knn", "baseline"],
        k=[5, 10, 15, 20, 40],
        similarity="pearson_baseline",
        prediction="baseline",
        min_k=None,
        shrinkage=None,
        min_support=None,
        baseline_method=None,
        threads=None,
        seed=0,
        report=str(out / "results.json"),
        plot=str(out / "mae_vs_k.png"),
        predictions=None,
        quiet=args.quiet,
    )
    status = run_evaluate(ns)
    run_demo_rerank(data, quiet=args.quiet)
    return status


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
