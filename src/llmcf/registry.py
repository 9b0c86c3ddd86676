"""The one model registry: CLI names and class names of every model, filled by a decorator.

A model module declares its class once::

    @register("item-knn")
    class ItemKNN(...): ...

and is then known to ``llmcf evaluate``/``fit``/``recommend``, the service, the backends and
:func:`llmcf.models.load_model` (which reads the class name from a saved manifest). This module
is a leaf: it imports nothing of llmcf but the errors, so every model module can import it.
:mod:`llmcf.models` imports the model modules, which is what fills the registry.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from llmcf.errors import ConfigError

T = TypeVar("T", bound=type)

_BY_NAME: dict[str, type] = {}
_BY_CLASS: dict[str, type] = {}


def register(name: str) -> Callable[[T], T]:
    """Class decorator: make ``cls`` known as ``name`` (its CLI name) and by its class name."""

    def decorate(cls: T) -> T:
        for table, key in ((_BY_NAME, name), (_BY_CLASS, cls.__name__)):
            other = table.get(key)
            if other is not None and other is not cls:
                raise ConfigError(
                    f"model {key!r} registered twice ({other.__module__}.{other.__qualname__} "
                    f"and {cls.__module__}.{cls.__qualname__})"
                )
            table[key] = cls
        cls.name = name  # type: ignore[attr-defined]
        return cls

    return decorate


def names() -> list[str]:
    """CLI names of the registered models, in registration order."""
    return list(_BY_NAME)


def by_name(name: str) -> type:
    """The class registered as ``name``; :class:`ConfigError` listing the valid names."""
    cls = _BY_NAME.get(name)
    if cls is None:
        raise ConfigError(f"unknown model {name!r}; valid: {', '.join(_BY_NAME)}")
    return cls


def by_class(class_name: str) -> type | None:
    """The registered class called ``class_name`` (as a manifest names it), or ``None``."""
    return _BY_CLASS.get(class_name)
