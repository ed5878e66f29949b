"""Depthwise convolution on the CPU (one input channel per group, one output per input): direct
loops, since as a GEMM its inner dimension would be only KH*KW, too small for BLAS to pay.
conv/__init__.py dispatches here; arguments as conv2d_forward/backward_* there.

With stride 1 each plane is copied into a zero-bordered scratch plane of width WP = W + 2*PW,
and the output is computed on a grid of the same width (OW valid columns per row, the rest
dropped): every tap is then one flat loop over the whole plane at a fixed offset, which LLVM
vectorizes, where a row at a time runs loops of OW iterations (8 on an 8x8 image). The input
gradient is the same loop with the flipped kernel, the weight gradient a dot product per tap.
Strided convolutions still run a row at a time."""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def _span(size_out, stride, pad, offset, size_in):
    """The output indices j in [lo, hi) whose input index j*stride - pad + offset is in range."""
    lo = 0
    start = pad - offset
    if start > 0:
        lo = (start + stride - 1) // stride
    hi = (size_in - 1 + pad - offset) // stride + 1 if size_in - 1 + pad - offset >= 0 else 0
    if hi > size_out:
        hi = size_out
    if hi < lo:
        hi = lo
    return lo, hi


@njit(cache=True, nogil=True)
def _pad_plane(src, h, wd, ph, pw, xp):
    """Plane src (H*W values) into the interior of the zero-bordered xp ((H+2PH)*(W+2PW));
    xp's border is zero from the start and never written."""
    wp = wd + 2 * pw
    for i in range(h):
        d = xp[(i + ph) * wp + pw:(i + ph) * wp + pw + wd]
        s = src[i * wd:(i + 1) * wd]
        for j in range(wd):
            d[j] = s[j]


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def _depthwise_s1(x, w, bias, has_bias, ph, pw, dh, dw, oh, ow):
    """Stride-1 depthwise convolution on a flat grid of width WP = W + 2*PW (module doc)."""
    n, c, h, wd = x.shape
    kh, kw = w.shape[2], w.shape[3]
    wp = wd + 2 * pw
    m = (oh - 1) * wp + ow  # grid entries from the first output to the last
    y = np.empty((n, c, oh, ow), dtype=x.dtype)
    xf, yf = x.reshape(x.size), y.reshape(y.size)
    xp = np.zeros((h + 2 * ph) * wp, dtype=x.dtype)
    yg = np.empty(m, dtype=x.dtype)
    for p in range(n * c):
        ci = p % c
        _pad_plane(xf[p * h * wd:(p + 1) * h * wd], h, wd, ph, pw, xp)
        start = bias[ci] if has_bias else bias[0]
        for q in range(m):
            yg[q] = start
        for ki in range(kh):
            for kj in range(kw):
                wv = w[ci, 0, ki, kj]
                src = xp[ki * dh * wp + kj * dw:]
                for q in range(m):
                    yg[q] += wv * src[q]
        yp = yf[p * oh * ow:(p + 1) * oh * ow]
        for i in range(oh):
            d = yp[i * ow:(i + 1) * ow]
            s = yg[i * wp:i * wp + ow]
            for j in range(ow):
                d[j] = s[j]
    return y


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def _depthwise_weight_s1(gy, x, ph, pw, dh, dw, kh, kw):
    """Stride-1 weight gradient: per tap, the dot product of gy on the grid of width WP (zeros
    in its W+2PW-OW extra columns) with the padded input plane read at the tap's offset."""
    n, c, h, wd = x.shape
    oh, ow = gy.shape[2], gy.shape[3]
    wp = wd + 2 * pw
    m = (oh - 1) * wp + ow
    acc = np.zeros((c, kh, kw))  # float64 sums
    gf, xf = gy.reshape(gy.size), x.reshape(x.size)
    xp = np.zeros((h + 2 * ph) * wp, dtype=x.dtype)
    gg = np.zeros(m, dtype=x.dtype)  # the extra columns stay zero
    for p in range(n * c):
        ci = p % c
        _pad_plane(xf[p * h * wd:(p + 1) * h * wd], h, wd, ph, pw, xp)
        gp = gf[p * oh * ow:(p + 1) * oh * ow]
        for i in range(oh):
            d = gg[i * wp:i * wp + ow]
            s = gp[i * ow:(i + 1) * ow]
            for j in range(ow):
                d[j] = s[j]
        for ki in range(kh):
            for kj in range(kw):
                src = xp[ki * dh * wp + kj * dw:]
                s = 0.0
                for q in range(m):
                    s += gg[q] * src[q]
                acc[ci, ki, kj] += s
    return acc.astype(gy.dtype).reshape(c, 1, kh, kw)


@njit(cache=True, nogil=True)
def depthwise_forward(x, w, bias, has_bias, sh, sw, ph, pw, dh, dw, oh, ow):
    if sh == 1 and sw == 1:
        return _depthwise_s1(x, w, bias, has_bias, ph, pw, dh, dw, oh, ow)
    n, c, h, wd = x.shape
    kh, kw = w.shape[2], w.shape[3]
    y = np.empty((n, c, oh, ow), dtype=x.dtype)
    xf, yf = x.reshape(x.size), y.reshape(y.size)
    for p in range(n * c):  # (sample, channel) planes; rows as 1-D views, as in im2col
        ci = p % c
        yp = yf[p * oh * ow:(p + 1) * oh * ow]
        start = bias[ci] if has_bias else bias[0]
        for t in range(oh * ow):
            yp[t] = start
        for ki in range(kh):
            ilo, ihi = _span(oh, sh, ph, ki * dh, h)
            for kj in range(kw):
                wv = w[ci, 0, ki, kj]
                jlo, jhi = _span(ow, sw, pw, kj * dw, wd)
                off = kj * dw - pw
                for i in range(ilo, ihi):
                    d = yp[i * ow + jlo:i * ow + jhi]
                    src = xf[(p * h + i * sh - ph + ki * dh) * wd + jlo * sw + off:]
                    if sw == 1:
                        for j in range(jhi - jlo):
                            d[j] += wv * src[j]
                    else:
                        for j in range(jhi - jlo):
                            d[j] += wv * src[j * sw]
    return y


@njit(cache=True, nogil=True)
def depthwise_backward_input(gy, w, sh, sw, ph, pw, dh, dw, h, wd):
    n, c, oh, ow = gy.shape
    kh, kw = w.shape[2], w.shape[3]
    qh, qw = dh * (kh - 1) - ph, dw * (kw - 1) - pw
    # not when the input is larger than the flipped convolution's output (conv_transpose2d's
    # output_padding): those rows or columns get no gradient from the grid
    if sh == 1 and sw == 1 and qh >= 0 and qw >= 0 and oh + 2 * qh - dh * (kh - 1) == h \
            and ow + 2 * qw - dw * (kw - 1) == wd:
        # gy, zero-bordered by the kernel's reach less the padding, correlated with the flipped
        # kernel (as conv2d_backward_input's stride-1 case)
        wf = np.empty_like(w)
        for ci in range(c):
            for ki in range(kh):
                for kj in range(kw):
                    wf[ci, 0, ki, kj] = w[ci, 0, kh - 1 - ki, kw - 1 - kj]
        return _depthwise_s1(gy, wf, np.zeros(1, dtype=gy.dtype), False, qh, qw, dh, dw, h, wd)
    gx = np.zeros((n, c, h, wd), dtype=gy.dtype)
    gf, xf = gy.reshape(gy.size), gx.reshape(gx.size)
    for p in range(n * c):
        ci = p % c
        gp = gf[p * oh * ow:(p + 1) * oh * ow]
        for ki in range(kh):
            ilo, ihi = _span(oh, sh, ph, ki * dh, h)
            for kj in range(kw):
                wv = w[ci, 0, ki, kj]
                jlo, jhi = _span(ow, sw, pw, kj * dw, wd)
                off = kj * dw - pw
                for i in range(ilo, ihi):
                    g = gp[i * ow + jlo:i * ow + jhi]
                    dst = xf[(p * h + i * sh - ph + ki * dh) * wd + jlo * sw + off:]
                    if sw == 1:
                        for j in range(jhi - jlo):
                            dst[j] += wv * g[j]
                    else:
                        for j in range(jhi - jlo):
                            dst[j * sw] += wv * g[j]
    return gx


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def depthwise_backward_weight(gy, x, sh, sw, ph, pw, dh, dw, kh, kw):
    if sh == 1 and sw == 1:
        return _depthwise_weight_s1(gy, x, ph, pw, dh, dw, kh, kw)
    n, c, h, wd = x.shape
    oh, ow = gy.shape[2], gy.shape[3]
    acc = np.zeros((c, kh, kw))  # float64 sums
    gf, xf = gy.reshape(gy.size), x.reshape(x.size)
    for p in range(n * c):
        ci = p % c
        gp = gf[p * oh * ow:(p + 1) * oh * ow]
        for ki in range(kh):
            ilo, ihi = _span(oh, sh, ph, ki * dh, h)
            for kj in range(kw):
                jlo, jhi = _span(ow, sw, pw, kj * dw, wd)
                off = kj * dw - pw
                s = 0.0
                for i in range(ilo, ihi):
                    g = gp[i * ow + jlo:i * ow + jhi]
                    src = xf[(p * h + i * sh - ph + ki * dh) * wd + jlo * sw + off:]
                    if sw == 1:
                        for j in range(jhi - jlo):
                            s += g[j] * src[j]
                    else:
                        for j in range(jhi - jlo):
                            s += g[j] * src[j * sw]
                acc[ci, ki, kj] += s
    return acc.astype(gy.dtype).reshape(c, 1, kh, kw)

