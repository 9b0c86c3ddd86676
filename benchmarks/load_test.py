"""Load test of ``llmcf serve`` on 127.0.0.1: open-loop GET recommendations at a fixed rate,
then event ingestion in batches.

Usage::

    python benchmarks/load_test.py                       # ml-100k item-kNN, 200 req/s for 30 s
    python benchmarks/load_test.py --rate 400 --duration 20 --json service.json

It fits an item-kNN model on the whole of ml-100k (from $LLMCF_DATA_DIR) unless
``--model-dir`` is given, starts ``llmcf serve`` on a free local port with a fresh SQLite event
store, and measures:

1. ``GET /v1/users/{id}/recommendations?n=10`` (no re-rank) for random known users, sent on a
   fixed schedule (request i at t0 + i / rate, open loop). Latency is measured from the
   *scheduled* send time, so a stalled server cannot hide its queueing delay (no coordinated
   omission). Reported: p50, p90, p99, max, errors (non-200 or transport errors).
2. ``POST /v1/events`` in batches of ``--batch-size`` events from ``--writers`` concurrent
   clients; reported: events/s over the whole phase, batch latency p50/p99, errors.

Only loopback addresses are used, and both phases stop by themselves (bounded counts).
The client runs on the same machine as the server and takes CPU from it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

API_KEY = "load-test-key"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fit_model(data: str, out: Path, k: int) -> None:
    from llmcf import ItemKNN
    from llmcf.data.loaders import resolve_dataset
    from llmcf.persist import save_model

    dataset = resolve_dataset(data)
    t0 = time.perf_counter()
    model = ItemKNN(k=k).fit(dataset)
    save_model(model, out)
    print(f"fitted item-knn (k={k}) on {dataset} in {time.perf_counter() - t0:.1f} s")


def start_server(model_dir: Path, db: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    import httpx

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = dict(os.environ, LLMCF_API_KEY=API_KEY)
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmcf.cli", "serve", "--model-dir", str(model_dir),
         "--events-db", str(db), "--port", str(port)],
        stdout=open(log, "wb"),
        stderr=subprocess.STDOUT,
        env=env,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {log.read_text()}")
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("server not ready after 120 s")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc), to report CPU per request: unlike
    latency it does not depend on what else runs on the machine."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": float("nan"), "p90": float("nan"), "p99": float("nan"), "max": float("nan")}
    a = np.asarray(values) * 1000.0
    return {
        "p50": float(np.percentile(a, 50)),
        "p90": float(np.percentile(a, 90)),
        "p99": float(np.percentile(a, 99)),
        "max": float(a.max()),
    }


class RawConnection:
    """A minimal HTTP/1.1 keep-alive client connection on asyncio streams.

    httpx's async pool costs several milliseconds of client CPU per request with many
    connections, which on a 2-core machine shared with the server would measure the client;
    this costs tens of microseconds.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, path: str) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\n\r\n".encode())
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def open_loop_reads(
    url: str,
    users: list[str],
    rate: float,
    duration: float,
    n: int,
    pid: int,
    connections: int,
    path_template: str = "/v1/users/{user}/recommendations?n={n}",
) -> dict[str, Any]:
    """Request i is due at t0 + i / rate; a free connection takes it (a queue of due requests
    feeds ``connections`` keep-alive connections); latency counts from the due time."""
    from urllib.parse import quote, urlsplit

    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", int(parts.port or 80)
    total = int(rate * duration)
    rng = np.random.default_rng(0)
    paths = [
        path_template.format(user=quote(users[k], safe=""), n=n)
        for k in rng.integers(0, len(users), total)
    ]
    latencies: list[float] = []
    errors: list[str] = []
    due: asyncio.Queue[tuple[str, float] | None] = asyncio.Queue()

    async def worker(conn: RawConnection) -> None:
        while (job := await due.get()) is not None:
            path, scheduled = job
            try:
                status = await asyncio.wait_for(conn.get(path), timeout=10)
                if status != 200:
                    errors.append(str(status))
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError) as exc:
                errors.append(type(exc).__name__)
                conn.close()
                conn.writer = None
            latencies.append(time.perf_counter() - scheduled)

    conns = [RawConnection(host, port) for _ in range(connections)]
    # warm-up: open the connections, touch the code paths
    for k, conn in enumerate(conns):
        await conn.get(paths[k % len(paths)])
    workers = [asyncio.create_task(worker(c)) for c in conns]
    cpu0 = cpu_seconds(pid)
    t0 = time.perf_counter() + 0.05
    for i in range(total):
        scheduled = t0 + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        due.put_nowait((paths[i], scheduled))
    for _ in conns:
        due.put_nowait(None)
    await asyncio.gather(*workers)
    elapsed = time.perf_counter() - t0
    cpu = cpu_seconds(pid) - cpu0
    for conn in conns:
        conn.close()
    return {
        "server_cpu_ms_per_request": 1000 * cpu / total,
        "requests": total,
        "target_rate": rate,
        "achieved_rate": total / elapsed,
        "connections": connections,
        "errors": len(errors),
        "latency_ms": percentiles(latencies),
    }


async def ingest(
    url: str,
    users: list[str],
    items: list[str],
    batches: int,
    batch_size: int,
    writers: int,
    pid: int,
) -> dict[str, Any]:
    import httpx

    rng = np.random.default_rng(1)
    types = ["view", "view", "view", "cart", "purchase"]
    latencies: list[float] = []
    errors: list[str] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for b in range(batches):
        queue.put_nowait(b)
    accepted = 0

    async def writer(client: httpx.AsyncClient) -> None:
        nonlocal accepted
        while True:
            try:
                b = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            events = [
                {
                    "user_id": users[int(rng.integers(len(users)))],
                    "item_id": items[int(rng.integers(len(items)))],
                    "type": types[int(rng.integers(len(types)))],
                    "event_id": f"load-{b}-{k}",
                }
                for k in range(batch_size)
            ]
            t = time.perf_counter()
            try:
                r = await client.post(
                    "/v1/events", json={"events": events}, headers={"X-API-Key": API_KEY}
                )
                if r.status_code == 201:
                    accepted += r.json()["accepted"]
                else:
                    errors.append(str(r.status_code))
            except httpx.HTTPError as exc:
                errors.append(type(exc).__name__)
            latencies.append(time.perf_counter() - t)

    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        cpu0 = cpu_seconds(pid)
        t0 = time.perf_counter()
        await asyncio.gather(*(writer(client) for _ in range(writers)))
        elapsed = time.perf_counter() - t0
        cpu = cpu_seconds(pid) - cpu0
    return {
        "server_cpu_ms_per_batch": 1000 * cpu / batches,
        "batches": batches,
        "batch_size": batch_size,
        "writers": writers,
        "accepted": accepted,
        "events_per_s": accepted / elapsed,
        "errors": len(errors),
        "batch_latency_ms": percentiles(latencies),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="ml-100k")
    ap.add_argument(
        "--model-dir", default=None, help="serve this model (default: fit item-knn on --data)"
    )
    ap.add_argument("--k", type=int, default=40)
    ap.add_argument("--rate", type=float, default=200.0, help="GET requests per second")
    ap.add_argument("--duration", type=float, default=30.0, help="seconds of GET load")
    ap.add_argument("--n", type=int, default=10, help="list length")
    ap.add_argument("--connections", type=int, default=32, help="keep-alive connections for GETs")
    ap.add_argument("--batches", type=int, default=300)
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--writers", type=int, default=4)
    ap.add_argument("--json", default=None, help="write the results here")
    args = ap.parse_args(argv)

    from llmcf.persist import load_model

    with tempfile.TemporaryDirectory(prefix="llmcf-load-") as tmp_name:
        tmp = Path(tmp_name)
        model_dir = Path(args.model_dir) if args.model_dir else tmp / "model"
        if not args.model_dir:
            fit_model(args.data, model_dir, args.k)
        model = load_model(model_dir)
        users = [str(u) for u in model.users_.ids]
        items = [str(i) for i in model.items_.ids]
        proc, url = start_server(model_dir, tmp / "events.sqlite", tmp / "server.log")
        try:
            # the same schedule on /healthz first: what the machine alone costs (its load varies)
            baseline = asyncio.run(
                open_loop_reads(
                    url, users, args.rate, args.duration, args.n, proc.pid, args.connections,
                    path_template="/healthz",
                )
            )  # fmt: skip
            reads = asyncio.run(
                open_loop_reads(
                    url, users, args.rate, args.duration, args.n, proc.pid, args.connections
                )
            )
            writes = asyncio.run(
                ingest(url, users, items, args.batches, args.batch_size, args.writers, proc.pid)
            )
        finally:
            proc.terminate()
            proc.wait(10)
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "model": f"item-knn k={args.k} on {args.data}"
        if not args.model_dir
        else str(args.model_dir),
        "load_average_1min": os.getloadavg()[0],
        "baseline_healthz": baseline,
        "reads": reads,
        "writes": writes,
    }
    bl = baseline["latency_ms"]
    print(
        f"baseline GET /healthz at the same rate: errors {baseline['errors']}; latency ms "
        f"p50 {bl['p50']:.2f}  p90 {bl['p90']:.2f}  p99 {bl['p99']:.2f}  max {bl['max']:.2f}; "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    lat = reads["latency_ms"]
    print(
        f"GET recommendations n={args.n}: {reads['requests']} requests at {reads['target_rate']:.0f}/s "
        f"(achieved {reads['achieved_rate']:.1f}/s), errors {reads['errors']}; "
        f"server CPU {reads['server_cpu_ms_per_request']:.2f} ms/request; latency ms "
        f"p50 {lat['p50']:.2f}  p90 {lat['p90']:.2f}  p99 {lat['p99']:.2f}  max {lat['max']:.2f}"
    )
    wl = writes["batch_latency_ms"]
    print(
        f"POST events: {writes['accepted']} events in {writes['batches']} batches of "
        f"{writes['batch_size']} from {writes['writers']} writers: {writes['events_per_s']:.0f} events/s, "
        f"errors {writes['errors']}; server CPU {writes['server_cpu_ms_per_batch']:.1f} ms/batch; "
        f"batch latency ms p50 {wl['p50']:.2f}  p99 {wl['p99']:.2f}"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0 if reads["errors"] == 0 and writes["errors"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
