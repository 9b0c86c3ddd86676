"""``llmcf fit``: fit a model, save it to a folder (servable by ``llmcf serve``) and
optionally write the top-N of every user with the local or the Spark backend."""

from __future__ import annotations

import argparse
import time
from typing import Any

from llmcf.cli.parser import _data_options, _model_options
from llmcf.errors import LlmcfError


def _spark_conf(items: list[str]) -> dict[str, str]:
    conf: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise LlmcfError(f"--spark-conf expects KEY=VALUE, got {item!r}")
        conf[key.strip()] = value.strip()
    return conf


def _dataset(args: argparse.Namespace) -> Any:
    from llmcf.eval.runner import load_data
    from llmcf.ranking.events import EventWeights

    weights = EventWeights.parse(args.event_weights) if args.event_weights else None
    if args.events_db is not None:
        from llmcf.serve.store import EventStore

        store = EventStore.open(args.events_db)
        try:
            dataset, _ = store.to_dataset(weights or EventWeights())
        finally:
            store.close()
        return dataset
    dataset = load_data(args.data, _data_options(args))
    if weights is not None:  # fold-in of this model's events (saved in its manifest)
        dataset.info["event_weights"] = weights.as_dict()
    return dataset


def run(args: argparse.Namespace) -> int:
    from llmcf.models import make_model
    from llmcf.persist import save_model

    if (args.data is None) == (args.events_db is None):
        raise LlmcfError("give exactly one of --data and --events-db")
    if (args.recommend is None) != (args.recs_out is None):
        raise LlmcfError("give --recommend N and --recs-out PATH together")
    if args.text_neighbors is not None:
        raise LlmcfError(
            "--text-neighbors tables are not fused any more: fit t-item-knn, whose text "
            "fusion the local and Spark backends share"
        )
    if args.recommend is not None:
        from llmcf.ranking.path import check_n

        check_n(args.recommend)
    conf = _spark_conf(args.spark_conf)
    dataset = _dataset(args)
    options = _model_options(args)
    options["k"] = args.k
    model = make_model(args.model, **options)
    t0 = time.perf_counter()
    try:
        model.fit(dataset, progress=not args.quiet)
    except TypeError:  # models without a progress option
        model.fit(dataset)
    save_model(model, args.out)
    if not args.quiet:
        print(f"fitted {args.model} on {dataset} in {time.perf_counter() - t0:.2f} s -> {args.out}")
    if args.recommend is None:
        return 0
    t0 = time.perf_counter()
    if args.backend == "spark":
        from llmcf.backends import spark as spark_backend

        spark = spark_backend.get_spark(args.spark_master, conf=conf)
        spark_backend.recommend_all(args.out, args.recs_out, args.recommend, spark=spark)
    else:
        from llmcf.backends import local

        frame = local.recommend_all(model, args.recommend, progress=not args.quiet)
        local.write_recommendations(args.recs_out, frame)
    if not args.quiet:
        print(
            f"top-{args.recommend} of {len(model.users_)} users ({args.backend or 'local'}) in "
            f"{time.perf_counter() - t0:.2f} s -> {args.recs_out}"
        )
    return 0
