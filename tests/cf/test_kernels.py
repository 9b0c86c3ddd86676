"""The C kernels (llmcf.cf._ckernels): input validation, threads, fork, and the scalar formula."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from tests.conftest import random_dataset

from llmcf.cf import _ckernels, _kernels
from llmcf.cf.baselines import BaselineConfig, fit_baselines
from llmcf.cf.similarity import EntryLayout
from llmcf.errors import ConfigError


@pytest.fixture(autouse=True)
def _restore_threads() -> Iterator[None]:
    saved = _kernels._threads
    yield
    _kernels._threads = saved


def _layout(
    seed: int = 0, n_users: int = 12, n_items: int = 9
) -> tuple[EntryLayout, tuple[Any, ...]]:
    ds = random_dataset(seed, n_users=n_users, n_items=n_items, density=0.5)
    lay = EntryLayout.build(
        ds.user_idx.astype(np.int64), ds.item_idx.astype(np.int64), ds.n_users, ds.n_items
    )
    x_values = np.ascontiguousarray(ds.rating[lay.x_order])
    y_values = np.ascontiguousarray(ds.rating[lay.ys_order])
    args = (
        lay.n_x,
        lay.x_indptr,
        lay.x_indices,
        x_values,
        lay.y_indptr,
        lay.ys_indices,
        y_values,
        _kernels.COSINE,
        1,
        0.0,
    )
    return lay, args


def _dense(args: tuple[Any, ...]) -> np.ndarray:
    out = np.zeros((args[0], args[0]))
    _kernels.dense_similarity(*args, out, _kernels.n_chunks())
    return out


def _topk(args: tuple[Any, ...], k: int = 4) -> tuple[np.ndarray, np.ndarray]:
    n_x = args[0]
    idx = np.empty((n_x, k), np.int32)
    sim = np.empty((n_x, k))
    rows = np.arange(n_x, dtype=np.int64)
    _kernels.topk_similarity(rows, *args, k, 0.0, idx, sim, _kernels.n_chunks())
    return idx, sim


def _predict(
    lay: EntryLayout,
    sim: np.ndarray,
    px: np.ndarray,
    py: np.ndarray,
    ks: tuple[int, ...] = (1, 3),
) -> tuple[np.ndarray, np.ndarray]:
    n = len(px)
    est = np.empty((n, len(ks)))
    used = np.empty((n, len(ks)), np.int64)
    dev = np.linspace(-1.0, 1.0, len(lay.y_indices))
    _kernels.predict_pairs(
        px,
        py,
        lay.y_indptr,
        lay.y_indices,
        dev,
        sim,
        np.zeros((1, 1), np.int32),
        np.zeros((1, 1)),
        True,
        lay.n_x,
        np.asarray(ks, np.int64),
        1,
        np.zeros(n),
        np.ones(n),
        est,
        used,
        _kernels.n_chunks(8),
    )
    return est, used


# ---------------------------------------------------------------------------- the formula


@pytest.mark.parametrize("kind", range(5))
def test_c_finalise_is_the_python_formula_bit_for_bit(kind: int) -> None:
    rng = np.random.default_rng(kind)
    for _ in range(2000):
        n = int(rng.integers(0, 6))
        sums = rng.normal(size=6) * rng.choice([1e-3, 1.0, 1e3])
        if rng.random() < 0.1:
            sums[1] = 0.0  # a zero denominator
        support = int(rng.integers(0, 4))
        shrink = float(rng.choice([0.0, 3.0, 100.0]))
        args = (kind, n, *(float(v) for v in sums), support, shrink)
        got = _ckernels.finalise(*args)
        want = _kernels._finalise(*args)
        assert got == want or (math.isnan(got) and math.isnan(want)), args


# ---------------------------------------------------------------------------- validation


def test_wrong_dtypes_raise_type_error() -> None:
    _lay, args = _layout()
    n_x = args[0]
    bad_values = list(args)
    bad_values[3] = args[3].astype(np.float32)
    with pytest.raises(TypeError, match=r"x_values must be a float64 array, got float32"):
        _dense(tuple(bad_values))
    bad_indices = list(args)
    bad_indices[2] = args[2].astype(np.int32)
    with pytest.raises(TypeError, match=r"x_indices must be a int64 array, got int32"):
        _dense(tuple(bad_indices))
    with pytest.raises(TypeError, match=r"out must be a float64 array, got float32"):
        _kernels.dense_similarity(*args, np.zeros((n_x, n_x), np.float32), 1)
    rows = np.arange(n_x, dtype=np.int64)
    with pytest.raises(TypeError, match=r"out_idx must be a int32 array, got int64"):
        _kernels.topk_similarity(
            rows, *args, 3, 0.0, np.empty((n_x, 3), np.int64), np.empty((n_x, 3)), 1
        )
    with pytest.raises(TypeError, match=r"x_indptr must be a 1D int64 numpy array, got list"):
        _kernels.dense_similarity(n_x, [0, 1], *args[2:], np.zeros((n_x, n_x)), 1)


def test_wrong_lengths_and_shapes_raise_value_error() -> None:
    _lay, args = _layout()
    n_x = args[0]
    with pytest.raises(ValueError, match=r"x_indptr has length \d+, expected \d+"):
        _dense((n_x + 1, *args[1:]))
    short = list(args)
    short[6] = args[6][:-1]
    with pytest.raises(ValueError, match=r"y_values has length"):
        _dense(tuple(short))
    with pytest.raises(ValueError, match=r"out has shape"):
        _kernels.dense_similarity(*args, np.zeros((n_x, n_x + 1)), 1)
    with pytest.raises(ValueError, match=r"out must be 2-dimensional"):
        _kernels.dense_similarity(*args, np.zeros(n_x * n_x), 1)
    with pytest.raises(ValueError, match=r"C-contiguous"):
        _kernels.dense_similarity(*args, np.zeros((n_x, 2 * n_x))[:, ::2], 1)
    frozen = np.zeros((n_x, n_x))
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match=r"writable"):
        _kernels.dense_similarity(*args, frozen, 1)
    with pytest.raises(ValueError, match=r"unknown similarity code 9"):
        _dense((*args[:7], 9, *args[8:]))
    with pytest.raises(ValueError, match=r"chunks and threads must be >= 1"):
        _kernels.dense_similarity(*args, np.zeros((n_x, n_x)), 0)


def test_out_of_range_indices_raise_instead_of_crashing() -> None:
    _lay, args = _layout()
    n_x = args[0]
    bad_y = list(args)
    bad_y[5] = args[5].copy()
    bad_y[5][3] = n_x + 1000
    with pytest.raises(ValueError, match=r"y_indices\[3\] = \d+ is outside"):
        _dense(tuple(bad_y))
    with pytest.raises(ValueError, match=r"y_indices\[3\] = \d+ is outside"):
        _topk(tuple(bad_y))
    bad_x = list(args)
    bad_x[2] = args[2].copy()
    bad_x[2][0] = -5
    with pytest.raises(ValueError, match=r"x_indices\[0\] = -5 is outside"):
        _dense(tuple(bad_x))
    bad_ptr = list(args)
    bad_ptr[1] = args[1].copy()
    bad_ptr[1][2] = 10**9
    with pytest.raises(ValueError, match=r"x_indptr"):
        _dense(tuple(bad_ptr))
    with pytest.raises(ValueError, match=r"rows\[0\] = 99 is outside"):
        _kernels.topk_similarity(
            np.array([99], np.int64), *args, 2, 0.0, np.empty((1, 2), np.int32), np.empty((1, 2)), 1
        )


def test_predict_pairs_validates_pairs_and_ks() -> None:
    lay, args = _layout()
    sim = _dense(args)
    with pytest.raises(ValueError, match=r"pair 1 = \(0, 500\) is outside"):
        _predict(lay, sim, np.array([0, 0], np.int64), np.array([1, 500], np.int64))
    with pytest.raises(ValueError, match=r"py has length 1, expected 2"):
        _predict(lay, sim, np.array([0, 0], np.int64), np.array([1], np.int64))
    with pytest.raises(ValueError, match=r"ks must be positive and ascending"):
        _predict(lay, sim, np.array([0], np.int64), np.array([1], np.int64), ks=(3, 1))
    with pytest.raises(ValueError, match=r"dense_sim has shape"):
        _predict(lay, sim[:-1], np.array([0], np.int64), np.array([1], np.int64))
    # negative ids are unknown pairs: NaN and 0 neighbours, not an error
    est, used = _predict(lay, sim, np.array([-1, 0], np.int64), np.array([1, -1], np.int64))
    assert np.isnan(est).all() and (used == 0).all()


def test_sparse_predictions_check_neighbour_ids() -> None:
    lay, args = _layout()
    idx, sims = _topk(args)
    idx[0, 0] = lay.n_x + 7
    n = 3
    with pytest.raises(ValueError, match=r"nbr_idx\[0, 0\] = \d+ is outside"):
        _kernels.predict_pairs(
            np.zeros(n, np.int64),
            np.arange(n, dtype=np.int64),
            lay.y_indptr,
            lay.y_indices,
            np.zeros(len(lay.y_indices)),
            np.zeros((1, 1)),
            idx,
            sims,
            False,
            lay.n_x,
            np.array([2], np.int64),
            1,
            np.zeros(n),
            np.ones(n),
            np.empty((n, 1)),
            np.empty((n, 1), np.int64),
            4,
        )


def test_baseline_kernels_validate_ids() -> None:
    users = np.array([0, 1, 5], np.int64)
    items = np.array([0, 1, 0], np.int64)
    ratings = np.array([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"rating 2: \(user 5, item 0\) is outside"):
        _kernels.sgd_epochs(users, items, ratings, 2.0, np.zeros(2), np.zeros(2), 1, 0.02, 0.005)
    with pytest.raises(ValueError, match=r"den_u has length 3, expected 2"):
        _kernels.als_epochs(
            users[:2],
            items[:2],
            ratings[:2],
            2.0,
            np.zeros(2),
            np.zeros(2),
            np.ones(2),
            np.ones(3),
            1,
        )
    with pytest.raises(TypeError, match=r"ratings must be a float64 array, got int64"):
        _kernels.sgd_epochs(users, items, users, 2.0, np.zeros(6), np.zeros(2), 1, 0.02, 0.005)


def test_empty_inputs() -> None:
    empty = np.zeros(0, np.int64)
    args = (
        0,
        np.zeros(1, np.int64),
        empty,
        np.zeros(0),
        np.zeros(1, np.int64),
        empty,
        np.zeros(0),
        0,
        1,
        0.0,
    )
    _kernels.dense_similarity(*args, np.zeros((0, 0)), 4)
    _, lay_args = _layout()
    idx, _sim = _topk(lay_args, k=0)
    assert idx.shape == (lay_args[0], 0)


# ---------------------------------------------------------------------------- threads, fork


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_results_do_not_depend_on_threads_or_chunks(threads: int) -> None:
    lay, args = _layout(seed=4, n_users=40, n_items=25)
    _kernels._threads = 1
    dense_1, (idx_1, sim_1) = _dense(args), _topk(args, k=6)
    px = np.repeat(np.arange(lay.n_x, dtype=np.int64), lay.n_y)
    py = np.tile(np.arange(lay.n_y, dtype=np.int64), lay.n_x)
    est_1, used_1 = _predict(lay, dense_1, px, py, ks=(1, 2, 5, 40))
    _kernels._threads = threads
    for chunks in (1, 3, 64):
        out = np.zeros((lay.n_x, lay.n_x))
        _kernels.dense_similarity(*args, out, chunks)
        np.testing.assert_array_equal(out, dense_1)
    idx, sim = _topk(args, k=6)
    np.testing.assert_array_equal(idx, idx_1)
    np.testing.assert_array_equal(sim, sim_1)
    est, used = _predict(lay, dense_1, px, py, ks=(1, 2, 5, 40))
    np.testing.assert_array_equal(est, est_1)
    np.testing.assert_array_equal(used, used_1)


def test_thread_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMCF_THREADS", "3")
    _kernels._threads = None
    assert _kernels.max_threads() == 3 and _kernels.get_threads() == 3
    assert _kernels.n_chunks(4) == 12
    _kernels.set_threads(8)  # capped at the maximum
    assert _kernels.get_threads() == 3
    _kernels.set_threads(None)  # keeps the current setting
    assert _kernels.get_threads() == 3
    _kernels.set_threads(0)
    assert _kernels.get_threads() == 1
    monkeypatch.setenv("LLMCF_THREADS", "many")
    with pytest.raises(ConfigError, match="LLMCF_THREADS must be an integer"):
        _kernels.max_threads()
    monkeypatch.delenv("LLMCF_THREADS")
    assert _kernels.max_threads() >= 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_kernels_work_in_a_forked_child() -> None:
    _lay, args = _layout(seed=2, n_users=30, n_items=20)
    _kernels._threads = 2
    want = _dense(args)  # threads were started (and joined) in the parent
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        ok = np.array_equal(_dense(args), want)
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def test_fit_baselines_sgd_and_als_run_on_the_c_kernels() -> None:
    ds = random_dataset(1)
    for method in ("als", "sgd"):
        _, bu, bi = fit_baselines(
            ds.user_idx,
            ds.item_idx,
            ds.rating,
            ds.n_users,
            ds.n_items,
            BaselineConfig(method),  # type: ignore[arg-type]
        )
        assert np.isfinite(bu).all() and np.isfinite(bi).all() and bu.any() and bi.any()
