"""Item-kNN on a large synthetic catalog: fit time and peak memory.

Generates ``--interactions`` ratings for ``--users`` users and ``--items`` items with
:mod:`llmcf.data.synth` (power-law popularity and activity, latent tastes), fits
``ItemKNN(k=--k)`` in top-k list mode (a dense ``items x items`` matrix of 100k items would
be 80 GB) and reports wall time, CPU time and peak RSS. Usage::

    python benchmarks/bench_large_knn.py --interactions 10000000 --users 1000000 --items 100000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--interactions", type=int, default=10_000_000)
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--k", type=int, default=50)
    parser.add_argument("--similarity", default="cosine")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    from llmcf import ItemKNN
    from llmcf.data.synth import generate

    t0 = time.perf_counter()
    ds = generate(args.users, args.items, args.interactions, seed=0)
    gen_s = time.perf_counter() - t0
    deg = ds.user_counts().astype(float)
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    model = ItemKNN(k=args.k, similarity=args.similarity, prediction="basic", dense_max=0)
    model.fit(ds, progress=sys.stderr.isatty())
    fit_s = time.perf_counter() - t0
    fit_cpu = time.process_time() - cpu0
    assert model.nbr_idx_ is not None
    result = {
        "interactions": len(ds),
        "users": ds.n_users,
        "items": ds.n_items,
        "k": args.k,
        "similarity": args.similarity,
        "sum_user_degree_squared": float((deg**2).sum()),
        "generate_seconds": gen_s,
        "fit_seconds": fit_s,
        "fit_cpu_seconds": fit_cpu,
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "mean_neighbours_kept": float((model.nbr_idx_ >= 0).sum(axis=1).mean()),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "load_average": os.getloadavg(),
        "command": " ".join(sys.argv),
    }
    print(json.dumps(result, indent=2))
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(result, fh, indent=2)


if __name__ == "__main__":
    main()
