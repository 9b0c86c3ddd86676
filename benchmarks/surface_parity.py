"""Same list from every surface, on a real data set (issue: one ranking path).

For each model, for ``--users`` users, compares the full top-``--n`` lists (ids and order;
scores within 1e-9) of ``model.recommend``, ``llmcf recommend --model-dir --format json``,
``GET /v1/users/{id}/recommendations``, the local backend's ``--recs-out`` table and (with
``--spark``) the Spark backend's; then posts ``--events`` events per user and compares the
service with ``llmcf recommend --events-db`` and with the library fold-in
(``fold_in_histories`` + ``rank``).

    python benchmarks/surface_parity.py --data ml-100k --users 100 --n 50 --spark
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

MODELS = ["item-knn", "user-knn", "t-item-knn", "t-user-knn", "baseline", "global-mean"]
SPARK_MODELS = {"item-knn", "user-knn", "t-item-knn"}


def cli_json(argv: list[str]) -> dict[str, Any]:
    from llmcf.cli import main

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(argv) == 0
    return json.loads(buf.getvalue())


def same(a_ids: list[str], a_scores: list[float], b_ids: list[str], b_scores: list[float]) -> bool:
    return a_ids == b_ids and bool(np.allclose(a_scores, b_scores, rtol=0, atol=1e-9))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="ml-100k")
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--users", type=int, default=100)
    p.add_argument("--n", type=int, default=50)
    p.add_argument("--events", type=int, default=5)
    p.add_argument("--spark", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    from fastapi.testclient import TestClient

    from llmcf.backends import local
    from llmcf.data.loaders import resolve_dataset
    from llmcf.models import load_model, make_model
    from llmcf.persist import save_model
    from llmcf.ranking.events import EventRows
    from llmcf.ranking.path import fold_in_histories, rank
    from llmcf.serve.app import create_app
    from llmcf.serve.state import ServeSettings

    dataset = resolve_dataset(args.data)
    rng = np.random.default_rng(args.seed)
    users = rng.choice(dataset.n_users, min(args.users, dataset.n_users), replace=False)
    spark = None
    if args.spark:
        from llmcf.backends import spark as spark_backend

        spark = spark_backend.get_spark("local[2]")
    rows = []
    work = Path(tempfile.mkdtemp(prefix="llmcf-parity-"))
    for name in args.models.split(","):
        t0 = time.perf_counter()
        model = make_model(name).fit(dataset)
        folder = save_model(model, work / name)
        loaded = load_model(folder)
        frame = local.recommend_all(loaded, args.n)
        spark_frame = None
        if spark is not None and name in SPARK_MODELS:
            from llmcf.backends import spark as spark_backend

            out = spark_backend.recommend_all(folder, work / f"{name}.spark", args.n, spark=spark)
            spark_frame = local.read_recommendations(out)
        db = work / f"{name}.sqlite"
        settings = ServeSettings(model_dir=folder, events_db=str(db), api_key="k" * 24)
        mismatch = {"cli": 0, "http": 0, "local": 0, "spark": 0, "events_cli": 0, "events_lib": 0}
        with TestClient(create_app(settings)) as client:
            while client.get("/readyz").status_code != 200:
                time.sleep(0.05)
            for u in users.tolist():
                uid = str(model.users_.ids[u])
                ref = model.recommend(u, args.n)
                ids, scores = [str(i) for i in ref.item_ids], ref.scores.tolist()
                doc = cli_json(
                    ["recommend", "--model-dir", str(folder), "--user", uid, "--n", str(args.n),
                     "--format", "json"]
                )  # fmt: skip
                http = client.get(f"/v1/users/{uid}/recommendations", params={"n": args.n}).json()
                for key, got in (("cli", doc), ("http", http)):
                    g_ids = [i["item_id"] for i in got["items"]]
                    g_scores = [i["score"] for i in got["items"]]
                    mismatch[key] += not same(ids, scores, g_ids, g_scores)
                for key, fr in (("local", frame), ("spark", spark_frame)):
                    if fr is None:
                        continue
                    sub = fr[fr["user_id"].astype(str) == uid].sort_values("rank")
                    mismatch[key] += not same(
                        ids, scores, sub["item_id"].astype(str).tolist(), sub["score"].tolist()
                    )
                # fold-in: events through the service, the CLI and the library
                picks = rng.choice(dataset.n_items, args.events, replace=False)
                types = rng.choice(["view", "cart", "purchase", "rating"], args.events)
                values = [float(rng.integers(1, 6)) if t == "rating" else None for t in types]
                events = [
                    {"user_id": uid, "item_id": str(model.items_.ids[i]), "type": str(t),
                     **({"value": v} if v is not None else {})}
                    for i, t, v in zip(picks, types, values, strict=True)
                ]  # fmt: skip
                r = client.post(
                    "/v1/events", json={"events": events}, headers={"X-API-Key": "k" * 24}
                )
                assert r.status_code == 201, r.text
                http = client.get(f"/v1/users/{uid}/recommendations", params={"n": args.n}).json()
                doc = cli_json(
                    ["recommend", "--model-dir", str(folder), "--events-db", str(db), "--user", uid,
                     "--n", str(args.n), "--format", "json"]
                )  # fmt: skip
                mismatch["events_cli"] += doc["items"] != http["items"]
                ev = EventRows(
                    picks.astype(np.int64),
                    np.asarray(types, dtype=str),
                    np.array([np.nan if v is None else v for v in values]),
                )
                recs = rank(
                    loaded, args.n, histories=fold_in_histories(loaded, np.array([u]), [ev])
                )
                lib = recs.row(0, loaded.items_.ids)
                mismatch["events_lib"] += not same(
                    [str(i) for i in lib.item_ids], lib.scores.tolist(),
                    [i["item_id"] for i in http["items"]], [i["score"] for i in http["items"]],
                )  # fmt: skip
        rows.append((name, time.perf_counter() - t0, mismatch))
        print(f"{name:12s} {time.perf_counter() - t0:7.1f} s  mismatches: {mismatch}", flush=True)
    bad = sum(sum(m.values()) for _, _, m in rows)
    print(f"{len(users)} users x top-{args.n}, {len(rows)} models: {bad} mismatching lists")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
