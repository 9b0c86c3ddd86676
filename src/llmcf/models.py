"""Model names used by the CLI and the experiment runner, mapped to classes."""

from __future__ import annotations

from typing import Any

from llmcf.cf.baselines import BaselineOnly, GlobalMean
from llmcf.cf.knn import ItemKNN, KNNConfig, UserKNN
from llmcf.errors import ConfigError

KNN_MODELS: dict[str, type] = {"user-knn": UserKNN, "item-knn": ItemKNN}
SIMPLE_MODELS: dict[str, type] = {"baseline": BaselineOnly, "global-mean": GlobalMean}


def text_models() -> dict[str, type]:
    """Text-fused kNN models (T-UserCF / T-ItemCF) when the text layer is importable."""
    try:
        from llmcf.text.fused import MODEL_CLASSES_BY_NAME
    except ImportError:
        return {}
    return dict(MODEL_CLASSES_BY_NAME)


def text_option_names() -> frozenset[str]:
    """Options only the text-fused models take (plain kNN ignores them in a comparison)."""
    try:
        from llmcf.text.fused import TEXT_OPTIONS
    except ImportError:
        return frozenset()
    return TEXT_OPTIONS


def model_names() -> list[str]:
    return [*KNN_MODELS, *text_models(), *SIMPLE_MODELS]


def make_model(name: str, **options: Any) -> Any:
    """Build an unfitted model by its CLI name; kNN options are validated by :class:`KNNConfig`.

    Options that do not apply to a model (e.g. ``k`` for ``baseline``) are ignored, so one set of
    command-line options can drive a comparison of several models.
    """
    opts = {key: value for key, value in options.items() if value is not None}
    if name in KNN_MODELS:
        text_only = text_option_names()
        return KNN_MODELS[name](
            KNNConfig.from_dict({k: v for k, v in opts.items() if k not in text_only})
        )
    texts = text_models()
    if name in texts:
        return texts[name](**opts)
    if name == "baseline":
        keys = {
            "baseline_method": "method",
            "baseline_epochs": "n_epochs",
            "reg_u": "reg_u",
            "reg_i": "reg_i",
        }
        return BaselineOnly(**{keys[k]: v for k, v in opts.items() if k in keys})
    if name == "global-mean":
        return GlobalMean()
    raise ConfigError(f"unknown model {name!r}; valid: {', '.join(model_names())}")
