"""Lesion study on tiny trained networks: one row per block; a residual network survives the
loss of a block, a plain one is hurt more."""
from __future__ import annotations

import numpy as np
import pytest

import tinygrad_ds as tds
from tinygrad_ds import nn, optim
from tinygrad_ds.errors import TdsError
from tinygrad_ds.train import evaluate, fit
from viz.lesion import deleted, find_blocks, format_lesion_k, lesion_k, lesion_study

W, BLOCKS = 16, 3


class Block(nn.Module):
    """A plain block: relu(f(x)), shape-keeping."""

    def __init__(self, residual: bool):
        super().__init__()
        f = nn.Sequential(nn.Linear(W, W), nn.ReLU(), nn.Linear(W, W))
        self.body = nn.Residual(f) if residual else f
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.body(x))


def _net(residual: bool):
    return nn.Sequential(nn.Linear(2, W), nn.ReLU(), *[Block(residual) for _ in range(BLOCKS)],
                         nn.Linear(W, 3))


def _blobs(n: int, seed: int):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    centres = np.array([[0.0, 2.0], [2.0, -1.0], [-2.0, -1.0]])
    x = centres[y] + 0.5 * rng.standard_normal((n, 2))
    return [(tds.Tensor(x[i:i + 50]), tds.Tensor(y[i:i + 50])) for i in range(0, n, 50)]


@pytest.fixture(scope="module")
def trained():
    train, val = _blobs(600, 0), _blobs(200, 1)
    out = {}
    for residual in (True, False):
        tds.manual_seed(0)
        m = _net(residual)
        fit(m, train, optimizer=optim.SGD(m.parameters(), lr=0.05, momentum=0.9), epochs=4,
            quiet=True)
        out[residual] = m
    return out, val


def test_one_row_per_residual_block(trained):
    models, val = trained
    m = models[True]
    base = evaluate(m, val)["acc"]
    assert base > 0.9
    r = lesion_study(m, val)
    assert r.kind == "residual" and len(r.rows) == BLOCKS
    assert [row.block for row in r.rows] == [f"{k}.body" for k in range(2, 2 + BLOCKS)]
    assert r.baseline_acc == pytest.approx(base)
    for row in r.rows:
        assert row.delta == pytest.approx(row.acc - base)
    assert evaluate(m, val)["acc"] == pytest.approx(base)  # the blocks are back afterwards
    assert "intact" in str(r) and "deleted block" in str(r)


def test_plain_network_blocks_are_found_by_shape(trained):
    models, val = trained
    kind, blocks, _ = find_blocks(models[False], (1, 2))
    assert kind == "plain" and [b for b, _ in blocks] == ["2", "3", "4"]
    r = lesion_study(models[False], val, input_shape=(1, 2))
    assert len(r.rows) == BLOCKS
    with pytest.raises(TdsError, match="input_shape"):
        find_blocks(models[False])


def test_deleting_a_residual_block_leaves_the_shortcut():
    m = nn.Residual(nn.Linear(3, 3))
    x = tds.randn(2, 3)
    with deleted([m]):
        np.testing.assert_array_equal(m(x).numpy(), x.numpy())
    assert not np.allclose(m(x).numpy(), x.numpy())


def test_lesion_k(trained):
    models, val = trained
    rows = lesion_k(models[True], val, ks=(0, 1, 3), samples=2)
    assert [r.k for r in rows] == [0, 1, 3]
    assert rows[0].min_acc == rows[0].max_acc
    assert "blocks deleted" in format_lesion_k(rows)
    with pytest.raises(TdsError):
        lesion_k(models[True], val, ks=(4,))
