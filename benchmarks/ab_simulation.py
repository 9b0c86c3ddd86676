"""A/B traffic simulation against the real service: does the arm with the better offline NDCG
win on CTR, with a confidence interval that excludes zero?

Usage::

    python benchmarks/ab_simulation.py                     # ml-100k, item-knn vs baseline
    python benchmarks/ab_simulation.py --arm-a item-knn --arm-b ease --visits 6000 --json ab.json

1. ml-100k (``$LLMCF_DATA_DIR``) is split with a per-user random holdout (20% of each user's
   ratings, seed 0); the held-out ratings >= 4 are each user's *future interests*.
2. Both arms are fitted on the training part and saved; their offline NDCG@10 on the
   held-out interests is computed through the one ranking path (``llmcf.ranking.path.rank``).
3. One app serves both (``model_dir`` = arm A, ``model_dir_b`` = arm B, users split 50/50 by
   the stable hash of their id), in-process through its ASGI interface (FastAPI's
   TestClient: the whole stack, fast paths included, without sockets).
4. ``--visits`` synthetic visits: a random user with future interests asks for
   ``GET /v1/users/{id}/recommendations?n=10``; each listed item among the user's interests
   is clicked (a ``view`` event) with probability ``--p-click``, and a click is a purchase
   with probability ``--p-purchase``; any other listed item is clicked with probability
   ``--p-noise``. Clicks are posted as real events (``POST /v1/events``), so the service
   excludes them from the user's next lists.
5. The service's own online evaluation (``GET /v1/admin/online``: impressions logged by the
   service, events attributed within the window) gives CTR@10 per arm with Wilson intervals
   and the difference B - A with its 95% interval.

Prints the offline NDCG of both arms, the online table and whether the better-NDCG arm won
with the interval excluding zero; ``--json`` writes everything.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

KEY = "ab-simulation-key"


def offline_ndcg(model: Any, test_users: np.ndarray, relevant: Any, n: int) -> float:
    from llmcf.eval.metrics import ndcg_at_n
    from llmcf.ranking.path import rank

    recs = rank(model, n, users=test_users)
    return float(np.nanmean(ndcg_at_n(recs.items, relevant[test_users], n)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="ml-100k")
    ap.add_argument("--arm-a", default="item-knn")
    ap.add_argument("--arm-b", default="baseline")
    ap.add_argument("--visits", type=int, default=3000)
    ap.add_argument("--n", type=int, default=10)
    ap.add_argument("--p-click", type=float, default=0.5)
    ap.add_argument("--p-purchase", type=float, default=0.3)
    ap.add_argument("--p-noise", type=float, default=0.01)
    ap.add_argument("--relevance", type=float, default=4.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)

    import scipy.sparse as sp
    from fastapi.testclient import TestClient
    from tqdm import tqdm

    from llmcf.data.loaders import resolve_dataset
    from llmcf.eval.split import holdout_split
    from llmcf.models import make_model
    from llmcf.persist import save_model
    from llmcf.serve.app import create_app
    from llmcf.serve.state import ServeSettings

    dataset = resolve_dataset(args.data)
    fold = holdout_split(dataset, 0.2, seed=args.seed)[0]
    train = dataset.subset(fold.train, name=f"{dataset.name}-train")
    test = fold.test[dataset.rating[fold.test] >= args.relevance]
    relevant = sp.csr_matrix(
        (np.ones(len(test)), (dataset.user_idx[test], dataset.item_idx[test])),
        shape=(dataset.n_users, dataset.n_items),
    )
    test_users = np.flatnonzero(np.diff(relevant.indptr) > 0)
    user_ids = [str(u) for u in dataset.users.ids]
    item_ids = [str(i) for i in dataset.items.ids]
    interests = {
        user_ids[u]: {
            item_ids[i] for i in relevant.indices[relevant.indptr[u] : relevant.indptr[u + 1]]
        }
        for u in test_users
    }
    print(
        f"{dataset}: train {len(fold.train)} ratings, {len(test)} held-out interests "
        f"(rating >= {args.relevance:g}) of {len(test_users)} users"
    )

    result: dict[str, Any] = {
        "command": " ".join(["python", "benchmarks/ab_simulation.py", *(argv or sys.argv[1:])])
    }
    with tempfile.TemporaryDirectory(prefix="llmcf-ab-") as tmp_name:
        tmp = Path(tmp_name)
        folders, ndcg = {}, {}
        for arm, name in (("A", args.arm_a), ("B", args.arm_b)):
            t0 = time.perf_counter()
            model = make_model(name).fit(train)
            folders[arm] = save_model(model, tmp / f"arm-{arm}")
            ndcg[arm] = offline_ndcg(model, test_users, relevant, args.n)
            print(
                f"arm {arm}: {name}, fitted in {time.perf_counter() - t0:.1f} s, "
                f"offline NDCG@{args.n} {ndcg[arm]:.4f}"
            )
        settings = ServeSettings(
            model_dir=folders["A"],
            model_dir_b=folders["B"],
            ab_split=0.5,
            events_db=str(tmp / "events.sqlite"),
            api_key=KEY,
            follow_interval=0,
        )
        rng = np.random.default_rng(args.seed)
        visitors = rng.choice(np.array(sorted(interests)), size=args.visits)
        clicks = purchases = 0
        t0 = time.perf_counter()
        with TestClient(create_app(settings)) as client:
            state = client.app.state.llmcf  # type: ignore[attr-defined]
            deadline = time.monotonic() + 120
            while (state.model is None or state.model_b is None) and time.monotonic() < deadline:
                time.sleep(0.05)
            if state.model_b is None:
                raise SystemExit(f"the arms did not load: {state.load_error}")
            for user in tqdm(visitors, desc="visits", unit="visit", disable=None):
                got = client.get(f"/v1/users/{user}/recommendations", params={"n": args.n})
                got.raise_for_status()
                events = []
                for it in got.json()["items"]:
                    item = it["item_id"]
                    p = args.p_click if item in interests[user] else args.p_noise
                    if rng.random() < p:
                        events.append({"user_id": str(user), "item_id": item, "type": "view"})
                        clicks += 1
                        if rng.random() < args.p_purchase:
                            events.append(
                                {"user_id": str(user), "item_id": item, "type": "purchase"}
                            )
                            purchases += 1
                if events:
                    r = client.post(
                        "/v1/events", json={"events": events}, headers={"X-API-Key": KEY}
                    )
                    r.raise_for_status()
            online = client.get(
                "/v1/admin/online", params={"window": 3600}, headers={"X-API-Key": KEY}
            ).json()
        seconds = time.perf_counter() - t0
    by_arm = {a["arm"]: a for a in online["arms"]}
    print(
        f"\n{args.visits} visits in {seconds:.1f} s: {clicks} clicks, {purchases} purchases "
        f"(p_click {args.p_click}, p_purchase {args.p_purchase}, p_noise {args.p_noise})"
    )
    print(f"| arm | model | offline NDCG@{args.n} | lists | CTR@{args.n} | 95% CI | conversion |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for arm, name in (("A", args.arm_a), ("B", args.arm_b)):
        a = by_arm[arm]
        print(
            f"| {arm} | {name} | {ndcg[arm]:.4f} | {a['impressions']} | {a['ctr']:.4f} | "
            f"{a['ctr_ci'][0]:.4f}-{a['ctr_ci'][1]:.4f} | {a['conversion']:.4f} |"
        )
    d = online["difference"]
    better = "A" if ndcg["A"] > ndcg["B"] else "B"
    won = (d["value"] < 0) if better == "A" else (d["value"] > 0)
    excludes_zero = d["ci"][0] > 0 or d["ci"][1] < 0
    print(
        f"CTR B - A = {d['value']:+.4f}, 95% CI [{d['ci'][0]:+.4f}, {d['ci'][1]:+.4f}]; "
        f"better offline NDCG: arm {better}; it {'won' if won else 'lost'} on CTR, the "
        f"interval {'excludes' if excludes_zero else 'includes'} zero"
    )
    result.update(
        data=str(dataset),
        arms={"A": args.arm_a, "B": args.arm_b},
        offline_ndcg=ndcg,
        visits=args.visits,
        clicks=clicks,
        purchases=purchases,
        seconds=seconds,
        online=online,
        better_offline=better,
        better_won=bool(won),
        interval_excludes_zero=bool(excludes_zero),
        load_average_1min=os.getloadavg()[0],
    )
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0 if won and excludes_zero else 1


if __name__ == "__main__":
    raise SystemExit(main())
