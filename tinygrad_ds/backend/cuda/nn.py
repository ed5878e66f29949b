"""The cuda backend's network kernels: convolution (im2col + the tiled matmul, col2im as a
gather), pooling (one thread per output; the backward passes scatter with atomic adds), batch,
layer and group norm (composed of the array primitives, statistics in float64), the fused
softmax cross-entropy (one thread per row, one per logit) and dropout masks (see movement.py).
"""
from __future__ import annotations

import math

import numpy as np

from . import array as A
from . import kernels as K

F64 = np.dtype(np.float64)


def _run(key, src, n, *args):
    """Launch the custom kernel `src` (named k) over n threads."""
    if n:
        K._compile(key, src)[K.blocks(n), K.TPB](*args)


def _row(a, c):
    """(C,) -> (C, 1): broadcasts along L in (N, C, L)."""
    return a.reshape(c, 1)


def _stack2(a, b, dtype):
    out = A._empty((2,) + tuple(a.shape), dtype)
    A.copy_into(out[0], a)
    A.copy_into(out[1], b)
    return out


# ---- convolution ---------------------------------------------------------------------------------
_IM2COL = """
def k(x, cols, total, C, H, W, KH, KW, OH, OW, sh, sw, ph, pw, dh, dw):
    i = cuda.grid(1)
    if i >= total:
        return
    ow = i % OW
    r = i // OW
    oh = r % OH
    r //= OH
    kw = r % KW
    r //= KW
    kh = r % KH
    r //= KH
    c = r % C
    n = r // C
    ih = oh * sh - ph + kh * dh
    iw = ow * sw - pw + kw * dw
    if ih >= 0 and ih < H and iw >= 0 and iw < W:
        cols[i] = x[((n * C + c) * H + ih) * W + iw]
    else:
        cols[i] = 0
"""

_COL2IM = """
def k(cols, gx, total, C, H, W, KH, KW, OH, OW, sh, sw, ph, pw, dh, dw):
    i = cuda.grid(1)
    if i >= total:
        return
    iw = i % W
    r = i // W
    ih = r % H
    r //= H
    c = r % C
    n = r // C
    acc = 0.0
    for kh in range(KH):
        a = ih + ph - kh * dh
        if a >= 0 and a % sh == 0 and a // sh < OH:
            oh = a // sh
            for kw in range(KW):
                b = iw + pw - kw * dw
                if b >= 0 and b % sw == 0 and b // sw < OW:
                    ow = b // sw
                    acc += cols[((((n * C + c) * KH + kh) * KW + kw) * OH + oh) * OW + ow]
    gx[i] = acc
"""


def _im2col(x, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow):
    """(N, C, H, W) -> cols (N, C*KH*KW, OH*OW), zeros where a window reaches the padding."""
    n, c, h, w = x.shape
    cols = A._empty((n, c * kh * kw, oh * ow), x.dtype)
    total = n * c * kh * kw * oh * ow
    _run(("im2col",), _IM2COL, total, A._flat(x), A._flat(cols), total, c, h, w, kh, kw, oh, ow,
         sh, sw, ph, pw, dh, dw)
    return cols


def conv2d_forward(x, w, b, sh, sw, ph, pw, dh, dw, groups, oh, ow):
    x, w = A._dev(x), A._dev(w)
    n = x.shape[0]
    o, cg, kh, kw = w.shape
    g = groups
    cols = _im2col(x, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow).reshape(n, g, cg * kh * kw, oh * ow)
    wm = w.reshape(1, g, o // g, cg * kh * kw)
    y = A.matmul(wm, cols).reshape(n, o, oh, ow)  # (N, G, O/G, P)
    if b is not None:
        y = A.add(y, A._dev(b).reshape(o, 1, 1))
    return y


def conv2d_backward_input(gy, w, sh, sw, ph, pw, dh, dw, groups, h, wd):
    gy, w = A._dev(gy), A._dev(w)
    n, o, oh, ow = gy.shape
    _, cg, kh, kw = w.shape
    g = groups
    wt = A.permute(w.reshape(1, g, o // g, cg * kh * kw), (0, 1, 3, 2))  # (1, G, K, O/G)
    dcols = A.matmul(wt, gy.reshape(n, g, o // g, oh * ow))  # (N, G, Cg*KH*KW, P)
    c = cg * g
    gx = A._empty((n, c, h, wd), gy.dtype)
    total = n * c * h * wd
    _run(("col2im",), _COL2IM, total, A._flat(dcols), A._flat(gx), total, c, h, wd, kh, kw, oh,
         ow, sh, sw, ph, pw, dh, dw)
    return gx


def conv2d_backward_weight(gy, x, sh, sw, ph, pw, dh, dw, groups, kh, kw):
    gy, x = A._dev(gy), A._dev(x)
    n, o, oh, ow = gy.shape
    c = x.shape[1]
    g = groups
    cg = c // g
    k, p = cg * kh * kw, oh * ow
    cols = _im2col(x, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow).reshape(n, g, k, p)
    # one matmul per group over the batch and the positions together: (O/G, N*P) @ (N*P, K)
    gyg = A.permute(gy.reshape(n, g, o // g, p), (1, 2, 0, 3)).reshape(g, o // g, n * p)
    colg = A.permute(cols, (1, 0, 3, 2)).reshape(g, n * p, k)
    return A.matmul(gyg, colg).reshape(o, cg, kh, kw)


# ---- pooling -------------------------------------------------------------------------------------
_MAXPOOL = """
def k(x, y, arg, total, H, W, OH, OW, KH, KW, sh, sw, ph, pw):
    i = cuda.grid(1)
    if i >= total:
        return
    j = i % OW
    r = i // OW
    oi = r % OH
    plane = r // OH
    best = -math.inf
    bi = 0
    for a in range(KH):
        rr = oi * sh - ph + a
        if rr >= 0 and rr < H:
            for b in range(KW):
                q = j * sw - pw + b
                if q >= 0 and q < W:
                    v = x[plane * H * W + rr * W + q]
                    if v > best:
                        best = v
                        bi = rr * W + q
    y[i] = best
    arg[i] = bi
"""

_SCATTER_ARG = """
def k(gy, arg, gx, total, OHW, HW):
    i = cuda.grid(1)
    if i >= total:
        return
    plane = i // OHW
    cuda.atomic.add(gx, plane * HW + arg[i], gy[i])
"""

_AVGPOOL = """
def k(x, y, total, H, W, OH, OW, KH, KW, sh, sw, ph, pw, count_pad, back):
    i = cuda.grid(1)
    if i >= total:
        return
    j = i % OW
    r = i // OW
    oi = r % OH
    plane = r // OH
    r0 = oi * sh - ph
    q0 = j * sw - pw
    if count_pad:
        nr = min(r0 + KH, H + ph) - max(r0, -ph)
        nc = min(q0 + KW, W + pw) - max(q0, -pw)
        div = nr * nc
    else:
        div = (min(r0 + KH, H) - max(r0, 0)) * (min(q0 + KW, W) - max(q0, 0))
    if back:
        g = x[i] / div
        for rr in range(max(r0, 0), min(r0 + KH, H)):
            for q in range(max(q0, 0), min(q0 + KW, W)):
                cuda.atomic.add(y, plane * H * W + rr * W + q, g)
    else:
        acc = 0.0
        for rr in range(max(r0, 0), min(r0 + KH, H)):
            for q in range(max(q0, 0), min(q0 + KW, W)):
                acc += x[plane * H * W + rr * W + q]
        y[i] = acc / div
"""

_ADAPTIVE = """
def k(x, y, total, H, W, OH, OW, back):
    i = cuda.grid(1)
    if i >= total:
        return
    j = i % OW
    r = i // OW
    oi = r % OH
    plane = r // OH
    r0 = (oi * H) // OH
    r1 = -((-(oi + 1) * H) // OH)
    c0 = (j * W) // OW
    c1 = -((-(j + 1) * W) // OW)
    div = (r1 - r0) * (c1 - c0)
    if back:
        g = x[i] / div
        for rr in range(r0, r1):
            for q in range(c0, c1):
                cuda.atomic.add(y, plane * H * W + rr * W + q, g)
    else:
        acc = 0.0
        for rr in range(r0, r1):
            for q in range(c0, c1):
                acc += x[plane * H * W + rr * W + q]
        y[i] = acc / div
"""


def max_pool2d_forward(x, kh, kw, sh, sw, ph, pw, oh, ow):
    x = A._dev(x)
    n, c, h, w = x.shape
    y = A._empty((n, c, oh, ow), x.dtype)
    arg = A._empty((n, c, oh, ow), np.int64)
    total = n * c * oh * ow
    _run(("maxpool",), _MAXPOOL, total, A._flat(x), A._flat(y), A._flat(arg), total, h, w, oh,
         ow, kh, kw, sh, sw, ph, pw)
    return y, arg


def max_pool2d_backward(gy, argmax, h, w):
    gy, argmax = A._dev(gy), A._dev(argmax)
    n, c, oh, ow = gy.shape
    gx = A.full((n, c, h, w), 0, gy.dtype)
    total = n * c * oh * ow
    _run(("scatter_arg",), _SCATTER_ARG, total, A._flat(gy), A._flat(argmax), A._flat(gx),
         total, oh * ow, h * w)
    return gx


def avg_pool2d_forward(x, kh, kw, sh, sw, ph, pw, oh, ow, count_pad):
    x = A._dev(x)
    n, c, h, w = x.shape
    y = A._empty((n, c, oh, ow), x.dtype)
    total = n * c * oh * ow
    _run(("avgpool",), _AVGPOOL, total, A._flat(x), A._flat(y), total, h, w, oh, ow, kh, kw, sh,
         sw, ph, pw, bool(count_pad), False)
    return y


def avg_pool2d_backward(gy, kh, kw, sh, sw, ph, pw, h, w, count_pad):
    gy = A._dev(gy)
    n, c, oh, ow = gy.shape
    gx = A.full((n, c, h, w), 0, gy.dtype)
    total = n * c * oh * ow
    _run(("avgpool",), _AVGPOOL, total, A._flat(gy), A._flat(gx), total, h, w, oh, ow, kh, kw,
         sh, sw, ph, pw, bool(count_pad), True)
    return gx


def adaptive_avg_pool2d_forward(x, oh, ow):
    x = A._dev(x)
    n, c, h, w = x.shape
    y = A._empty((n, c, oh, ow), x.dtype)
    total = n * c * oh * ow
    _run(("adaptive",), _ADAPTIVE, total, A._flat(x), A._flat(y), total, h, w, oh, ow, False)
    return y


def adaptive_avg_pool2d_backward(gy, h, w):
    gy = A._dev(gy)
    n, c, oh, ow = gy.shape
    gx = A.full((n, c, h, w), 0, gy.dtype)
    total = n * c * oh * ow
    _run(("adaptive",), _ADAPTIVE, total, A._flat(gy), A._flat(gx), total, h, w, oh, ow, True)
    return gx


# ---- normalization (statistics in float64) -------------------------------------------------------
def _ncl(a):
    """(N, C, ...) -> (N, C, L)."""
    a = A._dev(a)
    n, c = a.shape[:2]
    return a.reshape(n, c, math.prod(a.shape[2:]))


def batch_norm_stats(x):
    x64 = A.cast(A._dev(x), F64)
    c = x64.shape[1]
    mean = A.mean(x64, (0, 2), False)
    d = A.sub(x64, _row(mean, c))
    var = A.mean(A.mul(d, d), (0, 2), False)
    return _stack2(mean, var, x.dtype)


def batch_norm_apply(x, mean, invstd, weight, bias):
    x = A._dev(x)
    c = x.shape[1]
    return A._ew("(a0 - a1) * a2 * a3 + a4", x, *[_row(A._dev(v), c)
                                                  for v in (mean, invstd, weight, bias)])


def _xhat64(x, mean, invstd):
    c = x.shape[1]
    return A._ew("(np.float64(a0) - a1) * a2", x, _row(A.cast(A._dev(mean), F64), c),
                 _row(A.cast(A._dev(invstd), F64), c), dtype=F64)


def batch_norm_backward_reduce(gy, x, mean, invstd):
    gy, x = _ncl(gy), _ncl(x)
    g64 = A.cast(gy, F64)
    xhat = _xhat64(x, mean, invstd)
    return _stack2(A.sum(g64, (0, 2), False), A.sum(A.mul(g64, xhat), (0, 2), False), gy.dtype)


def batch_norm_backward_input(gy, x, mean, invstd, weight, sums):
    shape = tuple(gy.shape)
    gy, x = _ncl(gy), _ncl(x)
    n, c, ln = gy.shape
    sums = A._dev(sums)
    args = [_row(A._dev(v), c) for v in (mean, invstd, weight)] + \
        [_row(sums[0], c), _row(sums[1], c)]
    gx = A._ew("a4 * a3 * (a0 - a5 / p0 - (a1 - a2) * a3 * a6 / p0)", gy, x, *args,
               params=(float(n * ln),))
    return gx.reshape(shape)


def layer_norm_forward(x, weight, bias, eps):
    x = A._dev(x)
    r, d = x.shape
    x64 = A.cast(x, F64)
    mean = A.mean(x64, (1,), True)
    dev = A.sub(x64, mean)
    var = A.mean(A.mul(dev, dev), (1,), True)
    invstd = A._ew("1.0 / F.sqrt(a0 + p0)", var, params=(float(eps),))
    y = A._ew("(a0 - a1) * a2 * a3 + a4", x, mean, invstd, A._dev(weight), A._dev(bias),
              dtype=x.dtype)
    return y, A.cast(mean.reshape(r), x.dtype), A.cast(invstd.reshape(r), x.dtype)


def _norm_grad(g, xhat, invstd, axis):
    """invstd * (g - mean(g) - xhat * mean(g * xhat)) over `axis` (float64 arrays)."""
    m1 = A.mean(g, (axis,), True)
    m2 = A.mean(A.mul(g, xhat), (axis,), True)
    return A._ew("a4 * (a0 - a1 - a2 * a3)", g, m1, xhat, m2, invstd)


def layer_norm_backward_input(gy, x, mean, invstd, weight):
    shape, dtype = tuple(x.shape), x.dtype
    weight = A._dev(weight)
    d = weight.size
    r = math.prod(shape) // d
    gy, x = A._dev(gy).reshape(r, d), A._dev(x).reshape(r, d)
    m64 = A.cast(A._dev(mean), F64).reshape(r, 1)
    s64 = A.cast(A._dev(invstd), F64).reshape(r, 1)
    g = A._ew("np.float64(a0) * a1", gy, weight.reshape(d), dtype=F64)
    xhat = A._ew("(np.float64(a0) - a1) * a2", x, m64, s64, dtype=F64)
    return A.cast(_norm_grad(g, xhat, s64, 1), dtype).reshape(shape)


def layer_norm_backward_affine(gy, x, mean, invstd):
    gy, x = A._dev(gy), A._dev(x)
    r = x.shape[0]
    xhat = A._ew("(np.float64(a0) - a1) * a2", x, A._dev(mean).reshape(r, 1),
                 A._dev(invstd).reshape(r, 1), dtype=F64)
    g64 = A.cast(gy, F64)
    return _stack2(A.sum(g64, (0,), False), A.sum(A.mul(g64, xhat), (0,), False), gy.dtype)


def _grouped(a, groups):
    n, c, ln = a.shape
    return a.reshape(n, groups, (c // groups) * ln)


def group_norm_forward(x, weight, bias, groups, eps):
    x = _ncl(x)
    n, c, ln = x.shape
    xg = A.cast(_grouped(x, groups), F64)
    mean = A.mean(xg, (2,), True)
    dev = A.sub(xg, mean)
    invstd = A._ew("1.0 / F.sqrt(a0 + p0)", A.mean(A.mul(dev, dev), (2,), True),
                   params=(float(eps),))
    xhat = A.mul(dev, invstd).reshape(n, c, ln)
    y = A._ew("a0 * a1 + a2", xhat, _row(A._dev(weight), c), _row(A._dev(bias), c),
              dtype=x.dtype)
    return (y, A.cast(mean.reshape(n, groups), x.dtype),
            A.cast(invstd.reshape(n, groups), x.dtype))


def _gn_xhat(x, mean, invstd, groups):
    xg = _grouped(x, groups)
    n, g, _ = xg.shape
    return A._ew("(np.float64(a0) - a1) * a2", xg, A.cast(A._dev(mean), F64).reshape(n, g, 1),
                 A.cast(A._dev(invstd), F64).reshape(n, g, 1), dtype=F64)


def group_norm_backward_input(gy, x, mean, invstd, weight, groups):
    shape, dtype = tuple(gy.shape), gy.dtype
    gy, x = _ncl(gy), _ncl(x)
    n, c, ln = gy.shape
    g = _grouped(A._ew("np.float64(a0) * a1", gy, _row(A._dev(weight), c), dtype=F64), groups)
    xhat = _gn_xhat(x, mean, invstd, groups)
    s64 = A.cast(A._dev(invstd), F64).reshape(n, groups, 1)
    return A.cast(_norm_grad(g, xhat, s64, 2), dtype).reshape(shape)


def group_norm_backward_affine(gy, x, mean, invstd, groups):
    gy, x = _ncl(gy), _ncl(x)
    n, c, ln = gy.shape
    xhat = _gn_xhat(x, mean, invstd, groups).reshape(n, c, ln)
    g64 = A.cast(gy, F64)
    return _stack2(A.sum(g64, (0, 2), False), A.sum(A.mul(g64, xhat), (0, 2), False), gy.dtype)


# ---- fused softmax cross-entropy -----------------------------------------------------------------
_SCE_FWD = """
def k(logits, target, loss, lse, n, c, smoothing):
    r = cuda.grid(1)
    if r >= n:
        return
    m = -math.inf
    for q in range(c):
        v = np.float64(logits[r * c + q])
        if v > m:
            m = v
    if m - m != 0:
        m = 0.0
    s = 0.0
    tot = 0.0
    for q in range(c):
        v = np.float64(logits[r * c + q])
        s += F.exp(v - m)
        tot += v
    z = m + F.log(s)
    lse[r] = z
    v = z - (1.0 - smoothing) * logits[r * c + target[r]]
    if smoothing != 0.0:
        v -= smoothing * tot / c
    loss[r] = v
"""

_SCE_BWD = """
def k(gloss, logits, target, lse, g, total, c, smoothing):
    i = cuda.grid(1)
    if i >= total:
        return
    r = i // c
    q = i % c
    gr = np.float64(gloss[r])
    v = gr * (F.exp(np.float64(logits[i]) - lse[r]) - smoothing / c)
    if q == target[r]:
        v -= gr * (1.0 - smoothing)
    g[i] = v
"""


def softmax_cross_entropy_forward(logits, target, smoothing):
    logits, target = A._dev(logits), A._dev(target)
    n, c = logits.shape
    loss = A._empty((n,), logits.dtype)
    lse = A._empty((n,), F64)
    _run(("sce_fwd",), _SCE_FWD, n, A._flat(logits), A._flat(target), loss, lse, n, c,
         float(smoothing))
    return loss, lse


def softmax_cross_entropy_backward(gloss, logits, target, lse, smoothing):
    gloss, logits, target = A._dev(gloss), A._dev(logits), A._dev(target)
    lse = A.cast(A._dev(lse), F64)
    n, c = logits.shape
    g = A._empty((n, c), logits.dtype)
    _run(("sce_bwd",), _SCE_BWD, n * c, A._flat(gloss), A._flat(logits), A._flat(target),
         A._flat(lse), A._flat(g), n * c, c, float(smoothing))
    return g
