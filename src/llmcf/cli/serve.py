"""``llmcf serve``: serve a saved model over HTTP (needs the 'serve' extra)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from llmcf.errors import LlmcfError


def run(args: argparse.Namespace) -> int:
    try:
        import uvicorn
    except ImportError:
        raise LlmcfError(
            "`llmcf serve` needs the serve extra: pip install 'llmcf[serve]'"
        ) from None
    from llmcf.persist import MANIFEST
    from llmcf.serve.app import SETTINGS_ENV, create_app, settings_to_json
    from llmcf.serve.state import ServeSettings, default_events_db

    model_dir = Path(args.model_dir)
    if not (model_dir / MANIFEST).is_file():
        raise LlmcfError(f"{model_dir}: no {MANIFEST}; is this a folder written by `llmcf fit`?")
    settings = ServeSettings(
        model_dir=model_dir,
        events_db=args.events_db or default_events_db(),
        max_body_bytes=args.max_body_bytes,
        cors_origins=tuple(args.cors_origin),
        fast_path=args.fast_path,
        freeze_gc=True,
        public_metrics=args.public_metrics,
    )
    if args.event_weights:
        print(
            "llmcf serve: --event-weights is ignored: the model folds in events with the "
            "weights it was fitted with (llmcf fit --event-weights)",
            file=sys.stderr,
        )
    for role, env in (("ingest", "LLMCF_INGEST_KEY"), ("admin", "LLMCF_ADMIN_KEY")):
        if not settings.key_for(role):
            print(
                f"llmcf serve: neither {env} nor LLMCF_API_KEY is set: {role} endpoints are "
                "disabled",
                file=sys.stderr,
            )
    if args.workers < 1:
        raise LlmcfError(f"--workers must be >= 1, got {args.workers}")
    if args.workers > 1:
        # each worker process builds its own app from these settings; they share the event
        # store and see each other's events within settings.follow_interval
        import json
        import os

        os.environ[SETTINGS_ENV] = json.dumps(settings_to_json(settings))
        uvicorn.run(
            "llmcf.serve.app:app_from_env",
            factory=True,
            workers=args.workers,
            host=args.host,
            port=args.port,
            log_level=args.log_level,
            access_log=args.access_log,
            loop=_installed("uvloop"),
            http=_installed("httptools"),
        )
        return 0
    app = create_app(settings)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        access_log=args.access_log,
        loop=_installed("uvloop"),
        http=_installed("httptools"),
    )
    return 0


def _installed(module: str) -> str:
    """``module`` (uvloop, httptools: ``uvicorn[standard]``) when installed, else uvicorn's
    pure-Python fallback, which costs several times more CPU per request (reported)."""
    import importlib.util

    if importlib.util.find_spec(module) is not None:
        return module
    print(f"llmcf serve: {module} is not installed: slower requests", file=sys.stderr)
    return "auto"
