"""Elementwise ops and reductions: forward against a float64 numpy reference, backward through
tds.gradcheck (central differences in float64), over hypothesis-drawn shapes with broadcasting
and size-1 axes."""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, mutually_broadcastable_shapes

import tinygrad_ds as tds

SEEDS = st.integers(0, 2**16)
PAIRS = mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, min_side=1, max_side=3)
SHAPES = array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4)
_erf = np.vectorize(math.erf)


def data(seed: int, shape, away: float = 0.0, positive: bool = False) -> np.ndarray:
    """Standard normal float64 values; `away` keeps them that far from 0 (kinks), `positive`
    makes them > 0 (log, sqrt, pow's base)."""
    x = np.random.default_rng(seed).standard_normal(shape)
    if positive:
        return np.abs(x) + 0.5
    if away:
        x = np.where(x >= 0, 1.0, -1.0) * (away + np.abs(x))
    return x


def check_forward(fn, ref, *arrays, rtol=1e-5, atol=1e-6):
    """fn on float32 and float64 Tensors against ref on the same values in float64."""
    for dtype, tol in (("float64", (1e-12, 1e-12)), ("float32", (rtol, atol))):
        ts = [tds.Tensor(a, dtype=dtype) for a in arrays]
        out = fn(*ts)
        expected = ref(*[t.data.astype(np.float64) for t in ts])
        assert out.dtype == np.dtype(dtype)
        assert out.shape == np.shape(expected)
        np.testing.assert_allclose(out.data, expected, rtol=tol[0], atol=tol[1])


def check_grad(fn, *arrays, atol=1e-5, rtol=1e-3):
    ts = [tds.Tensor(a, dtype="float64", requires_grad=True) for a in arrays]
    assert tds.gradcheck(fn, *ts, atol=atol, rtol=rtol)


# ---- binary arithmetic ----------------------------------------------------------------------
BINARY = {
    "add": (lambda a, b: a + b, np.add, {}),
    "sub": (lambda a, b: a - b, np.subtract, {}),
    "mul": (lambda a, b: a * b, np.multiply, {}),
    "div": (lambda a, b: a / b, np.divide, {"b_away": 0.5}),
    "pow": (lambda a, b: a ** b, np.power, {"a_positive": True}),
    "maximum": (lambda a, b: a.maximum(b), np.maximum, {}),
    "minimum": (lambda a, b: a.minimum(b), np.minimum, {}),
}


@pytest.mark.parametrize("name", list(BINARY))
@given(shapes=PAIRS, seed=SEEDS)
def test_binary(name, shapes, seed):
    fn, ref, opts = BINARY[name]
    sa, sb = shapes.input_shapes
    a = data(seed, sa, positive=opts.get("a_positive", False))
    b = data(seed + 1, sb, away=opts.get("b_away", 0.0))
    check_forward(fn, ref, a, b)
    check_grad(fn, a, b)


@pytest.mark.parametrize("name", ["add", "sub", "mul", "div", "pow"])
def test_binary_with_python_scalars_keeps_dtype(name):
    fn, ref, _ = BINARY[name]
    x = tds.Tensor([0.5, 1.5, 2.0])
    for out, expected in ((fn(x, 2.0), ref(x.data.astype(np.float64), 2.0)),
                          (fn(3, x), ref(3.0, x.data.astype(np.float64)))):
        assert out.dtype == tds.float32
        np.testing.assert_allclose(out.data, expected, rtol=1e-6)


def test_reflected_ops_with_numpy_operands():
    x = tds.Tensor([1.0, 2.0])
    out = np.array([3.0, 4.0]) - x
    assert isinstance(out, tds.Tensor)
    np.testing.assert_allclose(out.data, [2.0, 2.0])
    assert isinstance(np.float32(2) * x, tds.Tensor)


def test_maximum_minimum_split_ties_evenly():
    a = tds.Tensor([1.0, 2.0, 3.0], requires_grad=True)
    b = tds.Tensor([1.0, 0.0, 5.0], requires_grad=True)
    a.maximum(b).sum().backward()
    np.testing.assert_allclose(a.grad.data, [0.5, 1.0, 0.0])
    np.testing.assert_allclose(b.grad.data, [0.5, 0.0, 1.0])
    a.grad = b.grad = None
    a.minimum(b).sum().backward()
    np.testing.assert_allclose(a.grad.data, [0.5, 0.0, 1.0])


def test_clip_and_square():
    x = data(3, (4, 3))
    check_forward(lambda t: t.clip(-0.5, 0.5), lambda a: np.clip(a, -0.5, 0.5), x)
    check_forward(lambda t: t.square(), np.square, x)
    check_grad(lambda t: t.clip(-0.5, 0.5) + t.square(), data(3, (4, 3), away=0.1) * 0.3 + 0.6)


# ---- unary ----------------------------------------------------------------------------------
def _gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


UNARY = {
    "neg": (lambda t: -t, np.negative, {}),
    "exp": (lambda t: t.exp(), np.exp, {}),
    "log": (lambda t: t.log(), np.log, {"positive": True}),
    "sqrt": (lambda t: t.sqrt(), np.sqrt, {"positive": True}),
    "abs": (lambda t: t.abs(), np.abs, {"away": 0.1}),
    "relu": (lambda t: t.relu(), lambda x: np.maximum(x, 0), {"away": 0.1}),
    "leaky_relu": (lambda t: t.leaky_relu(0.2), lambda x: np.where(x > 0, x, 0.2 * x),
                   {"away": 0.1}),
    "sigmoid": (lambda t: t.sigmoid(), lambda x: 1 / (1 + np.exp(-x)), {}),
    "tanh": (lambda t: t.tanh(), np.tanh, {}),
    "gelu": (lambda t: t.gelu(), lambda x: 0.5 * x * (1 + _erf(x / math.sqrt(2))), {}),
    "gelu_tanh": (lambda t: t.gelu(approximate="tanh"), _gelu_tanh, {}),
}


@pytest.mark.parametrize("name", list(UNARY))
@given(shape=SHAPES, seed=SEEDS)
def test_unary(name, shape, seed):
    fn, ref, opts = UNARY[name]
    x = data(seed, shape, **opts) * 2
    check_forward(fn, ref, x)
    check_grad(fn, x)


def test_activations_at_extremes_stay_finite():
    x = tds.Tensor([-1000.0, -50.0, 0.0, 50.0, 1000.0])
    np.testing.assert_allclose(x.sigmoid().data, [0, 1.9287e-22, 0.5, 1, 1], rtol=1e-4)
    assert np.isfinite(x.tanh().data).all() and np.isfinite(x.gelu().data).all()
    assert x.leaky_relu().data[0] == pytest.approx(-10.0)


def test_kinks_take_pytorch_subgradients():
    x = tds.Tensor([0.0, 0.0], requires_grad=True)
    (x.abs() + x.relu()).sum().backward()
    np.testing.assert_allclose(x.grad.data, [0.0, 0.0])


# ---- comparisons and where ------------------------------------------------------------------
COMPARE = {
    "lt": (lambda a, b: a < b, np.less), "le": (lambda a, b: a <= b, np.less_equal),
    "gt": (lambda a, b: a > b, np.greater), "ge": (lambda a, b: a >= b, np.greater_equal),
    "eq": (lambda a, b: a == b, np.equal), "ne": (lambda a, b: a != b, np.not_equal),
}


@pytest.mark.parametrize("name", list(COMPARE))
@given(shapes=PAIRS, seed=SEEDS)
def test_comparisons(name, shapes, seed):
    fn, ref = COMPARE[name]
    sa, sb = shapes.input_shapes
    # rounded values so that equal elements actually occur
    a, b = np.round(data(seed, sa)), np.round(data(seed + 1, sb))
    ta = tds.Tensor(a, requires_grad=True)
    out = fn(ta, tds.Tensor(b))
    assert out.dtype == tds.bool_ and not out.requires_grad
    np.testing.assert_array_equal(out.data, ref(a, b))
    np.testing.assert_array_equal(fn(ta, 0.0).data, ref(a, 0.0))


@given(shapes=mutually_broadcastable_shapes(num_shapes=3, max_dims=3, max_side=3), seed=SEEDS)
def test_where(shapes, seed):
    sc, sa, sb = shapes.input_shapes
    cond = data(seed, sc) > 0
    a, b = data(seed + 1, sa), data(seed + 2, sb)
    check_forward(lambda x, y: tds.where(tds.Tensor(cond), x, y),
                  lambda x, y: np.where(cond, x, y), a, b)
    check_grad(lambda x, y: tds.where(tds.Tensor(cond), x, y), a, b)


def test_where_sends_no_gradient_through_the_mask():
    x = tds.Tensor([-1.0, 2.0, -3.0], requires_grad=True)
    out = tds.where(x > 0, x, x * 0.0)
    out.sum().backward()
    np.testing.assert_allclose(x.grad.data, [0.0, 1.0, 0.0])
    assert not (x > 0).requires_grad


# ---- reductions -----------------------------------------------------------------------------
@st.composite
def shape_and_axes(draw, min_side=1):
    shape = draw(array_shapes(min_dims=0, max_dims=4, min_side=min_side, max_side=4))
    nd = len(shape)
    kind = draw(st.sampled_from(["none", "int", "tuple"]))
    if kind == "none" or nd == 0:
        axis = None
    elif kind == "int":
        axis = draw(st.integers(-nd, nd - 1))
    else:
        picked = draw(st.lists(st.integers(0, nd - 1), unique=True, max_size=nd))
        axis = tuple(a - nd if draw(st.booleans()) else a for a in picked)
    return shape, axis, draw(st.booleans())


def _np_axis(axis):
    return axis if axis is None or isinstance(axis, int) else tuple(axis)


REDUCE = {
    "sum": (lambda t, ax, kd: t.sum(ax, keepdims=kd), lambda x, ax, kd: np.sum(x, ax, keepdims=kd)),
    "mean": (lambda t, ax, kd: t.mean(ax, keepdims=kd),
             lambda x, ax, kd: np.mean(x, ax, keepdims=kd)),
    "max": (lambda t, ax, kd: t.max(ax, keepdims=kd), lambda x, ax, kd: np.max(x, ax, keepdims=kd)),
    "min": (lambda t, ax, kd: t.min(ax, keepdims=kd), lambda x, ax, kd: np.min(x, ax, keepdims=kd)),
    "var": (lambda t, ax, kd: t.var(ax, keepdims=kd),
            lambda x, ax, kd: np.var(x, ax, keepdims=kd, ddof=1)),
    "std": (lambda t, ax, kd: t.std(ax, keepdims=kd),
            lambda x, ax, kd: np.std(x, ax, keepdims=kd, ddof=1)),
    "var_biased": (lambda t, ax, kd: t.var(ax, keepdims=kd, correction=0),
                   lambda x, ax, kd: np.var(x, ax, keepdims=kd)),
    "logsumexp": (lambda t, ax, kd: t.logsumexp(ax, keepdims=kd),
                  lambda x, ax, kd: np.log(np.sum(np.exp(x), ax, keepdims=kd))),
}


@pytest.mark.parametrize("name", list(REDUCE))
@given(sak=shape_and_axes(), seed=SEEDS)
def test_reductions(name, sak, seed):
    shape, axis, keepdims = sak
    fn, ref = REDUCE[name]
    x = data(seed, shape)
    n = int(np.prod([shape[a] for a in range(len(shape))] if axis is None else
                    [shape[a] for a in ((axis,) if isinstance(axis, int) else axis)]))
    if name in ("var", "std") and n <= 1:
        out = fn(tds.Tensor(x), axis, keepdims)  # n - 1 = 0: nan, as numpy and PyTorch give
        assert np.isnan(out.data).all()
        return
    check_forward(lambda t: fn(t, axis, keepdims), lambda a: ref(a, _np_axis(axis), keepdims), x,
                  rtol=1e-4, atol=1e-5)
    out = fn(tds.Tensor(x), axis, keepdims)
    assert isinstance(out.data, np.ndarray)  # a 0-d array, never a numpy scalar
    check_grad(lambda t: fn(t, axis, keepdims), x)


def test_max_splits_the_gradient_between_ties():
    x = tds.Tensor([[1.0, 3.0, 3.0], [2.0, 0.0, 1.0]], requires_grad=True)
    x.max(axis=1).sum().backward()
    np.testing.assert_allclose(x.grad.data, [[0, 0.5, 0.5], [1, 0, 0]])


def test_argmax_argmin():
    x = np.array([[1.0, 5.0, 2.0], [7.0, 0.0, 3.0]])
    t = tds.Tensor(x)
    np.testing.assert_array_equal(t.argmax(1).data, [1, 0])
    np.testing.assert_array_equal(t.argmin(0).data, [0, 1, 0])
    assert t.argmax().item() == 3
    assert t.argmax(1, keepdims=True).shape == (2, 1)


def test_sum_of_integers_and_booleans():
    assert tds.Tensor([1, 2, 3]).sum().item() == 6
    assert (tds.Tensor([1.0, -2.0, 3.0]) > 0).sum().item() == 2
