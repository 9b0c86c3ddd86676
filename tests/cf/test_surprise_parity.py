"""Exactness against scikit-surprise 1.1.5 on MovieLens 100K fold u1 (real data).

For user- and item-based kNN, the four prediction rules (KNNBasic, KNNWithMeans, KNNWithZScore,
KNNBaseline) and the four shared similarities at k = 10 and 40, every one of the 20,000 test
predictions must equal Surprise's within 1e-6. Surprise computes each similarity matrix once
per (similarity, user_based); the other rules reuse it (the matrix itself is compared too).
"""

from __future__ import annotations

import numpy as np
import pytest

from llmcf import ItemKNN, UserKNN
from llmcf.data.loaders import load_movielens_100k_fold

surprise = pytest.importorskip(
    "surprise", reason="scikit-surprise (dev dependency) is not installed"
)

pytestmark = [pytest.mark.realdata, pytest.mark.slow]

RULES = {
    "basic": surprise.KNNBasic,
    "mean": surprise.KNNWithMeans,
    "zscore": surprise.KNNWithZScore,
    "baseline": surprise.KNNBaseline,
}
SIMILARITIES = ["cosine", "msd", "pearson", "pearson_baseline"]


@pytest.fixture(scope="module")
def fold(ml100k):  # type: ignore[no-untyped-def]
    ds, train_idx, test_idx = load_movielens_100k_fold(ml100k, "u1")
    reader = surprise.Reader("ml-100k")
    data = surprise.Dataset.load_from_folds(
        [(str(ml100k / "u1.base"), str(ml100k / "u1.test"))], reader
    )
    trainset, testset = next(surprise.model_selection.PredefinedKFold().split(data))
    return ds, ds.subset(train_idx), ds.subset(test_idx), trainset, testset


@pytest.fixture(scope="module")
def ml100k():  # type: ignore[no-untyped-def]
    from tests.conftest import real_data_dir

    return real_data_dir("ml-100k")


@pytest.mark.parametrize("user_based", [True, False], ids=["user", "item"])
@pytest.mark.parametrize("similarity", SIMILARITIES)
def test_predictions_equal_surprise(fold, user_based: bool, similarity: str) -> None:  # type: ignore[no-untyped-def]
    ds, train, test, trainset, testset = fold
    sim_options = {"name": similarity, "user_based": user_based}
    reference_sim = None
    worst = 0.0
    for rule, algo_cls in RULES.items():
        algo = algo_cls(k=40, sim_options=sim_options, verbose=False)
        if reference_sim is not None:
            algo.compute_similarities = lambda sim=reference_sim: sim  # type: ignore[method-assign]
        algo.fit(trainset)
        reference_sim = algo.sim
        cls = UserKNN if user_based else ItemKNN
        ours = cls(k=40, similarity=similarity, prediction=rule).fit(train)
        if rule == "basic":
            # the similarity matrices themselves, mapped through the raw ids
            vocab = ds.users if user_based else ds.items
            to_inner = trainset.to_inner_uid if user_based else trainset.to_inner_iid
            raw = [str(v) for v in vocab.ids]
            inner = np.array([to_inner(r) if (to_inner_ok(to_inner, r)) else -1 for r in raw])
            known = np.flatnonzero(inner >= 0)
            theirs = reference_sim[np.ix_(inner[known], inner[known])]
            np.testing.assert_allclose(ours.sim_[np.ix_(known, known)], theirs, rtol=0, atol=1e-9)
        est, _, _ = ours.predict_k(test.user_idx, test.item_idx, [10, 40])
        for j, k in enumerate([10, 40]):
            algo.k = k
            expected = np.array([p.est for p in algo.test(testset)])
            diff = np.abs(est[:, j] - expected)
            worst = max(worst, float(diff.max()))
            assert diff.max() <= 1e-6, f"{rule} k={k}: max |diff| {diff.max():.3g}"
    assert worst <= 1e-6


def to_inner_ok(to_inner, raw: str) -> bool:  # type: ignore[no-untyped-def]
    try:
        to_inner(raw)
    except ValueError:
        return False
    return True


def test_item_knnbaseline_u1_u5_mean_mae(ml100k) -> None:  # type: ignore[no-untyped-def]
    """The headline number: item KNNBaseline, pearson_baseline, k=40 over u1-u5 = 0.7214."""
    maes = []
    for name in ["u1", "u2", "u3", "u4", "u5"]:
        ds, tr, te = load_movielens_100k_fold(ml100k, name)
        test = ds.subset(te)
        model = ItemKNN(k=40, similarity="pearson_baseline", prediction="baseline").fit(
            ds.subset(tr)
        )
        maes.append(np.abs(model.predict(test.user_idx, test.item_idx) - test.rating).mean())
    assert np.mean(maes) == pytest.approx(0.7214, abs=5e-5)
