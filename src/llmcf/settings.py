"""Settings read from the environment (prefix ``LLMCF_``).

Precedence: explicit function/CLI arguments > environment variables > defaults.

==================  ===========================================  ==========================
variable            meaning                                      default
==================  ===========================================  ==========================
LLMCF_DATA_DIR      folder holding named data sets (ml-100k/...)  ``~/.cache/llmcf/data``
LLMCF_CACHE_DIR     embeddings / downloads cache                  ``~/.cache/llmcf``
==================  ===========================================  ==========================
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Root cache folder (downloads, embeddings)."""
    env = os.environ.get("LLMCF_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "llmcf"


def data_dir() -> Path:
    """Folder where named data sets (``ml-100k``, ``amazon2018-gift-cards``, ...) are looked up."""
    env = os.environ.get("LLMCF_DATA_DIR")
    return Path(env).expanduser() if env else cache_dir() / "data"
