"""``llmcf enrich``: LLM-written item profiles (what it is, who it is for, key attributes),
once per item and offline, resumable; read by ``--item-text profile|both``."""

from __future__ import annotations

import argparse

from llmcf.cli.parser import _data_options
from llmcf.errors import LlmcfError


def run(args: argparse.Namespace) -> int:
    from llmcf.eval.runner import load_data
    from llmcf.rerank.enrich import enrich, make_profile_client
    from llmcf.text.profiles import default_profiles_dir

    for name in ("batch_size", "max_tokens", "threads"):
        if getattr(args, name) < 1:
            raise LlmcfError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.limit is not None and args.limit < 0:
        raise LlmcfError(f"--limit must be >= 0, got {args.limit}")
    out = args.out if args.out is not None else str(default_profiles_dir(args.data))
    dataset = load_data(args.data, _data_options(args))
    client = make_profile_client(
        args.llm, n_threads=args.threads, batch_size=args.batch_size, timeout=args.timeout
    )
    try:
        result = enrich(
            dataset,
            client,
            out,
            llm=args.llm,
            batch_size=args.batch_size,
            max_tokens=args.max_tokens,
            limit=args.limit,
            progress=not args.quiet,
        )
    finally:
        close = getattr(client, "close", None)
        if close is not None:
            close()
    counts = result.counts
    rate = result.seconds_per_1000
    timing = "" if rate is None else f", {rate:.0f} s per 1,000 items"
    print(
        f"{out}: {counts['reused'] + counts['generated']} of {counts['texts']} item texts "
        f"profiled ({counts['generated']} now in {result.seconds:.1f} s{timing}; "
        f"{counts['reused']} reused; {counts['unstructured']} unstructured; "
        f"{counts['missing']} left)"
    )
    return 0
