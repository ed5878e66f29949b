"""Depthwise convolution on the CPU (one input channel per group, one output per input): direct
loops, since as a GEMM its inner dimension would be only KH*KW, too small for BLAS to pay.
conv.py dispatches here; arguments as conv2d_forward/backward_* there."""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
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


@njit(cache=True)
def depthwise_forward(x, w, bias, has_bias, sh, sw, ph, pw, dh, dw, oh, ow):
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


@njit(cache=True)
def depthwise_backward_input(gy, w, sh, sw, ph, pw, dh, dw, h, wd):
    n, c, oh, ow = gy.shape
    kh, kw = w.shape[2], w.shape[3]
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


@njit(cache=True, fastmath={"reassoc", "contract"})
def depthwise_backward_weight(gy, x, sh, sw, ph, pw, dh, dw, kh, kw):
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
    gw = np.empty((c, 1, kh, kw), dtype=gy.dtype)
    for ci in range(c):
        for ki in range(kh):
            for kj in range(kw):
                gw[ci, 0, ki, kj] = acc[ci, ki, kj]
    return gw

