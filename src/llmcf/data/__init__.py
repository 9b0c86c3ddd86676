"""Data layer: vocabularies (external id <-> int32 index), datasets, loaders and splits."""

from llmcf.data.dataset import Dataset
from llmcf.data.vocab import Vocabulary

__all__ = ["Dataset", "Vocabulary"]
