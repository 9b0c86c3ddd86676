"""Building option dataclasses from plain mappings (CLI options, saved manifests), once for
every config class: unknown keys are an error that names them and lists the valid ones."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any, TypeVar

from llmcf.errors import ConfigError

T = TypeVar("T")

__all__ = ["config_from_dict"]


def config_from_dict(cls: type[T], values: Mapping[str, Any], what: str) -> T:
    """``cls(**values)`` for the dataclass ``cls``; ``what`` names the options in errors
    (``"unknown kNN option(s) ['alhpa']; valid: ..."``)."""
    if not isinstance(values, Mapping):
        raise ConfigError(f"{what} options must be a mapping, got {type(values).__name__}")
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = set(values) - known
    if unknown:
        raise ConfigError(
            f"unknown {what} option(s) {sorted(unknown)}; valid: {', '.join(sorted(known))}"
        )
    return cls(**values)
