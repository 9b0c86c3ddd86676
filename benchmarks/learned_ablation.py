"""Ablation of the learned second stage (llmcf.rerank.learned) with paired tests over users.

For every fold: the retriever alone, the second stage with every feature family, and with
each family removed (``cf``: the feature models' scores and ranks; ``text``: the embedding
cosines; ``popularity``: popularity, item mean value and recency; with ``--llm``, ``llm``:
the language model's judgements of the top 20, every variant then trained on the
``--llm-users`` queries per carve that have them; with ``--profiles DIR``, ``profile``: the
text cosines of the items' LLM-written profiles), and with each feature
model removed (``-model:user-knn``: its columns and its scoring, what serving would save). All variants share the
fold's training queries (one per-user holdout of the training data) and the feature models
refitted on the whole training fold; each variant is its own ``LearnedRanker`` assembled from
them and ranked through the one ranking path (``recommend_many``), so the numbers are those
the model serves. The full variant is checked against ``LearnedRanker.fit`` on the first
fold (the same lists).

Validation (the choice of families): the NDCG@10 of each variant on the queries its gate
scores (every carve's queries of the held-out users, whom that model was not trained on
before its final refit; ``validation_ndcg@10`` of ``LearnedRanker.fit_info_``) and of the
retriever's order of the same candidates. Test: NDCG@10 / Recall@10 over the fold's users with a relevant test item
(full ranking over unseen items), pooled over folds; each difference to the retriever and
to the full stage gets a paired t-test and a Wilcoxon signed-rank test over (fold, user)
pairs, with a 95% t confidence interval of the mean difference.

    python benchmarks/learned_ablation.py --data ml-100k --split u1-u5 --out results.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from typing import Any

import numpy as np


def paired(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Paired comparison of per-user values ``b - a``: mean, relative change, 95% CI, p."""
    from scipy import stats

    d = b - a
    n = len(d)
    mean = float(d.mean())
    se = float(d.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
    t = float(stats.t.ppf(0.975, n - 1)) if n > 1 else float("nan")
    nz = d[d != 0]
    return {
        "mean_a": float(a.mean()),
        "mean_b": float(b.mean()),
        "diff": mean,
        "rel": mean / float(a.mean()) if a.mean() else float("nan"),
        "ci_low": mean - t * se,
        "ci_high": mean + t * se,
        "p_ttest": float(stats.ttest_rel(b, a).pvalue) if n > 1 else float("nan"),
        "p_wilcoxon": float(stats.wilcoxon(nz).pvalue) if len(nz) > 0 else 1.0,
        "n_pairs": float(n),
    }


def select_carves(args: argparse.Namespace, counts: list[int]) -> dict[str, float]:
    """Validation NDCG@n of ``n_carves`` in ``counts`` on the first fold's training data.

    Every setting is scored on the same queries: carve ``max(counts)`` (a holdout no setting
    trains on) of a seeded 20% of the users (whom no setting trains on); setting c trains
    (:func:`~llmcf.rerank.learned.train_ranker`) on carves ``0..c-1`` of the other users."""
    from llmcf.eval.runner import iter_folds
    from llmcf.rerank.learned import (
        LearnedConfig,
        LearnedRanker,
        group_ndcg,
        train_ranker,
        validation_queries,
    )

    fold = next(iter(iter_folds(args.data, args.split, seed=0)))
    train = fold.dataset.subset(fold.train)
    top = max(counts)
    cfg = LearnedConfig(retriever=args.retriever, n_candidates=args.m, n_carves=top + 1)
    model = LearnedRanker(cfg)
    ts = model.training_data(train, model.item_vectors(train))
    assert ts is not None
    held_users = validation_queries(ts.users, 12345)
    carve = ts.carves()
    score = ts.take(held_users & (carve == top))
    rank_col = ts.names.index("retriever_rank")
    out = {"retriever": group_ndcg(-score.X[:, rank_col], score.y, score.group, args.n)}
    import lightgbm as lgb

    for c in counts:
        sub = ts.take(~held_users & (carve < c))
        text, _ = train_ranker(sub, model.columns, cfg)
        pred = lgb.Booster(model_str=text).predict(score.X[:, model.columns])
        out[f"n_carves={c}"] = group_ndcg(pred, score.y, score.group, args.n)
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    from llmcf.eval.metrics import ndcg_at_n, recall_at_n, relevance_matrix
    from llmcf.eval.runner import iter_folds
    from llmcf.eval.topn import relevant_pairs
    from llmcf.rerank.features import FAMILIES, feature_names
    from llmcf.rerank.learned import (
        LearnedConfig,
        LearnedRanker,
        TrainingSet,
        group_ndcg,
        validation_queries,
    )

    n = args.n
    base_cfg = {
        "retriever": args.retriever,
        "n_candidates": args.m,
        "n_carves": args.carves,
        "carve": args.carve,
        "gate": False,  # every variant's own ranker, even where the gate would drop it
    }
    if args.llm:  # the llm family: every variant trains on the queries that have judgements
        base_cfg.update(
            llm=args.llm, llm_cache=args.llm_cache, llm_train_users=args.llm_users, llm_threads=1
        )
    if args.profiles:
        base_cfg["profiles"] = args.profiles
    optional = {"llm": bool(args.llm), "profile": bool(args.profiles)}
    full = tuple(f for f in FAMILIES if optional.get(f, True))
    variants: dict[str, tuple[str, ...]] = {"all": full}
    for fam in full:
        if fam != "retriever":
            variants[f"-{fam}"] = tuple(f for f in full if f != fam)
    variants["retriever-features-only"] = ("retriever",)
    for m in LearnedConfig().feature_models:
        variants[f"-model:{m}"] = full
    per_user: dict[str, dict[str, list[np.ndarray]]] = {
        k: {"ndcg": [], "recall": []} for k in ["retriever", *variants]
    }
    validation: dict[str, list[float]] = {k: [] for k in ["retriever", *variants]}
    fold_rows = []
    checked = False
    for fold in iter_folds(args.data, args.split, seed=0):
        t0 = time.perf_counter()
        train = fold.dataset.subset(fold.train)
        test = fold.dataset.subset(fold.test)
        relevance = None if args.relevance <= 0 else args.relevance
        ru, ri = relevant_pairs(test, relevance)
        rel = relevance_matrix(ru, ri, train.n_users, train.n_items)
        users = np.unique(ru)
        proto = LearnedRanker(LearnedConfig(**base_cfg, families=full))  # type: ignore[arg-type]
        vectors = proto.item_vectors(train)
        ts = proto.training_data(train, vectors)
        assert ts is not None
        stage = proto.build_stage(train, vectors)
        # the gate's queries of train_ranker: every carve's queries of the held-out users
        held = ts.take(validation_queries(ts.users, 0))
        retr_items = stage.retriever.recommend_many(users, n).items
        per_user["retriever"]["ndcg"].append(ndcg_at_n(retr_items, rel[users], n))
        per_user["retriever"]["recall"].append(recall_at_n(retr_items, rel[users], n))
        rank_col = ts.names.index("retriever_rank")
        validation["retriever"].append(group_ndcg(-held.X[:, rank_col], held.y, held.group, n))
        row: dict[str, Any] = {"fold": fold.name, "n_users": len(users), "n_queries": len(ts.group)}
        for name, fams in variants.items():
            if name.startswith("-model:"):  # one feature model removed: its columns and scorer
                gone = name.split(":", 1)[1]
                kept = tuple(m for m in stage.model_names if m != gone)
                cfg = LearnedConfig(**base_cfg, feature_models=kept, families=full)  # type: ignore[arg-type]
                cols = [ts.names.index(c) for c in feature_names(kept)]
                sub_ts = TrainingSet(
                    ts.X[:, cols], ts.y, ts.group, ts.users, feature_names(kept), ts.carve
                )
                sub_stage = replace(stage, models={m: stage.models[m] for m in kept})
                model = LearnedRanker(cfg).assemble(train, sub_ts, sub_stage)
            else:
                model = LearnedRanker(LearnedConfig(**base_cfg, families=fams))  # type: ignore[arg-type]
                model.assemble(train, ts, stage)
            items = model.recommend_many(users, n).items
            per_user[name]["ndcg"].append(ndcg_at_n(items, rel[users], n))
            per_user[name]["recall"].append(recall_at_n(items, rel[users], n))
            if model.ranker_text_:  # the early-stopping score (before the final refit)
                validation[name].append(model.fit_info_["validation_ndcg@10"])
            if name == "all" and not checked:
                fitted = LearnedRanker(LearnedConfig(**base_cfg, families=full)).fit(train)  # type: ignore[arg-type]
                same = np.array_equal(fitted.recommend_many(users, n).items, items)
                row["fit_equals_assembled"] = bool(same)
                checked = True
            row[f"ndcg@{n} {name}"] = float(np.nanmean(per_user[name]["ndcg"][-1]))
        row[f"ndcg@{n} retriever"] = float(np.nanmean(per_user["retriever"]["ndcg"][-1]))
        row["seconds"] = time.perf_counter() - t0
        fold_rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    pooled = {k: {m: np.concatenate(v[m]) for m in ("ndcg", "recall")} for k, v in per_user.items()}
    tests: dict[str, Any] = {}
    for name in variants:
        for metric in ("ndcg", "recall"):
            tests[f"{name} vs retriever {metric}@{n}"] = paired(
                pooled["retriever"][metric], pooled[name][metric]
            )
            if name != "all":
                tests[f"{name} vs all {metric}@{n}"] = paired(
                    pooled["all"][metric], pooled[name][metric]
                )
    return {
        "data": args.data,
        "split": args.split,
        "retriever": args.retriever,
        "n_candidates": args.m,
        "n_carves": args.carves,
        "carve": args.carve,
        "relevance": args.relevance,
        "folds": fold_rows,
        "validation_ndcg@10": {k: float(np.mean(v)) if v else None for k, v in validation.items()},
        "test": {
            k: {m: float(np.nanmean(v[m])) for m in ("ndcg", "recall")} for k, v in pooled.items()
        },
        "paired": tests,
    }


def markdown(res: dict[str, Any], n: int = 10) -> str:
    lines = [
        f"| variant | validation NDCG@{n} | test NDCG@{n} | test Recall@{n} | "
        f"NDCG vs retriever (95% CI) | p (t / Wilcoxon) | NDCG vs all (95% CI) | p (t / Wilcoxon) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, vals in res["test"].items():
        val = res["validation_ndcg@10"].get(name)
        cells = [
            name,
            "-" if val is None else f"{val:.4f}",
            f"{vals['ndcg']:.4f}",
            f"{vals['recall']:.4f}",
        ]
        for other in ("retriever", "all"):
            t = res["paired"].get(f"{name} vs {other} ndcg@{n}")
            if t is None:
                cells += ["-", "-"]
            else:
                cells.append(
                    f"{t['diff']:+.4f} ({t['rel']:+.1%}) [{t['ci_low']:+.4f}, {t['ci_high']:+.4f}]"
                )
                cells.append(f"{t['p_ttest']:.2g} / {t['p_wilcoxon']:.2g}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="ml-100k")
    p.add_argument("--split", default="u1-u5")
    p.add_argument("--retriever", default="ease")
    p.add_argument("--m", type=int, default=50, help="candidates re-ranked (M)")
    p.add_argument("--carves", type=int, default=3, help="training holdouts (n_carves)")
    p.add_argument("--carve", default="random", help="random or last (LearnedConfig.carve)")
    p.add_argument("--n", type=int, default=10)
    p.add_argument("--relevance", type=float, default=4.0)
    p.add_argument("--out", default=None, help="write the results as JSON here")
    p.add_argument(
        "--llm",
        default=None,
        help="add the llm family with this client (e.g. local:qwen2.5-0.5b); variants -llm",
    )
    p.add_argument(
        "--llm-users", type=int, default=200, help="training queries per carve (llm_train_users)"
    )
    p.add_argument("--llm-cache", default=None, help="JSON-lines cache of the judgements")
    p.add_argument(
        "--profiles",
        default=None,
        help="add the profile family: the llmcf enrich folder of the data; variants -profile",
    )
    p.add_argument(
        "--select-carves",
        default=None,
        help="only compare these n_carves (e.g. 1,2,3) on the first fold's validation queries",
    )
    args = p.parse_args()
    if args.select_carves:
        counts = [int(c) for c in args.select_carves.split(",")]
        print(json.dumps(select_carves(args, counts), indent=2))
        return 0
    res = run(args)
    print(markdown(res, args.n))
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            json.dump(res, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
