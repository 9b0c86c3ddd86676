"""Every registered model passes the shipped contract checks (llmcf.testing.contracts)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from tests.conftest import random_dataset
from tests.text.test_fused import FakeEmbedder, make_dataset

from llmcf import BaselineOnly, GlobalMean, ItemKNN, UserKNN, registry
from llmcf.cf.ease import EASE
from llmcf.models import model_names
from llmcf.rerank.learned import LearnedRanker
from llmcf.testing.contracts import check_model_contract
from llmcf.text.fused import TItemKNN, TUserKNN
from llmcf.text.tease import TEASE

FACTORIES: dict[str, Callable[[], Any]] = {
    "user-knn": lambda: UserKNN(k=5),
    "item-knn": lambda: ItemKNN(k=5, similarity="cosine", prediction="mean"),
    "item-knn-sparse": lambda: ItemKNN(k=5, dense_max=0, n_neighbors=6),
    "item-knn-model-ranking": lambda: ItemKNN(k=5).set_ranking(scoring="model"),
    "user-knn-model-ranking": lambda: UserKNN(k=5).set_ranking(scoring="model"),
    "user-knn-zscore": lambda: UserKNN(k=3, similarity="msd", prediction="zscore"),
    "item-knn-adjusted": lambda: ItemKNN(k=4, similarity="adjusted_cosine", prediction="basic"),
    "baseline": lambda: BaselineOnly(),
    "baseline-sgd": lambda: BaselineOnly(method="sgd"),
    "global-mean": lambda: GlobalMean(),
    "ease": lambda: EASE(lam=5.0),
    "ease-bounded": lambda: EASE(lam=5.0, dense_max=0, n_neighbors=4),
    "ease-tune": lambda: EASE(tune=True, lam_grid=(1.0, 10.0), tune_fraction=0.3),
    "t-item-knn": lambda: TItemKNN(k=3, embedder=FakeEmbedder()),
    "t-item-knn-text": lambda: TItemKNN(k=3, embedder=FakeEmbedder(), rank_weight=0.5),
    "t-item-knn-rating-ranking": lambda: TItemKNN(k=3, embedder=FakeEmbedder()).set_ranking(
        scoring="model"
    ),
    "t-user-knn": lambda: TUserKNN(k=3, embedder=FakeEmbedder()),
    "t-ease": lambda: TEASE(lam=5.0, embedder=FakeEmbedder()),
    "t-ease-text": lambda: TEASE(
        lam=5.0, text_beta=1.0, cold_text_beta=1.0, embedder=FakeEmbedder()
    ),
    "t-ease-bounded": lambda: TEASE(
        lam=5.0, text_beta=1.0, dense_max=0, n_neighbors=4, ann="exact", embedder=FakeEmbedder()
    ),
    "learned": lambda: LearnedRanker(n_candidates=6, n_estimators=10, min_child_samples=2),
}


def test_every_registered_model_has_a_contract_run() -> None:
    covered = {type(f()).__name__ for f in FACTORIES.values()}
    for name in model_names():
        assert registry.by_name(name).__name__ in covered, f"no contract run for {name!r}"


@pytest.mark.parametrize("name", list(FACTORIES))
def test_contract(name: str) -> None:
    text = name.startswith("t-")
    dataset = make_dataset() if text else random_dataset(4, n_users=18, n_items=11)
    check_model_contract(FACTORIES[name], dataset)
