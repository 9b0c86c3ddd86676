"""Building option dataclasses from plain mappings (CLI options, saved manifests), once for
every config class: unknown keys are an error that names them and lists the valid ones."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import fields
from typing import Any, TypeVar

from llmcf.errors import ConfigError

T = TypeVar("T")

__all__ = ["config_from_dict", "parse_option_pairs"]


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


_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")


def parse_option_pairs(cls: type[Any], pairs: Sequence[str], flag: str) -> dict[str, Any]:
    """``KEY=VALUE`` strings (the command line's ``flag``, e.g. ``--learned-option``) as the
    typed fields of the dataclass ``cls``: ints, floats, booleans (true/false, 1/0, yes/no),
    comma lists for tuple fields, ``none`` for optional ones; ``-`` in a key reads as ``_``.
    A malformed pair, an unknown key or a value of the wrong type is a ConfigError naming it."""
    types = {f.name: str(f.type) for f in fields(cls)}
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise ConfigError(f"{flag} expects KEY=VALUE, got {pair!r}")
        if key not in types:
            raise ConfigError(f"{flag}: unknown option {key!r}; valid: {', '.join(sorted(types))}")
        kind, value = types[key], raw.strip()
        try:
            if "None" in kind and value.lower() in ("none", ""):
                out[key] = None
            elif kind.startswith("tuple"):
                out[key] = tuple(v.strip() for v in value.split(",") if v.strip())
            elif kind.startswith("bool"):
                if value.lower() not in _TRUE + _FALSE:
                    raise ValueError(value)
                out[key] = value.lower() in _TRUE
            elif kind.startswith("int"):
                out[key] = int(value)
            elif kind.startswith("float"):
                out[key] = float(value)
            else:
                out[key] = value
        except ValueError:
            raise ConfigError(f"{flag} {key}={raw!r}: expected {kind.split(' ')[0]}") from None
    return out
