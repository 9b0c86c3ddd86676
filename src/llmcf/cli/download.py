"""``llmcf download``: download an official MovieLens archive into the cache."""

from __future__ import annotations

import argparse


def run(args: argparse.Namespace) -> int:
    from llmcf.data.download import download_movielens

    path = download_movielens(args.name, cache_dir=args.dir)
    print(path)
    return 0
