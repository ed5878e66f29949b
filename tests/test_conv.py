"""conv2d and conv_transpose2d against float64 numpy loop references, gradients by gradcheck."""
import os

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import tinygrad_ds as tds
import tinygrad_ds.functional as F
from tinygrad_ds.errors import DTypeError, ShapeError

SETTINGS = settings(max_examples=25, deadline=None)


def ref_conv2d(x, w, b, stride, padding, dilation, groups):
    """Straightforward loops: every output position is a dot product with its input patch."""
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow = (wd + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    y = np.zeros((n, o, oh, ow))
    og = o // groups
    for oc in range(o):
        g = oc // og
        for i in range(oh):
            for j in range(ow):
                patch = xp[:, g * cg:(g + 1) * cg, i * sh:i * sh + dh * (kh - 1) + 1:dh,
                           j * sw:j * sw + dw * (kw - 1) + 1:dw]
                y[:, oc, i, j] = (patch * w[oc]).sum(axis=(1, 2, 3))
        if b is not None:
            y[:, oc] += b[oc]
    return y


def ref_conv_transpose2d(x, w, b, stride, padding, output_padding, groups, dilation):
    """Scatter loops: each input value adds weight * value into its output window."""
    (sh, sw), (ph, pw), (dh, dw), (oph, opw) = stride, padding, dilation, output_padding
    n, ci, h, wd = x.shape
    _, cog, kh, kw = w.shape
    oh = (h - 1) * sh - 2 * ph + dh * (kh - 1) + oph + 1
    ow = (wd - 1) * sw - 2 * pw + dw * (kw - 1) + opw + 1
    full = np.zeros((n, cog * groups, oh + 2 * ph + sh + dh * kh, ow + 2 * pw + sw + dw * kw))
    cig = ci // groups
    for c in range(ci):
        g = c // cig
        for i in range(h):
            for j in range(wd):
                for ki in range(kh):
                    for kj in range(kw):
                        full[:, g * cog:(g + 1) * cog, i * sh + ki * dh, j * sw + kj * dw] += \
                            x[:, c, i, j][:, None] * w[c, :, ki, kj][None, :]
    y = full[:, :, ph:ph + oh, pw:pw + ow]
    return y + (b[None, :, None, None] if b is not None else 0)


def t64(a, grad=False):
    return tds.Tensor(a, dtype="float64", requires_grad=grad)


@st.composite
def conv_case(draw):
    groups = draw(st.integers(1, 3))
    c = groups * draw(st.integers(1, 2))
    o = groups * draw(st.integers(1, 2))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    n, h, w = draw(st.integers(1, 2)), draw(st.integers(1, 7)), draw(st.integers(1, 7))
    bias = draw(st.booleans())
    return n, c, h, w, o, kh, kw, stride, padding, dilation, groups, bias


@SETTINGS
@given(conv_case(), st.integers(0, 2**31))
def test_conv2d_matches_reference(case, seed):
    n, c, h, w, o, kh, kw, stride, padding, dilation, groups, bias = case
    assume(dilation[0] * (kh - 1) < h + 2 * padding[0])
    assume(dilation[1] * (kw - 1) < w + 2 * padding[1])
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w))
    wt = rng.standard_normal((o, c // groups, kh, kw))
    b = rng.standard_normal(o) if bias else None
    y = F.conv2d(t64(x), t64(wt), None if b is None else t64(b), stride, padding, dilation, groups)
    np.testing.assert_allclose(y.numpy(), ref_conv2d(x, wt, b, stride, padding, dilation, groups),
                               rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("stride,padding,dilation", [(1, 1, 1), (2, 0, 1), ((1, 2), (2, 1), 2)])
def test_depthwise_matches_reference(stride, padding, dilation):
    rng = np.random.default_rng(1)
    x, w, b = rng.standard_normal((2, 3, 7, 6)), rng.standard_normal((3, 1, 3, 3)), \
        rng.standard_normal(3)
    y = F.conv2d(t64(x), t64(w), t64(b), stride, padding, dilation, groups=3)
    expect = ref_conv2d(x, w, b, *(F_pair(v) for v in (stride, padding, dilation)), 3)
    np.testing.assert_allclose(y.numpy(), expect, rtol=1e-10, atol=1e-10)


def ref_depthwise_grads(x, w, gy, stride, padding, dilation):
    """Input and weight gradients of a depthwise conv2d, by loops over every output and tap."""
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    gx, gw = np.zeros_like(x), np.zeros_like(w)
    h, wd = x.shape[2:]
    for b, ci, i, j in np.ndindex(gy.shape):
        for ki, kj in np.ndindex(w.shape[2:]):
            xi, xj = i * sh - ph + ki * dh, j * sw - pw + kj * dw
            if 0 <= xi < h and 0 <= xj < wd:
                gx[b, ci, xi, xj] += gy[b, ci, i, j] * w[ci, 0, ki, kj]
                gw[ci, 0, ki, kj] += gy[b, ci, i, j] * x[b, ci, xi, xj]
    return gx, gw


@pytest.mark.parametrize("n,c,h,wd,k,stride,padding,dilation", [
    (2, 3, 8, 8, 3, 1, 1, 1),          # the MobileNet block: flat-grid loops
    (1, 2, 5, 7, 3, 1, 0, 1),          # 'valid', odd sizes, batch 1
    (2, 2, 6, 5, 3, 1, (2, 1), 2),     # dilated
    (1, 3, 4, 4, 3, 1, 3, 1),          # padding wider than the kernel's reach: loops by rows
    (2, 2, 7, 6, 5, 1, 2, 1),          # 5x5
    (2, 3, 7, 8, 3, 2, 1, 1),          # stride 2: loops by rows
])
def test_depthwise_gradients_match_reference(n, c, h, wd, k, stride, padding, dilation):
    rng = np.random.default_rng(4)
    x, w = rng.standard_normal((n, c, h, wd)), rng.standard_normal((c, 1, k, k))
    xt, wt = t64(x, True), t64(w, True)
    y = F.conv2d(xt, wt, None, stride, padding, dilation, groups=c)
    gy = rng.standard_normal(y.shape)
    y.backward(t64(gy))
    gx, gw = ref_depthwise_grads(x, w, gy, *(F_pair(v) for v in (stride, padding, dilation)))
    np.testing.assert_allclose(xt.grad.numpy(), gx, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(wt.grad.numpy(), gw, rtol=1e-10, atol=1e-10)


def test_depthwise_transpose_output_padding():
    """conv_transpose2d with one channel per group, stride 1 and output_padding: the extra
    column gets only the bias (the stride-1 depthwise kernel must not read past its grid)."""
    rng = np.random.default_rng(6)
    x, w = rng.standard_normal((1, 2, 1, 1)), rng.standard_normal((2, 1, 2, 1))
    args = ((1, 1), (0, 0), (0, 1), 2, (1, 2))  # stride, padding, output_padding, groups, dilation
    y = F.conv_transpose2d(t64(x), t64(w), None, *args)
    np.testing.assert_allclose(y.numpy(), ref_conv_transpose2d(x, w, None, *args),
                               rtol=1e-10, atol=1e-10)


def F_pair(v):
    return (v, v) if isinstance(v, int) else v


@pytest.mark.parametrize("c,o,groups,k,stride,padding,dilation", [
    (2, 3, 1, 3, 1, 1, 1),      # plain, same-size
    (4, 4, 2, 2, 2, 0, 1),      # grouped, stride 2, even kernel
    (3, 3, 3, 3, 1, 2, 2),      # depthwise, dilated
    (2, 2, 1, 1, 2, 0, 1),      # 1x1 stride 2 (a ResNet projection)
])
def test_conv2d_gradcheck(c, o, groups, k, stride, padding, dilation):
    rng = np.random.default_rng(2)
    x = t64(rng.standard_normal((2, c, 5, 4)), True)
    w = t64(rng.standard_normal((o, c // groups, k, k)), True)
    b = t64(rng.standard_normal(o), True)
    tds.gradcheck(lambda a, ww, bb: F.conv2d(a, ww, bb, stride, padding, dilation, groups), x, w, b)


def test_conv2d_double_backward():
    """The backward ops are themselves differentiable (each is linear in both inputs): the
    gradient of v . d(sum y^2)/dx with respect to w matches finite differences."""
    rng = np.random.default_rng(3)
    xd, wd = rng.standard_normal((1, 2, 4, 4)), rng.standard_normal((2, 2, 3, 3))
    v = rng.standard_normal(xd.shape)

    def h(wv, create_graph):
        x, w = t64(xd, True), t64(wv, True)
        y = F.conv2d(x, w, padding=1)
        (y * y).sum().backward(retain_graph=create_graph, create_graph=create_graph)
        return (x.grad * t64(v)).sum(), w

    out, w = h(wd, True)
    w.grad = None
    out.backward()
    numeric = np.zeros_like(wd)
    for idx in np.ndindex(wd.shape):
        hi, lo = wd.copy(), wd.copy()
        hi[idx] += 1e-6
        lo[idx] -= 1e-6
        numeric[idx] = (h(hi, False)[0].item() - h(lo, False)[0].item()) / 2e-6
    np.testing.assert_allclose(w.grad.numpy(), numeric, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("k,dilation", [(2, 1), (3, 1), (4, 1), (2, 3), (3, 2)])
def test_conv2d_same_padding(k, dilation):
    rng = np.random.default_rng(4)
    x, w = rng.standard_normal((1, 2, 5, 6)), rng.standard_normal((3, 2, k, k))
    y = F.conv2d(t64(x), t64(w), padding="same", dilation=dilation)
    total = dilation * (k - 1)
    xp = np.pad(x, ((0, 0), (0, 0), (total // 2, total - total // 2),
                    (total // 2, total - total // 2)))  # PyTorch: the extra goes bottom/right
    assert y.shape == (1, 3, 5, 6)
    np.testing.assert_allclose(y.numpy(), ref_conv2d(xp, w, None, (1, 1), (0, 0),
                                                     (dilation, dilation), 1), atol=1e-10)


def test_conv2d_float32_and_unbatched():
    rng = np.random.default_rng(5)
    x, w = rng.standard_normal((3, 6, 6)), rng.standard_normal((4, 3, 3, 3))
    y = F.conv2d(tds.Tensor(x), tds.Tensor(w), padding=1)
    assert y.dtype == np.float32 and y.shape == (4, 6, 6)
    np.testing.assert_allclose(y.numpy(), ref_conv2d(x[None], w, None, (1, 1), (1, 1), (1, 1),
                                                     1)[0], rtol=1e-4, atol=1e-4)


def test_conv2d_noncontiguous_input_gets_grad():
    rng = np.random.default_rng(6)
    base = t64(rng.standard_normal((5, 5, 2, 1)), True)
    x = base.permute(3, 2, 0, 1)  # (1, 2, 5, 5), not C-contiguous
    w = t64(rng.standard_normal((1, 2, 3, 3)))
    F.conv2d(x, w).sum().backward()
    assert base.grad is not None and base.grad.shape == base.shape


@st.composite
def transpose_case(draw):
    groups = draw(st.integers(1, 2))
    ci, cog = groups * draw(st.integers(1, 2)), draw(st.integers(1, 2))
    k = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 2)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = (draw(st.integers(0, 1)), draw(st.integers(0, 1)))
    op = tuple(draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation))
    n, h, w = draw(st.integers(1, 2)), draw(st.integers(1, 5)), draw(st.integers(1, 5))
    return n, ci, h, w, cog, k, stride, padding, op, groups, dilation


@SETTINGS
@given(transpose_case(), st.booleans(), st.integers(0, 2**31))
def test_conv_transpose2d_matches_reference(case, bias, seed):
    n, ci, h, w, cog, k, stride, padding, op, groups, dilation = case
    oh = (h - 1) * stride[0] - 2 * padding[0] + dilation[0] * (k[0] - 1) + op[0] + 1
    ow = (w - 1) * stride[1] - 2 * padding[1] + dilation[1] * (k[1] - 1) + op[1] + 1
    assume(oh > 0 and ow > 0)
    rng = np.random.default_rng(seed)
    x, wt = rng.standard_normal((n, ci, h, w)), rng.standard_normal((ci, cog, *k))
    b = rng.standard_normal(cog * groups) if bias else None
    y = F.conv_transpose2d(t64(x), t64(wt), None if b is None else t64(b), stride, padding, op,
                           groups, dilation)
    expect = ref_conv_transpose2d(x, wt, b, stride, padding, op, groups, dilation)
    np.testing.assert_allclose(y.numpy(), expect, rtol=1e-10, atol=1e-10)


def test_conv_transpose2d_gradcheck():
    rng = np.random.default_rng(7)
    x = t64(rng.standard_normal((2, 4, 3, 3)), True)
    w = t64(rng.standard_normal((4, 1, 3, 2)), True)
    b = t64(rng.standard_normal(2), True)
    tds.gradcheck(lambda a, ww, bb: F.conv_transpose2d(a, ww, bb, stride=2, padding=1,
                                                       output_padding=1, groups=2), x, w, b)


# ---- bad input: clear errors, raised before any kernel runs ------------------------------------
@pytest.fixture
def no_kernels(monkeypatch):
    import tinygrad_ds.ops.conv as conv_ops

    def refuse(_):
        raise AssertionError("a kernel was called")
    monkeypatch.setattr(conv_ops, "kernels_for", refuse)


@pytest.mark.parametrize("x_shape,w_shape,kwargs,words", [
    ((1, 3, 4, 4), (2, 3, 5, 5), {}, ["conv2d", "kernel 5x5", "padded input 4x4", "(1, 3, 4, 4)"]),
    ((1, 3, 4, 4), (2, 3, 3, 3), {"dilation": 2}, ["dilated to 5x5", "padded input 4x4"]),
    ((1, 3, 4, 4), (2, 1, 3, 3), {"groups": 2}, ["divisible by groups=2", "in_channels 3"]),
    ((1, 4, 4, 4), (2, 3, 3, 3), {}, ["expects 3 input channels", "(1, 4, 4, 4)"]),
    ((1, 3, 4, 4), (2, 3, 3), {}, ["weight must be 4-D", "(2, 3, 3)"]),
    ((3, 4), (2, 3, 3, 3), {}, ["input must be 4-D", "(3, 4)"]),
])
def test_conv2d_bad_shapes(no_kernels, x_shape, w_shape, kwargs, words):
    with pytest.raises(ShapeError) as err:
        F.conv2d(tds.zeros(*x_shape), tds.zeros(*w_shape), **kwargs)
    for word in words:
        assert word in str(err.value)


def test_conv2d_bad_arguments(no_kernels):
    x, w = tds.zeros(1, 2, 5, 5), tds.zeros(2, 2, 3, 3)
    with pytest.raises(ShapeError, match=r"bias must have shape \(2,\)"):
        F.conv2d(x, w, tds.zeros(3))
    with pytest.raises(DTypeError, match="input float32, weight float64"):
        F.conv2d(x, w.double())
    with pytest.raises(ValueError, match="stride 1"):
        F.conv2d(x, w, stride=2, padding="same")
    with pytest.raises(ValueError, match="stride must be >= 1"):
        F.conv2d(x, w, stride=0)
    with pytest.raises(ValueError, match="output_padding"):
        F.conv_transpose2d(x, w, stride=2, output_padding=2)
    with pytest.raises(ShapeError, match="expects 2 input channels"):
        F.conv_transpose2d(tds.zeros(1, 3, 4, 4), w)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("c,o,groups,k,stride,padding", [
    (3, 4, 1, 3, 1, 1),     # stride 1, 'same' width: im2col/col2im copy whole shifted planes
    (4, 6, 2, 3, 2, 1),     # grouped, stride 2
    (2, 3, 1, 2, 1, 0),     # 'valid': row by row
])
def test_conv_in_batch_chunks(monkeypatch, dtype, c, o, groups, k, stride, padding):
    """The cpu kernels cut the batch into chunks of about CHUNK_ELEMENTS im2col entries and
    reuse their scratch buffers: forward and both gradients match one whole-batch chunk, with
    the weight gradient's products through BLAS or through _add_abt."""
    from tinygrad_ds.backend.cpu import conv as cpu_conv

    rng = np.random.default_rng(5)
    x = rng.standard_normal((5, c, 6, 5))
    w = rng.standard_normal((o, c // groups, k, k))
    gy = None
    results = []
    # 40 entries: one sample per chunk; ABT_MAX_OUTPUT 0: every weight gradient through BLAS
    default = cpu_conv.ABT_MAX_OUTPUT
    for chunk, abt in ((1 << 20, default), (40, default), (1 << 20, 0), (40, 0)):
        monkeypatch.setattr(cpu_conv.workspace, "CHUNK_ELEMENTS", chunk)
        monkeypatch.setattr(cpu_conv, "ABT_MAX_OUTPUT", abt)
        xt = tds.Tensor(x, dtype=dtype, requires_grad=True)
        wt = tds.Tensor(w, dtype=dtype, requires_grad=True)
        y = F.conv2d(xt, wt, None, stride, padding, 1, groups)
        if gy is None:
            gy = rng.standard_normal(y.shape)
        y.backward(tds.Tensor(gy, dtype=dtype))
        results.append((y.numpy(), xt.grad.numpy(), wt.grad.numpy()))
    tol = 1e-10 if dtype == "float64" else 1e-4
    ref = ref_conv2d(x, w, None, F_pair(stride), F_pair(padding), (1, 1), groups)
    np.testing.assert_allclose(results[1][0], ref, rtol=tol, atol=tol)
    for other in results[1:]:
        for whole, chunked in zip(results[0], other):
            np.testing.assert_allclose(chunked, whole, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("c,o,k,stride,padding,dilation", [
    (3, 4, 3, 1, 1, 1),     # 'same': the input gradient is a convolution with the flipped kernel
    (4, 3, 3, 2, 1, 1),     # stride 2: the input gradient through col2im
    (2, 3, 2, 1, 0, 1),     # 'valid', even kernel
    (3, 3, 3, 1, 2, 2),     # dilated
    (3, 2, 1, 1, 0, 1),     # 1x1
])
def test_conv_positions_as_rows(monkeypatch, dtype, c, o, k, stride, padding, dilation):
    """From ROWS_MIN_CHANNELS input channels on, the cpu kernels lay the im2col matrix out with
    one row per output position (channels last): forward and both gradients match the other
    layout and the reference, in one chunk and in one-sample chunks."""
    from tinygrad_ds.backend.cpu import conv as cpu_conv

    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, c, 7, 6))
    w = rng.standard_normal((o, c, k, k))
    gy = None
    results = []
    # ABT_MAX_OUTPUT 0: the weight gradient in the rows layout too (not by _add_abt)
    default = cpu_conv.ABT_MAX_OUTPUT
    for rows_from, chunk in ((10**9, 1 << 20), (1, 1 << 20), (1, 40)):
        monkeypatch.setattr(cpu_conv, "ROWS_MIN_CHANNELS", rows_from)
        monkeypatch.setattr(cpu_conv.workspace, "CHUNK_ELEMENTS", chunk)
        monkeypatch.setattr(cpu_conv, "ABT_MAX_OUTPUT", default if rows_from > 1 else 0)
        xt = tds.Tensor(x, dtype=dtype, requires_grad=True)
        wt = tds.Tensor(w, dtype=dtype, requires_grad=True)
        y = F.conv2d(xt, wt, None, stride, padding, dilation)
        if gy is None:
            gy = rng.standard_normal(y.shape)
        y.backward(tds.Tensor(gy, dtype=dtype))
        results.append((y.numpy(), xt.grad.numpy(), wt.grad.numpy()))
    tol = 1e-10 if dtype == "float64" else 1e-4
    ref = ref_conv2d(x, w, None, F_pair(stride), F_pair(padding), F_pair(dilation), 1)
    np.testing.assert_allclose(results[1][0], ref, rtol=tol, atol=tol)
    for other in results[1:]:
        for a, b in zip(other, results[0]):
            np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("c,o,h,wd", [
    (3, 4, 7, 6),     # more outputs than inputs: the input gradient through col2im
    (5, 2, 5, 8),     # fewer: the input gradient is the shifted products with the flipped kernel
    (4, 4, 1, 1),     # a 1x1 image: every tap but the centre reads the zero border
])
def test_conv_shift3(monkeypatch, dtype, c, o, h, wd):
    """3x3 stride-1 'same' convolutions from SHIFT3_MIN_CHANNELS input channels on run as
    three products over column-shifted copies: forward (with bias) and both gradients (the
    weight gradient as three products or as one against stacked shifts of gy) match im2col and
    the reference, in one chunk and in one-sample chunks."""
    from tinygrad_ds.backend.cpu import conv as cpu_conv

    rng = np.random.default_rng(11)
    x = rng.standard_normal((3, c, h, wd))
    w = rng.standard_normal((o, c, 3, 3))
    b = rng.standard_normal(o)
    gy = rng.standard_normal((3, o, h, wd))
    results = []
    for shift_from, chunk, stack_from in ((10**9, 1 << 20, 10**9), (1, 1 << 20, 10**9),
                                          (1, 40, 10**9), (1, 1 << 20, 1), (1, 40, 1)):
        monkeypatch.setattr(cpu_conv, "SHIFT3_MIN_CHANNELS", shift_from)
        monkeypatch.setattr(cpu_conv.workspace, "CHUNK_ELEMENTS", chunk)
        monkeypatch.setattr(cpu_conv, "STACK3_MIN_CHANNELS", stack_from)
        xt = tds.Tensor(x, dtype=dtype, requires_grad=True)
        wt = tds.Tensor(w, dtype=dtype, requires_grad=True)
        bt = tds.Tensor(b, dtype=dtype, requires_grad=True)
        y = F.conv2d(xt, wt, bt, 1, 1)
        y.backward(tds.Tensor(gy, dtype=dtype))
        results.append((y.numpy(), xt.grad.numpy(), wt.grad.numpy(), bt.grad.numpy()))
    tol = 1e-10 if dtype == "float64" else 1e-4
    ref = ref_conv2d(x, w, b, (1, 1), (1, 1), (1, 1), 1)
    np.testing.assert_allclose(results[1][0], ref, rtol=tol, atol=tol)
    for other in results[1:]:
        for a, q in zip(other, results[0]):
            np.testing.assert_allclose(a, q, rtol=tol, atol=tol)


@pytest.mark.parametrize("h,wd", [(4, 5), (1, 1), (3, 2)])
def test_shift3_cols_layout(h, wd):
    """_shift3_cols: row (c, kj) is a grid of a row of zeros, then per sample b its rows
    x[b, c, i, j+kj-1] (zero outside x) and a row of zeros (checked against a zero-padded copy,
    over a buffer full of garbage)."""
    from tinygrad_ds.backend.cpu.conv.shift3 import _shift3_cols

    rng = np.random.default_rng(5)
    n, c = 2, 3
    x = rng.standard_normal((n, c, h, wd)).astype(np.float32)
    xp = np.pad(x, ((0, 0), (0, 0), (0, 1), (1, 1)))  # each sample's rows and a row of zeros
    want = np.stack([xp[:, :, :, kj:kj + wd] for kj in range(3)], axis=2)  # (n, c, 3, h+1, wd)
    want = want.transpose(1, 2, 0, 3, 4).reshape(3 * c, n * (h + 1) * wd)
    want = np.concatenate([np.zeros((3 * c, wd), np.float32), want], axis=1)
    cols = np.full((3 * c, (n * (h + 1) + 1) * wd), np.nan, dtype=np.float32)
    np.testing.assert_array_equal(_shift3_cols(x, cols), want)


@pytest.mark.parametrize("c,rows_from", [(16, 32), (8, 4), (3, 32)])
def test_conv_chunks_on_threads_equal_serial(monkeypatch, c, rows_from):
    """With several threads the batch's chunks run on the pool (shifted copies, positions as
    rows, im2col, _add_abt): forward and both gradients are bit-identical to one thread, since
    the weight gradient's parts are summed in chunk order whatever thread computed them."""
    import threading
    import time

    from tinygrad_ds.backend import threads
    from tinygrad_ds.backend.cpu import conv as cpu_conv

    monkeypatch.setattr(cpu_conv.workspace, "CHUNK_ELEMENTS", 2000)  # several chunks
    monkeypatch.setattr(cpu_conv, "ROWS_MIN_CHANNELS", rows_from)
    rng = np.random.default_rng(7)
    x = rng.standard_normal((9, c, 6, 6)).astype(np.float32)
    w = rng.standard_normal((c, c, 3, 3)).astype(np.float32)
    gy = rng.standard_normal((9, c, 6, 6)).astype(np.float32)
    seen = set()
    run = cpu_conv.workspace.run_chunks

    def spy(body, chunks):
        def timed(b0, b1):  # (a short sleep lets the pool's threads take chunks too)
            seen.add(threading.current_thread().name)
            time.sleep(0.002)
            return body(b0, b1)

        return run(timed, chunks)

    monkeypatch.setattr(cpu_conv.workspace, "run_chunks", spy)
    for mod in (cpu_conv.shift3, cpu_conv.im2row, cpu_conv.im2col):
        monkeypatch.setattr(mod, "run_chunks", spy)
    out = {}
    monkeypatch.setitem(threads._state, "explicit", True)  # (restored after the test)
    for n in (1, 3):
        monkeypatch.setitem(threads._state, "n", n)
        out[n] = (cpu_conv.conv2d_forward(x, w, None, 1, 1, 1, 1, 1, 1, 1, 6, 6),
                  cpu_conv.conv2d_forward(x, w, None, 2, 2, 1, 1, 1, 1, 1, 3, 3),
                  cpu_conv.conv2d_backward_input(gy, w, 1, 1, 1, 1, 1, 1, 1, 6, 6),
                  cpu_conv.conv2d_backward_weight(gy, x, 1, 1, 1, 1, 1, 1, 1, 3, 3))
    assert any(name.startswith("tds-kernel") for name in seen), seen
    for a, b in zip(out[1], out[3]):
        np.testing.assert_array_equal(a, b)


def test_set_num_threads_rejects_bad_counts():
    with pytest.raises(tds.TdsError, match="whole number"):
        tds.set_num_threads(0)
    with pytest.raises(tds.TdsError, match="whole number"):
        tds.set_num_threads(1.5)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_kernel_threads_work_in_a_forked_child(monkeypatch):
    """A child forked after the pool started (multiprocessing workers) gets a pool of its own
    instead of waiting forever on the parent's threads."""
    from tinygrad_ds.backend import threads

    monkeypatch.setitem(threads._state, "explicit", True)
    monkeypatch.setitem(threads._state, "n", 2)
    assert threads.map_ordered(lambda v: v * 2, range(4)) == [0, 2, 4, 6]
    pid = os.fork()
    if pid == 0:  # the child: exit 0 only if the pool works here (killed if it hangs)
        import signal

        signal.alarm(30)
        code = 1
        try:
            code = 0 if threads.map_ordered(lambda v: v + 1, range(4)) == [1, 2, 3, 4] else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_default_threads_step_aside_on_a_busy_machine(monkeypatch):
    """With the default count the kernels run serially while the load average says other work
    keeps the cores busy; a count set explicitly is used whatever the load."""
    from tinygrad_ds.backend import threads

    monkeypatch.setitem(threads._state, "n", 2)
    monkeypatch.setitem(threads._state, "explicit", False)
    monkeypatch.setitem(threads._state, "checked", -1e9)
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (3.5, 3.0, 2.0))
    assert threads.threads_now() == 1
    monkeypatch.setitem(threads._state, "checked", -1e9)
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (1.2, 1.0, 1.0))
    assert threads.threads_now() == 2
    monkeypatch.setitem(threads._state, "explicit", True)
    monkeypatch.setitem(threads._state, "checked", -1e9)
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (9.0, 9.0, 9.0))
    assert threads.threads_now() == 2


def test_a_matrix_product_after_the_kernels_still_gets_every_blas_thread(monkeypatch):
    """The kernels set OpenBLAS to one thread while their chunks run and put the old count back:
    the process's own products (a Linear layer's) keep BLAS's threads."""
    from tinygrad_ds.backend import threads

    blas = threads._blas_threads()
    if blas is None:
        pytest.skip("numpy's BLAS is not OpenBLAS here")
    get, put = blas
    before = get()
    monkeypatch.setitem(threads._state, "explicit", True)
    monkeypatch.setitem(threads._state, "n", 2)
    try:
        put(2)
        seen = threads.map_ordered(lambda v: get(), range(4))
        assert seen == [1, 1, 1, 1] and get() == 2
    finally:
        put(before)


def test_results_do_not_depend_on_whether_the_pool_runs(monkeypatch):
    """A 32-channel weight gradient (one long product per chunk, whose inner dimension
    OpenBLAS on two threads splits and rounds differently) is bit-identical serial and on the
    pool: the kernels' products always run on one BLAS thread. Before, a machine busy enough to
    turn the pool off changed a training run's numbers."""
    from tinygrad_ds.backend import threads
    from tinygrad_ds.backend.cpu.conv import conv2d_backward_weight

    rng = np.random.default_rng(4)
    x = rng.standard_normal((64, 32, 16, 16)).astype(np.float32)
    gy = rng.standard_normal((64, 32, 16, 16)).astype(np.float32)
    monkeypatch.setitem(threads._state, "explicit", True)
    out = []
    for n in (1, 2):
        monkeypatch.setitem(threads._state, "n", n)
        out.append(conv2d_backward_weight(gy, x, 1, 1, 1, 1, 1, 1, 1, 3, 3))
    np.testing.assert_array_equal(out[0], out[1])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("c,o,h,w,bias", [(4, 6, 6, 8, True), (5, 3, 4, 4, False),
                                          (3, 3, 5, 6, True)])
def test_winograd_convolution_matches_the_reference(monkeypatch, dtype, c, o, h, w, bias):
    """3x3 stride-1 'same' convolutions with many channels run as Winograd F(2x2, 3x3) (here
    from 3 channels on): the output and both gradients match the float64 loop reference; an
    odd height or width (5x6) falls back to the direct kernels."""
    from tinygrad_ds.backend.cpu import conv as cpu_conv

    monkeypatch.setattr(cpu_conv, "WINOGRAD_MIN_CHANNELS", 3)
    monkeypatch.setattr(cpu_conv, "WINOGRAD_WEIGHT_MIN_CHANNELS", 3)
    calls, weight_calls = [], []
    forward, weight = cpu_conv.winograd.forward, cpu_conv.winograd.backward_weight
    monkeypatch.setattr(cpu_conv.winograd, "forward",
                        lambda *a: (calls.append(a[0].shape), forward(*a))[1])
    monkeypatch.setattr(cpu_conv.winograd, "backward_weight",
                        lambda *a: (weight_calls.append(a[1].shape), weight(*a))[1])
    rng = np.random.default_rng(6)
    x = rng.standard_normal((3, c, h, w))
    wt = rng.standard_normal((o, c, 3, 3))
    b = rng.standard_normal(o) if bias else None
    xt = tds.Tensor(x, dtype=dtype, requires_grad=True)
    wt_t = tds.Tensor(wt, dtype=dtype, requires_grad=True)
    y = F.conv2d(xt, wt_t, tds.Tensor(b, dtype=dtype) if bias else None, 1, 1)
    tol = 1e-10 if dtype == "float64" else 1e-4
    ref = ref_conv2d(x, wt, b, (1, 1), (1, 1), (1, 1), 1)
    np.testing.assert_allclose(y.numpy(), ref, rtol=tol, atol=tol)
    gy = rng.standard_normal(y.shape)
    y.backward(tds.Tensor(gy, dtype=dtype))
    # the input gradient at stride 1 is a convolution of gy with the flipped kernel: Winograd too
    gx = ref_conv2d(gy, wt[:, :, ::-1, ::-1].transpose(1, 0, 2, 3), None, (1, 1), (1, 1),
                    (1, 1), 1)
    np.testing.assert_allclose(xt.grad.numpy(), gx, rtol=tol, atol=tol)
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    gw = np.array([[np.einsum("noij,ncij->oc", gy, xp[:, :, ki:ki + h, kj:kj + w])
                    for kj in range(3)] for ki in range(3)]).transpose(2, 3, 0, 1)
    np.testing.assert_allclose(wt_t.grad.numpy(), gw, rtol=tol, atol=tol)
    # the forward, and the input gradient where it is a convolution (O <= C; else col2im)
    even = h % 2 == 0 and w % 2 == 0
    assert len(calls) == ((1 + (o <= c)) if even else 0)
    assert len(weight_calls) == (1 if even else 0)


@pytest.mark.parametrize("c,o,h,w,stride,bias", [
    (3, 5, 6, 7, (1, 1), True),     # stride 1: the products write the output directly
    (4, 2, 7, 6, (2, 2), False),    # a ResNet projection, odd height: rows 0, 2, 4, 6
    (2, 3, 5, 8, (2, 3), True),     # different strides along the rows and the columns
])
def test_pointwise_convolution_matches_the_reference(monkeypatch, c, o, h, w, stride, bias):
    """1x1 unpadded convolutions run as one product per sample (pointwise.py): the output and
    both gradients match the float64 loop reference and finite differences, with a stride's
    skipped rows and columns getting a zero input gradient."""
    from tinygrad_ds.backend.cpu import conv as cpu_conv

    calls = []
    for name in ("forward", "backward_input"):
        fn = getattr(cpu_conv.pointwise, name)
        monkeypatch.setattr(cpu_conv.pointwise, name,
                            lambda *a, fn=fn, name=name: (calls.append(name), fn(*a))[1])
    rng = np.random.default_rng(7)
    x, wt = rng.standard_normal((3, c, h, w)), rng.standard_normal((o, c, 1, 1))
    b = rng.standard_normal(o) if bias else None
    y = F.conv2d(t64(x), t64(wt), t64(b) if bias else None, stride)
    np.testing.assert_allclose(y.numpy(), ref_conv2d(x, wt, b, stride, (0, 0), (1, 1), 1),
                               rtol=1e-10, atol=1e-10)
    xt, wtt = t64(x, True), t64(wt, True)
    tds.gradcheck(lambda a, ww: F.conv2d(a, ww, None, stride), xt, wtt)
    assert "forward" in calls and "backward_input" in calls
    F.conv2d(xt, wtt, None, stride).sum().backward()
    skipped = np.ones((h, w), bool)
    skipped[::stride[0], ::stride[1]] = False
    assert np.all(xt.grad.numpy()[:, :, skipped] == 0)
