"""Pooling against float64 numpy loop references; gradients by gradcheck."""
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import tinygrad_ds as tds
import tinygrad_ds.functional as F
from tinygrad_ds.errors import ShapeError

SETTINGS = settings(max_examples=25, deadline=None)


def windows(x, k, s, p, fill):
    """Yield (i, j, window) over the padded input: window is (N, C, kh, kw)."""
    xp = np.pad(x, ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])), constant_values=fill)
    oh = (x.shape[2] + 2 * p[0] - k[0]) // s[0] + 1
    ow = (x.shape[3] + 2 * p[1] - k[1]) // s[1] + 1
    for i in range(oh):
        for j in range(ow):
            yield i, j, xp[:, :, i * s[0]:i * s[0] + k[0], j * s[1]:j * s[1] + k[1]], (oh, ow)


def ref_pool(x, k, s, p, kind):
    out = None
    for i, j, win, (oh, ow) in windows(x, k, s, p, -np.inf if kind == "max" else 0.0):
        if out is None:
            out = np.zeros(x.shape[:2] + (oh, ow))
        out[:, :, i, j] = win.max(axis=(2, 3)) if kind == "max" else win.mean(axis=(2, 3))
    return out


def ref_adaptive(x, oh, ow):
    h, w = x.shape[2:]
    out = np.zeros(x.shape[:2] + (oh, ow))
    for i in range(oh):
        for j in range(ow):
            h0, h1 = (i * h) // oh, -((-(i + 1) * h) // oh)
            w0, w1 = (j * w) // ow, -((-(j + 1) * w) // ow)
            out[:, :, i, j] = x[:, :, h0:h1, w0:w1].mean(axis=(2, 3))
    return out


def t64(a, grad=False):
    return tds.Tensor(a, dtype="float64", requires_grad=grad)


@st.composite
def pool_case(draw):
    k = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = draw(st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    pad = (draw(st.integers(0, k[0] // 2)), draw(st.integers(0, k[1] // 2)))
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 7)),
             draw(st.integers(1, 7)))
    return shape, k, stride, pad


@SETTINGS
@given(pool_case(), st.sampled_from(["max", "avg"]), st.integers(0, 2**31))
def test_pool_matches_reference(case, kind, seed):
    shape, k, stride, pad = case
    assume(k[0] <= shape[2] + 2 * pad[0] and k[1] <= shape[3] + 2 * pad[1])
    x = np.random.default_rng(seed).standard_normal(shape)
    fn = F.max_pool2d if kind == "max" else F.avg_pool2d
    y = fn(t64(x), k, stride, pad)
    np.testing.assert_allclose(y.numpy(), ref_pool(x, k, stride or k, pad, kind), atol=1e-12)


def pooled_size(size, k, s, p, ceil_mode):
    """PyTorch's output length: with ceil_mode, rounded up, but the last window must start
    inside the input or its left padding."""
    if not ceil_mode:
        return (size + 2 * p - k) // s + 1
    out = int(np.ceil((size + 2 * p - k) / s)) + 1
    return out - 1 if (out - 1) * s >= size + p else out


def ref_pool_modes(x, k, s, p, kind, ceil_mode, count_include_pad):
    """Pooling by loops, window by window, with PyTorch's ceil_mode and count_include_pad: an
    average divides by the window clipped to the padded input, or to x itself."""
    h, w = x.shape[2:]
    oh, ow = pooled_size(h, k[0], s[0], p[0], ceil_mode), pooled_size(w, k[1], s[1], p[1], ceil_mode)
    out = np.zeros(x.shape[:2] + (oh, ow))
    for i in range(oh):
        for j in range(ow):
            h0, w0 = i * s[0] - p[0], j * s[1] - p[1]
            win = x[:, :, max(h0, 0):min(h0 + k[0], h), max(w0, 0):min(w0 + k[1], w)]
            if kind == "max":
                out[:, :, i, j] = win.max(axis=(2, 3))
                continue
            if count_include_pad:
                size = (min(h0 + k[0], h + p[0]) - h0) * (min(w0 + k[1], w + p[1]) - w0)
            else:
                size = win.shape[2] * win.shape[3]
            out[:, :, i, j] = win.sum(axis=(2, 3)) / size
    return out


@SETTINGS
@given(pool_case(), st.sampled_from(["max", "avg"]), st.booleans(), st.booleans(),
       st.integers(0, 2**31))
def test_pool_ceil_mode_and_count_include_pad(case, kind, ceil_mode, count_pad, seed):
    shape, k, stride, pad = case
    assume(k[0] <= shape[2] + 2 * pad[0] and k[1] <= shape[3] + 2 * pad[1])
    x = np.random.default_rng(seed).standard_normal(shape)
    if kind == "max":
        y = F.max_pool2d(t64(x), k, stride, pad, ceil_mode=ceil_mode)
    else:
        y = F.avg_pool2d(t64(x), k, stride, pad, ceil_mode=ceil_mode,
                         count_include_pad=count_pad)
    want = ref_pool_modes(x, k, stride or k, pad, kind, ceil_mode, count_pad)
    assert y.shape == want.shape
    np.testing.assert_allclose(y.numpy(), want, atol=1e-12)


def test_ceil_mode_keeps_the_last_partial_window():
    """A 5x5 input pooled 2x2: 2x2 outputs, 3x3 with ceil_mode; the extra window's average
    divides by the values it holds (no padding to count)."""
    x = np.arange(25.0).reshape(1, 1, 5, 5)
    assert F.max_pool2d(t64(x), 2).shape == (1, 1, 2, 2)
    y = F.max_pool2d(t64(x), 2, ceil_mode=True)
    np.testing.assert_array_equal(y.numpy()[0, 0], [[6, 8, 9], [16, 18, 19], [21, 23, 24]])
    a = F.avg_pool2d(t64(x), 2, ceil_mode=True).numpy()[0, 0]
    assert a[2, 2] == 24.0 and a[0, 2] == (4 + 9) / 2
    m = tds.nn.MaxPool2d(3, 2, 1, ceil_mode=True)
    assert m(t64(np.zeros((1, 1, 6, 6)))).shape == (1, 1, 4, 4) and "ceil_mode=True" in repr(m)
    a = tds.nn.AvgPool2d(3, 1, 1, count_include_pad=False)
    np.testing.assert_allclose(a(t64(np.ones((1, 1, 4, 4)))).numpy(), 1.0)


@SETTINGS
@given(st.integers(1, 2), st.integers(1, 9), st.integers(1, 9), st.integers(1, 5),
       st.integers(1, 5), st.integers(0, 2**31))
def test_adaptive_avg_pool_matches_reference(n, h, w, oh, ow, seed):
    x = np.random.default_rng(seed).standard_normal((n, 2, h, w))
    y = F.adaptive_avg_pool2d(t64(x), (oh, ow))
    np.testing.assert_allclose(y.numpy(), ref_adaptive(x, oh, ow), atol=1e-12)


def test_global_average_pool_and_none_size():
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 4))
    np.testing.assert_allclose(F.adaptive_avg_pool2d(t64(x), 1).numpy(),
                               x.mean(axis=(2, 3), keepdims=True), atol=1e-12)
    assert F.adaptive_avg_pool2d(t64(x), (None, 2)).shape == (2, 3, 5, 2)


@pytest.mark.parametrize("fn", [
    lambda a: F.max_pool2d(a, 2),
    lambda a: F.max_pool2d(a, 3, 2, 1),
    lambda a: F.avg_pool2d(a, (3, 2), (1, 2), (1, 1)),
    lambda a: F.avg_pool2d(a, 3, 2, 1, ceil_mode=True, count_include_pad=False),
    lambda a: F.max_pool2d(a, 2, ceil_mode=True),
    lambda a: F.adaptive_avg_pool2d(a, (3, 2)),
    lambda a: F.adaptive_avg_pool2d(a, 1),
])
def test_pool_gradcheck(fn):
    x = t64(np.random.default_rng(1).standard_normal((2, 2, 5, 4)), True)
    tds.gradcheck(fn, x)


@pytest.mark.parametrize("pool", [
    lambda a: F.max_pool2d(a, 2),
    lambda a: F.max_pool2d(a, 3, 2, 1, ceil_mode=True),
    lambda a: F.avg_pool2d(a, 3, 2, 1, ceil_mode=True, count_include_pad=False),
])
def test_pool_second_derivatives(pool):
    """d/dx of <v, d sum(pool(x)^3)/dx>, through create_graph, matches finite differences: the
    backward ops (max pooling's scatter and its gather) are differentiable in turn."""
    rng = np.random.default_rng(8)
    v = t64(rng.standard_normal((2, 2, 5, 6)))

    def first(a):
        with tds.enable_grad():
            (g,) = tds.autograd.grad((pool(a) ** 3.0).sum(), a, create_graph=True)
        return (g * v).sum()

    tds.gradcheck(first, t64(rng.standard_normal((2, 2, 5, 6)), True))


def test_max_pool_gradient_goes_to_argmax_and_float32():
    x = tds.Tensor([[[[1.0, 5.0], [3.0, 2.0]]]], requires_grad=True)
    y = F.max_pool2d(x, 2)
    y.sum().backward()
    assert y.dtype == np.float32 and y.item() == 5.0
    np.testing.assert_array_equal(x.grad.numpy(), [[[[0, 1], [0, 0]]]])


def test_unbatched_pooling():
    assert F.max_pool2d(tds.zeros(3, 4, 4), 2).shape == (3, 2, 2)
    assert F.adaptive_avg_pool2d(tds.zeros(3, 4, 4), 1).shape == (3, 1, 1)


def test_pool_bad_input(monkeypatch):
    import tinygrad_ds.ops.pool as pool_ops

    monkeypatch.setattr(pool_ops, "kernels_for", lambda _: pytest.fail("a kernel was called"))
    with pytest.raises(ShapeError, match=r"max_pool2d: kernel_size \(5, 5\) is larger than the "
                                         r"padded input 4x4 \(input \(1, 1, 4, 4\)"):
        F.max_pool2d(tds.zeros(1, 1, 4, 4), 5)
    with pytest.raises(ValueError, match="at most half the kernel size"):
        F.avg_pool2d(tds.zeros(1, 1, 4, 4), 2, padding=2)
    with pytest.raises(ShapeError, match=r"avg_pool2d: input must be 4-D"):
        F.avg_pool2d(tds.zeros(4, 4), 2)
    with pytest.raises(ValueError, match="output_size"):
        F.adaptive_avg_pool2d(tds.zeros(1, 1, 4, 4), 0)


def test_max_pool_2x2_fast_path_ties_and_infinities():
    """2x2 windows with stride 2 take their own loop; it keeps the first maximum of a tie and
    handles -inf like the general loop (a 2x2 kernel with stride (2, 1) takes that one)."""
    rng = np.random.default_rng(3)
    x = rng.integers(0, 3, (2, 3, 6, 8)).astype(np.float64)  # many ties
    x[0, 0, :2, :2] = -np.inf
    xt = t64(x, True)
    y = F.max_pool2d(xt, 2)
    np.testing.assert_array_equal(y.numpy(), ref_pool(x, (2, 2), (2, 2), (0, 0), "max"))
    y.backward(t64(np.ones(y.shape)))
    general = t64(x, True)
    F.max_pool2d(general, 2, (2, 1))[:, :, :, ::2].sum().backward()
    np.testing.assert_array_equal(xt.grad.numpy(), general.grad.numpy())
