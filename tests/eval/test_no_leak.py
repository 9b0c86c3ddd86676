"""No choice on test data: whatever a fit sees (including the validation carves a model makes
inside fit) holds no test interaction. A harness that passed test rows to fit would fail."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from tests.conftest import random_dataset

from llmcf.base import Model
from llmcf.eval.runner import FoldData, evaluate_ratings
from llmcf.eval.topn import evaluate_topn

SENTINEL = 2.5  # a rating value only the test rows carry


def _fold() -> FoldData:
    ds = random_dataset(7, n_users=30, n_items=20)
    rng = np.random.default_rng(0)
    test = np.sort(rng.choice(len(ds), len(ds) // 5, replace=False))
    train = np.setdiff1d(np.arange(len(ds)), test)
    ds.rating[test] = SENTINEL
    return FoldData("f", ds, train, test)


@pytest.fixture
def seen(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    datasets: list[Any] = []
    real = Model._begin_fit

    def spy(self: Model, dataset: Any) -> None:
        datasets.append(dataset)
        real(self, dataset)

    monkeypatch.setattr(Model, "_begin_fit", spy)
    return datasets


@pytest.mark.parametrize("task", ["ratings", "topn"])
def test_fits_never_see_a_test_interaction(seen: list[Any], task: str) -> None:
    fold = _fold()
    models = ["item-knn", "user-knn", "baseline", "global-mean"]
    if task == "ratings":
        evaluate_ratings([fold], models, [5], progress=False)
    else:
        evaluate_topn([fold], models, n=5, relevance=None, progress=False)
    assert len(seen) >= len(models)
    for dataset in seen:
        assert not (dataset.rating == SENTINEL).any(), "a fit saw test interactions"


def test_the_spy_would_catch_a_leak(seen: list[Any]) -> None:
    from llmcf.models import make_model

    fold = _fold()
    make_model("item-knn").fit(fold.dataset)  # the whole data set: what a leaking harness does
    assert any((d.rating == SENTINEL).any() for d in seen)
