"""``python -m llmcf.cli``: the ``llmcf`` command line."""

from llmcf.cli import main

raise SystemExit(main())
