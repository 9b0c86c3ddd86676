"""SGD baselines against scikit-surprise's ``BaselineOnly(method='sgd')`` (the oracle) and an
independent per-rating reference loop, on a synthetic data set in shuffled input order."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from tests.conftest import random_dataset

from llmcf.cf.baselines import BaselineConfig, fit_baselines

surprise = pytest.importorskip(
    "surprise", reason="scikit-surprise (dev dependency) is not installed"
)


def _reference_sgd(ds, reg: float, lr: float, epochs: int) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[no-untyped-def]
    """Surprise's update rule written out: users in order of first appearance, each user's
    ratings in input order; bu and bi updated from the same error."""
    mu = float(ds.rating.mean())
    bu, bi = np.zeros(ds.n_users), np.zeros(ds.n_items)
    first = {}
    for pos, u in enumerate(ds.user_idx.tolist()):
        first.setdefault(u, pos)
    order = sorted(range(len(ds)), key=lambda j: (first[int(ds.user_idx[j])], j))
    for _ in range(epochs):
        for j in order:
            u, i, r = int(ds.user_idx[j]), int(ds.item_idx[j]), float(ds.rating[j])
            err = r - (mu + bu[u] + bi[i])
            bu[u] += lr * (err - reg * bu[u])
            bi[i] += lr * (err - reg * bi[i])
    return bu, bi


def test_sgd_baselines_equal_surprise_and_the_reference() -> None:
    ds = random_dataset(8, n_users=30, n_items=20, density=0.4)
    cfg = BaselineConfig(method="sgd")
    mu, bu, bi = fit_baselines(ds.user_idx, ds.item_idx, ds.rating, ds.n_users, ds.n_items, cfg)
    ref_bu, ref_bi = _reference_sgd(ds, cfg.reg, cfg.learning_rate, cfg.epochs)
    frame = pd.DataFrame(
        {
            "user": ds.users.ids[ds.user_idx].astype(str),
            "item": ds.items.ids[ds.item_idx].astype(str),
            "rating": ds.rating,
        }
    )
    data = surprise.Dataset.load_from_df(frame, surprise.Reader(rating_scale=(1, 5)))
    algo = surprise.BaselineOnly(
        bsl_options={
            "method": "sgd",
            "reg": cfg.reg,
            "learning_rate": cfg.learning_rate,
            "n_epochs": cfg.epochs,
        },
        verbose=False,
    )
    trainset = data.build_full_trainset()
    s_bu, s_bi = algo.fit(trainset).compute_baselines()
    users = [trainset.to_raw_uid(k) for k in range(trainset.n_users)]
    items = [trainset.to_raw_iid(k) for k in range(trainset.n_items)]
    ours_u = dict(zip(ds.users.ids.astype(str).tolist(), bu, strict=True))
    ours_i = dict(zip(ds.items.ids.astype(str).tolist(), bi, strict=True))
    np.testing.assert_allclose([ours_u[u] for u in users], s_bu, atol=1e-10)
    np.testing.assert_allclose([ours_i[i] for i in items], s_bi, atol=1e-10)
    np.testing.assert_allclose(bu, ref_bu, atol=1e-10)
    np.testing.assert_allclose(bi, ref_bi, atol=1e-10)
    assert mu == pytest.approx(trainset.global_mean)
    assert np.abs(bu).max() > 1e-3  # the epochs moved the biases
