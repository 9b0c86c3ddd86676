"""``llmcf recommend``: top-N for one user: CF, optionally re-ranked and explained."""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from llmcf.cli.parser import _learned_options, _model_options
from llmcf.errors import LlmcfError


def run(args: argparse.Namespace) -> int:
    if (args.data is None) == (args.model_dir is None):
        raise LlmcfError("give exactly one of --data (fit, then recommend) and --model-dir")
    if args.events_db is not None and args.model_dir is None:
        raise LlmcfError("--events-db folds events into a saved model: give --model-dir")
    if args.model_dir is not None:
        return run_saved(args)
    options = _model_options(args)
    options["k"] = args.k
    return run_recommend(args, options)


def recommendations_out(ranked: Any, user_id: str) -> dict[str, Any]:
    """The service's ``RecommendationsOut`` document of a :class:`RankedItems`."""
    return {
        "user_id": user_id,
        "items": [
            {"item_id": i, "score": float(s), "source": src}
            for i, s, src in zip(ranked.item_ids, ranked.scores, ranked.sources, strict=True)
        ],
        "was_fallback": bool(ranked.was_fallback),
        "reason": ranked.reason,
        "notes": list(ranked.notes),
    }


def run_saved(args: argparse.Namespace) -> int:
    """``llmcf recommend --model-dir``: the list the service answers for this user, with the
    user's stored events folded in when ``--events-db`` is given (the same code path)."""
    import json

    from llmcf.ranking.path import check_n
    from llmcf.serve.engine import ServingModel
    from llmcf.serve.state import load_serving_model

    if args.rerank != "none" or args.explain:
        raise LlmcfError("--rerank/--explain need --data (the re-rankers read the item texts)")
    n = check_n(args.n)
    model: ServingModel = load_serving_model(args.model_dir)
    user_id = str(args.user)
    if args.events_db is not None:
        from llmcf.serve.state import ServeSettings
        from llmcf.serve.store import EventStore

        store = EventStore.open(args.events_db)
        try:
            history = store.user_history(user_id, ServeSettings().history_limit)
            ranked = model.recommend(user_id, n, history, store.item_texts)
        finally:
            store.close()
    else:
        ranked = model.recommend(user_id, n)
    doc = recommendations_out(ranked, user_id)
    if args.format == "json":
        print(json.dumps(doc))
        return 0
    print(f"{type(model.model).__name__} from {args.model_dir}: top {n} for user {user_id}")
    if ranked.reason:
        print(f"({ranked.reason})")
    for rank_, item in enumerate(doc["items"], 1):
        print(f"{rank_:>3}. {item['item_id']}  {item['score']:.4f}  [{item['source']}]")
    for note in ranked.notes:
        print(f"note: {note}")
    return 0


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
    if args.format == "json":
        import json

        from llmcf.ranking.path import check_n
        from llmcf.serve.engine import ServingModel

        if args.rerank != "none" or args.explain:
            raise LlmcfError("--format json lists the CF ranking; drop --rerank/--explain")
        ranked = ServingModel(model).recommend(str(args.user), check_n(args.n))
        print(json.dumps(recommendations_out(ranked, str(args.user))))
        return 0
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
        learned_options=_learned_options(args),
    )
    t0 = time.perf_counter()
    result = pipe.recommend(user, args.n, explain=args.explain)
    rec_s = time.perf_counter() - t0
    who = f"user {args.user}" + (" (unknown: popular items)" if user < 0 else "")
    stage = (
        "CF"
        if args.rerank == "none"
        else f"CF top-{pipe.n_candidates} re-ranked by the learned stage"
        if args.rerank == "learned"
        else f"CF top-{args.n_candidates} re-ranked by {args.rerank} (w={pipe.weight:g})"
    )
    print(f"{args.model} on {dataset.name}: top {args.n} for {who}; {stage}")
    print(format_result(result, _titles(dataset)))
    print(f"fit {fit_s:.2f} s, recommend {rec_s:.2f} s")
    return 0
