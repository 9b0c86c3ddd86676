"""Every model passes the shipped contract checks (llmcf.testing.contracts)."""

from __future__ import annotations

import pytest
from tests.conftest import random_dataset

from llmcf import BaselineOnly, GlobalMean, ItemKNN, UserKNN
from llmcf.testing.contracts import check_model_contract

FACTORIES = {
    "user-knn": lambda: UserKNN(k=5),
    "item-knn": lambda: ItemKNN(k=5, similarity="cosine", prediction="mean"),
    "item-knn-sparse": lambda: ItemKNN(k=5, dense_max=0, n_neighbors=6),
    "user-knn-zscore": lambda: UserKNN(k=3, similarity="msd", prediction="zscore"),
    "item-knn-adjusted": lambda: ItemKNN(k=4, similarity="adjusted_cosine", prediction="basic"),
    "baseline": lambda: BaselineOnly(),
    "baseline-sgd": lambda: BaselineOnly(method="sgd"),
    "global-mean": lambda: GlobalMean(),
}


@pytest.mark.parametrize("name", list(FACTORIES))
def test_contract(name: str) -> None:
    check_model_contract(FACTORIES[name], random_dataset(4, n_users=18, n_items=11))
