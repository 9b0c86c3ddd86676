"""Backends that build the same neighbour artifact: ``local`` (C kernels, one machine) and ``spark``
(PySpark, a cluster or ``local[n]``; optional extra ``llmcf[spark]``, imported lazily)."""

from llmcf.backends.artifact import NeighborArtifact, compare_neighbors, fuse_neighbors

BACKENDS = ("local", "spark")

__all__ = ["BACKENDS", "NeighborArtifact", "compare_neighbors", "fuse_neighbors"]
