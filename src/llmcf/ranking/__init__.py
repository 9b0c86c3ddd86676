"""The one ranking path and what it is made of (see :mod:`llmcf.ranking.path`).

* :mod:`~llmcf.ranking.lists`: ranked lists (:class:`ItemList`, :class:`Recommendations`),
  item sources, :func:`top_n_rows`;
* :mod:`~llmcf.ranking.config`: :class:`RankingConfig`, the weight matrix W and the implicit
  ranking similarity;
* :mod:`~llmcf.ranking.events`: events in the model's units (fold-in);
* :mod:`~llmcf.ranking.path`: :func:`rank`, histories, padding and fallback.
"""

from llmcf.ranking.config import RankingConfig, cosine_neighbors, interaction_weights
from llmcf.ranking.events import EventRows, EventWeights
from llmcf.ranking.lists import SOURCES, ItemList, Recommendations, top_n_rows
from llmcf.ranking.path import Histories, fold_in_histories, rank, training_histories

__all__ = [
    "SOURCES",
    "EventRows",
    "EventWeights",
    "Histories",
    "ItemList",
    "RankingConfig",
    "Recommendations",
    "cosine_neighbors",
    "fold_in_histories",
    "interaction_weights",
    "rank",
    "top_n_rows",
    "training_histories",
]
