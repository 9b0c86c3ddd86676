"""``llmcf synth``: write a synthetic interaction data set to Parquet."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from llmcf.errors import LlmcfError


def run(args: argparse.Namespace) -> int:
    from llmcf.data import synth

    items_out = args.items_out
    if args.text and items_out is None:
        out = Path(args.out)
        items_out = str(out.with_name(out.name.removesuffix(".parquet") + ".items.parquet"))
    if items_out is not None and not args.text:
        raise LlmcfError("--items-out needs --text")
    if args.seed < 0:
        raise LlmcfError(f"--seed must be >= 0, got {args.seed}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    try:
        synth.generate_to_parquet(
            args.users,
            args.items,
            args.interactions,
            args.out,
            items_path=items_out,
            seed=args.seed,
            with_text=args.text,
            progress=not args.quiet,
        )
    except ValueError as exc:  # SynthConfig names the offending size
        raise LlmcfError(str(exc)) from None
    if items_out is not None:
        print(f"item catalog: {items_out}")
    print(
        f"wrote {args.interactions} interactions to {args.out} in {time.perf_counter() - t0:.1f} s"
    )
    return 0
