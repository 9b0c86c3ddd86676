"""llmcf: collaborative filtering joined with language models for e-commerce recommendations.

Public entry points::

    from llmcf import Dataset, Vocabulary, UserKNN, ItemKNN, BaselineOnly, load_model
"""

from __future__ import annotations

__version__ = "0.1.0"

from llmcf.cf.baselines import BaselineOnly, GlobalMean
from llmcf.cf.knn import ItemKNN, KNNConfig, UserKNN
from llmcf.data.dataset import Dataset
from llmcf.data.vocab import Vocabulary
from llmcf.errors import DataError, LlmcfError, ModelLoadError, NotFittedError
from llmcf.persist import load_model

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
