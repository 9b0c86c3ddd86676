"""The model catalog: imports every model module (which registers its classes in
:mod:`llmcf.registry`), builds models by CLI name and loads saved ones."""

from __future__ import annotations

import os
from typing import Any

import llmcf.cf.baselines
import llmcf.cf.ease
import llmcf.cf.knn
import llmcf.text.fused
import llmcf.text.tease
from llmcf import registry
from llmcf.cf.knn import KNNConfig
from llmcf.errors import ConfigError
from llmcf.text.fused import TEXT_OPTIONS

# the imports above register the models; they are named here so linters keep them
MODEL_MODULES = (
    llmcf.cf.baselines,
    llmcf.cf.ease,
    llmcf.cf.knn,
    llmcf.text.fused,
    llmcf.text.tease,
)
#: models registered on first use: the learned second stage imports scipy.sparse and the
#: re-rank layer, which the CLI path keeps lazy
LAZY_MODELS = ("learned",)


def _register_lazy() -> None:
    import llmcf.rerank.learned  # noqa: F401  (registers "learned")


#: options only some models take (command line: one option set drives a comparison of
#: several models), by the names of the models that take them; the others ignore them
MODEL_OPTIONS: dict[str, tuple[str, ...]] = {
    "ease_lambda": ("ease", "t-ease"),
    "ease_threshold": ("ease", "t-ease"),
    "learned_options": ("learned",),
}


def model_names() -> list[str]:
    """CLI names of every model."""
    _register_lazy()
    return registry.names()


def text_option_names() -> frozenset[str]:
    """Options only the text-fused models take (plain kNN ignores them in a comparison)."""
    return TEXT_OPTIONS


def make_model(name: str, **options: Any) -> Any:
    """Build an unfitted model by its CLI name; kNN options are validated by :class:`KNNConfig`.

    Options that do not apply to a model (e.g. ``k`` for ``baseline``) are ignored, so one set of
    command-line options can drive a comparison of several models.
    """
    if name in LAZY_MODELS:
        _register_lazy()
    cls = registry.by_name(name)
    opts = {
        key: value
        for key, value in options.items()
        if value is not None and name in MODEL_OPTIONS.get(key, (name,))
    }
    ranking = opts.pop("ranking", None)
    if not getattr(cls, "takes_text_options", False):
        # ``tune`` is every model's option (each chooses its own tunables on a carve)
        opts = {key: value for key, value in opts.items() if key not in TEXT_OPTIONS - {"tune"}}
    from_options = getattr(cls, "from_options", None)
    if from_options is None:
        raise ConfigError(f"model {name!r} cannot be built from options")
    model = from_options(opts)
    if ranking:
        model.set_ranking(**ranking)
    return model


def load_model(path: str | os.PathLike[str]) -> Any:
    """Load a model saved by ``model.save``/``llmcf fit``; :class:`ModelLoadError` on any problem."""
    from llmcf.persist import read_model

    _register_lazy()
    return read_model(path)


__all__ = ["KNNConfig", "load_model", "make_model", "model_names", "text_option_names"]
