"""The ``llmcf`` command line: evaluate, fit, predict, recommend, demo, synth, download, serve,
enrich.

``build_parser`` and the shared option helpers live in :mod:`llmcf.cli.parser`; each command
is a module exporting ``run(args) -> int``; :func:`main` parses and dispatches through
:data:`COMMANDS`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

from llmcf.cli import demo, download, enrich, evaluate, fit, predict, recommend, serve, synth
from llmcf.cli.parser import (
    _add_model_options,
    _add_topn_options,
    _int_list,
    _model_options,
    _name_list,
    build_parser,
)
from llmcf.errors import LlmcfError

__all__ = [
    "COMMANDS",
    "_add_model_options",
    "_add_topn_options",
    "_int_list",
    "_model_options",
    "_name_list",
    "build_parser",
    "main",
]

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "evaluate": evaluate.run,
    "fit": fit.run,
    "predict": predict.run,
    "recommend": recommend.run,
    "demo": demo.run,
    "synth": synth.run,
    "download": download.run,
    "enrich": enrich.run,
    "serve": serve.run,
}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    import warnings

    def format_warning(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        line: str | None = None,
    ) -> str:
        # a warning to a command-line user is its message, not a line of llmcf's source
        return f"llmcf {args.command}: warning: {message}\n"

    previous_format = warnings.formatwarning
    warnings.formatwarning = format_warning
    try:
        return COMMANDS[args.command](args)
    except LlmcfError as exc:
        print(f"llmcf {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    finally:
        warnings.formatwarning = previous_format
