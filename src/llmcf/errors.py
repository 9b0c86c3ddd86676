"""Exceptions raised by llmcf. Every message names the offending value, file, line or column."""

from __future__ import annotations


class LlmcfError(Exception):
    """Base class of all llmcf errors."""


class DataError(LlmcfError, ValueError):
    """Bad input data: the message names the file, line, column and value where known."""

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        column: str | None = None,
        value: object = None,
    ) -> None:
        where = []
        if path is not None:
            where.append(str(path))
        if line is not None:
            where.append(f"line {line}")
        if column is not None:
            where.append(f"column {column!r}")
        prefix = ", ".join(where)
        text = f"{prefix}: {message}" if prefix else message
        if value is not None:
            text += f" (value: {value!r})"
        super().__init__(text)
        self.path = path
        self.line = line
        self.column = column
        self.value = value


class NotFittedError(LlmcfError, RuntimeError):
    """A model was used before ``fit`` was called."""


class ModelLoadError(LlmcfError):
    """A saved model could not be loaded (missing, corrupted or from an incompatible version)."""


class ConfigError(LlmcfError, ValueError):
    """An invalid hyperparameter or option."""
