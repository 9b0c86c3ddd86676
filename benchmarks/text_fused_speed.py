"""Embedding + T-ItemKNN fit time on MovieLens 100K (fold u1), cold and warm embedding cache.

Usage: ``python benchmarks/text_fused_speed.py [--embedder minilm] [--repeats 3]``.
The cold run uses a fresh temporary cache folder; the warm runs reuse it. Prints medians.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--embedder", default="minilm")
    parser.add_argument("--data", default="ml-100k")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from llmcf.data.loaders import load_movielens_100k_fold, resolve_data_path
    from llmcf.text.fused import TItemKNN

    dataset, train_idx, _ = load_movielens_100k_fold(resolve_data_path(args.data), "u1")
    train = dataset.subset(train_idx)
    with tempfile.TemporaryDirectory() as cache:
        os.environ["LLMCF_CACHE_DIR"] = cache
        t0 = time.perf_counter()
        TItemKNN(embedder=args.embedder).fit(train)
        cold = time.perf_counter() - t0
        warm = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            TItemKNN(embedder=args.embedder).fit(train)
            warm.append(time.perf_counter() - t0)
    print(f"embedder={args.embedder} items={dataset.n_items}")
    print(f"cold cache: embed + fit {cold:.1f} s")
    print(f"warm cache: fit {statistics.median(warm):.2f} s (median of {args.repeats})")


if __name__ == "__main__":
    main()
