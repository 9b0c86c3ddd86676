"""Vocabulary: external ids <-> contiguous indices."""

from __future__ import annotations

import numpy as np
import pytest

from llmcf import DataError, Vocabulary


def test_first_appearance_order_and_round_trip() -> None:
    vocab, idx = Vocabulary.from_values(np.array(["b", "a", "b", "c"]), name="item")
    assert vocab.ids.tolist() == ["b", "a", "c"]
    assert idx.tolist() == [0, 1, 0, 2]
    assert vocab.external(idx).tolist() == ["b", "a", "b", "c"]
    assert "a" in vocab and "z" not in vocab


def test_text_queries_against_integer_ids() -> None:
    vocab = Vocabulary(np.array([5, 7, 9]), name="user")
    assert vocab.lookup(np.array(["9", "5"])).tolist() == [2, 0]
    # one non-numeric id must not spoil the others
    assert vocab.lookup(np.array(["7", "x", "9"]), missing="negative").tolist() == [1, -1, 2]
    with pytest.raises(DataError, match=r"unknown user id.*'x'"):
        vocab.lookup(np.array(["7", "x"]))


def test_duplicates_and_digest() -> None:
    with pytest.raises(DataError, match="duplicate"):
        Vocabulary(np.array([1, 2, 1]))
    a, b = Vocabulary(np.array(["x", "y"])), Vocabulary(np.array(["y", "x"]))
    assert a.digest() != b.digest() and a == Vocabulary(np.array(["x", "y"]))
    assert a.extend(np.array(["z", "x"])).ids.tolist() == ["x", "y", "z"]
