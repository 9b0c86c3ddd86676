"""The ``llmcf`` command line: evaluate, fit, predict, demo, synth, download."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from llmcf.errors import LlmcfError


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a comma list of integers, got {text!r}"
        ) from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _name_list(text: str) -> list[str]:
    values = [v.strip() for v in text.split(",") if v.strip()]
    if not values:
        raise argparse.ArgumentTypeError("expected at least one name")
    return values


def _add_model_options(p: argparse.ArgumentParser, *, many_k: bool) -> None:
    p.add_argument(
        "--similarity",
        default=None,
        help="cosine, msd, pearson, pearson_baseline (default), adjusted_cosine",
    )
    p.add_argument("--prediction", default=None, help="basic, mean, zscore, baseline (default)")
    if many_k:
        p.add_argument(
            "--k", type=_int_list, default=[40], help="neighbour counts, e.g. 5,10,15,20,40"
        )
    else:
        p.add_argument("--k", type=int, default=None, help="neighbour count (default 40)")
    p.add_argument("--min-k", type=int, default=None, help="minimum usable neighbours (default 1)")
    p.add_argument(
        "--shrinkage",
        type=float,
        default=None,
        help="similarity shrinkage (default: 100 for pearson_baseline, else 0)",
    )
    p.add_argument(
        "--min-support", type=int, default=None, help="minimum co-ratings for a non-zero similarity"
    )
    p.add_argument("--baseline-method", choices=["als", "sgd"], default=None)
    p.add_argument(
        "--reg-u", type=float, default=None, help="ALS user-bias regularisation (default 15)"
    )
    p.add_argument(
        "--reg-i", type=float, default=None, help="ALS item-bias regularisation (default 10)"
    )
    p.add_argument(
        "--correction-shrinkage",
        type=float,
        default=None,
        help="damp the neighbour correction by n/(n+this), n = ratings of the user "
        "(item-based) or item (user-based); default 0 (off)",
    )
    p.add_argument("--threads", type=int, default=None, help="worker threads (default: all cores)")
    text = p.add_argument_group("text-fused kNN (t-item-knn, t-user-knn)")
    text.add_argument(
        "--embedder",
        default=None,
        help="minilm (default), minilm-l3, tfidf, st:<name>, onnx:<path>, openai:<url>#<model>",
    )
    text.add_argument(
        "--fusion",
        choices=["fixed", "support"],
        default=None,
        help="fixed: alpha*cf + (1-alpha)*text; support: weight of cf n/(n+beta)",
    )
    text.add_argument(
        "--alpha", type=float, default=None, help="weight of CF similarity in the fixed blend"
    )
    text.add_argument(
        "--beta",
        type=float,
        default=None,
        help="co-rating count at which CF and text weigh the same (support blend)",
    )
    text.add_argument(
        "--shift",
        type=float,
        default=None,
        help="text similarity rescaling: max(0, (cos - shift) / (1 - shift))",
    )
    text.add_argument(
        "--amplify",
        type=float,
        default=None,
        help="raise the fused similarity to this power (t-item-knn default 4)",
    )
    text.add_argument(
        "--bias-prior",
        type=float,
        default=None,
        help="shrink item biases towards their text neighbours' (0 off .. 1; T default 1)",
    )
    text.add_argument(
        "--tune",
        action="store_true",
        default=None,
        help="pick alpha/beta, shift and amplify on a validation carve of the training data",
    )


def _model_options(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "similarity": args.similarity,
        "prediction": args.prediction,
        "min_k": args.min_k,
        "shrinkage": args.shrinkage,
        "min_support": args.min_support,
        "baseline_method": args.baseline_method,
        "reg_u": getattr(args, "reg_u", None),
        "reg_i": getattr(args, "reg_i", None),
        "correction_shrinkage": getattr(args, "correction_shrinkage", None),
        "threads": args.threads,
        **{
            key: getattr(args, key, None)
            for key in ("embedder", "fusion", "alpha", "beta", "shift", "amplify", "bias_prior")
        },
        "tune": getattr(args, "tune", None),
    }


def _add_topn_options(p: argparse.ArgumentParser, *, many_rerank: bool) -> None:
    p.add_argument("--n", type=int, default=10, help="list length N (default 10)")
    p.add_argument(
        "--relevance",
        type=float,
        default=4.0,
        help="topn: relevant = test rating >= this (0: every test interaction)",
    )
    if many_rerank:
        p.add_argument(
            "--rerank",
            type=_name_list,
            default=None,
            help="topn: comma list of re-rankers: embedding, local, local:qwen2.5-1.5b, endpoint, openai:URL#MODEL",
        )
    else:
        p.add_argument(
            "--rerank",
            choices=["none", "embedding", "local", "endpoint"],
            default="none",
            help="re-rank the CF candidates",
        )
    p.add_argument(
        "--n-candidates",
        type=int,
        default=20,
        help="CF candidates given to the re-ranker (M, default 20)",
    )
    p.add_argument(
        "--llm-threads",
        type=int,
        default=1,
        help="llama.cpp threads for the local model (default 1)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="seconds per re-rank call before falling back to the CF order",
    )


def build_parser() -> argparse.ArgumentParser:
    from llmcf import __version__

    parser = argparse.ArgumentParser(
        prog="llmcf",
        description="Collaborative filtering joined with language models for e-commerce recommendations.",
    )
    parser.add_argument("--version", action="version", version=f"llmcf {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    ev = sub.add_parser("evaluate", help="MAE/RMSE of models across folds and neighbour counts")
    ev.add_argument(
        "--data", required=True, help="data set name under $LLMCF_DATA_DIR (ml-100k, ...) or a path"
    )
    ev.add_argument(
        "--split",
        default="u1-u5",
        help="u1..u5, u1-u5, ua, ub, kfold:5, random:0.2, temporal:0.2, coldstart",
    )
    ev.add_argument(
        "--model",
        type=_name_list,
        default=["item-knn"],
        help="comma list: user-knn, item-knn, baseline, global-mean, ...",
    )
    _add_model_options(ev, many_k=True)
    ev.add_argument("--seed", type=int, default=0, help="seed of computed splits")
    ev.add_argument("--report", default=None, help="write the JSON report here")
    ev.add_argument("--plot", default=None, help="write a PNG of MAE against K here")
    ev.add_argument(
        "--predictions",
        default=None,
        help="write user_id,item_id,rating,prediction CSV (one fold, one K)",
    )
    ev.add_argument("--quiet", action="store_true", help="no progress bar")
    ev.add_argument(
        "--task",
        choices=["ratings", "topn"],
        default="ratings",
        help="ratings (MAE/RMSE) or topn (ranking metrics, optional re-rankers)",
    )
    _add_topn_options(ev, many_rerank=True)
    ev.add_argument(
        "--max-users",
        type=int,
        default=None,
        help="topn: evaluate a seeded sample of users (for slow re-rankers)",
    )
    ev.add_argument(
        "--sampled",
        type=int,
        default=None,
        help="topn: SAMPLED metrics, relevant items among this many random unseen ones",
    )
    ev.add_argument(
        "--tune-users",
        type=int,
        default=200,
        help="topn: validation users for choosing the fusion weight",
    )
    ev.add_argument(
        "--llm-mode",
        choices=["pointwise", "choice"],
        default="pointwise",
        help="topn: LLM scoring mode",
    )

    fit = sub.add_parser("fit", help="fit a model and save it to a folder")
    fit.add_argument("--data", default=None, help="data set name or path (or --events-db)")
    fit.add_argument(
        "--events-db", default=None, help="train from the event store at this URL or SQLite path"
    )
    fit.add_argument(
        "--event-weights",
        default=None,
        help="implicit weight per event type, e.g. view=1,cart=3,purchase=5,rating=1",
    )
    fit.add_argument("--model", default="item-knn")
    _add_model_options(fit, many_k=False)
    fit.add_argument("--out", required=True, help="folder to write manifest.json + arrays.npz to")
    fit.add_argument("--quiet", action="store_true")
    fit.add_argument(
        "--backend",
        choices=["local", "spark"],
        default=None,
        help="build a neighbour artifact (top-K lists of --model's kind, Parquet/CSV input) "
        "with this backend instead of fitting a model; see docs/scaling.md",
    )
    fit.add_argument(
        "--spark-master",
        default=None,
        help="Spark master: local[2], spark://host:7077, yarn... (default: spark-submit's, else local[*])",
    )
    fit.add_argument(
        "--spark-conf", action="append", default=[], help="KEY=VALUE Spark setting (repeat)"
    )
    fit.add_argument(
        "--n-neighbors", type=int, default=50, help="backend: neighbours stored per entity"
    )
    fit.add_argument(
        "--text-neighbors",
        default=None,
        help="backend: Parquet/CSV of item_id,neighbor_id,similarity to fuse with the CF "
        "lists (fixed blend, --alpha, --shift)",
    )
    fit.add_argument(
        "--recommend", type=int, default=None, help="backend: also write top-N for all users"
    )
    fit.add_argument("--recs-out", default=None, help="backend: Parquet path of the top-N")

    pr = sub.add_parser("predict", help="predict ratings with a saved model")
    pr.add_argument("--model-dir", required=True)
    pr.add_argument("--user", required=True, action="append", help="user id (repeat or comma list)")
    pr.add_argument("--item", required=True, action="append", help="item id (repeat or comma list)")
    pr.add_argument("--json", action="store_true", help="print JSON lines")

    rc = sub.add_parser(
        "recommend", help="top-N for one user: CF, optionally re-ranked and explained"
    )
    rc.add_argument("--data", required=True)
    rc.add_argument("--model", default="item-knn")
    rc.add_argument("--user", required=True, help="external user id")
    _add_model_options(rc, many_k=False)
    _add_topn_options(rc, many_rerank=False)
    rc.add_argument(
        "--weight",
        type=float,
        default=None,
        help="fusion weight of the re-ranker score (default 0.3)",
    )
    rc.add_argument(
        "--explain",
        action="store_true",
        help="one-sentence reason per item (local LLM or endpoint)",
    )
    rc.add_argument(
        "--llm-model",
        default=None,
        help="local model: qwen2.5-0.5b, qwen2.5-1.5b or a .gguf path, optionally @q8_0/@q4_0 "
        "(default qwen2.5-0.5b@q8_0 for ranking)",
    )

    demo = sub.add_parser(
        "demo", help="fit and evaluate on MovieLens 100K, print the table, write the plot"
    )
    demo.add_argument("--out", default="llmcf-demo", help="folder for the report and plot")
    demo.add_argument("--quiet", action="store_true")

    syn = sub.add_parser("synth", help="write a synthetic interaction data set to Parquet")
    syn.add_argument("--users", type=int, required=True)
    syn.add_argument("--items", type=int, required=True)
    syn.add_argument("--interactions", type=int, required=True)
    syn.add_argument("--seed", type=int, default=0)
    syn.add_argument(
        "--text", action="store_true", help="also write item titles/descriptions (--items-out)"
    )
    syn.add_argument("--out", required=True)
    syn.add_argument(
        "--items-out",
        default=None,
        help="item catalog Parquet (default with --text: OUT.items.parquet)",
    )
    syn.add_argument("--quiet", action="store_true", help="no progress bar")

    dl = sub.add_parser("download", help="download an official MovieLens archive into the cache")
    dl.add_argument("name", help="ml-100k, ml-1m, ml-latest-small, ...")
    dl.add_argument("--dir", default=None, help="target folder (default: $LLMCF_DATA_DIR)")

    srv = sub.add_parser("serve", help="serve a saved model over HTTP (needs the 'serve' extra)")
    srv.add_argument("--model-dir", required=True, help="folder written by `llmcf fit`")
    srv.add_argument(
        "--events-db",
        default=None,
        help="event store URL or SQLite path (default: $LLMCF_EVENTS_DB or <cache>/events.sqlite)",
    )
    srv.add_argument("--host", default="127.0.0.1")
    srv.add_argument("--port", type=int, default=8000)
    srv.add_argument(
        "--event-weights",
        default=None,
        help="implicit weight per event type, e.g. view=1,cart=3,purchase=5,rating=1",
    )
    srv.add_argument("--max-body-bytes", type=int, default=1_000_000)
    srv.add_argument(
        "--cors-origin",
        action="append",
        default=[],
        help="allow this origin (repeat); CORS is off by default",
    )
    srv.add_argument(
        "--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"]
    )
    srv.add_argument(
        "--access-log",
        action="store_true",
        help="log every request at --log-level info (off by default: CPU on every request)",
    )
    srv.add_argument(
        "--no-fast-path",
        dest="fast_path",
        action="store_false",
        help="answer every request through FastAPI's routing (same answers, more CPU)",
    )
    return parser


def cmd_evaluate(args: argparse.Namespace) -> int:
    if getattr(args, "task", "ratings") == "topn":
        from llmcf.pipeline.commands import run_evaluate_topn

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


def _fit_backend(args: argparse.Namespace) -> int:
    """``fit --backend``: neighbour artifact (and optionally top-N for all users)."""
    kinds = {"item-knn": "item", "user-knn": "user"}
    if args.model not in kinds:
        raise LlmcfError(f"--backend builds item-knn or user-knn neighbours, not {args.model!r}")
    if args.data is None:
        raise LlmcfError("--backend reads interactions from --data (a Parquet/CSV file or a name)")
    if (args.recommend is None) != (args.recs_out is None):
        raise LlmcfError("give --recommend N and --recs-out PATH together")
    conf: dict[str, str] = {}
    for item in args.spark_conf:
        key, sep, value = item.partition("=")
        if not sep:
            raise LlmcfError(f"--spark-conf expects KEY=VALUE, got {item!r}")
        conf[key.strip()] = value.strip()
    options: dict[str, Any] = {
        "n_neighbors": args.n_neighbors,
        "shrinkage": args.shrinkage,
        "min_support": args.min_support or 1,
        "text_neighbors": args.text_neighbors,
        "alpha": 0.5 if args.alpha is None else args.alpha,
        "shift": 0.0 if args.shift is None else args.shift,
    }
    if args.fusion not in (None, "fixed"):
        raise LlmcfError(
            "--backend fuses text neighbours with the fixed blend only (--fusion fixed)"
        )
    similarity = args.similarity or "cosine"
    kind: Any = kinds[args.model]
    t0 = time.perf_counter()
    if args.backend == "local":
        from llmcf.backends import local

        artifact = local.build_neighbors(
            args.data, kind, similarity, threads=args.threads, progress=not args.quiet, **options
        )
        artifact.save(args.out)
        if args.recommend is not None:
            recs = local.recommend_all(
                artifact, args.data, args.recommend, k=args.k, progress=not args.quiet
            )
            local.write_recommendations(args.recs_out, artifact, recs)
    else:
        from llmcf.backends import spark as spark_backend

        spark = spark_backend.get_spark(args.spark_master, conf=conf)
        artifact = spark_backend.build_neighbors(
            args.data, kind, similarity, spark=spark, **options
        )
        artifact.save(args.out)
        if args.recommend is not None:
            spark_backend.recommend_all(
                artifact, args.data, args.recs_out, args.recommend, k=args.k, spark=spark
            )
    if not args.quiet:
        print(
            f"built {artifact} in {time.perf_counter() - t0:.2f} s -> {args.out}"
            + (f"; top-{args.recommend} -> {args.recs_out}" if args.recs_out else "")
        )
    return 0


def cmd_fit(args: argparse.Namespace) -> int:
    from llmcf.data.loaders import resolve_dataset
    from llmcf.models import make_model
    from llmcf.persist import save_model

    if args.backend is not None:
        return _fit_backend(args)
    if (args.data is None) == (args.events_db is None):
        raise LlmcfError("give exactly one of --data and --events-db")
    cutoff = None
    if args.events_db is not None:
        from llmcf.serve.store import EventStore, EventWeights

        weights = EventWeights.parse(args.event_weights) if args.event_weights else EventWeights()
        store = EventStore.open(args.events_db)
        try:
            dataset, cutoff = store.to_dataset(weights)
        finally:
            store.close()
    else:
        dataset = resolve_dataset(args.data)
    options = _model_options(args)
    options["k"] = args.k
    model = make_model(args.model, **options)
    t0 = time.perf_counter()
    try:
        model.fit(dataset, progress=not args.quiet)
    except TypeError:  # models without a progress option
        model.fit(dataset)
    save_model(model, args.out)
    if cutoff is not None:
        from llmcf.serve.state import CUTOFF_FILE

        # the service folds in only the events stored after the ones this model was fitted on
        (Path(args.out) / CUTOFF_FILE).write_text(json.dumps({"max_seq": cutoff}))
    if not args.quiet:
        print(f"fitted {args.model} on {dataset} in {time.perf_counter() - t0:.2f} s -> {args.out}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    import numpy as np

    from llmcf.persist import load_model

    model = load_model(args.model_dir)
    users = [u for part in args.user for u in part.split(",") if u]
    items = [i for part in args.item for i in part.split(",") if i]
    if len(users) == 1 and len(items) > 1:
        users = users * len(items)
    if len(items) == 1 and len(users) > 1:
        items = items * len(users)
    if len(users) != len(items):
        raise LlmcfError(
            f"--user and --item give {len(users)} and {len(items)} ids; they must pair up"
        )
    u_idx = model.users_.lookup(np.asarray(users), missing="negative")
    i_idx = model.items_.lookup(np.asarray(items), missing="negative")
    est, fallback = model.predict_detailed(u_idx, i_idx)
    for u, i, e, fb, ku, ki in zip(users, items, est, fallback, u_idx, i_idx, strict=True):
        reason = None
        if ku < 0:
            reason = "unknown user"
        elif ki < 0:
            reason = "unknown item"
        elif fb:
            reason = "no usable neighbour"
        if args.json:
            print(
                json.dumps(
                    {
                        "user_id": u,
                        "item_id": i,
                        "prediction": float(e),
                        "was_fallback": bool(fb),
                        "reason": reason,
                    }
                )
            )
        else:
            note = f"  (fallback: {reason})" if fb else ""
            print(f"user {u} item {i}: {e:.4f}{note}")
    return 0


def cmd_recommend(args: argparse.Namespace) -> int:
    from llmcf.pipeline.commands import run_recommend

    options = _model_options(args)
    options["k"] = args.k
    return run_recommend(args, options)


def cmd_demo(args: argparse.Namespace) -> int:
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
    status = cmd_evaluate(ns)
    from llmcf.pipeline.commands import run_demo_rerank

    run_demo_rerank(data, quiet=args.quiet)
    return status


def cmd_synth(args: argparse.Namespace) -> int:
    from llmcf.data import synth

    items_out = args.items_out
    if args.text and items_out is None:
        out = Path(args.out)
        items_out = str(out.with_name(out.name.removesuffix(".parquet") + ".items.parquet"))
    if items_out is not None and not args.text:
        raise LlmcfError("--items-out needs --text")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    try:
        synth.generate_to_parquet(
            args.users,
            args.items,
            args.interactions,
            args.out,
            items_path=items_out,
            seed=args.seed,
            with_text=args.text,
            progress=not args.quiet,
        )
    except ValueError as exc:  # SynthConfig names the offending size
        raise LlmcfError(str(exc)) from None
    if items_out is not None:
        print(f"item catalog: {items_out}")
    print(
        f"wrote {args.interactions} interactions to {args.out} in {time.perf_counter() - t0:.1f} s"
    )
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    from llmcf.data.download import download_movielens

    path = download_movielens(args.name, cache_dir=args.dir)
    print(path)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn
    except ImportError:
        raise LlmcfError(
            "`llmcf serve` needs the serve extra: pip install 'llmcf[serve]'"
        ) from None
    from llmcf.persist import MANIFEST
    from llmcf.serve.app import create_app
    from llmcf.serve.state import ServeSettings, default_events_db
    from llmcf.serve.store import EventWeights

    model_dir = Path(args.model_dir)
    if not (model_dir / MANIFEST).is_file():
        raise LlmcfError(f"{model_dir}: no {MANIFEST}; is this a folder written by `llmcf fit`?")
    settings = ServeSettings(
        model_dir=model_dir,
        events_db=args.events_db or default_events_db(),
        max_body_bytes=args.max_body_bytes,
        cors_origins=tuple(args.cors_origin),
        fast_path=args.fast_path,
        freeze_gc=True,
        event_weights=EventWeights.parse(args.event_weights)
        if args.event_weights
        else EventWeights(),
    )
    if not settings.api_key:
        print(
            "llmcf serve: LLMCF_API_KEY is not set: write and admin endpoints are disabled",
            file=sys.stderr,
        )
    app = create_app(settings)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        access_log=args.access_log,
        loop=_installed("uvloop"),
        http=_installed("httptools"),
    )
    return 0


def _installed(module: str) -> str:
    """``module`` (uvloop, httptools: ``uvicorn[standard]``) when installed, else uvicorn's
    pure-Python fallback, which costs several times more CPU per request (reported)."""
    import importlib.util

    if importlib.util.find_spec(module) is not None:
        return module
    print(f"llmcf serve: {module} is not installed: slower requests", file=sys.stderr)
    return "auto"


COMMANDS = {
    "evaluate": cmd_evaluate,
    "fit": cmd_fit,
    "predict": cmd_predict,
    "recommend": cmd_recommend,
    "demo": cmd_demo,
    "synth": cmd_synth,
    "download": cmd_download,
    "serve": cmd_serve,
}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except LlmcfError as exc:
        print(f"llmcf {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
