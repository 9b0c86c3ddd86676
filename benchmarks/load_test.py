"""Load test of ``llmcf serve`` on 127.0.0.1: open-loop GET recommendations at a fixed rate,
then event ingestion in batches.

Usage::

    python benchmarks/load_test.py                       # ml-100k item-kNN, 200 req/s for 30 s
    python benchmarks/load_test.py --rate 400 --duration 20 --json service.json
    python benchmarks/load_test.py --pin                 # server on CPU 0, client on CPU 1
    python benchmarks/load_test.py --session-history 20  # + POST /v1/recommendations phase

It fits an item-kNN model on the whole of ml-100k (from $LLMCF_DATA_DIR) unless
``--model-dir`` is given, starts ``llmcf serve`` on a free local port with a fresh SQLite event
store, and measures:

1. ``GET /healthz`` on the same schedule as 2: a baseline of what the machine costs right now
   (it goes through the whole FastAPI stack).
2. ``GET /v1/users/{id}/recommendations?n=10`` (no re-rank) for random known users, sent on a
   fixed schedule (request i at t0 + i / rate, open loop). Latency is measured from the
   *scheduled* send time, so a stalled server (or a late client) cannot hide its queueing
   delay (no coordinated omission). Caches start cold: every user's first request is
   computed. Reported: p50, p90, p99, max, errors (non-200, transport errors, timeouts).
3. with ``--session-history H``: ``POST /v1/recommendations`` for new visitors whose inline
   histories hold H random events (views, carts, purchases), on the same schedule.
4. ``POST /v1/events`` in batches of ``--batch-size`` events from ``--writers`` concurrent
   clients; reported: events/s over the whole phase, batch latency p50/p99, errors.

The GET client is a minimal HTTP/1.1 keep-alive client made of asyncio protocol callbacks
(uvloop when installed; no task or coroutine per request, prepared request bytes, only the
status line and Content-Length parsed), so that on a small machine it does not measure
itself: its CPU per request is mostly the two wake-ups a request costs at a low rate (the
send timer and the answer), which is also most of the server's. Each phase reports the
server's CPU per request (user + system, from /proc: unlike latency it does not depend on the
machine's load), the client's, the 1-minute load average before and after, and how late the
client sent its requests (``send_lag_ms``: timer granularity, about 1 ms, and waiting for a
free connection; it is part of the latency). wrk2 would do the same in C but is not packaged
for Debian; wrk and hey are closed-loop (coordinated omission).

``--pin`` runs the server on one CPU and the client on another (``taskset``); the default
leaves both to the scheduler. Only loopback addresses are used, and every phase stops by
itself (bounded counts and a deadline).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
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


def start_server(
    model_dir: Path, db: Path, log: Path, cpus: str | None = None, extra: list[str] | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """``llmcf serve`` on a free loopback port (on the CPUs ``cpus``, e.g. ``"0"``, if
    given); returns once ``/readyz`` answers 200."""
    import httpx

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = dict(os.environ, LLMCF_API_KEY=API_KEY)
    pin = ["taskset", "-c", cpus] if cpus else []
    proc = subprocess.Popen(
        [*pin, sys.executable, "-m", "llmcf.cli", "serve", "--model-dir", str(model_dir),
         "--events-db", str(db), "--port", str(port), *(extra or [])],
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


def request_bytes(host: str, path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()


def post_bytes(host: str, path: str, body: dict[str, Any]) -> bytes:
    data = json.dumps(body, separators=(",", ":")).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\n\r\n"
    )
    return head.encode() + data


def session_requests(host: str, items: list[str], total: int, size: int, n: int) -> list[bytes]:
    """``POST /v1/recommendations`` bodies of new visitors with ``size``-event histories of
    random items (views, carts, purchases; seed 1)."""
    rng = np.random.default_rng(1)
    types = np.array(["view", "view", "view", "cart", "purchase"])
    out = []
    for _ in range(total):
        picks = rng.integers(0, len(items), size)
        kinds = rng.integers(0, len(types), size)
        history = [
            {"item_id": items[i], "type": str(types[t])} for i, t in zip(picks, kinds, strict=True)
        ]
        out.append(post_bytes(host, "/v1/recommendations", {"history": history, "n": n}))
    return out


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection of an :class:`OpenLoopClient`: callbacks only (no
    task, no coroutine per request); parses the status line and Content-Length."""

    def __init__(self, client: OpenLoopClient) -> None:
        self.client = client
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.current: int | None = None  # the request in flight

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        buf = self.buffer
        buf += data
        while self.current is not None:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buf[:end]).lower()
            length = 0
            at = head.find(b"\r\ncontent-length:")
            if at >= 0:
                stop = head.find(b"\r\n", at + 2)
                length = int(head[at + 17 : stop if stop >= 0 else len(head)])
            if len(buf) < end + 4 + length:
                return
            status = int(head[9:12])
            del buf[: end + 4 + length]
            self.client.answered(self, status)

    def connection_lost(self, exc: Exception | None) -> None:
        self.client.lost(self)


class OpenLoopClient:
    """Request i is due at ``t0 + i * step``; at its time it is written to a free keep-alive
    connection (taken in turn, so none idles into the server's keep-alive timeout), or waits
    in a backlog that the next connection to get its answer takes from. Latency is counted
    from the due time; so is the send lag (client-side waiting, part of the latency)."""

    def __init__(self, host: str, port: int, requests: list[bytes], rate: float) -> None:
        self.host, self.port, self.requests = host, port, requests
        self.step = 1.0 / rate
        self.t0 = 0.0
        n = len(requests)
        self.latencies = np.full(n, np.nan)
        self.lags = np.full(n, np.nan)
        self.errors: list[str] = []
        self.idle: collections.deque[_Connection] = collections.deque()
        self.backlog: collections.deque[int] = collections.deque()
        self.finished = 0
        self.done: asyncio.Future[None] | None = None
        self.reconnects: set[asyncio.Future[None]] = set()

    async def connect(self, count: int) -> None:
        loop = asyncio.get_running_loop()
        self.done = loop.create_future()
        for _ in range(count):
            await self._open()

    async def _open(self) -> None:
        _, conn = await asyncio.get_running_loop().create_connection(
            lambda: _Connection(self), self.host, self.port
        )
        self.idle.append(conn)

    async def _reopen(self) -> None:
        try:
            await self._open()
        except OSError:
            pass  # the server is gone: the requests left count as timeouts

    def submit(self, i: int) -> None:
        if self.idle:
            self._send(self.idle.popleft(), i)
        else:
            self.backlog.append(i)

    def _send(self, conn: _Connection, i: int) -> None:
        conn.current = i
        self.lags[i] = time.perf_counter() - (self.t0 + i * self.step)
        assert conn.transport is not None
        conn.transport.write(self.requests[i])

    def answered(self, conn: _Connection, status: int) -> None:
        i = conn.current
        assert i is not None
        self._finish(i, None if status == 200 else str(status))
        conn.current = None
        if self.backlog:
            self._send(conn, self.backlog.popleft())
        else:
            self.idle.append(conn)

    def lost(self, conn: _Connection) -> None:
        if conn in self.idle:
            self.idle.remove(conn)
        if conn.current is not None:
            self._finish(conn.current, "connection lost")
            conn.current = None
        if self.done is not None and not self.done.done():  # keep the pool at its size
            task = asyncio.ensure_future(self._reopen())
            self.reconnects.add(task)
            task.add_done_callback(self.reconnects.discard)

    def _finish(self, i: int, error: str | None) -> None:
        self.latencies[i] = time.perf_counter() - (self.t0 + i * self.step)
        if error is not None:
            self.errors.append(error)
        self.finished += 1
        if self.finished == len(self.requests) and self.done is not None:
            if not self.done.done():
                self.done.set_result(None)

    def close(self) -> None:
        for conn in list(self.idle):
            if conn.transport is not None:
                conn.transport.close()


def client_loop() -> Any:
    """A uvloop event loop when installed (cheaper per request), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


async def open_loop_reads(
    url: str,
    users: list[str],
    rate: float,
    duration: float,
    n: int,
    pid: int,
    connections: int,
    path_template: str = "/v1/users/{user}/recommendations?n={n}",
    timeout: float = 10.0,
    prepared: list[bytes] | None = None,
) -> dict[str, Any]:
    """``rate * duration`` GETs on the open-loop schedule of :class:`OpenLoopClient` over
    ``connections`` keep-alive connections, random known users (seed 0).

    Requests not answered ``timeout`` seconds after the last one was due count as errors
    (one deadline for the phase instead of a timer per request).
    """
    from urllib.parse import quote, urlsplit

    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", int(parts.port or 80)
    total = int(rate * duration)
    rng = np.random.default_rng(0)
    requests = (
        prepared[:total]
        if prepared is not None
        else [
            request_bytes(host, path_template.format(user=quote(users[k], safe=""), n=n))
            for k in rng.integers(0, len(users), total)
        ]
    )
    client = OpenLoopClient(host, port, requests, rate)
    await client.connect(connections)  # the users' caches stay cold
    assert client.done is not None
    load0 = os.getloadavg()[0]
    cpu0, client0 = cpu_seconds(pid), time.process_time()
    t0 = client.t0 = time.perf_counter() + 0.05
    step = client.step
    i = 0
    while i < total:
        now = time.perf_counter()
        while i < total and t0 + i * step <= now:  # every request that is due
            client.submit(i)
            i += 1
        if i < total:
            await asyncio.sleep(max(0.0, t0 + i * step - time.perf_counter()))
    try:
        await asyncio.wait_for(asyncio.shield(client.done), timeout)
    except asyncio.TimeoutError:
        pass
    elapsed = time.perf_counter() - t0
    cpu, client_cpu = cpu_seconds(pid) - cpu0, time.process_time() - client0
    unanswered = int(np.isnan(client.latencies).sum())
    errors = client.errors + ["timeout"] * unanswered
    client.close()
    answered = client.latencies[~np.isnan(client.latencies)]
    return {
        "server_cpu_ms_per_request": 1000 * cpu / total,
        "client_cpu_ms_per_request": 1000 * client_cpu / total,
        "requests": total,
        "target_rate": rate,
        "achieved_rate": total / elapsed,
        "connections": connections,
        "errors": len(errors),
        "error_kinds": sorted(set(errors)),
        "load_average_1min": [load0, os.getloadavg()[0]],
        "latency_ms": percentiles(answered.tolist()),
        "send_lag_ms": percentiles(client.lags[~np.isnan(client.lags)].tolist()),
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
    """``batches`` POSTs of ``batch_size`` events (unique event ids, bodies prepared before
    the clock starts) from ``writers`` concurrent clients."""
    import httpx

    rng = np.random.default_rng(1)
    types = ["view", "view", "view", "cart", "purchase"]
    bodies = [
        json.dumps(
            {
                "events": [
                    {
                        "user_id": users[int(rng.integers(len(users)))],
                        "item_id": items[int(rng.integers(len(items)))],
                        "type": types[int(rng.integers(len(types)))],
                        "event_id": f"load-{b}-{k}",
                    }
                    for k in range(batch_size)
                ]
            }
        ).encode()
        for b in range(batches)
    ]
    headers = {"X-API-Key": API_KEY, "Content-Type": "application/json"}
    latencies: list[float] = []
    errors: list[str] = []
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    accepted = 0

    async def writer(client: httpx.AsyncClient) -> None:
        nonlocal accepted
        while True:
            try:
                body = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            t = time.perf_counter()
            try:
                r = await client.post("/v1/events", content=body, headers=headers)
                if r.status_code == 201:
                    accepted += r.json()["accepted"]
                else:
                    errors.append(str(r.status_code))
            except httpx.HTTPError as exc:
                errors.append(type(exc).__name__)
            latencies.append(time.perf_counter() - t)

    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        load0 = os.getloadavg()[0]
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
        "load_average_1min": [load0, os.getloadavg()[0]],
        "batch_latency_ms": percentiles(latencies),
    }


def _run(coro: Any) -> Any:
    loop = client_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


def _fmt(p: dict[str, float]) -> str:
    return f"p50 {p['p50']:.2f}  p90 {p['p90']:.2f}  p99 {p['p99']:.2f}  max {p['max']:.2f}"


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
    ap.add_argument(
        "--pin",
        action="store_true",
        help="run the server on CPU 0 and this client on CPU 1 (taskset; needs 2 CPUs)",
    )
    ap.add_argument(
        "--server-arg",
        action="append",
        default=[],
        help="extra argument for `llmcf serve` (repeat), e.g. --server-arg=--no-fast-path",
    )
    ap.add_argument(
        "--session-history",
        type=int,
        default=0,
        help="also load POST /v1/recommendations with new visitors' inline histories of this "
        "many events (0: skip that phase)",
    )
    ap.add_argument("--json", default=None, help="write the results here")
    args = ap.parse_args(argv)

    from llmcf.models import load_model

    available = sorted(os.sched_getaffinity(0))
    if args.pin and len(available) < 2:
        raise SystemExit("--pin needs two CPUs")
    server_cpus = str(available[0]) if args.pin else None
    if args.pin:
        os.sched_setaffinity(0, {available[1]})
    pinning = (
        f"server on CPU {available[0]}, client on CPU {available[1]}"
        if args.pin
        else "none (both on any CPU)"
    )
    with tempfile.TemporaryDirectory(prefix="llmcf-load-") as tmp_name:
        tmp = Path(tmp_name)
        model_dir = Path(args.model_dir) if args.model_dir else tmp / "model"
        if not args.model_dir:
            fit_model(args.data, model_dir, args.k)
        model = load_model(model_dir)
        users = [str(u) for u in model.users_.ids]
        items = [str(i) for i in model.items_.ids]
        proc, url = start_server(
            model_dir, tmp / "events.sqlite", tmp / "server.log", server_cpus, args.server_arg
        )
        try:
            # the same schedule on /healthz first: what the machine alone costs (its load varies)
            baseline = _run(
                open_loop_reads(
                    url, users, args.rate, args.duration, args.n, proc.pid, args.connections,
                    path_template="/healthz",
                )
            )  # fmt: skip
            reads = _run(
                open_loop_reads(
                    url, users, args.rate, args.duration, args.n, proc.pid, args.connections
                )
            )
            session = None
            if args.session_history > 0:
                total = int(args.rate * args.duration)
                prepared = session_requests("127.0.0.1", items, total, args.session_history, args.n)
                session = _run(
                    open_loop_reads(
                        url, users, args.rate, args.duration, args.n, proc.pid,
                        args.connections, prepared=prepared,
                    )
                )  # fmt: skip
            writes = _run(
                ingest(url, users, items, args.batches, args.batch_size, args.writers, proc.pid)
            )
        finally:
            proc.terminate()
            proc.wait(10)
    result = {
        "command": " ".join(["python", "benchmarks/load_test.py", *(argv or sys.argv[1:])]),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "model": f"item-knn k={args.k} on {args.data}"
        if not args.model_dir
        else str(args.model_dir),
        "pinning": pinning,
        "load_average_1min": os.getloadavg()[0],
        "baseline_healthz": baseline,
        "reads": reads,
        "session": session,
        "writes": writes,
    }
    print(f"pinning: {pinning}")
    phases = [("GET /healthz (baseline)", baseline), (f"GET recommendations n={args.n}", reads)]
    if session is not None:
        phases.append(
            (f"POST /v1/recommendations, {args.session_history}-event histories", session)
        )
    for name, phase in phases:
        print(
            f"{name}: {phase['requests']} requests at {phase['target_rate']:.0f}/s "
            f"(achieved {phase['achieved_rate']:.1f}/s), errors {phase['errors']}"
            f"{' ' + str(phase['error_kinds']) if phase['errors'] else ''}; "
            f"load average {phase['load_average_1min'][0]:.2f} -> "
            f"{phase['load_average_1min'][1]:.2f}\n"
            f"  latency ms {_fmt(phase['latency_ms'])}\n"
            f"  CPU per request: server {phase['server_cpu_ms_per_request'] * 1000:.0f} us, "
            f"client {phase['client_cpu_ms_per_request'] * 1000:.0f} us; client send lag ms "
            f"p99 {phase['send_lag_ms']['p99']:.2f} max {phase['send_lag_ms']['max']:.2f}"
        )
    wl = writes["batch_latency_ms"]
    print(
        f"POST events: {writes['accepted']} events in {writes['batches']} batches of "
        f"{writes['batch_size']} from {writes['writers']} writers: {writes['events_per_s']:.0f} events/s, "
        f"errors {writes['errors']}; server CPU {writes['server_cpu_ms_per_batch']:.1f} ms/batch; "
        f"batch latency ms p50 {wl['p50']:.2f}  p99 {wl['p99']:.2f}; load average "
        f"{writes['load_average_1min'][0]:.2f} -> {writes['load_average_1min'][1]:.2f}"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    ok = reads["errors"] == 0 and writes["errors"] == 0
    return 0 if ok and (session is None or session["errors"] == 0) else 1


if __name__ == "__main__":
    raise SystemExit(main())
