"""im2col convolution: each chunk of samples is one GEMM, W (O, C*KH*KW) @ cols.

A chunk x[b0:b1] (N_c, C, H, W) becomes cols (C*KH*KW, N_c*OH*OW), one row per (channel, kernel
tap) and one column per output position, so that each chunk is one large product; grouped
convolutions are a batched product over groups. cols is copied from a zero-bordered copy of the
chunk, so the copy loops never test for padding. The input gradient is W^T @ gy summed back by
col2im (the adjoint of im2col), the weight gradient cols @ gy^T summed over chunks.

A weight gradient with few entries (groups 1) is cols @ gy^T by the micro-GEMM _add_abt instead
of BLAS (backward_weight_small), also where the forward lays positions out as rows.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from .abt import _abt_chunks, _add_abt
from .workspace import _buffer, _chunks, _padded_buffer, _sum, run_chunks


@njit(cache=True, nogil=True)
def im2col(xp, kh, kw, sh, sw, dh, dw, oh, ow, cols, sample_stride, row_stride):
    """Padded xp (N, C, HP, WP) -> cols, given flat: the (tap r, sample b) row of OH*OW entries
    starts at b * sample_stride + r * row_stride, r = (c * KH + ki) * KW + kj. Rows (C*KH*KW,
    N*OH*OW) are sample_stride OH*OW, row_stride N*OH*OW; (N, C*KH*KW, OH*OW) the reverse."""
    n, c, hp, wp = xp.shape
    xf = xp.reshape(xp.size)
    # NOTE: every inner loop copies one output row from one padded input row, indices counted
    # from 0 in 1-D slices, so that LLVM drops numba's negative-index check and vectorizes
    for b in range(n):
        for ci in range(c):
            plane = xf[(b * c + ci) * hp * wp:(b * c + ci + 1) * hp * wp]
            for ki in range(kh):
                for kj in range(kw):
                    r = (ci * kh + ki) * kw + kj
                    dst = cols[b * sample_stride + r * row_stride:]
                    for i in range(oh):
                        d = dst[i * ow:(i + 1) * ow]
                        s = plane[(i * sh + ki * dh) * wp + kj * dw:]
                        if sw == 1:
                            for j in range(ow):
                                d[j] = s[j]
                        elif sw == 2:  # a constant stride, so LLVM vectorizes the gather
                            for j in range(ow):
                                d[j] = s[2 * j]
                        else:
                            for j in range(ow):
                                d[j] = s[j * sw]
    return cols


@njit(cache=True, nogil=True)
def col2im(cols, kh, kw, sh, sw, dh, dw, oh, ow, xp):
    """The adjoint of im2col for cols (N, C*KH*KW, OH*OW): summed into the padded xp
    (N, C, HP, WP), which is zeroed first."""
    n, c, hp, wp = xp.shape
    ckk, ll = c * kh * kw, oh * ow
    xf = xp.reshape(xp.size)
    cf = cols.reshape(cols.size)
    for t in range(xp.size):
        xf[t] = 0
    for b in range(n):
        for ci in range(c):
            plane = xf[(b * c + ci) * hp * wp:(b * c + ci + 1) * hp * wp]
            for ki in range(kh):
                for kj in range(kw):
                    r = (ci * kh + ki) * kw + kj
                    src = cf[(b * ckk + r) * ll:(b * ckk + r + 1) * ll]
                    for i in range(oh):
                        s = src[i * ow:(i + 1) * ow]
                        d = plane[(i * sh + ki * dh) * wp + kj * dw:]
                        if sw == 1:
                            for j in range(ow):
                                d[j] += s[j]
                        elif sw == 2:
                            for j in range(ow):
                                d[2 * j] += s[j]
                        else:
                            for j in range(ow):
                                d[j * sw] += s[j]
    return xp


@njit(cache=True, nogil=True)
def _onl_to_nol(y, bias, has_bias, out):
    """y (O, N*L) -> out (N, O, L), adding bias[o] when has_bias (bias is then (1,) zeros)."""
    n, o, ll = out.shape
    for b in range(n):
        for oc in range(o):
            add = bias[oc] if has_bias else bias[0]  # in y's dtype
            src = y[oc, b * ll:(b + 1) * ll]
            dst = out[b, oc]
            for k in range(ll):
                dst[k] = src[k] + add
    return out


@njit(cache=True, nogil=True)
def _nol_to_onl(g, out):
    """g (N, O, L) -> out (O, N*L)."""
    n, o, ll = g.shape
    for b in range(n):
        for oc in range(o):
            src = g[b, oc]
            dst = out[oc, b * ll:(b + 1) * ll]
            for k in range(ll):
                dst[k] = src[k]
    return out


def _cols(x, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, by_sample: bool):
    """im2col of a chunk x (N_c, C, H, W): (N_c, C*KH*KW, OH*OW) when by_sample, else
    (C*KH*KW, N_c*OH*OW). A 1x1 stride-1 unpadded convolution needs no copy by sample."""
    n, c = x.shape[:2]
    ll, ckk = oh * ow, c * kh * kw
    if by_sample and kh == kw == 1 and sh == sw == 1 and ph == pw == 0:
        return x.reshape(n, c, ll)
    xp = x
    if ph or pw:
        h, w = x.shape[2:]
        xp = _padded_buffer("nchw", (n, c, h + 2 * ph, w + 2 * pw), ph, pw, x.dtype)
        xp[:, :, ph:ph + h, pw:pw + w] = x
    shape = (n, ckk, ll) if by_sample else (ckk, n * ll)
    cols = _buffer("cols", shape, x.dtype)
    im2col(xp, kh, kw, sh, sw, dh, dw, oh, ow, cols.reshape(cols.size),
           ckk * ll if by_sample else ll, ll if by_sample else n * ll)
    return cols


def _matmul_groups(a, b, groups: int, out):
    """One product per group: a (G*Mg, Kg) and b (G*Kg, P) -> out (G*Mg, P)."""
    if groups == 1:
        return np.matmul(a, b, out=out)
    mg, kg = a.shape[0] // groups, a.shape[1]
    np.matmul(a.reshape(groups, mg, kg), b.reshape(groups, kg, -1),
              out=out.reshape(groups, mg, -1))
    return out


def forward(x, w, bias, has_bias, sh, sw, ph, pw, dh, dw, groups, oh, ow):
    """x (N, C, H, W), w (O, C/groups, KH, KW), bias (O,) (or (1,) zeros when not has_bias)
    -> y (N, O, OH, OW)."""
    n, c = x.shape[:2]
    o, cg, kh, kw = w.shape
    ll, kg = oh * ow, cg * kh * kw
    y = np.empty((n, o, ll), dtype=x.dtype)
    w2 = w.reshape(o, kg)

    def chunk(b0, b1):
        cols = _cols(x[b0:b1], kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, by_sample=False)
        yc = _matmul_groups(w2, cols, groups, _buffer("y", (o, (b1 - b0) * ll), x.dtype))
        _onl_to_nol(yc, bias, has_bias, y[b0:b1])

    run_chunks(chunk, _chunks(n, c * kh * kw * ll))
    return y.reshape(n, o, oh, ow)


def backward_input(gy, w, sh, sw, ph, pw, dh, dw, groups, h, wd):
    """gy (N, O, OH, OW), w (O, C/groups, KH, KW) -> gx (N, C, H, W): per chunk and group
    w_g^T @ gy_g, summed into the input by col2im."""
    n, o, oh, ow = gy.shape
    _, cg, kh, kw = w.shape
    c = cg * groups
    og, ll, kg = o // groups, oh * ow, cg * kh * kw
    g3 = gy.reshape(n, o, ll)
    gx = np.empty((n, c, h, wd), dtype=gy.dtype)
    wt = w.reshape(groups, og, kg).transpose(0, 2, 1)  # per group w_g^T (Cg*KK, Og)

    def chunk(b0, b1):
        nc = b1 - b0
        gcols = _buffer("cols", (nc, c * kh * kw, ll), gy.dtype)
        if groups == 1:
            np.matmul(wt[0], g3[b0:b1], out=gcols)
        else:
            np.matmul(wt, g3[b0:b1].reshape(nc, groups, og, ll),
                      out=gcols.reshape(nc, groups, kg, ll))
        gxp = _buffer("pad", (nc, c, h + 2 * ph, wd + 2 * pw), gy.dtype)
        col2im(gcols, kh, kw, sh, sw, dh, dw, oh, ow, gxp)
        gx[b0:b1] = gxp[:, :, ph:ph + h, pw:pw + wd]

    run_chunks(chunk, _chunks(n, c * kh * kw * ll))
    return gx


def backward_weight(gy, x, sh, sw, ph, pw, dh, dw, groups, kh, kw):
    """gy (N, O, OH, OW), x (N, C, H, W) -> gw (O, C/groups, KH, KW): per group
    cols_g (Cg*KK, N_c*L) @ g_g^T (N_c*L, Og), summed over chunks.

    NOTE: this order suits OpenBLAS better than g_g @ cols_g^T when Og is small (16, 32)."""
    n, c = x.shape[:2]
    o, oh, ow = gy.shape[1:]
    cg, og, ll, ckk = c // groups, o // groups, oh * ow, c * kh * kw
    g3 = gy.reshape(n, o, ll)

    def chunk(b0, b1):
        g = _nol_to_onl(g3[b0:b1], _buffer("g", (o, (b1 - b0) * ll), gy.dtype))
        cols = _cols(x[b0:b1], kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, by_sample=False)
        if groups == 1:
            return np.matmul(cols, g.T)[None]  # (1, C*KK, O)
        return np.matmul(cols.reshape(groups, cg * kh * kw, -1),  # (groups, Cg*KK, Og)
                         g.reshape(groups, og, -1).transpose(0, 2, 1))

    part = _sum(run_chunks(chunk, _chunks(n, ckk * ll)))
    return np.ascontiguousarray(part.transpose(0, 2, 1)).reshape(o, cg, kh, kw)


def backward_weight_small(gy, x, sh, sw, ph, pw, dh, dw, kh, kw):
    """A small weight gradient (groups 1): gy (N, O, OH, OW), x (N, C, H, W) -> gw (O, C, KH,
    KW), cols (CKK, P) @ g^T (P, O) summed by _add_abt."""
    n, c = x.shape[:2]
    o, oh, ow = gy.shape[1:]
    ll, ckk = oh * ow, c * kh * kw
    g3 = gy.reshape(n, o, ll)
    zero = gy.dtype.type(0)

    def chunk(b0, b1):
        p = (b1 - b0) * ll
        g = _nol_to_onl(g3[b0:b1], _buffer("g", (o, p), gy.dtype))
        cols = _cols(x[b0:b1], kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, by_sample=False)
        return _add_abt(cols, 0, g, p, zero, np.zeros((ckk, o), dtype=gy.dtype))

    acc = _sum(run_chunks(chunk, _abt_chunks(n, (ckk + o) * ll)))
    return np.ascontiguousarray(acc.T).reshape(o, c, kh, kw)
