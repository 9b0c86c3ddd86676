"""Scale study: local backend vs Spark local[n] on synthetic data of growing size.

For each size it writes a synthetic Parquet file (``llmcf.data.synth``, kept in --data-dir),
measures the cost drivers (sum over users of deg(u)^2: the co-rating pairs of item-item
similarity; the same over items for user-user), then builds the item-item top-K artifact with
each backend in a fresh subprocess, sampling the process tree every 0.2 s for wall time, CPU
seconds and peak RSS (the JVM included). Results go to JSON with the machine, the command and
the load average before and after each run (the machine may be shared: compare CPU seconds).

    python benchmarks/scaling.py --sizes 1e6,5e6,20e6,50e6 --out docs/scaling.json \
        --plot docs/scaling.png --data-dir /tmp/llmcf-scaling

One run in isolation (what the subprocesses execute)::

    python benchmarks/scaling.py --worker local --data FILE.parquet --k 50
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def _tree(pid: int) -> list[int]:
    """pid and all its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def _sample(pids: list[int]) -> tuple[int, dict[int, float]]:
    """(total RSS bytes, cpu seconds per pid)."""
    rss, cpu = 0, {}
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        cpu[p] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
        rss += int(fields[21]) * PAGE
    return rss, cpu


def measure(command: list[str], timeout: float) -> dict[str, Any]:
    """Run ``command``; wall seconds, CPU seconds and peak RSS of its process tree, its JSON
    output (last stdout line) and the load average before and after."""
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak, cpu_seen = 0, {}
    while proc.poll() is None:
        rss, cpu = _sample(_tree(proc.pid))
        peak = max(peak, rss)
        cpu_seen.update(cpu)
        if time.perf_counter() - t0 > timeout:
            proc.kill()
            break
        time.sleep(0.2)
    out, err = proc.communicate()
    wall = time.perf_counter() - t0
    result: dict[str, Any] = {
        "command": " ".join(command),
        "returncode": proc.returncode,
        "wall_seconds": round(wall, 2),
        "cpu_seconds": round(sum(cpu_seen.values()), 2),
        "peak_rss_gib": round(peak / 2**30, 3),
        "load_before": [round(v, 2) for v in load_before],
        "load_after": [round(v, 2) for v in os.getloadavg()],
    }
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if proc.returncode == 0 and lines:
        result.update(json.loads(lines[-1]))
    else:
        result["error"] = (err or out)[-2000:]
    return result


def degree_stats(path: Path) -> dict[str, float]:
    """The cost drivers of a data set: sums of squared user and item degrees."""
    import pyarrow.parquet as pq

    table = pq.read_table(path, columns=["user_id", "item_id"])
    du = np.unique(table["user_id"].to_numpy(), return_counts=True)[1].astype(np.float64)
    di = np.unique(table["item_id"].to_numpy(), return_counts=True)[1].astype(np.float64)
    return {
        "n_interactions": int(du.sum()),
        "n_users": len(du),
        "n_items": len(di),
        "sum_user_degree_sq": float((du**2).sum()),
        "sum_item_degree_sq": float((di**2).sum()),
        "max_user_degree": int(du.max()),
        "max_item_degree": int(di.max()),
    }


def worker(args: argparse.Namespace) -> None:
    """Build one artifact and print a JSON line of phase timings."""
    import warnings

    warnings.filterwarnings("ignore")
    t0 = time.perf_counter()
    if args.worker == "local":
        from llmcf.backends import local

        data = local.load_interactions(args.data)
        t1 = time.perf_counter()
        art = local.build_neighbors(data, "item", args.similarity, n_neighbors=args.k)
        t2 = time.perf_counter()
        phases = {"load_seconds": t1 - t0, "build_seconds": t2 - t1}
    else:
        from llmcf.backends import spark as spark_backend

        spark = spark_backend.get_spark(
            args.spark_master,
            shuffle_partitions=args.partitions,
            driver_memory=args.driver_memory,
            conf={"spark.local.dir": args.spark_local_dir} if args.spark_local_dir else None,
        )
        t1 = time.perf_counter()
        art = spark_backend.build_neighbors(
            args.data, "item", args.similarity, n_neighbors=args.k, spark=spark
        )
        t2 = time.perf_counter()
        spark.stop()
        phases = {"load_seconds": t1 - t0, "build_seconds": t2 - t1}
    filled = int((art.nbr_idx >= 0).sum())
    print(json.dumps({**{k: round(v, 2) for k, v in phases.items()}, "neighbours_stored": filled}))


def plot(results: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for backend, marker in (("local", "o"), ("spark", "s")):
        rows = sorted(
            (r for r in results if r["backend"] == backend and r.get("returncode") == 0),
            key=lambda r: r["n_interactions"],
        )
        if not rows:
            continue
        x = [r["n_interactions"] for r in rows]
        axes[0].loglog(
            x, [r["wall_seconds"] for r in rows], marker=marker, label=f"{backend} wall s"
        )
        axes[0].loglog(
            x, [r["cpu_seconds"] for r in rows], marker=marker, ls="--", label=f"{backend} CPU s"
        )
        axes[1].loglog(x, [r["peak_rss_gib"] for r in rows], marker=marker, label=backend)
    stats = {r["n_interactions"]: r["sum_user_degree_sq"] for r in results}
    if stats:
        xs = sorted(stats)
        ax2 = axes[0].twinx()
        ax2.loglog(xs, [stats[v] for v in xs], color="grey", ls=":", label="sum deg(u)^2")
        ax2.set_ylabel("sum over users of deg(u)^2 (grey)")
    axes[0].set_xlabel("interactions")
    axes[0].set_ylabel("seconds")
    axes[0].set_title("item-item top-K build time")
    axes[0].legend(loc="upper left", fontsize=8)
    axes[1].set_xlabel("interactions")
    axes[1].set_ylabel("peak RSS, GiB (process tree)")
    axes[1].set_title("peak memory")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--worker", choices=["local", "spark"], default=None)
    parser.add_argument("--data", default=None)
    parser.add_argument("--sizes", default="1e6,5e6,20e6,50e6", help="interaction counts")
    parser.add_argument(
        "--users-per-interaction", type=float, default=0.1, help="n_users = size * this"
    )
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument(
        "--user-alpha", type=float, default=0.0, help="synth activity skew (0: uniform)"
    )
    parser.add_argument("--backends", default="local,spark")
    parser.add_argument("--similarity", default="cosine")
    parser.add_argument("--k", type=int, default=50)
    parser.add_argument("--spark-master", default="local[2]")
    parser.add_argument("--partitions", type=int, default=16)
    parser.add_argument("--driver-memory", default="8g")
    parser.add_argument("--spark-local-dir", default=None)
    parser.add_argument("--timeout", type=float, default=3600)
    parser.add_argument("--data-dir", default="/tmp/llmcf-scaling")
    parser.add_argument("--out", default="docs/scaling.json")
    parser.add_argument("--plot", default="docs/scaling.png")
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    from llmcf.data.synth import generate_to_parquet

    data_dir = Path(args.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    out = Path(args.out)
    previous = json.loads(out.read_text()) if out.exists() else {}
    results: list[dict[str, Any]] = [
        r for r in previous.get("results", []) if r.get("returncode") == 0
    ]
    done = {
        (r["backend"], r["n_interactions"], r.get("n_users"), r.get("user_alpha")) for r in results
    }
    for size in [int(float(s)) for s in args.sizes.split(",")]:
        n_users = max(1, int(size * args.users_per_interaction))
        path = data_dir / f"synth_{size}_{n_users}_{args.items}_a{args.user_alpha}.parquet"
        if not path.exists():
            t0 = time.perf_counter()
            generate_to_parquet(
                n_users, args.items, size, path, seed=0, user_alpha=args.user_alpha, progress=True
            )
            print(f"generated {path} in {time.perf_counter() - t0:.0f} s", flush=True)
        stats = degree_stats(path)
        for backend in args.backends.split(","):
            if (backend, size, stats["n_users"], args.user_alpha) in done:
                continue
            command = [
                sys.executable, __file__, "--worker", backend, "--data", str(path),
                "--k", str(args.k), "--similarity", args.similarity,
                "--spark-master", args.spark_master, "--partitions", str(args.partitions),
                "--driver-memory", args.driver_memory,
            ]  # fmt: skip
            if args.spark_local_dir:
                command += ["--spark-local-dir", args.spark_local_dir]
            print(f"{backend} on {size:,} interactions ...", flush=True)
            row = {
                "backend": backend,
                "user_alpha": args.user_alpha,
                **stats,
                **measure(command, args.timeout),
            }
            print(json.dumps(row), flush=True)
            results.append(row)
            report = {
                "machine": {
                    "platform": platform.platform(),
                    "python": platform.python_version(),
                    "cpus": os.cpu_count(),
                    "cpu": next(
                        (
                            ln.split(":", 1)[1].strip()
                            for ln in Path("/proc/cpuinfo").read_text().splitlines()
                            if ln.startswith("model name")
                        ),
                        "?",
                    ),
                    "mem_gib": round(os.sysconf("SC_PHYS_PAGES") * PAGE / 2**30, 1),
                },
                "command": " ".join([sys.executable, *sys.argv]),
                "similarity": args.similarity,
                "k": args.k,
                "results": results,
            }
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(report, indent=2))
            plot(results, Path(args.plot))


if __name__ == "__main__":
    main()
