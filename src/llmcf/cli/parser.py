"""The ``llmcf`` argument parser and the option helpers shared by the command modules."""

from __future__ import annotations

import argparse
from typing import Any


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


def _rating_scale(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LO,HI (e.g. 1,5), got {text!r}") from None
    if not lo < hi:
        raise argparse.ArgumentTypeError(f"the scale's LO must be below HI, got {text!r}")
    return lo, hi


def _add_data_options(p: argparse.ArgumentParser) -> None:
    """How a table file (CSV/TSV/Parquet) is read; named data sets have their own rules."""
    p.add_argument(
        "--feedback",
        choices=["explicit", "implicit"],
        default=None,
        help="table files: explicit ratings or implicit interactions (default: explicit when "
        "there is a rating column)",
    )
    p.add_argument(
        "--rating-scale", type=_rating_scale, default=None, help="table files: LO,HI, e.g. 1,5"
    )
    p.add_argument(
        "--duplicates",
        choices=["error", "last", "first", "sum", "mean"],
        default=None,
        help="table files: repeated (user, item) pairs (default: error)",
    )
    p.add_argument("--encoding", default=None, help="table files: text encoding (default utf-8)")


def _data_options(args: argparse.Namespace) -> dict[str, Any]:
    """The data options given on the command line (those left out keep the loader's
    defaults)."""
    names = ("feedback", "rating_scale", "duplicates", "encoding")
    return {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}


def _add_model_options(p: argparse.ArgumentParser, *, many_k: bool) -> None:
    p.add_argument(
        "--similarity",
        default=None,
        help="cosine, msd, pearson, pearson_baseline (default), adjusted_cosine",
    )
    p.add_argument("--prediction", default=None, help="basic, mean, zscore, baseline (default)")
    p.add_argument(
        "--learned-option",
        action="append",
        default=None,
        metavar="KEY=VALUE",
        help="an option of the learned second stage (repeatable), e.g. carve=last, "
        "n_candidates=100, families=retriever,cf,text,popularity,llm, llm=local:qwen2.5-0.5b, "
        "gate=false (the fields of llmcf.rerank.learned.LearnedConfig)",
    )
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
    p.add_argument(
        "--tune",
        action="store_true",
        default=None,
        help="choose each model's tunables on a validation carve of the training data only: "
        "kNN reg-u/reg-i and correction shrinkage (by MAE at k); T-models those jointly "
        "with alpha/beta, shift, amplify and the bias prior; ease its lambda (by NDCG@10). "
        "The test data are never seen",
    )
    ease = p.add_argument_group("ease, t-ease")
    ease.add_argument(
        "--ease-lambda",
        type=float,
        default=None,
        help="L2 regularisation lambda of EASE's closed form (default 500; --tune chooses it)",
    )
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
        "--item-text",
        choices=["catalog", "profile", "both"],
        default=None,
        help="item text to embed: catalog (default), profile (LLM-written, llmcf enrich) or "
        "both (catalog text, then the profile)",
    )
    text.add_argument(
        "--profiles",
        default=None,
        help="folder of the item profiles (llmcf enrich --out; default "
        "$LLMCF_CACHE_DIR/profiles/<name of --data>)",
    )


def _learned_options(args: argparse.Namespace) -> dict[str, Any] | None:
    """``--learned-option KEY=VALUE`` pairs as typed :class:`LearnedConfig` fields (None:
    none given)."""
    pairs = getattr(args, "learned_option", None)
    if not pairs:
        return None
    from llmcf.options import parse_option_pairs
    from llmcf.rerank.learned import LearnedConfig

    return parse_option_pairs(LearnedConfig, pairs, "--learned-option")


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
        "ease_lambda": getattr(args, "ease_lambda", None),
        "learned_options": _learned_options(args),
        **_item_text_options(args),
    }


def _item_text_options(args: argparse.Namespace) -> dict[str, Any]:
    """``item_text`` and ``profiles`` (the default folder of ``--data``'s profiles when
    ``--item-text`` needs them and ``--profiles`` is not given)."""
    mode = getattr(args, "item_text", None)
    profiles = getattr(args, "profiles", None)
    if mode in ("profile", "both") and profiles is None and getattr(args, "data", None):
        from llmcf.text.profiles import default_profiles_dir

        profiles = str(default_profiles_dir(args.data))
    return {"item_text": mode, "profiles": profiles}


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
            help="topn: comma list of re-rankers: embedding, local, local:qwen2.5-1.5b, endpoint, openai:URL#MODEL, learned (LightGBM second stage over each model's top 50: a row <model>+learned)",
        )
    else:
        p.add_argument(
            "--rerank",
            choices=["none", "embedding", "local", "endpoint", "learned"],
            default="none",
            help="re-rank the CF candidates (learned: the LightGBM second stage over the model's top 50)",
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
    _add_data_options(ev)
    ev.add_argument(
        "--split",
        default="u1-u5",
        help="u1..u5, u1-u5, ua, ub, kfold:5, random:0.2, temporal:0.2, holdout:0.2, loo, "
        "coldstart[:M] (cold users and items keeping M interactions), coldstart-items:F (ALL "
        "interactions of a seeded fraction F of the items go to test, 0 < F < 1; seed: --seed)",
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
        "--candidates",
        choices=["all", "cold"],
        default="all",
        help="topn: all (default) ranks every unseen item; cold ranks only the fold's cold "
        "items (an interaction in the data, none in the fold's training part; with "
        "--split coldstart-items:F exactly the moved items)",
    )
    ev.add_argument(
        "--paired",
        type=_name_list,
        default=None,
        help="topn: comma list of A:B method pairs (e.g. item-knn:t-item-knn); for each, the "
        "mean per-user difference B - A of NDCG@N and Recall@N over every (fold, user), with "
        "its 95%% interval and the paired t-test and Wilcoxon p-values",
    )
    ev.add_argument(
        "--baselines",
        type=_name_list,
        default=None,
        help="topn: comma list of baseline rows, 'random' (seeded random order of the same "
        "candidates, with its analytic expected_ndcg/recall) or 'none'; default: random with "
        "--candidates cold, none otherwise",
    )
    ev.add_argument(
        "--llm-mode",
        choices=["pointwise", "choice"],
        default="pointwise",
        help="topn: LLM scoring mode",
    )

    fit = sub.add_parser("fit", help="fit a model and save it to a folder")
    fit.add_argument("--data", default=None, help="data set name or path (or --events-db)")
    _add_data_options(fit)
    fit.add_argument(
        "--events-db", default=None, help="train from the event store at this URL or SQLite path"
    )
    fit.add_argument(
        "--event-weights",
        default=None,
        help="implicit weight per event type, e.g. view=1,cart=3,purchase=5,rating=1 (saved "
        "with the model: how the service folds in events; see docs/algorithms.md)",
    )
    fit.add_argument("--model", default="item-knn")
    _add_model_options(fit, many_k=False)
    fit.add_argument("--out", required=True, help="folder to write manifest.json + arrays.npz to")
    fit.add_argument("--quiet", action="store_true")
    fit.add_argument(
        "--backend",
        choices=["local", "spark"],
        default=None,
        help="where --recommend computes the top-N of every user: local (default) or spark "
        "(distributed over the saved model); see docs/scaling.md",
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
        "--recommend", type=int, default=None, help="also write the top-N of every user"
    )
    fit.add_argument(
        "--recs-out",
        default=None,
        help="Parquet path of the top-N (columns user_id, rank, item_id, score, source, was_fallback)",
    )

    pr = sub.add_parser("predict", help="predict ratings with a saved model")
    pr.add_argument("--model-dir", required=True)
    pr.add_argument("--user", required=True, action="append", help="user id (repeat or comma list)")
    pr.add_argument("--item", required=True, action="append", help="item id (repeat or comma list)")
    pr.add_argument("--json", action="store_true", help="print JSON lines")

    rc = sub.add_parser(
        "recommend", help="top-N for one user: CF, optionally re-ranked and explained"
    )
    rc.add_argument("--data", default=None, help="fit --model on this data set first")
    rc.add_argument("--model-dir", default=None, help="or recommend from a saved model folder")
    rc.add_argument(
        "--events-db",
        default=None,
        help="with --model-dir: fold in the user's stored events exactly as the service does",
    )
    rc.add_argument(
        "--format",
        choices=["text", "json"],
        default="text",
        help="json: one object with the service's RecommendationsOut schema",
    )
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

    en = sub.add_parser(
        "enrich",
        help="LLM-written item profiles, once per item, resumable (for --item-text profile)",
    )
    en.add_argument("--data", required=True, help="data set name or path (its item catalog)")
    _add_data_options(en)
    en.add_argument(
        "--llm",
        default="qwen2.5-0.5b",
        help="qwen2.5-0.5b (default), qwen2.5-1.5b (optionally @q8_0/@q4_0), a .gguf path, or "
        "openai:URL#MODEL",
    )
    en.add_argument(
        "--out",
        default=None,
        help="profile folder (default $LLMCF_CACHE_DIR/profiles/<name of --data>); a rerun "
        "into it continues where the last one stopped",
    )
    en.add_argument("--batch-size", type=int, default=16, help="items decoded together (16)")
    en.add_argument("--max-tokens", type=int, default=48, help="reply length cap (48)")
    en.add_argument("--threads", type=int, default=1, help="llama.cpp threads (default 1)")
    en.add_argument(
        "--timeout", type=float, default=60.0, help="endpoint: seconds per request (60)"
    )
    en.add_argument(
        "--limit", type=int, default=None, help="profile at most this many new items (timing)"
    )
    en.add_argument("--quiet", action="store_true", help="no progress bar")

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
        "--workers",
        type=int,
        default=1,
        help="server processes sharing the port and the event store; each sees the others' "
        "events within 0.2 s",
    )
    srv.add_argument(
        "--event-weights",
        default=None,
        help="ignored: events are folded in with the weights saved in the model "
        "(llmcf fit --event-weights)",
    )
    srv.add_argument("--max-body-bytes", type=int, default=1_000_000)
    srv.add_argument(
        "--public-metrics",
        action="store_true",
        help="serve /metrics without a key (default: it needs $LLMCF_ADMIN_KEY or $LLMCF_API_KEY)",
    )
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
