"""Gradient by path length on a linear residual network, where each path's gradient is a product
of weight matrices and can be computed exactly."""
from __future__ import annotations

from itertools import combinations

import numpy as np
import pytest

import tinygrad_ds as tds
from tinygrad_ds import nn
from tinygrad_ds.errors import TdsError
from viz.path_grad import gradient_by_length, path_gradient

T, D = 4, 5


def _t(x):
    return tds.Tensor(x, dtype=tds.float64)


@pytest.fixture(scope="module")
def linear_net():
    tds.manual_seed(0)
    m = nn.Sequential(*[nn.Residual(nn.Linear(D, D, bias=False)) for _ in range(T)]).double()
    x = np.random.default_rng(1).standard_normal((2, D))
    v = np.random.default_rng(0).standard_normal((2, D))  # the default projection (seed 0)
    return m, x, v


def _exact(m, v, path, first=0):
    """d sum(y * v)/dh_first along the path: y = h M_path with M the product of W_t^T for the
    blocks on the path (identity for the skipped ones)."""
    ws = [blk.f.weight.data for blk in m]
    M = np.eye(D)
    for t in range(first, T):
        M = M @ (ws[t].T if t in path else np.eye(D))
    return v @ M.T


def test_each_path_gradient_is_the_product_and_all_paths_sum_to_the_gradient(linear_net):
    m, x, v = linear_net
    total = np.zeros_like(x)
    for k in range(T + 1):
        for s in combinations(range(T), k):
            g = path_gradient(m, _t(x), s, v=v)
            np.testing.assert_allclose(g, _exact(m, v, s), rtol=1e-12, atol=1e-12)
            total += g
    np.testing.assert_allclose(total, path_gradient(m, _t(x), None, v=v), rtol=1e-12)


def test_sampled_gradient_by_length_agrees_with_the_exact_mean(linear_net):
    m, x, v = linear_net
    for samples in (6, 200):  # 6 covers every length exactly; 200 samples are drawn only
        r = gradient_by_length(m, _t(x), samples=samples)  # ... where C(T,k) > 200
        for row in r.rows:
            exact = [np.linalg.norm(_exact(m, v, s)) for s in combinations(range(T), row.length)]
            assert row.exact and row.paths == len(exact)
            assert row.mean == pytest.approx(np.mean(exact), rel=1e-10)
    sampled = gradient_by_length(m, _t(x), samples=3)  # C(4, 2) = 6 > 3: drawn at random
    assert [row.exact for row in sampled.rows] == [True, False, False, False, True]
    for s, norm in sampled.norms.items():  # every path measured is measured exactly
        assert norm == pytest.approx(np.linalg.norm(_exact(m, v, s)), rel=1e-12)
    for row in sampled.rows:
        assert row.sampled == min(3, row.paths) or row.exact
    assert "paths x mean" in str(sampled)


def test_measured_at_a_block(linear_net):
    m, x, v = linear_net
    r = gradient_by_length(m, _t(x), samples=10, at=1)
    assert r.blocks == T - 1 and [row.paths for row in r.rows] == [1, 3, 3, 1]
    g = path_gradient(m, _t(x), (2,), at=1, v=v)
    np.testing.assert_allclose(g, _exact(m, v, (2,), first=1), rtol=1e-12)


def test_no_blocks_is_an_error():
    with pytest.raises(TdsError, match="no residual blocks"):
        gradient_by_length(nn.Sequential(nn.Linear(3, 3)), tds.Tensor(np.ones((1, 3))))
