"""A scripted language model for unit tests of the re-ranker's logic (no real model)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from llmcf.rerank.prompts import ChoicePrompt, PointwisePrompt


class FakeLLM:
    """Answers from a function of the prompt; records every call."""

    def __init__(
        self,
        yes_no: Callable[[PointwisePrompt], Any] | None = None,
        choice: Callable[[ChoicePrompt], Any] | None = None,
        complete: Callable[[str, str], str] | None = None,
    ) -> None:
        self._yes_no = yes_no
        self._choice = choice
        self._complete = complete
        self.calls: list[tuple[str, Any]] = []

    @property
    def name(self) -> str:
        return "fake"

    def yes_no(self, prompt: PointwisePrompt) -> np.ndarray:
        self.calls.append(("yes_no", prompt))
        assert self._yes_no is not None
        return self._yes_no(prompt)  # type: ignore[no-any-return]

    def choice(self, prompt: ChoicePrompt) -> np.ndarray:
        self.calls.append(("choice", prompt))
        assert self._choice is not None
        return self._choice(prompt)  # type: ignore[no-any-return]

    def complete(self, system: str, user: str, max_tokens: int = 60) -> str:
        self.calls.append(("complete", user))
        assert self._complete is not None
        return self._complete(system, user)


def keyword_yes_no(keyword: str) -> Callable[[PointwisePrompt], np.ndarray]:
    """+2 for candidates whose text contains ``keyword``, -2 otherwise."""

    def score(prompt: PointwisePrompt) -> np.ndarray:
        return np.array([2.0 if keyword in s else -2.0 for s in prompt.candidates])

    return score
