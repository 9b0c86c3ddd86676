"""Staleness across server processes: how soon an event acknowledged by one ``llmcf serve``
process shows in the recommendations of every other process on the same event store, while
the processes together serve open-loop GET recommendations at a fixed rate.

Usage::

    python benchmarks/staleness.py                         # SQLite and (if set) PostgreSQL, 2 and 4 processes
    python benchmarks/staleness.py --events 1000 --rate 200 --json staleness.json
    python benchmarks/staleness.py --stores sqlite --procs 2

For each store (a fresh SQLite file; PostgreSQL from ``--pg-url`` or
``$LLMCF_TEST_POSTGRES_URL``) and each process count P, it starts P ``llmcf serve`` processes
on one store (the multi-process deployment of docs/service.md; ``--workers`` shares one port,
so the processes could not be told apart) and then, at the same time:

* **events**: ``--events`` purchases, each written through one process (round robin) for a
  user whose list, as every other process serves it, holds the purchased item (it is the top
  item of one of them; only the processes whose list holds it are measured, and each of them
  has that user's list cached). After the 201 the other processes are polled every
  ``--poll`` seconds until the item has left their list; the lag is the time from the
  acknowledgement to the first answer without it. ``--concurrency`` users are in flight at
  once, each worker with its own users.
* **reads**: open-loop GET recommendations at ``--rate`` requests/s in total, spread evenly over
  the processes (the client of benchmarks/load_test.py: latency from the scheduled send time,
  no coordinated omission).

Reported per (store, P): lag p50/p99/max over every (event, other process) pair and how many
exceeded 1 s; GET p50/p99/max and errors; the 1-minute load average. The polling GETs are
extra traffic (``concurrency * (P - 1) / poll`` requests/s at most) on top of ``--rate``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load_test import (  # benchmarks/ is not a package: imported by path
    API_KEY,
    _run,
    fit_model,
    open_loop_reads,
    percentiles,
    start_server,
)


def _items(client: Any, url: str, user: str) -> list[str]:
    r = client.get(f"{url}/v1/users/{user}/recommendations", params={"n": 10})
    r.raise_for_status()
    return [i["item_id"] for i in r.json()["items"]]


def _events_worker(
    urls: list[str],
    users: list[str],
    n_events: int,
    offset: int,
    poll: float,
    limit: float,
    lags: list[float],
    errors: list[str],
) -> None:
    """``n_events`` purchases by this worker's ``users`` (see the module docstring)."""
    import httpx

    with httpx.Client(timeout=10) as client:
        for e in range(n_events):
            user = users[e % len(users)]
            writer = (offset + e) % len(urls)
            readers = [u for k, u in enumerate(urls) if k != writer]
            try:
                lists = {url: _items(client, url, user) for url in readers}
                item = lists[readers[0]][0]
                watched = [url for url in readers if item in lists[url]]
                for url in watched:  # the list is in that process's cache now
                    _items(client, url, user)
                r = client.post(
                    f"{urls[writer]}/v1/events",
                    json={"events": [{"user_id": user, "item_id": item, "type": "purchase"}]},
                    headers={"X-API-Key": API_KEY},
                )
                if r.status_code != 201:
                    errors.append(f"POST {r.status_code}")
                    continue
                t_ack = time.perf_counter()
                pending = set(watched)
                while pending and time.perf_counter() - t_ack < limit:
                    for url in list(pending):
                        if item not in _items(client, url, user):
                            lags.append(time.perf_counter() - t_ack)
                            pending.discard(url)
                    if pending:
                        time.sleep(poll)
                for _ in pending:
                    errors.append(f"still stale after {limit} s")
                    lags.append(float("inf"))
            except httpx.HTTPError as exc:
                errors.append(type(exc).__name__)


async def _reads(
    urls: list[str], pids: list[int], users: list[str], rate: float, duration: float
) -> list[dict[str, Any]]:
    per = rate / len(urls)
    return list(
        await asyncio.gather(
            *(
                open_loop_reads(url, users, per, duration, 10, pid, connections=4)
                for url, pid in zip(urls, pids, strict=True)
            )
        )
    )


def run_one(
    model_dir: Path, store: str, procs: int, args: argparse.Namespace, work: Path, users: list[str]
) -> dict[str, Any]:
    db = work / f"events-{procs}.sqlite" if store == "sqlite" else args.pg_url
    servers = [start_server(model_dir, db, work / f"{store}-{procs}-{k}.log") for k in range(procs)]
    urls = [url for _, url in servers]
    pids = [proc.pid for proc, _ in servers]
    lags: list[float] = []
    errors: list[str] = []
    try:
        per_worker = args.events // args.concurrency
        rng = np.random.default_rng(procs)
        shuffled = [users[k] for k in rng.permutation(len(users))]
        own = [shuffled[w :: args.concurrency] for w in range(args.concurrency)]
        load0 = os.getloadavg()[0]
        workers = [
            threading.Thread(
                target=_events_worker,
                args=(urls, own[w], per_worker, w, args.poll, args.limit, lags, errors),
            )
            for w in range(args.concurrency)
        ]
        t0 = time.perf_counter()
        for w in workers:
            w.start()
        reads = _run(_reads(urls, pids, users, args.rate, args.read_seconds))
        for w in workers:
            w.join()
        elapsed = time.perf_counter() - t0
    finally:
        for proc, _ in servers:
            proc.terminate()
            proc.wait(20)
    finite = np.array([x for x in lags if np.isfinite(x)])
    lat = np.concatenate([np.array([r["latency_ms"]["p99"]]) for r in reads])
    answered = sum(r["requests"] - r["errors"] for r in reads)
    return {
        "store": store,
        "processes": procs,
        "events": per_worker * args.concurrency,
        "pairs_measured": len(lags),
        "lag_ms": percentiles(finite.tolist()) if len(finite) else {},
        "over_1s": int((np.array(lags) > 1.0).sum()),
        "event_errors": len(errors),
        "event_error_kinds": sorted(set(errors)),
        "events_seconds": elapsed,
        "reads": reads,
        "get_p99_ms_worst_process": float(lat.max()),
        "get_requests_answered": answered,
        "get_errors": sum(r["errors"] for r in reads),
        "load_average_1min": [load0, os.getloadavg()[0]],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="ml-100k")
    p.add_argument("--model-dir", type=Path, default=None)
    p.add_argument("--stores", default="sqlite,postgres")
    p.add_argument("--pg-url", default=os.environ.get("LLMCF_TEST_POSTGRES_URL"))
    p.add_argument("--procs", default="2,4")
    p.add_argument("--events", type=int, default=1000)
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--poll", type=float, default=0.05)
    p.add_argument("--limit", type=float, default=10.0, help="give up on a lag after this")
    p.add_argument("--rate", type=float, default=200.0, help="GET requests/s over all processes")
    p.add_argument("--read-seconds", type=float, default=60.0)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    stores = [s for s in args.stores.split(",") if s]
    if "postgres" in stores and not args.pg_url:
        print("no PostgreSQL URL (--pg-url or $LLMCF_TEST_POSTGRES_URL): skipping it")
        stores.remove("postgres")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model_dir = args.model_dir or work / "model"
        if args.model_dir is None:
            fit_model(args.data, model_dir, 40)
        from llmcf.models import load_model

        users = [str(u) for u in load_model(model_dir).users_.ids.tolist()]
        for store in stores:
            for procs in [int(x) for x in args.procs.split(",")]:
                res = run_one(model_dir, store, procs, args, work, users)
                results.append(res)
                lag = res["lag_ms"]
                print(
                    f"{store:8s} P={procs}: lag p50 {lag.get('p50', float('nan')):.0f} ms, "
                    f"p99 {lag.get('p99', float('nan')):.0f} ms, max {lag.get('max', float('nan')):.0f} ms "
                    f"over {res['pairs_measured']} (event, process) pairs, {res['over_1s']} over 1 s, "
                    f"{res['event_errors']} event errors; GET p99 (worst process) "
                    f"{res['get_p99_ms_worst_process']:.2f} ms, {res['get_errors']} errors of "
                    f"{res['get_requests_answered'] + res['get_errors']}; load "
                    f"{res['load_average_1min'][0]:.1f}->{res['load_average_1min'][1]:.1f}",
                    flush=True,
                )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
