"""Pooling on the CPU: one numba loop nest per kernel, (sample, channel) plane by plane.

Max pooling records the flat index (into H*W) of each window's maximum, so its backward is a
scatter that never compares values again. The loops are serial (see conv/__init__.py for why); the
ResNet/VGG case, max pooling 2x2 with stride 2 and no padding, has its own unrolled loop.
"""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def max_pool2d_forward(x, kh, kw, sh, sw, ph, pw, oh, ow):
    n, c, h, w = x.shape
    y = np.empty((n, c, oh, ow), dtype=x.dtype)
    arg = np.empty((n, c, oh, ow), dtype=np.int64)
    # (ceil_mode can add a last window that hangs over the bottom or right edge)
    fast = kh == 2 and kw == 2 and sh == 2 and sw == 2 and ph == 0 and pw == 0 \
        and 2 * oh <= h and 2 * ow <= w
    for b in range(n):
        for ci in range(c):
            for i in range(oh):
                h0 = i * sh - ph
                if fast:  # the 2x2 window's four values, the first maximum wins (as PyTorch)
                    for j in range(ow):
                        k = h0 * w + 2 * j
                        best = x[b, ci, h0, 2 * j]
                        v = x[b, ci, h0, 2 * j + 1]
                        if v > best:
                            best = v
                            k = h0 * w + 2 * j + 1
                        v = x[b, ci, h0 + 1, 2 * j]
                        if v > best:
                            best = v
                            k = (h0 + 1) * w + 2 * j
                        v = x[b, ci, h0 + 1, 2 * j + 1]
                        if v > best:
                            best = v
                            k = (h0 + 1) * w + 2 * j + 1
                        y[b, ci, i, j] = best
                        arg[b, ci, i, j] = k
                    continue
                for j in range(ow):
                    w0 = j * sw - pw
                    best = -np.inf
                    where = -1
                    for ki in range(max(h0, 0), min(h0 + kh, h)):
                        for kj in range(max(w0, 0), min(w0 + kw, w)):
                            v = x[b, ci, ki, kj]
                            if v > best or where < 0:  # ties keep the first, as PyTorch
                                best = v
                                where = ki * w + kj
                    y[b, ci, i, j] = best
                    arg[b, ci, i, j] = where
    return y, arg


def max_pool2d_backward(gy, arg, h, w):
    # gx allocated here owns its memory, so autograd need not copy it into a leaf's .grad
    gx = np.empty(gy.shape[:2] + (h, w), dtype=gy.dtype)
    _max_pool2d_backward(gy, arg, gx.reshape(gy.shape[0], gy.shape[1], h * w))
    return gx


@njit(cache=True, nogil=True)
def _max_pool2d_backward(gy, arg, gx):
    n, c, oh, ow = gy.shape
    for b in range(n):
        for ci in range(c):
            row = gx[b, ci]
            for k in range(row.size):
                row[k] = 0
            for i in range(oh):
                for j in range(ow):
                    row[arg[b, ci, i, j]] += gy[b, ci, i, j]
    return gx


@njit(cache=True, nogil=True)
def _avg_divisor(h0, w0, kh, kw, ph, pw, h, w, count_pad):
    """How many values the window at (h0, w0) averages, as PyTorch: with count_pad the padding
    counts but not the part of a ceil_mode window past the padded input; else only x's own."""
    if count_pad:
        return (min(h0 + kh, h + ph) - h0) * (min(w0 + kw, w + pw) - w0)
    return (min(h0 + kh, h) - max(h0, 0)) * (min(w0 + kw, w) - max(w0, 0))


@njit(cache=True, nogil=True)
def avg_pool2d_forward(x, kh, kw, sh, sw, ph, pw, oh, ow, count_pad):
    n, c, h, w = x.shape
    y = np.empty((n, c, oh, ow), dtype=x.dtype)
    for b in range(n):
        for ci in range(c):
            for i in range(oh):
                h0 = i * sh - ph
                for j in range(ow):
                    w0 = j * sw - pw
                    acc = 0.0
                    for ki in range(max(h0, 0), min(h0 + kh, h)):
                        for kj in range(max(w0, 0), min(w0 + kw, w)):
                            acc += x[b, ci, ki, kj]
                    y[b, ci, i, j] = acc / _avg_divisor(h0, w0, kh, kw, ph, pw, h, w, count_pad)
    return y


@njit(cache=True, nogil=True)
def avg_pool2d_backward(gy, kh, kw, sh, sw, ph, pw, h, w, count_pad):
    n, c, oh, ow = gy.shape
    gx = np.zeros((n, c, h, w), dtype=gy.dtype)
    for b in range(n):
        for ci in range(c):
            for i in range(oh):
                h0 = i * sh - ph
                for j in range(ow):
                    w0 = j * sw - pw
                    g = gy[b, ci, i, j] / _avg_divisor(h0, w0, kh, kw, ph, pw, h, w, count_pad)
                    for ki in range(max(h0, 0), min(h0 + kh, h)):
                        for kj in range(max(w0, 0), min(w0 + kw, w)):
                            gx[b, ci, ki, kj] += g
    return gx


@njit(cache=True, nogil=True)
def adaptive_avg_pool2d_forward(x, oh, ow):
    n, c, h, w = x.shape
    y = np.empty((n, c, oh, ow), dtype=x.dtype)
    for b in range(n):
        for ci in range(c):
            for i in range(oh):
                h0 = (i * h) // oh
                h1 = ((i + 1) * h + oh - 1) // oh
                for j in range(ow):
                    w0 = (j * w) // ow
                    w1 = ((j + 1) * w + ow - 1) // ow
                    acc = 0.0
                    for ki in range(h0, h1):
                        for kj in range(w0, w1):
                            acc += x[b, ci, ki, kj]
                    y[b, ci, i, j] = acc / ((h1 - h0) * (w1 - w0))
    return y


@njit(cache=True, nogil=True)
def adaptive_avg_pool2d_backward(gy, h, w):
    n, c, oh, ow = gy.shape
    gx = np.zeros((n, c, h, w), dtype=gy.dtype)
    for b in range(n):
        for ci in range(c):
            for i in range(oh):
                h0 = (i * h) // oh
                h1 = ((i + 1) * h + oh - 1) // oh
                for j in range(ow):
                    w0 = (j * w) // ow
                    w1 = ((j + 1) * w + ow - 1) // ow
                    g = gy[b, ci, i, j] / ((h1 - h0) * (w1 - w0))
                    for ki in range(h0, h1):
                        for kj in range(w0, w1):
                            gx[b, ci, ki, kj] += g
    return gx
