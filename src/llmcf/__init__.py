"""llmcf: collaborative filtering joined with language models for e-commerce recommendations.

Public entry points::

    from llmcf import Dataset, Vocabulary, UserKNN, ItemKNN, BaselineOnly, load_model
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llmcf._version import __version__
from llmcf.cf.baselines import BaselineOnly, GlobalMean
from llmcf.cf.knn import ItemKNN, KNNConfig, UserKNN
from llmcf.data.dataset import Dataset
from llmcf.data.vocab import Vocabulary
from llmcf.errors import DataError, LlmcfError, ModelLoadError, NotFittedError

if TYPE_CHECKING:
    from llmcf.models import load_model

__all__ = [
    "BaselineOnly",
    "DataError",
    "Dataset",
    "GlobalMean",
    "ItemKNN",
    "KNNConfig",
    "LlmcfError",
    "ModelLoadError",
    "NotFittedError",
    "UserKNN",
    "Vocabulary",
    "__version__",
    "load_model",
]


def __getattr__(name: str) -> Any:
    # load_model is imported on first use: it registers the text models, which fitting and
    # predicting plain kNN do not need
    if name == "load_model":
        from llmcf.models import load_model

        return load_model
    raise AttributeError(f"module 'llmcf' has no attribute {name!r}")
