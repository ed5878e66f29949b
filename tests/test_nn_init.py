"""Initialisation helpers and each layer's default initialisation, as PyTorch's."""
import math

import numpy as np
import pytest

import tinygrad_ds as tds
from tinygrad_ds import nn
from tinygrad_ds.errors import TdsError
from tinygrad_ds.nn import init


def test_calculate_gain():
    assert init.calculate_gain("relu") == pytest.approx(math.sqrt(2))
    assert init.calculate_gain("tanh") == pytest.approx(5 / 3)
    assert init.calculate_gain("linear") == init.calculate_gain("sigmoid") == 1.0
    assert init.calculate_gain("leaky_relu") == pytest.approx(math.sqrt(2 / (1 + 0.01 ** 2)))
    assert init.calculate_gain("leaky_relu", math.sqrt(5)) == pytest.approx(math.sqrt(1 / 3))
    with pytest.raises(TdsError):
        init.calculate_gain("swishy")


def test_fans():
    assert init.calculate_fan_in_and_fan_out(tds.zeros(8, 3, 5, 5)) == (75, 200)
    assert init.calculate_fan_in_and_fan_out(tds.zeros(4, 6)) == (6, 4)
    with pytest.raises(TdsError):
        init.calculate_fan_in_and_fan_out(tds.zeros(3))


def _std(t):
    return float(np.std(t.data))


def test_kaiming_and_xavier_statistics():
    tds.manual_seed(0)
    w = tds.zeros(400, 300)
    assert _std(init.kaiming_normal_(w, nonlinearity="relu")) == pytest.approx(
        math.sqrt(2 / 300), rel=0.02)
    assert _std(init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu")) == pytest.approx(
        math.sqrt(2 / 400), rel=0.02)
    bound = math.sqrt(6 / 300)  # gain sqrt(2) * sqrt(3 / fan_in)
    init.kaiming_uniform_(w, nonlinearity="relu")
    assert np.abs(w.data).max() <= bound and np.abs(w.data).max() > 0.99 * bound
    init.xavier_uniform_(w)
    xb = math.sqrt(6 / 700)
    assert np.abs(w.data).max() <= xb and np.abs(w.data).max() > 0.99 * xb
    assert _std(init.xavier_normal_(w, gain=2.0)) == pytest.approx(2 * math.sqrt(2 / 700),
                                                                   rel=0.02)
    assert w.dtype == np.float32


def test_constant_fills_keep_dtype():
    t = tds.zeros(3, dtype="float64")
    assert init.ones_(t) is t and t.dtype == np.float64 and np.all(t.data == 1)
    assert np.all(init.zeros_(t).data == 0)
    assert np.all(init.constant_(t, 2.5).data == 2.5)


@pytest.mark.parametrize("make, fan_in", [
    (lambda: nn.Linear(200, 300), 200),
    (lambda: nn.Conv2d(16, 64, 3), 16 * 9),
    (lambda: nn.Conv2d(32, 64, 3, groups=4), 8 * 9),
    # PyTorch reads fan_in from dim 1 of (in, out/groups, kh, kw): out/groups * kh * kw
    (lambda: nn.ConvTranspose2d(64, 16, 3), 16 * 9),
])
def test_default_init_as_pytorch(make, fan_in):
    tds.manual_seed(0)
    layer = make()
    bound = 1 / math.sqrt(fan_in)  # kaiming_uniform with a = sqrt(5)
    w, b = layer.weight.data, layer.bias.data
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.98 * bound
    assert np.std(w) == pytest.approx(bound / math.sqrt(3), rel=0.03)
    assert np.abs(b).max() <= bound
    assert w.dtype == np.float32


def test_norm_defaults():
    bn = nn.BatchNorm2d(5)
    np.testing.assert_array_equal(bn.weight.data, 1)
    np.testing.assert_array_equal(bn.bias.data, 0)
    np.testing.assert_array_equal(bn.running_mean.data, 0)
    np.testing.assert_array_equal(bn.running_var.data, 1)
    assert bn.num_batches_tracked.dtype == np.int64


def test_init_is_reproducible_under_manual_seed():
    tds.manual_seed(42)
    a = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Linear(4, 2)).state_dict()
    tds.manual_seed(42)
    b = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Linear(4, 2)).state_dict()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    c = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Linear(4, 2)).state_dict()
    assert not np.array_equal(a["0.weight"], c["0.weight"])


def test_float64_layers():
    lin = nn.Linear(3, 2, dtype="float64")
    assert lin.weight.dtype == np.float64 and lin.bias.dtype == np.float64
    assert nn.BatchNorm2d(2, dtype="float64").running_var.dtype == np.float64
