"""Shifted-copy convolution for 3x3 stride-1 'same' convolutions: three products with K = 3*C.

Instead of im2col's 9*C rows, cols holds only the 3 column shifts (kj) of each channel, on a
grid of H+1 rows per sample (its H rows and one row of zeros, the border between it and the
next sample), so that kernel row ki reads the same matrix ki*W columns on. One product W (3*O,
3C) @ cols gives the three row-products at once, and _sum3_to_nol adds them at their offsets.
It copies a third of what im2col and im2row copy, in runs of W, and needs no channels-last
transpose; the grid's row of zeros adds 1/H to the positions (3% at 32 rows, 12% at 8), which is
why small images go by rows instead (see the dispatch in __init__.py).

The weight gradient is the adjoint: per kernel row ki, cols read ki*W columns on (3C, P) @ gy
on the same grid^T (P, O), its rows of zeros between samples. The input gradient needs no code
here: at stride 1 it is a convolution of gy with the flipped kernel, which comes back here.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from .abt import _abt_chunks, _add_abt
from .workspace import _buffer, _chunks, _sum, run_chunks


@njit(cache=True, nogil=True)
def _shift3_cols(x, cols):
    """x (N, C, H, W) -> cols (C*3, (N*(H+1)+1)*W) for a 3x3 stride-1 'same' convolution: row
    (c, kj) is a grid of N*(H+1)+1 rows of W values, a row of zeros, then per sample H rows
    x[b, c, i, j+kj-1] (zero outside x) and a row of zeros, shared as the next sample's top
    border. Kernel row ki then reads the columns shifted by ki*W (see forward)."""
    n, c, h, w = x.shape
    sp = (h + 1) * w
    # NOTE: each input row is read once and written to its 3 shifts (samples outermost, so x
    # is read in order), not read once per shift
    for b in range(n + 1):
        base = b * sp
        for ci in range(c):
            r0 = cols[ci * 3]
            r1 = cols[ci * 3 + 1]
            r2 = cols[ci * 3 + 2]
            for j in range(w):
                r0[base + j] = 0
                r1[base + j] = 0
                r2[base + j] = 0
            if b == n:
                continue
            for i in range(h):
                s = x[b, ci, i]
                o = base + (i + 1) * w
                d0 = r0[o:o + w]
                d1 = r1[o:o + w]
                d2 = r2[o:o + w]
                d0[0] = 0
                for j in range(w - 1):
                    d0[j + 1] = s[j]
                for j in range(w):
                    d1[j] = s[j]
                for j in range(w - 1):
                    d2[j] = s[j + 1]
                d2[w - 1] = 0
    return cols


@njit(cache=True, nogil=True)
def _sum3_to_nol(t, bias, has_bias, h, out):
    """t (3, O, (N*(H+1)+1)*W), one product per kernel row ki -> out (N, O, H*W):
    out[b, o, i*W + j] = sum over ki of t[ki, o, (b*(H+1) + i + ki)*W + j], plus bias[o]."""
    n, o, ll = out.shape
    w = ll // h
    sp = ll + w
    for b in range(n):
        for oc in range(o):
            add = bias[oc] if has_bias else bias[0]
            a0 = t[0, oc, b * sp:b * sp + ll]
            a1 = t[1, oc, b * sp + w:b * sp + w + ll]
            a2 = t[2, oc, b * sp + 2 * w:b * sp + 2 * w + ll]
            d = out[b, oc]
            for k in range(ll):
                d[k] = a0[k] + a1[k] + a2[k] + add
    return out


@njit(cache=True, nogil=True)
def _nol_to_grid(g, h, out):
    """g (N, O, H*W) -> out (O, N*(H+1)*W): each sample's H rows, then a row of zeros."""
    n, o, ll = g.shape
    sp = ll + ll // h
    for oc in range(o):
        for b in range(n):
            s = g[b, oc]
            d = out[oc, b * sp:(b + 1) * sp]
            for k in range(ll):
                d[k] = s[k]
            for k in range(ll, sp):
                d[k] = 0
    return out


@njit(cache=True, nogil=True)
def _nol_to_grid3(g, h, out):
    """g (N, O, H*W) -> out (3, O, (N*(H+1)+1)*W): block ki is the grid of _nol_to_grid shifted
    down ki rows (zeros above, between and below the samples), so that _shift3_cols's columns
    against block ki pair each output row with input row i+ki."""
    n, o, ll = g.shape
    w = ll // h
    sp = ll + w
    for ki in range(3):
        for oc in range(o):
            d = out[ki, oc]
            pos = 0
            for b in range(n):
                start = b * sp + ki * w
                for k in range(pos, start):
                    d[k] = 0
                s = g[b, oc]
                dd = d[start:start + ll]
                for k in range(ll):
                    dd[k] = s[k]
                pos = start + ll
            for k in range(pos, d.shape[0]):
                d[k] = 0
    return out


def forward(x, w, bias, has_bias, oh, ow):
    """x (N, C, H, W), w (O, C, 3, 3), bias (O,) (or (1,) zeros when not has_bias)
    -> y (N, O, OH, OW), OH = H and OW = W."""
    n, c = x.shape[:2]
    o = w.shape[0]
    y = np.empty((n, o, oh * ow), dtype=x.dtype)
    # NOTE: the three kernel rows are stacked into one (3*O, 3C) @ cols 2-D product, t's rows
    # in (ki, o) order: one BLAS call with M = 3*O, not a batched (3, O, 3C) @ cols
    sp = (oh + 1) * ow
    wk = np.ascontiguousarray(w.transpose(2, 0, 1, 3)).reshape(3 * o, c * 3)

    def chunk(b0, b1):
        p = (b1 - b0) * sp + ow  # the grid's columns
        cols = _shift3_cols(x[b0:b1], _buffer("cols", (3 * c, p), x.dtype))
        t = np.matmul(wk, cols, out=_buffer("y", (3 * o, p), x.dtype))
        _sum3_to_nol(t.reshape(3, o, p), bias, has_bias, oh, y[b0:b1])

    run_chunks(chunk, _chunks(n, 3 * max(c, o) * sp))
    return y.reshape(n, o, oh, ow)


def backward_weight_stacked(gy, x):
    """gy (N, O, H, W), x (N, C, H, W) -> gw (O, C, 3, 3) as one product (3C, P) @ (P, 3O)
    against gy shifted down 0, 1 and 2 grid rows (_nol_to_grid3), summed over chunks.

    NOTE: one product instead of three (3C, P) @ (P, O): a small output makes OpenBLAS spend
    its time packing the long inputs."""
    n, c = x.shape[:2]
    o, oh, ow = gy.shape[1:]
    g3 = gy.reshape(n, o, oh * ow)
    sp = (oh + 1) * ow

    def chunk(b0, b1):
        p = (b1 - b0) * sp + ow
        cols = _shift3_cols(x[b0:b1], _buffer("cols", (3 * c, p), x.dtype))
        g = _nol_to_grid3(g3[b0:b1], oh, _buffer("g", (3, o, p), gy.dtype))
        return np.matmul(cols, g.reshape(3 * o, p).T)  # (3C, 3O)

    acc = _sum(run_chunks(chunk, _chunks(n, 3 * max(c, o) * sp)))
    return np.ascontiguousarray(acc.reshape(c, 3, 3, o).transpose(3, 0, 2, 1))


def backward_weight_small(gy, x):
    """gy (N, O, H, W), x (N, C, H, W) -> gw (O, C, 3, 3) as three products per chunk,
    cols[:, ki*W : ki*W+P] @ grid(gy)^T, each summed by _add_abt (few channels: a small
    output)."""
    n, c = x.shape[:2]
    o, oh, ow = gy.shape[1:]
    g3 = gy.reshape(n, o, oh * ow)
    sp = (oh + 1) * ow
    zero = gy.dtype.type(0)

    def chunk(b0, b1):
        nc = b1 - b0
        p = nc * sp - ow  # gy's grid without its last row of zeros
        cols = _shift3_cols(x[b0:b1], _buffer("cols", (3 * c, nc * sp + ow), x.dtype))
        g = _nol_to_grid(g3[b0:b1], oh, _buffer("g", (o, nc * sp), gy.dtype))
        part = np.zeros((3, 3 * c, o), dtype=gy.dtype)
        for ki in range(3):  # part[ki] += cols[:, ki*W : ki*W+p] @ g[:, :p]^T
            _add_abt(cols, ki * ow, g, p, zero, part[ki])
        return part

    acc = _sum(run_chunks(chunk, _abt_chunks(n, (3 * c + o) * sp)))
    return np.ascontiguousarray(acc.reshape(3, c, 3, o).transpose(3, 1, 0, 2))
