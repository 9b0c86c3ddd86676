"""``llmcf demo``: the mission end to end on MovieLens 100K -- the paper's T-CF vs CF
experiment (table and plot), top-N ranking, one user's CF list next to its re-ranked (and,
with the local LLM installed, explained) versions, and the service answering and folding in
an event."""

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
    from llmcf.cli.parser import build_parser

    quiet = ["--quiet"] if args.quiet else []

    def evaluate(argv: list[str]) -> int:
        return run_evaluate(build_parser().parse_args(["evaluate", *argv, *quiet]))

    print("llmcf demo 1/4 -- the paper's experiment: T-UserCF / T-ItemCF (MiniLM text fused")
    print("into the neighbour similarity) against user- and item-kNN, MAE on MovieLens 100K,")
    print("canonical folds u1-u5, K = 5, 10, 15, 20, 40\n")
    status = evaluate(
        ["--data", data, "--split", "u1-u5", "--model", "user-knn,t-user-knn,item-knn,t-item-knn",
         "--k", "5,10,15,20,40", "--report", str(out / "results.json"),
         "--plot", str(out / "mae_vs_k.png")]
    )  # fmt: skip
    import importlib.util

    learned = importlib.util.find_spec("lightgbm") is not None  # the `rank` extra
    print("\nllmcf demo 2/4 -- top-N: full ranking over unseen items, relevant = rating >= 4;")
    print(
        "EASE with and without item text, item-kNN"
        + (
            ", and the learned second stage over EASE's top 50"
            if learned
            else " (pip install 'llmcf[rank]' adds the learned second stage)"
        )
        + "\n"
    )
    status |= evaluate(
        ["--task", "topn", "--data", data, "--split", "u1", "--relevance", "4",
         "--model", "item-knn,ease,t-ease", "--n", "10", "--paired", "ease:t-ease",
         *(["--rerank", "learned"] if learned else [])]
    )  # fmt: skip
    print("\nllmcf demo 3/4 -- the two-stage pipeline: CF candidates re-ranked")
    run_demo_rerank(data, quiet=args.quiet)
    print("\nllmcf demo 4/4 -- the service: the same list over HTTP, then after a purchase")
    run_demo_service(data, out / "model")
    return status


def run_demo_service(data: str, folder: Path, user_id: str = "196") -> None:
    """Fit item-kNN, save it, serve it in-process, and show a user's list before and after
    a purchase event (skipped, with the reason, without the serve extra)."""
    try:
        from fastapi.testclient import TestClient
    except ImportError:
        print("  (skipped: the serve extra is not installed: pip install -e '.[serve]')")
        return
    import tempfile

    from llmcf.data.loaders import resolve_dataset
    from llmcf.models import make_model
    from llmcf.persist import save_model
    from llmcf.serve.app import create_app
    from llmcf.serve.state import ServeSettings

    save_model(make_model("item-knn").fit(resolve_dataset(data)), folder)
    key = "demo-key-0123456789abcdef"
    with tempfile.TemporaryDirectory() as tmp:
        settings = ServeSettings(
            model_dir=folder, events_db=str(Path(tmp) / "events.sqlite"), api_key=key
        )
        with TestClient(create_app(settings)) as client:
            while client.get("/readyz").status_code != 200:
                time.sleep(0.05)
            url = f"/v1/users/{user_id}/recommendations"
            before = client.get(url, params={"n": 5}).json()["items"]
            print(f"  GET {url}?n=5 -> {[i['item_id'] for i in before]}")
            event = {"user_id": user_id, "item_id": before[0]["item_id"], "type": "purchase"}
            client.post("/v1/events", json={"events": [event]}, headers={"X-API-Key": key})
            print(f"  POST /v1/events {event}")
            after = client.get(url, params={"n": 5}).json()["items"]
            print(f"  GET {url}?n=5 -> {[i['item_id'] for i in after]}")
    print(f"  the model folder {folder} serves with: llmcf serve --model-dir {folder}")


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
