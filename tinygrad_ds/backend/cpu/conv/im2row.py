"""im2row convolution: positions as rows, (N_c*OH*OW, KH*KW*C) @ W^T, from a channels-last copy.

The matrix of im2col laid out the other way: rows (N_c*OH*OW, KH*KW*C), one row per output
position, its taps in (ki, kj, c) order, copied from a zero-bordered channels-last copy of the
chunk. The products are rows @ W^T (forward), gy^T @ W summed back by row2im (input gradient)
and rows^T @ gy^T (weight gradient). With many channels this pays twice: OpenBLAS runs faster
with M = N_c*OH*OW large, and each copy moves KW*C adjacent values where im2col moves OW (with a
column stride, im2col gathers; im2row still copies runs). With few channels and stride 1 the
channels-last transpose and the short runs cost more than the product gains.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from .workspace import _buffer, _chunks, _padded_nhwc, _sum, run_chunks


@njit(cache=True, nogil=True)
def im2row(xh, kh, kw, sh, sw, dh, dw, oh, ow, rows):
    """Padded channels-last xh (N, HP, WP, C) -> rows (N*OH*OW, KH*KW*C): one row per output
    position, its taps in (ki, kj, c) order."""
    n, hp, wp, c = xh.shape
    k = kh * kw * c
    xf = xh.reshape(xh.size)
    rf = rows.reshape(rows.size)
    # NOTE: with stride-1 undilated columns the KW taps of one kernel row are adjacent in xh:
    # one copy of KW*C values
    run = kw * c if dw == 1 else c
    nrun = 1 if dw == 1 else kw
    for b in range(n):
        for i in range(oh):
            for j in range(ow):
                dst = rf[((b * oh + i) * ow + j) * k:]
                for ki in range(kh):
                    base = ((b * hp + i * sh + ki * dh) * wp + j * sw) * c
                    for q in range(nrun):
                        s = xf[base + q * dw * c:]
                        d = dst[(ki * nrun + q) * run:]
                        for t in range(run):
                            d[t] = s[t]
    return rows


@njit(cache=True, nogil=True)
def row2im(rows, kh, kw, sh, sw, dh, dw, oh, ow, xh):
    """The adjoint of im2row: rows (N*OH*OW, KH*KW*C) summed into the padded channels-last xh
    (N, HP, WP, C), which is zeroed first."""
    n, hp, wp, c = xh.shape
    k = kh * kw * c
    xf = xh.reshape(xh.size)
    rf = rows.reshape(rows.size)
    for t in range(xh.size):
        xf[t] = 0
    run = kw * c if dw == 1 else c
    nrun = 1 if dw == 1 else kw
    for b in range(n):
        for i in range(oh):
            for j in range(ow):
                src = rf[((b * oh + i) * ow + j) * k:]
                for ki in range(kh):
                    base = ((b * hp + i * sh + ki * dh) * wp + j * sw) * c
                    for q in range(nrun):
                        d = xf[base + q * dw * c:]
                        s = src[(ki * nrun + q) * run:]
                        for t in range(run):
                            d[t] += s[t]
    return xh


@njit(cache=True, nogil=True)
def _rows_to_nol(yt, bias, has_bias, out):
    """yt (N*L, O) -> out (N, O, L), adding bias[o] when has_bias."""
    n, o, ll = out.shape
    for b in range(n):
        for oc in range(o):
            add = bias[oc] if has_bias else bias[0]
            dst = out[b, oc]
            for t in range(ll):
                dst[t] = yt[b * ll + t, oc] + add
    return out


@njit(cache=True, nogil=True)
def _nol_to_rows(g, out):
    """g (N, O, L) -> out (N*L, O)."""
    n, o, ll = g.shape
    for b in range(n):
        for oc in range(o):
            src = g[b, oc]
            for t in range(ll):
                out[b * ll + t, oc] = src[t]
    return out


def _rows(x, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow):
    """im2row of a chunk x (N_c, C, H, W): (N_c*OH*OW, KH*KW*C)."""
    n, c = x.shape[:2]
    xh = _padded_nhwc(x, ph, pw)
    rows = _buffer("cols", (n * oh * ow, kh * kw * c), x.dtype)
    return im2row(xh, kh, kw, sh, sw, dh, dw, oh, ow, rows)


def forward(x, w, bias, has_bias, sh, sw, ph, pw, dh, dw, oh, ow):
    """x (N, C, H, W), w (O, C, KH, KW), bias (O,) (or (1,) zeros when not has_bias)
    -> y (N, O, OH, OW): per chunk rows (N_c*L, KK*C) @ W^T (KK*C, O)."""
    n, c = x.shape[:2]
    o, _, kh, kw = w.shape
    ll = oh * ow
    y = np.empty((n, o, ll), dtype=x.dtype)
    w2t = np.ascontiguousarray(w.transpose(2, 3, 1, 0)).reshape(kh * kw * c, o)

    def chunk(b0, b1):
        rows = _rows(x[b0:b1], kh, kw, sh, sw, ph, pw, dh, dw, oh, ow)
        yt = np.matmul(rows, w2t, out=_buffer("y", (rows.shape[0], o), x.dtype))
        _rows_to_nol(yt, bias, has_bias, y[b0:b1])

    run_chunks(chunk, _chunks(n, c * kh * kw * ll))
    return y.reshape(n, o, oh, ow)


def backward_input(gy, w, sh, sw, ph, pw, dh, dw, h, wd):
    """gy (N, O, OH, OW), w (O, C, KH, KW) -> gx (N, C, H, W): per chunk gy^T (N_c*L, O) @
    W (O, KK*C), summed into the input by row2im."""
    n, o, oh, ow = gy.shape
    _, c, kh, kw = w.shape
    ll = oh * ow
    g3 = gy.reshape(n, o, ll)
    gx = np.empty((n, c, h, wd), dtype=gy.dtype)
    w2 = np.ascontiguousarray(w.transpose(0, 2, 3, 1)).reshape(o, kh * kw * c)

    def chunk(b0, b1):
        nc = b1 - b0
        gt = _nol_to_rows(g3[b0:b1], _buffer("g", (nc * ll, o), gy.dtype))
        grows = np.matmul(gt, w2, out=_buffer("cols", (nc * ll, kh * kw * c), gy.dtype))
        gxh = _buffer("pad", (nc, h + 2 * ph, wd + 2 * pw, c), gy.dtype)
        row2im(grows, kh, kw, sh, sw, dh, dw, oh, ow, gxh)
        gx[b0:b1] = gxh[:, ph:ph + h, pw:pw + wd, :].transpose(0, 3, 1, 2)

    run_chunks(chunk, _chunks(n, c * kh * kw * ll))
    return gx


def backward_weight(gy, x, sh, sw, ph, pw, dh, dw, kh, kw):
    """gy (N, O, OH, OW), x (N, C, H, W) -> gw (O, C, KH, KW): rows^T (KK*C, N_c*L) @ gy^T
    (N_c*L, O), summed over chunks."""
    n, c = x.shape[:2]
    o, oh, ow = gy.shape[1:]
    ll, ckk = oh * ow, c * kh * kw
    g3 = gy.reshape(n, o, ll)

    def chunk(b0, b1):
        rows = _rows(x[b0:b1], kh, kw, sh, sw, ph, pw, dh, dw, oh, ow)
        gt = _nol_to_rows(g3[b0:b1], _buffer("g", (rows.shape[0], o), gy.dtype))
        return np.matmul(rows.T, gt)  # (KK*C, O)

    acc = _sum(run_chunks(chunk, _chunks(n, ckk * ll)))
    return np.ascontiguousarray(acc.reshape(kh, kw, c, o).transpose(3, 2, 0, 1))
