"""Collaborative filtering engine: baselines, similarity registry and user/item kNN."""

from llmcf.cf.baselines import BaselineOnly, GlobalMean, fit_baselines
from llmcf.cf.knn import ItemKNN, KNNConfig, UserKNN
from llmcf.cf.similarity import SIMILARITIES

__all__ = [
    "SIMILARITIES",
    "BaselineOnly",
    "GlobalMean",
    "ItemKNN",
    "KNNConfig",
    "UserKNN",
    "fit_baselines",
]
