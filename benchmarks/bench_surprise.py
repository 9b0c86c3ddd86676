"""llmcf against scikit-surprise on the same configurations, whole process against whole process.

Each measurement runs a fresh interpreter (start-up, imports and data loading included) under
``/usr/bin/time`` for wall time and peak RSS, alternating the two libraries ``--repeat`` times;
medians are reported with their ratio. Usage::

    LLMCF_DATA_DIR=../shared/data python benchmarks/bench_surprise.py --repeat 3 --out bench.json

Configurations: item-based KNNBaseline / llmcf item-knn (pearson_baseline similarity, baseline
prediction) on ML-100K u1-u5, (a) the sweep K = 5,10,15,20,40 (25 fits in Surprise) and (b) K=40.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

SURPRISE_SCRIPT = """
import sys
from surprise import Dataset, KNNBaseline, Reader, accuracy
from surprise.model_selection import PredefinedKFold
folder, ks = sys.argv[1], [int(k) for k in sys.argv[2].split(",")]
reader = Reader("ml-100k")
folds = [(f"{folder}/u{i}.base", f"{folder}/u{i}.test") for i in range(1, 6)]
data = Dataset.load_from_folds(folds, reader)
for k in ks:
    maes = []
    for trainset, testset in PredefinedKFold().split(data):
        algo = KNNBaseline(k=k, sim_options={"name": "pearson_baseline", "user_based": False},
                           verbose=False)
        algo.fit(trainset)
        maes.append(accuracy.mae(algo.test(testset), verbose=False))
    print(k, sum(maes) / len(maes))
"""


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """(wall seconds, peak RSS MiB, stdout) of one command under /usr/bin/time."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as tf:
        proc = subprocess.run(
            ["/usr/bin/time", "-f", "%e %M", "-o", tf.name, *cmd],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr}")
        wall, rss_kb = tf.read().split()[-2:]
    return float(wall), float(rss_kb) / 1024, proc.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args()
    data_dir = Path(os.environ.get("LLMCF_DATA_DIR", "../shared/data")).resolve()
    folder = data_dir / "ml-100k"
    if not (folder / "u1.base").exists():
        sys.exit(f"{folder} has no u1.base; set LLMCF_DATA_DIR")
    env = dict(os.environ, LLMCF_DATA_DIR=str(data_dir))
    llmcf = str(Path(sys.executable).with_name("llmcf"))
    # warm-up: fills the OS file cache (interpreter, libraries, data) before timing
    subprocess.run(
        [llmcf, "evaluate", "--data", "ml-100k", "--split", "u1", "--quiet", "--k", "5"],
        env=env,
        check=True,
        capture_output=True,
    )
    configs = {"sweep K=5,10,15,20,40": "5,10,15,20,40", "single K=40": "40"}
    results = []
    for label, ks in configs.items():
        ours_cmd = [
            llmcf,
            "evaluate",
            "--data",
            "ml-100k",
            "--split",
            "u1-u5",
            "--model",
            "item-knn",
            "--similarity",
            "pearson_baseline",
            "--prediction",
            "baseline",
            "--k",
            ks,
            "--quiet",
        ]
        theirs_cmd = [sys.executable, "-c", SURPRISE_SCRIPT, str(folder), ks]
        ours, theirs = [], []
        for _ in range(args.repeat):
            ours.append(timed(ours_cmd, env))
            theirs.append(timed(theirs_cmd, env))
        row = {
            "config": label,
            "llmcf_seconds": statistics.median(t for t, _, _ in ours),
            "surprise_seconds": statistics.median(t for t, _, _ in theirs),
            "llmcf_peak_mib": statistics.median(m for _, m, _ in ours),
            "surprise_peak_mib": statistics.median(m for _, m, _ in theirs),
            "llmcf_runs": [t for t, _, _ in ours],
            "surprise_runs": [t for t, _, _ in theirs],
            "surprise_output": theirs[-1][2].strip().splitlines(),
            "llmcf_output": ours[-1][2].strip().splitlines(),
        }
        row["speedup"] = row["surprise_seconds"] / row["llmcf_seconds"]
        row["memory_ratio"] = row["surprise_peak_mib"] / row["llmcf_peak_mib"]
        results.append(row)
        print(
            f"{label}: llmcf {row['llmcf_seconds']:.2f} s / {row['llmcf_peak_mib']:.0f} MiB, "
            f"surprise {row['surprise_seconds']:.2f} s / {row['surprise_peak_mib']:.0f} MiB, "
            f"speed-up {row['speedup']:.1f}x, memory {row['memory_ratio']:.1f}x less",
            flush=True,
        )
    meta = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
        "python": platform.python_version(),
        "load_average": os.getloadavg(),
        "command": " ".join(sys.argv),
    }
    if args.out:
        Path(args.out).write_text(json.dumps({"meta": meta, "results": results}, indent=2))


if __name__ == "__main__":
    main()
