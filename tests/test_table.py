"""Every name of the kernel table, on every backend that covers the table, through one
parametrisation: the cpu backend's values against a float64 numpy reference written here, the
meta backend's shape and dtype against the cpu result's. A backend that lacks a name says which.

A case is a table name, its arguments (small numpy arrays and plain values) and a float64
reference. A backend is checked by an adapter: cpu runs the arrays as they are; meta turns every
array into a MetaArray and compares shapes and dtypes with the cpu result. A backend that covers
the table but has no adapter here fails `test_every_covering_backend_is_tested` until it gets
one. The cuda backend is partial (PARTIAL): it names the kernels it lacks, and tests/test_cuda.py
runs these cases on it under numba's CUDA simulator.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pytest

import tinygrad_ds as tds
import tinygrad_ds.backend as backend
from tinygrad_ds import functional as F
from tinygrad_ds.backend import KERNELS, kernels_for, missing
from tinygrad_ds.backend.meta import MetaArray, MetaValueError

RNG = np.random.default_rng(1234)


def rand(*shape, dtype=np.float32, low=-2.0, high=2.0):
    return RNG.uniform(low, high, shape).astype(dtype)


def f64(a):
    return np.asarray(a, dtype=np.float64) if np.asarray(a).dtype.kind == "f" else np.asarray(a)


@dataclass
class Case:
    kernel: str
    args: tuple
    ref: Callable[..., Any] | None  # float64 arguments -> the expected result(s)
    id: str = ""
    rtol: float = 2e-6
    check: Callable[[Any, tuple], None] | None = None  # for values a reference cannot pin down
    meta_raises: type | None = None  # the meta backend must raise this (data-dependent shapes)
    keep_real: tuple[int, ...] = ()  # argument positions the meta run passes unchanged
    # the float results' dtype for float32 inputs, one per result (None: the backend's choice,
    # which the meta backend must then match)
    out_dtypes: tuple | None = None
    extra: dict = field(default_factory=dict)

    def __str__(self):
        return f"{self.kernel}-{self.id}" if self.id else self.kernel


# ---- float64 references for the kernels with loops -------------------------------------------
def _windows(xp, kh, kw, sh, sw, dh, dw, oh, ow):
    """(i, j, view (N, C, OH, OW) of xp at kernel offset i, j)."""
    for i in range(kh):
        for j in range(kw):
            yield i, j, xp[:, :, i * dh: i * dh + sh * (oh - 1) + 1: sh,
                           j * dw: j * dw + sw * (ow - 1) + 1: sw]


def conv_ref(x, w, b, sh, sw, ph, pw, dh, dw, groups, oh, ow):
    n, c = x.shape[:2]
    o, cg, kh, kw = w.shape
    og = o // groups
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    y = np.zeros((n, o, oh, ow))
    for i, j, patch in _windows(xp, kh, kw, sh, sw, dh, dw, oh, ow):
        for g in range(groups):
            y[:, g * og:(g + 1) * og] += np.einsum(
                "nchw,oc->nohw", patch[:, g * cg:(g + 1) * cg], w[g * og:(g + 1) * og, :, i, j])
    return y if b is None else y + b[None, :, None, None]


def conv_bwd_input_ref(gy, w, sh, sw, ph, pw, dh, dw, groups, h, wd):
    n, o, oh, ow = gy.shape
    _, cg, kh, kw = w.shape
    og = o // groups
    gxp = np.zeros((n, cg * groups, h + 2 * ph, wd + 2 * pw))
    for i, j, view in _windows(gxp, kh, kw, sh, sw, dh, dw, oh, ow):
        for g in range(groups):
            view[:, g * cg:(g + 1) * cg] += np.einsum(
                "nohw,oc->nchw", gy[:, g * og:(g + 1) * og], w[g * og:(g + 1) * og, :, i, j])
    return gxp[:, :, ph:ph + h, pw:pw + wd]


def conv_bwd_weight_ref(gy, x, sh, sw, ph, pw, dh, dw, groups, kh, kw):
    n, o, oh, ow = gy.shape
    cg = x.shape[1] // groups
    og = o // groups
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    gw = np.zeros((o, cg, kh, kw))
    for i, j, patch in _windows(xp, kh, kw, sh, sw, dh, dw, oh, ow):
        for g in range(groups):
            gw[g * og:(g + 1) * og, :, i, j] = np.einsum(
                "nohw,nchw->oc", gy[:, g * og:(g + 1) * og], patch[:, g * cg:(g + 1) * cg])
    return gw


def _window(i, j, kh, kw, sh, sw, ph, pw):
    """Rows and columns of window (i, j) in unpadded coordinates (may run outside x)."""
    return range(i * sh - ph, i * sh - ph + kh), range(j * sw - pw, j * sw - pw + kw)


def maxpool_ref(x, kh, kw, sh, sw, ph, pw, oh, ow):
    n, c, h, w = x.shape
    y = np.full((n, c, oh, ow), -np.inf)
    arg = np.zeros((n, c, oh, ow), np.int64)
    for i in range(oh):
        for j in range(ow):
            rows, cols = _window(i, j, kh, kw, sh, sw, ph, pw)
            for r in rows:
                for q in cols:
                    if 0 <= r < h and 0 <= q < w:
                        better = x[:, :, r, q] > y[:, :, i, j]
                        y[:, :, i, j] = np.where(better, x[:, :, r, q], y[:, :, i, j])
                        arg[:, :, i, j] = np.where(better, r * w + q, arg[:, :, i, j])
    return y, arg


def maxpool_bwd_ref(gy, arg, h, w):
    n, c = gy.shape[:2]
    gx = np.zeros((n, c, h * w))
    for b in range(n):
        for ch in range(c):
            np.add.at(gx[b, ch], arg[b, ch].ravel(), gy[b, ch].ravel())
    return gx.reshape(n, c, h, w)


def _avg_weights(h, w, kh, kw, sh, sw, ph, pw, oh, ow, count_pad):
    """A (OH*OW, H*W) matrix: average pooling as a linear map of each plane."""
    m = np.zeros((oh * ow, h * w))
    for i in range(oh):
        for j in range(ow):
            rows, cols = _window(i, j, kh, kw, sh, sw, ph, pw)
            inside = [(r, q) for r in rows for q in cols if 0 <= r < h and 0 <= q < w]
            if count_pad:  # the window within the padded input
                nr = sum(1 for r in rows if -ph <= r < h + ph)
                nc = sum(1 for q in cols if -pw <= q < w + pw)
                div = nr * nc
            else:
                div = len(inside)
            for r, q in inside:
                m[i * ow + j, r * w + q] = 1.0 / div
    return m


def avgpool_ref(x, kh, kw, sh, sw, ph, pw, oh, ow, count_pad):
    n, c, h, w = x.shape
    m = _avg_weights(h, w, kh, kw, sh, sw, ph, pw, oh, ow, count_pad)
    return (x.reshape(n, c, h * w) @ m.T).reshape(n, c, oh, ow)


def avgpool_bwd_ref(gy, kh, kw, sh, sw, ph, pw, h, w, count_pad):
    n, c, oh, ow = gy.shape
    m = _avg_weights(h, w, kh, kw, sh, sw, ph, pw, oh, ow, count_pad)
    return (gy.reshape(n, c, oh * ow) @ m).reshape(n, c, h, w)


def _adaptive_weights(h, w, oh, ow):
    m = np.zeros((oh * ow, h * w))
    for i in range(oh):
        r0, r1 = (i * h) // oh, -((-(i + 1) * h) // oh)
        for j in range(ow):
            c0, c1 = (j * w) // ow, -((-(j + 1) * w) // ow)
            for r in range(r0, r1):
                for q in range(c0, c1):
                    m[i * ow + j, r * w + q] = 1.0 / ((r1 - r0) * (c1 - c0))
    return m


def adaptive_ref(x, oh, ow):
    n, c, h, w = x.shape
    return (x.reshape(n, c, h * w) @ _adaptive_weights(h, w, oh, ow).T).reshape(n, c, oh, ow)


def adaptive_bwd_ref(gy, h, w):
    n, c, oh, ow = gy.shape
    return (gy.reshape(n, c, oh * ow) @ _adaptive_weights(h, w, oh, ow)).reshape(n, c, h, w)


def norm_input_grad(gy, xhat, invstd, weight_b, axes):
    """The training-mode gradient of y = xhat * weight + bias with respect to x, where xhat
    normalizes over `axes`: invstd * (g - mean(g) - xhat * mean(g * xhat)), g = gy * weight."""
    g = gy * weight_b
    return invstd * (g - g.mean(axis=axes, keepdims=True)
                     - xhat * (g * xhat).mean(axis=axes, keepdims=True))


def bn_stats_ref(x):
    return np.stack([x.mean(axis=(0, 2)), x.var(axis=(0, 2))])


def bn_backward_input_ref(gy, x, mean, invstd, weight, sums):
    m = x.shape[0] * x.shape[2]
    mb, ib, wb = mean[None, :, None], invstd[None, :, None], weight[None, :, None]
    xhat = (x - mb) * ib
    return wb * ib * (gy - sums[0][None, :, None] / m - xhat * sums[1][None, :, None] / m)


def ln_forward_ref(x, weight, bias, eps):
    mean = x.mean(axis=1)
    invstd = 1 / np.sqrt(x.var(axis=1) + eps)
    return (x - mean[:, None]) * invstd[:, None] * weight + bias, mean, invstd


def ln_backward_input_ref(gy, x, mean, invstd, weight):
    xhat = (x - mean[:, None]) * invstd[:, None]
    return norm_input_grad(gy, xhat, invstd[:, None], weight, (1,))


def ln_backward_affine_ref(gy, x, mean, invstd):
    xhat = (x - mean[:, None]) * invstd[:, None]
    return np.stack([gy.sum(axis=0), (gy * xhat).sum(axis=0)])


def _grouped(x, groups):
    n, c, ll = x.shape
    return x.reshape(n, groups, (c // groups) * ll)


def gn_forward_ref(x, weight, bias, groups, eps):
    xg = _grouped(x, groups)
    mean, invstd = xg.mean(axis=2), 1 / np.sqrt(xg.var(axis=2) + eps)
    xhat = ((xg - mean[..., None]) * invstd[..., None]).reshape(x.shape)
    return xhat * weight[None, :, None] + bias[None, :, None], mean, invstd


def gn_xhat(x, mean, invstd, groups):
    xg = _grouped(x, groups)
    return ((xg - mean[..., None]) * invstd[..., None]).reshape(x.shape)


def gn_backward_input_ref(gy, x, mean, invstd, weight, groups):
    n, c, ll = x.shape
    g = _grouped(gy * weight[None, :, None], groups)
    xhat = _grouped(gn_xhat(x, mean, invstd, groups), groups)
    out = invstd[..., None] * (g - g.mean(axis=2, keepdims=True)
                               - xhat * (g * xhat).mean(axis=2, keepdims=True))
    return out.reshape(n, c, ll)


def gn_backward_affine_ref(gy, x, mean, invstd, groups):
    xhat = gn_xhat(x, mean, invstd, groups)
    return np.stack([gy.sum(axis=(0, 2)), (gy * xhat).sum(axis=(0, 2))])


def lse_ref(x, axes, keepdims):
    m = x.max(axis=axes, keepdims=True)
    out = m + np.log(np.exp(x - m).sum(axis=axes, keepdims=True))
    return out if keepdims else np.squeeze(out, axis=axes)


def sce_forward_ref(logits, target, e):
    lse = lse_ref(logits, (1,), False)
    picked = logits[np.arange(len(target)), target]
    return lse - (1 - e) * picked - e * logits.mean(axis=1), lse


def sce_backward_ref(gloss, logits, target, lse, e):
    p = np.exp(logits - lse[:, None])
    onehot = np.eye(logits.shape[1])[target]
    return gloss[:, None] * (p - (1 - e) * onehot - e / logits.shape[1])


def scatter_add_ref(g, index, axis, size):
    shape = list(g.shape)
    shape[axis] = size
    out = np.zeros(shape)
    for pos in np.ndindex(*g.shape):
        dst = list(pos)
        dst[axis] = index[pos]
        out[tuple(dst)] += g[pos]
    return out


def index_add_ref(g, shape, index):
    out = np.zeros(shape)
    np.add.at(out, index, g)
    return out


# ---- the cases -----------------------------------------------------------------------------------
def _erf(x):
    return np.vectorize(math.erf)(x)


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _bernoulli_check(out, args):
    gen, like, shape, p = args
    assert out.shape == shape and out.dtype == like.dtype
    scale = 1 / (1 - p)
    assert set(np.unique(out)) <= {0.0, np.float32(scale)}
    kept = np.count_nonzero(out) / out.size  # 4000 draws: 1-p within 0.05 (7 sigma)
    assert abs(kept - (1 - p)) < 0.05
    again = backend.get("cpu").bernoulli_mask(np.random.default_rng(5), like, shape, p)
    assert np.array_equal(out, again), "the same seed draws the same mask"


def _copy_into_check(out, args):
    dst, src = args
    assert out is dst, "copy_into writes into dst and returns it"
    np.testing.assert_array_equal(out, np.broadcast_to(src, dst.shape).astype(dst.dtype))


def _cases() -> list[Case]:
    x = rand(3, 4)
    pos = rand(3, 4, low=0.1, high=3.0)
    b = rand(4)
    c = [Case(n, (x,), ref, rtol=r) for n, ref, r in [
        ("neg", np.negative, 0), ("exp", np.exp, 2e-7), ("abs", np.abs, 0),
        ("sign", np.sign, 0), ("relu", lambda a: np.maximum(a, 0), 0),
        ("sigmoid", _sigmoid, 2e-7), ("tanh", np.tanh, 2e-7), ("erf", _erf, 2e-7)]]
    c += [Case("log", (pos,), np.log, rtol=2e-7), Case("sqrt", (pos,), np.sqrt, rtol=2e-7),
          Case("leaky_relu", (x, 0.1), lambda a, s: np.where(a > 0, a, a * s), rtol=2e-7)]
    for name, ref in [("add", np.add), ("sub", np.subtract), ("mul", np.multiply),
                      ("div", np.divide), ("maximum", np.maximum), ("minimum", np.minimum)]:
        c.append(Case(name, (x, b), ref, id="broadcast", rtol=2e-7))
    c.append(Case("pow", (pos, rand(3, 1)), np.power, id="broadcast", rtol=1e-6))
    y = x.copy()
    y[0, :2] = b[:2]  # some equal entries
    for name, ref in [("less", np.less), ("less_equal", np.less_equal), ("equal", np.equal),
                      ("not_equal", np.not_equal)]:
        c.append(Case(name, (x, y[:, :1] if name == "less" else y), ref))
    c.append(Case("where", (x > 0, x, b), np.where))
    c.append(Case("cast", (x, np.dtype(np.float64)), lambda a, d: a.astype(d), id="to64"))
    c.append(Case("cast", (x * 3, np.dtype(np.int64)), lambda a, d: a.astype(d), id="toint"))
    x3 = rand(2, 3, 4)
    for keep in (False, True):
        for name, ref in [("sum", np.sum), ("mean", np.mean), ("max", np.max),
                          ("min", np.min)]:
            c.append(Case(name, (x3, (0, 2), keep),
                          lambda a, ax, k, ref=ref: ref(a, axis=ax, keepdims=k),
                          id=f"keep{int(keep)}", rtol=1e-6))
        c.append(Case("logsumexp", (x3, (1,), keep), lse_ref, id=f"keep{int(keep)}", rtol=1e-6))
        c.append(Case("argmax", (x3, 1, keep), lambda a, ax, k: np.argmax(a, ax, keepdims=k),
                      id=f"axis1-keep{int(keep)}"))
    c.append(Case("sum", (x > 0, (1,), False), lambda a, ax, k: a.sum(axis=ax), id="bool"))
    c.append(Case("mean", (np.arange(6).reshape(2, 3), (1,), False),
                  lambda a, ax, k: a.mean(axis=ax), id="int"))
    c.append(Case("argmax", (x3, None, False), lambda a, ax, k: np.argmax(a), id="flat"))
    c.append(Case("any", (x > 1.5,), np.any))
    c.append(Case("all", (x > -3,), np.all))
    c += [
        Case("reshape", (x, (2, 6)), np.reshape), Case("reshape", (x, (-1, 2)), np.reshape,
                                                       id="minus1"),
        Case("permute", (x3, (2, 0, 1)), np.transpose),
        Case("expand", (b, (3, 4)), np.broadcast_to),
        Case("contiguous", (x.T,), np.ascontiguousarray),
        Case("copy", (x,), np.copy),
        Case("getitem", (x3, (slice(None), 1, slice(None, None, 2))), lambda a, i: a[i],
             id="basic"),
        Case("getitem", (x3, (np.array([1, 0, 1]), None)), lambda a, i: a[i], id="int_array"),
        Case("getitem", (x, x > 0), lambda a, i: a[i], id="bool_mask",
             meta_raises=MetaValueError),
        Case("index_add", (rand(3, 4), (3, 3, 4), (np.array([1, 1, 2]),)), index_add_ref,
             id="repeated"),
        Case("index_add", (rand(2, 4), (3, 4), (slice(0, 2),)), index_add_ref, id="basic"),
        Case("pad", (x, ((1, 0), (0, 2)), -1.0),
             lambda a, pw, v: np.pad(a, pw, constant_values=v)),
        Case("concat", ((x, rand(3, 2)), 1), lambda xs, ax: np.concatenate(xs, ax)),
        Case("gather", (x, np.array([[3], [0], [1]]), 1),
             lambda a, i, ax: np.take_along_axis(a, i, ax)),
        Case("scatter_add", (rand(3, 2), np.array([[1, 1], [0, 3], [2, 2]]), 1, 4),
             scatter_add_ref),
        Case("matmul", (rand(2, 3, 4), rand(4, 5)), np.matmul, id="batched", rtol=1e-6),
        Case("softmax", (x3, 2), lambda a, ax: np.exp(a - lse_ref(a, (ax,), True)), rtol=1e-6),
        Case("log_softmax", (x3, 1), lambda a, ax: a - lse_ref(a, (ax,), True), rtol=1e-6),
        Case("full", ((2, 3), 1.5, np.dtype(np.float32)),
             lambda s, v, d: np.full(s, v, np.float32)),
        Case("copy_into", (np.zeros((3, 4), np.float32), b.astype(np.float64)), None,
             check=_copy_into_check),
        Case("bernoulli_mask", (np.random.default_rng(5), x, (40, 100), 0.3), None,
             check=_bernoulli_check, keep_real=(0,)),
        Case("bernoulli_mask", (np.random.default_rng(5), x, (2, 3), 1.0),
             lambda g, like, s, p: np.zeros(s), id="p1", keep_real=(0,)),
        Case("index_errors", (np.array([0, 5, -1, 2, 9]), 0, 4, -1),
             lambda t, lo, hi, ig: np.array([2, 5])),
        Case("index_errors", (np.array([0, 3]), 0, 4, -100), lambda *a: np.array([0, 0]),
             id="none"),
    ]
    # convolution: padding, stride, dilation, groups and a bias
    xc = rand(2, 4, 6, 5)
    w = rand(6, 2, 3, 3)
    geo = (2, 1, 1, 0, 1, 2, 2)  # sh sw ph pw dh dw groups: oh = 3, ow = 1
    oh, ow = (6 + 2 - 2 * 2 - 1) // 2 + 1, (5 + 0 - 2 * 2 - 1) // 1 + 1
    c += [
        Case("conv2d_forward", (xc, w, rand(6), *geo, oh, ow), conv_ref, id="grouped",
             rtol=1e-5),
        Case("conv2d_forward", (xc, rand(8, 4, 3, 3), None, 1, 1, 1, 1, 1, 1, 1, 6, 5),
             conv_ref, id="3x3", rtol=1e-5),
        Case("conv2d_forward", (xc, rand(4, 1, 3, 3), None, 1, 1, 1, 1, 1, 1, 4, 6, 5),
             conv_ref, id="depthwise", rtol=1e-5),
        Case("conv2d_backward_input", (rand(2, 6, oh, ow), w, *geo, 6, 5), conv_bwd_input_ref,
             id="grouped", rtol=1e-5),
        Case("conv2d_backward_input", (rand(2, 8, 6, 5), rand(8, 4, 3, 3), 1, 1, 1, 1, 1, 1, 1,
                                       6, 5), conv_bwd_input_ref, id="3x3", rtol=1e-5),
        Case("conv2d_backward_weight", (rand(2, 6, oh, ow), xc, *geo, 3, 3),
             conv_bwd_weight_ref, id="grouped", rtol=1e-5),
        Case("conv2d_backward_weight", (rand(2, 8, 6, 5), xc, 1, 1, 1, 1, 1, 1, 1, 3, 3),
             conv_bwd_weight_ref, id="3x3", rtol=1e-5),
    ]
    # pooling: 5x5 planes, kernel 3, stride 2, padding 1: 3x3 out (4x4 with ceil_mode's window)
    xp = rand(2, 3, 5, 5)
    mp = maxpool_ref(f64(xp), 3, 3, 2, 2, 1, 1, 3, 3)
    c += [
        Case("max_pool2d_forward", (xp, 3, 3, 2, 2, 1, 1, 3, 3), maxpool_ref),
        Case("max_pool2d_forward", (xp, 2, 2, 2, 2, 0, 0, 3, 3), maxpool_ref, id="ceil"),
        Case("max_pool2d_backward", (rand(2, 3, 3, 3), mp[1], 5, 5), maxpool_bwd_ref),
        Case("avg_pool2d_forward", (xp, 3, 3, 2, 2, 1, 1, 3, 3, True), avgpool_ref,
             id="count_pad", rtol=1e-6),
        Case("avg_pool2d_forward", (xp, 3, 3, 2, 2, 1, 1, 3, 3, False), avgpool_ref,
             id="no_pad", rtol=1e-6),
        Case("avg_pool2d_forward", (xp, 2, 2, 2, 2, 0, 0, 3, 3, True), avgpool_ref,
             id="ceil", rtol=1e-6),
        Case("avg_pool2d_backward", (rand(2, 3, 3, 3), 3, 3, 2, 2, 1, 1, 5, 5, True),
             avgpool_bwd_ref, id="count_pad", rtol=1e-6),
        Case("avg_pool2d_backward", (rand(2, 3, 3, 3), 3, 3, 2, 2, 1, 1, 5, 5, False),
             avgpool_bwd_ref, id="no_pad", rtol=1e-6),
        Case("adaptive_avg_pool2d_forward", (xp, 2, 3), adaptive_ref, rtol=1e-6),
        Case("adaptive_avg_pool2d_backward", (rand(2, 3, 2, 3), 5, 5), adaptive_bwd_ref,
             rtol=1e-6),
    ]
    # normalization
    xn = rand(3, 4, 5) + rand(1, 4, 1)  # per-channel offsets
    gy = rand(3, 4, 5)
    wn, bn = rand(4, low=0.5), rand(4)
    stats = bn_stats_ref(f64(xn))
    mean, invstd = stats[0].astype(np.float32), (1 / np.sqrt(stats[1] + 1e-5)).astype(np.float32)
    xhat = (f64(xn) - f64(mean)[None, :, None]) * f64(invstd)[None, :, None]
    sums = np.stack([f64(gy).sum(axis=(0, 2)), (f64(gy) * xhat).sum(axis=(0, 2))]).astype(
        np.float32)
    xl, gl, wl = rand(6, 5), rand(6, 5), rand(5, low=0.5)
    _, lmean, linv = ln_forward_ref(f64(xl), f64(wl), 0.0, 1e-5)
    lmean, linv = lmean.astype(np.float32), linv.astype(np.float32)
    _, gmean, ginv = gn_forward_ref(f64(xn), f64(wn), f64(bn), 2, 1e-5)
    gmean, ginv = gmean.astype(np.float32), ginv.astype(np.float32)
    c += [
        Case("batch_norm_stats", (xn,), bn_stats_ref, rtol=1e-6),
        Case("batch_norm_apply", (xn, mean, invstd, wn, bn),
             lambda a, m, i, w_, b_: (a - m[:, None]) * i[:, None] * w_[:, None] + b_[:, None],
             rtol=1e-5),
        Case("batch_norm_backward_reduce", (gy, xn, mean, invstd),
             lambda g, a, m, i: np.stack([g.sum(axis=(0, 2)), (g * (a - m[:, None]) *
                                                               i[:, None]).sum(axis=(0, 2))]),
             rtol=1e-5),
        Case("batch_norm_backward_input", (gy, xn, mean, invstd, wn, sums),
             bn_backward_input_ref, rtol=1e-5),
        Case("layer_norm_forward", (xl, wl, bn[:1].repeat(5), 1e-5), ln_forward_ref, rtol=1e-5),
        Case("layer_norm_backward_input", (gl, xl, lmean, linv, wl), ln_backward_input_ref,
             rtol=1e-5),
        Case("layer_norm_backward_affine", (gl, xl, lmean, linv), ln_backward_affine_ref,
             rtol=1e-5),
        Case("group_norm_forward", (xn, wn, bn, 2, 1e-5), gn_forward_ref, rtol=1e-5),
        Case("group_norm_backward_input", (gy, xn, gmean, ginv, wn, 2), gn_backward_input_ref,
             rtol=1e-5),
        Case("group_norm_backward_affine", (gy, xn, gmean, ginv, 2), gn_backward_affine_ref,
             rtol=1e-5),
    ]
    logits, target = rand(4, 5), np.array([0, 4, 2, 2])
    loss, lse = sce_forward_ref(f64(logits), target, 0.1)
    c += [
        Case("softmax_cross_entropy_forward", (logits, target, 0.1), sce_forward_ref,
             rtol=1e-6, out_dtypes=(np.float32, None)),  # lse: float32 or float64
        Case("softmax_cross_entropy_backward", (rand(4), logits, target, lse.astype(np.float32),
                                                0.1), sce_backward_ref, rtol=1e-5),
    ]
    return c


CASES = _cases()


# ---- backends ------------------------------------------------------------------------------------
def _as_list(out):
    return list(out) if isinstance(out, tuple) else [out]


def _run_cpu(case: Case):
    return getattr(backend.get("cpu"), case.kernel)(*case.args)


def _close(got, want, rtol: float, what: str):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape}, reference {want.shape}"
    if want.dtype.kind in "biu" or rtol == 0:
        np.testing.assert_array_equal(got, want, err_msg=what)
    else:  # error relative to the largest reference value (sums of mixed signs cancel)
        scale = max(float(np.abs(want).max(initial=0.0)), 1e-30)
        err = float(np.abs(got.astype(np.float64) - want).max(initial=0.0)) / scale
        assert err <= rtol, f"{what}: relative error {err:.2e} > {rtol:.0e}"


def check_cpu(case: Case) -> None:
    out = _run_cpu(case)
    if case.check is not None:
        case.check(out, case.args)
        return
    want = case.ref(*[f64(a) if isinstance(a, np.ndarray) else a for a in case.args])
    outs, wants = _as_list(out), _as_list(want)
    assert len(outs) == len(wants), f"{case}: {len(outs)} result(s), the reference {len(wants)}"
    for k, (o, w) in enumerate(zip(outs, wants)):
        assert isinstance(o, np.ndarray), f"{case}: result {k} is {type(o).__name__}"
        _close(o, w, case.rtol, f"{case} result {k}")
        # float results keep the float inputs' dtype (float32 here) unless the case says
        want_dtype = np.float32 if case.out_dtypes is None else case.out_dtypes[k]
        if np.asarray(w).dtype.kind == "f" and case.kernel not in ("cast", "mean") and \
                want_dtype is not None:
            assert o.dtype == want_dtype, f"{case} result {k} is {o.dtype}"


def _to_meta(a):
    if isinstance(a, np.ndarray):
        return MetaArray(a.shape, a.dtype)
    if isinstance(a, tuple):
        return tuple(_to_meta(v) for v in a)
    return a


def check_meta(case: Case) -> None:
    meta = backend.get("meta")
    args = tuple(a if k in case.keep_real else _to_meta(a) for k, a in enumerate(case.args))
    kernel = getattr(meta, case.kernel)
    if case.meta_raises is not None:
        with pytest.raises(case.meta_raises):
            kernel(*args)
        return
    out = kernel(*args)
    want = _run_cpu(case)
    outs, wants = _as_list(out), _as_list(want)
    assert len(outs) == len(wants), f"{case}: {len(outs)} result(s) on meta, {len(wants)} on cpu"
    for k, (o, w) in enumerate(zip(outs, wants)):
        assert isinstance(o, MetaArray), f"{case}: meta result {k} is {type(o).__name__}"
        assert (o.shape, o.dtype) == (w.shape, w.dtype), \
            f"{case} result {k}: meta gives {o.shape} {o.dtype}, cpu {w.shape} {w.dtype}"


ADAPTERS = {"cpu": check_cpu, "meta": check_meta}


def covering_backends() -> list[str]:
    return [name for name in backend.registered() if not missing(backend.get(name))]


# backends still being written: they name what they lack instead of failing the coverage test
PARTIAL = {"cuda": "tinygrad_ds.backend.cuda"}


def test_every_backend_covers_the_table():
    names = backend.registered()
    assert {"cpu", "meta"} <= set(names)
    for name in names:
        if name not in PARTIAL:
            assert missing(backend.get(name)) == [], f"backend {name!r} lacks kernels"


@pytest.mark.parametrize("name", sorted(PARTIAL))
def test_partial_backends_name_what_they_lack(name):
    """Where it can be imported (cuda: with numba-cuda installed; no GPU needed), a partial
    backend raises for each name it lacks an error naming the kernel; the list is printed."""
    import importlib

    from tinygrad_ds.backend import MissingKernelError
    try:
        module = importlib.import_module(PARTIAL[name])
    except ImportError as e:
        pytest.skip(f"backend {name!r} cannot be imported here: {e}")
    lacking = missing(module)
    for kernel in lacking:
        with pytest.raises(MissingKernelError, match=rf"'{name}' has no kernel '{kernel}'.*not "
                                                     rf"implemented on {name} yet"):
            getattr(module, kernel)
    print(f"\nbackend {name!r} lacks {len(lacking)} of {len(KERNELS)} names: {lacking}")


def test_every_covering_backend_is_tested():
    untested = [b for b in covering_backends() if b not in ADAPTERS]
    assert not untested, f"backends with no adapter in test_table.py: {untested}"


def test_the_cases_call_every_table_name():
    assert sorted(set(KERNELS) - {c.kernel for c in CASES}) == []


@pytest.mark.parametrize("backend_name", [b for b in covering_backends() if b in ADAPTERS])
@pytest.mark.parametrize("case", CASES, ids=str)
def test_kernel(backend_name, case):
    ADAPTERS[backend_name](case)


# ---- a missing kernel --------------------------------------------------------------------------
def test_missing_kernel_names_the_kernel_and_the_backend():
    with pytest.raises(AttributeError, match=r"backend 'meta' has no kernel 'no_such_kernel'"):
        kernels_for(MetaArray((2, 3))).no_such_kernel
    with pytest.raises(AttributeError, match=r"backend 'cpu' has no kernel 'no_such_kernel'"):
        kernels_for(np.zeros(2)).no_such_kernel
    assert not hasattr(kernels_for(np.zeros(2)), "no_such_kernel")


def test_op_without_a_shape_rule_names_the_op(monkeypatch):
    monkeypatch.delattr(backend.get("meta"), "softmax")
    with pytest.raises(tds.TdsError, match=r"'meta' has no kernel 'softmax'.*no shape rule"):
        tds.trace(lambda x: F.softmax(x, axis=1), (2, 3))
    x = tds.Tensor(rand(2, 3))
    np.testing.assert_allclose(F.softmax(x, axis=1).data.sum(axis=1), 1, rtol=1e-6)
