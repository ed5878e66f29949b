"""Convolution on the CPU: im2col/col2im in numba, the matrix product through numpy's BLAS.

x (N, C, H, W) becomes cols (C*KH*KW, N*OH*OW), one row per (channel, kernel tap) and one column
per output position, so that the whole batch is one GEMM: (O, C*KH*KW) @ cols. Grouped
convolutions are a batched GEMM over groups. Depthwise convolution (one input channel per group,
one output per input) runs as direct loops instead: its GEMM would have an inner dimension of
KH*KW, too small for BLAS to pay.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(cache=True, inline="always")
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


@njit(cache=True, parallel=True)
def im2col(x, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, cols):
    """x (N, C, H, W) -> cols (C*KH*KW, N*OH*OW), written into `cols`; taps that fall in the
    padding are 0."""
    n, c, h, w = x.shape
    ll = oh * ow
    for r in prange(c * kh * kw):
        ci = r // (kh * kw)
        ki = (r // kw) % kh
        kj = r % kw
        jlo, jhi = _span(ow, sw, pw, kj * dw, w)
        for b in range(n):
            for i in range(oh):
                hi = i * sh - ph + ki * dh
                base = b * ll + i * ow
                if hi < 0 or hi >= h:
                    for j in range(ow):
                        cols[r, base + j] = 0
                    continue
                for j in range(jlo):
                    cols[r, base + j] = 0
                for j in range(jlo, jhi):
                    cols[r, base + j] = x[b, ci, hi, j * sw - pw + kj * dw]
                for j in range(jhi, ow):
                    cols[r, base + j] = 0
    return cols


@njit(cache=True, parallel=True)
def col2im(cols, n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow):
    """The adjoint of im2col: cols (C*KH*KW, N*OH*OW) summed back into x (N, C, H, W)."""
    ll = oh * ow
    x = np.zeros((n, c, h, w), dtype=cols.dtype)
    for bc in prange(n * c):  # each (sample, channel) plane is written by one thread only
        b = bc // c
        ci = bc % c
        for ki in range(kh):
            for kj in range(kw):
                r = (ci * kh + ki) * kw + kj
                jlo, jhi = _span(ow, sw, pw, kj * dw, w)
                for i in range(oh):
                    hi = i * sh - ph + ki * dh
                    if hi < 0 or hi >= h:
                        continue
                    base = b * ll + i * ow
                    for j in range(jlo, jhi):
                        x[b, ci, hi, j * sw - pw + kj * dw] += cols[r, base + j]
    return x


@njit(cache=True, parallel=True)
def _onl_to_nol(y, n, ll, bias, has_bias):
    """(O, N*L) -> (N, O, L), adding bias[o] when has_bias."""
    o = y.shape[0]
    out = np.empty((n, o, ll), dtype=y.dtype)
    for bo in prange(n * o):
        b = bo // o
        oc = bo % o
        add = bias[oc] if has_bias else 0.0
        for k in range(ll):
            out[b, oc, k] = y[oc, b * ll + k] + add
    return out


@njit(cache=True, parallel=True)
def _nol_to_onl(g):
    """(N, O, L) -> (O, N*L)."""
    n, o, ll = g.shape
    out = np.empty((o, n * ll), dtype=g.dtype)
    for bo in prange(n * o):
        b = bo // o
        oc = bo % o
        for k in range(ll):
            out[oc, b * ll + k] = g[b, oc, k]
    return out


# ---- depthwise: direct loops --------------------------------------------------------------
@njit(cache=True, parallel=True)
def _depthwise_forward(x, w, bias, has_bias, sh, sw, ph, pw, dh, dw, oh, ow):
    n, c, h, wd = x.shape
    kh, kw = w.shape[2], w.shape[3]
    y = np.zeros((n, c, oh, ow), dtype=x.dtype)
    for bc in prange(n * c):
        b = bc // c
        ci = bc % c
        if has_bias:
            y[b, ci] += bias[ci]
        for ki in range(kh):
            for kj in range(kw):
                wv = w[ci, 0, ki, kj]
                jlo, jhi = _span(ow, sw, pw, kj * dw, wd)
                for i in range(oh):
                    hi = i * sh - ph + ki * dh
                    if hi < 0 or hi >= h:
                        continue
                    for j in range(jlo, jhi):
                        y[b, ci, i, j] += wv * x[b, ci, hi, j * sw - pw + kj * dw]
    return y


@njit(cache=True, parallel=True)
def _depthwise_backward_input(gy, w, sh, sw, ph, pw, dh, dw, h, wd):
    n, c, oh, ow = gy.shape
    kh, kw = w.shape[2], w.shape[3]
    gx = np.zeros((n, c, h, wd), dtype=gy.dtype)
    for bc in prange(n * c):
        b = bc // c
        ci = bc % c
        for ki in range(kh):
            for kj in range(kw):
                wv = w[ci, 0, ki, kj]
                jlo, jhi = _span(ow, sw, pw, kj * dw, wd)
                for i in range(oh):
                    hi = i * sh - ph + ki * dh
                    if hi < 0 or hi >= h:
                        continue
                    for j in range(jlo, jhi):
                        gx[b, ci, hi, j * sw - pw + kj * dw] += wv * gy[b, ci, i, j]
    return gx


@njit(cache=True, parallel=True)
def _depthwise_backward_weight(gy, x, sh, sw, ph, pw, dh, dw, kh, kw):
    n, c, h, wd = x.shape
    oh, ow = gy.shape[2], gy.shape[3]
    gw = np.zeros((c, 1, kh, kw), dtype=gy.dtype)
    for ci in prange(c):
        for ki in range(kh):
            for kj in range(kw):
                jlo, jhi = _span(ow, sw, pw, kj * dw, wd)
                acc = 0.0
                for b in range(n):
                    for i in range(oh):
                        hi = i * sh - ph + ki * dh
                        if hi < 0 or hi >= h:
                            continue
                        for j in range(jlo, jhi):
                            acc += gy[b, ci, i, j] * x[b, ci, hi, j * sw - pw + kj * dw]
                gw[ci, 0, ki, kj] = acc
    return gw


# NOTE: im2col buffers are tens of MB; a fresh np.empty each call costs a page fault per 4 KB
# (as much time as the copy itself), so they are reused, one per role and dtype.
_workspace: dict = {}


def _buffer(role: str, shape: tuple, dtype):
    size = int(np.prod(shape))
    key = (role, np.dtype(dtype))
    buf = _workspace.get(key)
    if buf is None or buf.size < size:
        buf = _workspace[key] = np.empty(size, dtype=dtype)
    return buf[:size].reshape(shape)


def _im2col(x, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow):
    cols = _buffer("cols", (x.shape[1] * kh * kw, x.shape[0] * oh * ow), x.dtype)
    return im2col(x, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, cols)


def _is_depthwise(c: int, o: int, groups: int) -> bool:
    return groups > 1 and groups == c == o


def _gemm_groups(a, b, groups: int):
    """One product per group: a (G*Mg, Kg) and b (G*Kg, P) -> (G*Mg, P)."""
    if groups == 1:
        return a @ b
    mg, kg = a.shape[0] // groups, a.shape[1]
    return np.matmul(a.reshape(groups, mg, kg), b.reshape(groups, kg, -1)).reshape(groups * mg, -1)


# ---- the table's conv kernels --------------------------------------------------------------
def conv2d_forward(x, w, b, sh, sw, ph, pw, dh, dw, groups, oh, ow):
    n, c = x.shape[:2]
    o, cg, kh, kw = w.shape
    has_bias = b is not None
    bias = b if has_bias else np.zeros(1, dtype=x.dtype)
    if _is_depthwise(c, o, groups):
        return _depthwise_forward(x, w, bias, has_bias, sh, sw, ph, pw, dh, dw, oh, ow)
    cols = _im2col(x, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow)
    y = _gemm_groups(w.reshape(o, cg * kh * kw), cols, groups)
    return _onl_to_nol(y, n, oh * ow, bias, has_bias).reshape(n, o, oh, ow)


def conv2d_backward_input(gy, w, sh, sw, ph, pw, dh, dw, groups, h, wd):
    n, o, oh, ow = gy.shape
    _, cg, kh, kw = w.shape
    c = cg * groups
    if _is_depthwise(c, o, groups):
        return _depthwise_backward_input(gy, w, sh, sw, ph, pw, dh, dw, h, wd)
    g = _nol_to_onl(gy.reshape(n, o, oh * ow))
    og = o // groups
    # per group: w_g^T (Cg*KK, Og) @ g_g (Og, N*L)
    wt = w.reshape(groups, og, cg * kh * kw).transpose(0, 2, 1)
    gcols = _buffer("gcols", (groups, cg * kh * kw, n * oh * ow), gy.dtype)
    np.matmul(wt, g.reshape(groups, og, -1), out=gcols)
    gcols = gcols.reshape(c * kh * kw, -1)
    return col2im(gcols, n, c, h, wd, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow)


def conv2d_backward_weight(gy, x, sh, sw, ph, pw, dh, dw, groups, kh, kw):
    n, c = x.shape[:2]
    o, oh, ow = gy.shape[1:]
    if _is_depthwise(c, o, groups):
        return _depthwise_backward_weight(gy, x, sh, sw, ph, pw, dh, dw, kh, kw)
    cg, og = c // groups, o // groups
    g = _nol_to_onl(gy.reshape(n, o, oh * ow))
    cols = _im2col(x, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow)
    # per group: g_g (Og, N*L) @ cols_g^T (N*L, Cg*KK)
    gw = np.matmul(g.reshape(groups, og, -1), cols.reshape(groups, cg * kh * kw, -1).transpose(0, 2, 1))
    return gw.reshape(o, cg, kh, kw)
