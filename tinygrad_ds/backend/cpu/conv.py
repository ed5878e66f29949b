"""Convolution on the CPU: im2col/col2im in numba, the matrix product through numpy's BLAS.

A chunk of samples x[b0:b1] (N_c, C, H, W) becomes cols (C*KH*KW, N_c*OH*OW), one row per
(channel, kernel tap) and one column per output position, so that each chunk is one large GEMM:
(O, C*KH*KW) @ cols. Grouped convolutions are a batched GEMM over groups. Depthwise convolution
(one input channel per group, one output per input) runs as direct loops instead: its GEMM would
have an inner dimension of KH*KW, too small for BLAS to pay.

From 32 input channels on (and for strided convolutions from 8), the matrix is laid out the
other way: rows (N_c*OH*OW, KH*KW*C), one row per output position, copied from a channels-last
copy of the chunk (im2row), and the products are rows @ W^T, rows^T @ gy^T and gy^T @ W. There
OpenBLAS runs faster (M = N_c*OH*OW is large), and each copy moves KW*C adjacent values instead
of OW. Both layouts copy from a zero-bordered copy of the chunk, so the copy loops never test
for padding. A stride-1 input gradient is a convolution of gy with the flipped kernel (im2col
only copies, where col2im adds).

A 3x3 stride-1 'same' convolution from 16 input channels on (from 32, on images of 8 rows or
more) takes neither layout: it copies only the 3 column shifts of each channel and reads kernel
row ki as the same matrix shifted by ki*W columns (one product with K = 3*C whose three row
blocks are summed at their offsets; see conv2d_forward). It copies a third of what im2col and
im2row copy, and needs no channels-last transpose.

Weight gradients with few entries (at most ABT_MAX_OUTPUT: the 16-channel shifted products, the
3->16 stem, 1x1 convolutions) are summed by a numba kernel, _add_abt, instead of BLAS: with so
small an output OpenBLAS spends its time packing the long operands.

NOTE: the batch is cut into chunks whose cols take about 4 MB (float32), not one GEMM for the
whole batch: the whole-batch cols of a 16-channel 32x32 layer at batch 128 is 75 MB, written to
and read back from main memory, while a chunk stays in cache between im2col and the GEMM, and the
scratch buffers stay small. A chunk of several samples still keeps each GEMM at tens of MFLOP.
Measured at batch 128 on 2 cores: 1M-element chunks 10-40% faster than 4M or the whole batch on
a quiet machine, no worse under load; 256K-element chunks slower (BLAS calls too small).

The loops are serial (no parallel=True). Measured on the 2-core benchmark machine: a parallel
batch-norm apply is 1.5x faster when the machine is idle (0.56 vs 0.84 ms at (128, 16, 1024)),
but with neighbours at load ~6 a whole batch-norm forward+backward took 55 ms with numba's two
OpenMP threads and 7.9 ms with one (a parallel loop waits for its slowest thread, and the
threads spin after the loop, taking the core BLAS's second thread wants). BLAS already uses
both cores for the products, and serial kernels compile several times faster.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from .depthwise import depthwise_backward_input, depthwise_backward_weight, depthwise_forward

# elements of one chunk's cols buffer (float32: 4 MB)
CHUNK_ELEMENTS = 1 << 20
# from this many input channels on (groups 1), or from 8 with a column stride above 1, positions
# as rows: see conv2d_forward
ROWS_MIN_CHANNELS = 32
# 3x3 stride-1 'same' convolutions with this many input channels or more run as three products
# over column-shifted copies: see conv2d_forward. Measured (interleaved A/B, batch 128, 32x32,
# against im2col): 16->16 18% faster fwd+bwd, 8->8 18% faster, 8->16 4% slower (weight gradient
# +10-18%), 4->4 and 3->16 no better. From ROWS_MIN_CHANNELS on, only on images of at least
# SHIFT3_MIN_HEIGHT rows: see _shift3
SHIFT3_MIN_CHANNELS = 16
SHIFT3_MIN_HEIGHT = 8
# from this many input channels on, the shifted weight gradient is one product against three
# row-shifted copies of gy (see conv2d_backward_weight)
STACK3_MIN_CHANNELS = 32
# im2col weight gradients (groups 1) with at most this many entries (C*KH*KW*O) are summed by
# _add_abt instead of BLAS. Measured (batch 128, float32, ms, _add_abt vs BLAS): 3->16 3x3
# 32x32 2.9 vs 4.4, 3->32 4.7 vs 6.9, 12->12 3x3 16x16 2.1 vs 3.5, 16->64 1x1 16x16 1.6 vs
# 2.3, 8->64 3x3 32x32 (4,608 entries) 18.3 vs 20.1; at 96x96 (9,216) BLAS is twice as fast
ABT_MAX_OUTPUT = 4608


@njit(cache=True)
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


@njit(cache=True)
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


@njit(cache=True)
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


@njit(cache=True)
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


@njit(cache=True)
def _nol_to_rows(g, out):
    """g (N, O, L) -> out (N*L, O)."""
    n, o, ll = g.shape
    for b in range(n):
        for oc in range(o):
            src = g[b, oc]
            for t in range(ll):
                out[b * ll + t, oc] = src[t]
    return out


@njit(cache=True)
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


@njit(cache=True)
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


@njit(cache=True)
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


@njit(cache=True)
def _shift3_cols(x, cols):
    """x (N, C, H, W) -> cols (C*3, (N*(H+1)+1)*W) for a 3x3 stride-1 'same' convolution: row
    (c, kj) is a grid of N*(H+1)+1 rows of W values, a row of zeros, then per sample H rows
    x[b, c, i, j+kj-1] (zero outside x) and a row of zeros, shared as the next sample's top
    border. Kernel row ki then reads the columns shifted by ki*W (see conv2d_forward)."""
    n, c, h, w = x.shape
    sp = (h + 1) * w
    # NOTE: each input row is read once and written to its 3 shifts (samples outermost, so x
    # is read in order): 27% faster over a batch than one pass per shift (measured over the
    # 16-channel 32x32 batch of 128 with cold caches, 1.51 vs 2.07 ms)
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


@njit(cache=True)
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


@njit(cache=True)
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


@njit(cache=True)
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


@njit(cache=True, fastmath={"reassoc", "contract"})
def _add_abt(a, off, b, p, zero, out):
    """out (M, N) += a[:, off:off+p] @ b[:, :p]^T, for a (M, >= off+p) and b (N, >= p) whose
    rows are contiguous; zero is a 0 of the arrays' dtype (the sums' type).

    NOTE: for a small output (the 16-channel weight gradient: M = 3C = 48, N = O = 16, p in the
    thousands) OpenBLAS spends most of its time packing a and b; here each 4x4 block of out is 16
    sums held in registers over one pass of 4 rows of a and 4 of b, which LLVM vectorizes over
    p. Measured (48x16 output, p = 4,600, float32): 118 GFLOP/s on one core, OpenBLAS 106 on
    two; 16->16 32x32 weight gradient at batch 128 7.3-7.6 ms vs 9.6-10.0 ms through BLAS. Two
    threads of it did not pay: OpenBLAS's idle threads spin on the cores for a while after each
    product."""
    m, n = out.shape
    m4, n4 = m - m % 4, n - n % 4
    for i in range(0, m4, 4):
        a0, a1 = a[i, off:off + p], a[i + 1, off:off + p]
        a2, a3 = a[i + 2, off:off + p], a[i + 3, off:off + p]
        for j in range(0, n4, 4):
            b0, b1, b2, b3 = b[j, :p], b[j + 1, :p], b[j + 2, :p], b[j + 3, :p]
            s00 = s01 = s02 = s03 = s10 = s11 = s12 = s13 = zero
            s20 = s21 = s22 = s23 = s30 = s31 = s32 = s33 = zero
            for q in range(p):
                x0, x1, x2, x3 = a0[q], a1[q], a2[q], a3[q]
                y0, y1, y2, y3 = b0[q], b1[q], b2[q], b3[q]
                s00 += x0 * y0
                s01 += x0 * y1
                s02 += x0 * y2
                s03 += x0 * y3
                s10 += x1 * y0
                s11 += x1 * y1
                s12 += x1 * y2
                s13 += x1 * y3
                s20 += x2 * y0
                s21 += x2 * y1
                s22 += x2 * y2
                s23 += x2 * y3
                s30 += x3 * y0
                s31 += x3 * y1
                s32 += x3 * y2
                s33 += x3 * y3
            out[i, j] += s00
            out[i, j + 1] += s01
            out[i, j + 2] += s02
            out[i, j + 3] += s03
            out[i + 1, j] += s10
            out[i + 1, j + 1] += s11
            out[i + 1, j + 2] += s12
            out[i + 1, j + 3] += s13
            out[i + 2, j] += s20
            out[i + 2, j + 1] += s21
            out[i + 2, j + 2] += s22
            out[i + 2, j + 3] += s23
            out[i + 3, j] += s30
            out[i + 3, j + 1] += s31
            out[i + 3, j + 2] += s32
            out[i + 3, j + 3] += s33
    # the rows and columns left over from the 4x4 blocks, one dot product each
    for i in range(m):
        for j in range(n4 if i < m4 else 0, n):
            x, y = a[i, off:off + p], b[j, :p]
            t = zero
            for q in range(p):
                t += x[q] * y[q]
            out[i, j] += t
    return out


# NOTE: a fresh np.empty of a few MB per chunk costs a page fault per 4 KB (as much time as the
# copy itself), so the chunk buffers are reused, one per role and dtype.
_workspace: dict = {}


def _buffer(role: str, shape: tuple, dtype):
    size = int(np.prod(shape))
    key = (role, np.dtype(dtype))
    buf = _workspace.get(key)
    if buf is None or buf.size < size:
        buf = _workspace[key] = np.empty(size, dtype=dtype)
    return buf[:size].reshape(shape)


# zero-bordered buffers for padded inputs, one per layout, shape, padding and dtype: the border
# is written only when the buffer is made (np.zeros), the interior by every call (a network has
# few shapes)
_padded: dict = {}


def _padded_buffer(layout: str, shape: tuple, ph: int, pw: int, dtype):
    key = (layout, shape, ph, pw, np.dtype(dtype))
    buf = _padded.get(key)
    if buf is None:
        if len(_padded) >= 64:  # many shapes (tests, varying batch sizes): start over
            _padded.clear()
        buf = _padded[key] = np.zeros(shape, dtype=dtype)
    return buf


def _chunks(n: int, per_sample: int, elements: int | None = None):
    """Slices of the batch whose cols hold about CHUNK_ELEMENTS elements (or the given number;
    at least 1 sample)."""
    step = max(1, min(n, (elements or CHUNK_ELEMENTS) // max(per_sample, 1)))
    return [(b0, min(n, b0 + step)) for b0 in range(0, n, step)]


def _abt_chunks(n: int, per_sample: int):
    """Chunks for _add_abt: a quarter of CHUNK_ELEMENTS, so that both of its operands stay in a
    core's L2 cache (measured: 118 GFLOP/s at 4,600 columns, 70-80 at 20,000)."""
    return _chunks(n, per_sample, max(1, CHUNK_ELEMENTS // 4))


def _is_depthwise(c: int, o: int, groups: int) -> bool:
    return groups > 1 and groups == c == o


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


def _rows(x, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow):
    """im2row of a chunk x (N_c, C, H, W): (N_c*OH*OW, KH*KW*C)."""
    n, c, h, w = x.shape
    xh = _padded_buffer("nhwc", (n, h + 2 * ph, w + 2 * pw, c), ph, pw, x.dtype)
    xh[:, ph:ph + h, pw:pw + w, :] = x.transpose(0, 2, 3, 1)
    rows = _buffer("cols", (n * oh * ow, kh * kw * c), x.dtype)
    return im2row(xh, kh, kw, sh, sw, dh, dw, oh, ow, rows)


def _shift3(c, h, kh, kw, sh, sw, ph, pw, dh, dw, groups) -> bool:
    """Whether a convolution of an (N, C, H, W) input runs as three products over column-shifted
    copies (_shift3_cols): 3x3, stride 1, undilated, padding 1, groups 1, from
    SHIFT3_MIN_CHANNELS channels on, and with ROWS_MIN_CHANNELS or more only when H is at least
    SHIFT3_MIN_HEIGHT.

    NOTE: measured on a 2-core Xeon with AVX-512 (Sapphire Rapids class, float32, median of 7,
    forward + input gradient + weight gradient, ms, shifted vs positions as rows):
    32->32 16x16 batch 128: 16.7 vs 24.8; 64->64 16x16 batch 64: 23.4 vs 31.4; at 8x8, where
    the grid's extra row adds 12% to the products, 64->64 11.9-12.1 vs 13.4-13.8 and 32->32
    4.8-5.1 vs 5.4-5.5; at 4x4 (25% more) rows win (64->64 4.0-4.6 vs 3.4-3.5, 128->128
    11.1 vs 9.8-10.1)."""
    return (groups == 1 and kh == kw == 3 and sh == sw == dh == dw == 1 and ph == pw == 1
            and c >= SHIFT3_MIN_CHANNELS and (c < ROWS_MIN_CHANNELS or h >= SHIFT3_MIN_HEIGHT))


def _by_rows(c: int, sw: int, groups: int) -> bool:
    """Whether to lay the im2col matrix out with one row per output position (channels last)."""
    return groups == 1 and (c >= ROWS_MIN_CHANNELS or (sw > 1 and c >= 8))


def _matmul_groups(a, b, groups: int, out):
    """One product per group: a (G*Mg, Kg) and b (G*Kg, P) -> out (G*Mg, P)."""
    if groups == 1:
        return np.matmul(a, b, out=out)
    mg, kg = a.shape[0] // groups, a.shape[1]
    np.matmul(a.reshape(groups, mg, kg), b.reshape(groups, kg, -1),
              out=out.reshape(groups, mg, -1))
    return out


# ---- the table's conv kernels --------------------------------------------------------------
def conv2d_forward(x, w, b, sh, sw, ph, pw, dh, dw, groups, oh, ow):
    n, c = x.shape[:2]
    o, cg, kh, kw = w.shape
    if _is_depthwise(c, o, groups):
        has_bias = b is not None
        bias = b if has_bias else np.zeros(1, dtype=x.dtype)
        return depthwise_forward(x, w, bias, has_bias, sh, sw, ph, pw, dh, dw, oh, ow)
    ll, kg = oh * ow, cg * kh * kw
    y = np.empty((n, o, ll), dtype=x.dtype)
    has_bias = b is not None
    bias = b if has_bias else np.zeros(1, dtype=x.dtype)
    if _shift3(c, x.shape[2], kh, kw, sh, sw, ph, pw, dh, dw, groups):
        # NOTE: an implicit GEMM with K = 3*C instead of 9*C: cols holds the 3 column shifts
        # (kj) of each channel on a grid of H+1 rows per sample (its rows and one row of zeros,
        # the border between it and the next sample), so kernel row ki is the same matrix read
        # ki*W columns on, and W_ki (O, 3C) @ cols gives the three row-products at once;
        # _sum3_to_nol adds them at their offsets. It copies a third of im2col's 9*C rows (in
        # runs of W), with 1/H more positions (3% at 32 rows, 12% at 8).
        # Interleaved A/B against im2col at 16->16 channels 32x32 batch 128 (float32, 2 cores,
        # 4 runs of 12-20 repetitions): forward 15-21% faster, input gradient 19-22%, weight
        # gradient 4-20% (e.g. medians 10.6 vs 12.6 ms, 10.2 vs 12.6, 11.3 vs 11.9 ms).
        # The three kernel rows are stacked into one (3*O, 3C) @ cols 2-D product, t's rows in
        # (ki, o) order: one BLAS call with M = 3*O ran 14% faster than the batched (3, O, 3C)
        # @ cols at 16->16 (interleaved A/B, medians 8.2 vs 9.6 ms forward, batch 128).
        sp = (oh + 1) * ow
        wk = np.ascontiguousarray(w.transpose(2, 0, 1, 3)).reshape(3 * o, c * 3)
        for b0, b1 in _chunks(n, 3 * max(c, o) * sp):
            p = (b1 - b0) * sp + ow  # the grid's columns
            cols = _shift3_cols(x[b0:b1], _buffer("cols", (3 * c, p), x.dtype))
            t = np.matmul(wk, cols, out=_buffer("y", (3 * o, p), x.dtype))
            _sum3_to_nol(t.reshape(3, o, p), bias, has_bias, oh, y[b0:b1])
        return y.reshape(n, o, oh, ow)
    if _by_rows(c, sw, groups):
        # NOTE: positions as rows, (N_c*L, KK*C) @ (KK*C, O): OpenBLAS runs this up to 40%
        # faster than W @ cols, and im2row copies runs of KW*C values (im2col: OW values), 3-5x
        # faster at 32 and 64 channels (with a column stride, im2col gathers: im2row still copies
        # runs). At 16 channels and stride 1 the channels-last transpose and the short runs cost
        # more than the product gains.
        w2t = np.ascontiguousarray(w.transpose(2, 3, 1, 0)).reshape(kh * kw * c, o)
        for b0, b1 in _chunks(n, c * kh * kw * ll):
            rows = _rows(x[b0:b1], kh, kw, sh, sw, ph, pw, dh, dw, oh, ow)
            yt = np.matmul(rows, w2t, out=_buffer("y", (rows.shape[0], o), x.dtype))
            _rows_to_nol(yt, bias, has_bias, y[b0:b1])
        return y.reshape(n, o, oh, ow)
    w2 = w.reshape(o, kg)
    for b0, b1 in _chunks(n, c * kh * kw * ll):
        cols = _cols(x[b0:b1], kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, by_sample=False)
        yc = _matmul_groups(w2, cols, groups, _buffer("y", (o, (b1 - b0) * ll), x.dtype))
        _onl_to_nol(yc, bias, has_bias, y[b0:b1])
    return y.reshape(n, o, oh, ow)


def conv2d_backward_input(gy, w, sh, sw, ph, pw, dh, dw, groups, h, wd):
    n, o, oh, ow = gy.shape
    _, cg, kh, kw = w.shape
    c = cg * groups
    if _is_depthwise(c, o, groups):
        return depthwise_backward_input(gy, w, sh, sw, ph, pw, dh, dw, h, wd)
    og, ll, kg = o // groups, oh * ow, cg * kh * kw
    qh, qw = dh * (kh - 1) - ph, dw * (kw - 1) - pw
    if sh == sw == 1 and o <= c and qh >= 0 and qw >= 0 and oh + 2 * qh - dh * (kh - 1) == h \
            and ow + 2 * qw - dw * (kw - 1) == wd:
        # stride 1: the input gradient is gy convolved with the flipped kernel, channels in and
        # out swapped within each group (im2col only copies; col2im would add). Not when O > C:
        # then gy's im2col is larger than the input's, and the product has only C rows
        wf = w.reshape(groups, og, cg, kh, kw)[:, :, :, ::-1, ::-1].transpose(0, 2, 1, 3, 4)
        wf = np.ascontiguousarray(wf).reshape(c, og, kh, kw)
        return conv2d_forward(gy, wf, None, 1, 1, qh, qw, dh, dw, groups, h, wd)
    g3 = gy.reshape(n, o, ll)
    gx = np.empty((n, c, h, wd), dtype=gy.dtype)
    if _by_rows(c, sw, groups):  # positions as rows: gy^T (N_c*L, O) @ W (O, KK*C), row2im
        w2 = np.ascontiguousarray(w.transpose(0, 2, 3, 1)).reshape(o, kh * kw * c)
        for b0, b1 in _chunks(n, c * kh * kw * ll):
            nc = b1 - b0
            gt = _nol_to_rows(g3[b0:b1], _buffer("g", (nc * ll, o), gy.dtype))
            grows = np.matmul(gt, w2, out=_buffer("cols", (nc * ll, kh * kw * c), gy.dtype))
            gxh = _buffer("pad", (nc, h + 2 * ph, wd + 2 * pw, c), gy.dtype)
            row2im(grows, kh, kw, sh, sw, dh, dw, oh, ow, gxh)
            gx[b0:b1] = gxh[:, ph:ph + h, pw:pw + wd, :].transpose(0, 3, 1, 2)
        return gx
    wt = w.reshape(groups, og, kg).transpose(0, 2, 1)  # per group w_g^T (Cg*KK, Og)
    for b0, b1 in _chunks(n, c * kh * kw * ll):
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
    return gx


def conv2d_backward_weight(gy, x, sh, sw, ph, pw, dh, dw, groups, kh, kw):
    n, c = x.shape[:2]
    o, oh, ow = gy.shape[1:]
    if _is_depthwise(c, o, groups):
        return depthwise_backward_weight(gy, x, sh, sw, ph, pw, dh, dw, kh, kw)
    cg, og, ll, ckk = c // groups, o // groups, oh * ow, c * kh * kw
    g3 = gy.reshape(n, o, ll)
    if _shift3(c, x.shape[2], kh, kw, sh, sw, ph, pw, dh, dw, groups):
        # the adjoint of conv2d_forward's shifted products: per kernel row ki, cols read ki*W
        # columns on (3C, P) @ gy on the same grid^T (P, O), its rows of zeros between samples
        sp = (oh + 1) * ow
        if c >= STACK3_MIN_CHANNELS:
            # NOTE: one product (3C, P) @ (P, 3O) against gy shifted down 0, 1 and 2 grid rows
            # instead of three (3C, P) @ (P, O): a small output makes OpenBLAS spend its time
            # packing the long inputs. Measured (median of 7, batch 128, ms, one vs three):
            # 32->32 16x16 6.5-6.8 vs 7.1-7.3, 64->64 8x8 5.0-5.4 vs 5.4-5.5. Below
            # STACK3_MIN_CHANNELS the output is small enough for _add_abt: at 16->16 32x32 7.5
            # against 11.6-12.0 stacked and 10.2-10.7 as three BLAS products
            acc = np.zeros((3 * c, 3 * o), dtype=gy.dtype)
            part = np.empty_like(acc)
            for b0, b1 in _chunks(n, 3 * max(c, o) * sp):
                p = (b1 - b0) * sp + ow
                cols = _shift3_cols(x[b0:b1], _buffer("cols", (3 * c, p), x.dtype))
                g = _nol_to_grid3(g3[b0:b1], oh, _buffer("g", (3, o, p), gy.dtype))
                acc += np.matmul(cols, g.reshape(3 * o, p).T, out=part)
            return np.ascontiguousarray(acc.reshape(c, 3, 3, o).transpose(3, 0, 2, 1))
        acc = np.zeros((3, 3 * c, o), dtype=gy.dtype)
        zero = acc.dtype.type(0)
        for b0, b1 in _abt_chunks(n, (3 * c + o) * sp):
            nc = b1 - b0
            p = nc * sp - ow  # gy's grid without its last row of zeros
            cols = _shift3_cols(x[b0:b1], _buffer("cols", (3 * c, nc * sp + ow), x.dtype))
            g = _nol_to_grid(g3[b0:b1], oh, _buffer("g", (o, nc * sp), gy.dtype))
            for ki in range(3):  # acc[ki] += cols[:, ki*W : ki*W+p] @ g[:, :p]^T
                _add_abt(cols, ki * ow, g, p, zero, acc[ki])
        return np.ascontiguousarray(acc.reshape(3, c, 3, o).transpose(3, 1, 0, 2))
    if groups == 1 and ckk * o <= ABT_MAX_OUTPUT:
        # a small weight gradient: cols (CKK, P) @ g^T (P, O) by _add_abt (see there), also
        # where the forward lays positions out as rows: measured (batch 128, ms, vs rows)
        # 64->16 1x1 16x16 1.7 vs 3.3, 32->64 1x1 stride 2 0.7 vs 1.4, 16->32 3x3 stride 2
        # 5.5 vs 5.7, 64->64 1x1 8x8 1.2 vs 1.4
        acc = np.zeros((ckk, o), dtype=gy.dtype)
        zero = acc.dtype.type(0)
        for b0, b1 in _abt_chunks(n, (ckk + o) * ll):
            p = (b1 - b0) * ll
            g = _nol_to_onl(g3[b0:b1], _buffer("g", (o, p), gy.dtype))
            cols = _cols(x[b0:b1], kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, by_sample=False)
            _add_abt(cols, 0, g, p, zero, acc)
        return np.ascontiguousarray(acc.T).reshape(o, c, kh, kw)
    if _by_rows(c, sw, groups):  # positions as rows, as in conv2d_forward
        acc = np.zeros((kh * kw * c, o), dtype=gy.dtype)
        part = np.empty_like(acc)
        for b0, b1 in _chunks(n, ckk * ll):
            rows = _rows(x[b0:b1], kh, kw, sh, sw, ph, pw, dh, dw, oh, ow)
            gt = _nol_to_rows(g3[b0:b1], _buffer("g", (rows.shape[0], o), gy.dtype))
            acc += np.matmul(rows.T, gt, out=part)
        return np.ascontiguousarray(acc.reshape(kh, kw, c, o).transpose(3, 2, 0, 1))
    gw = np.zeros((groups, og, cg * kh * kw), dtype=gy.dtype)
    # per group: cols_g (Cg*KK, N_c*L) @ g_g^T (N_c*L, Og), summed over chunks; this order runs
    # 20-30% faster in OpenBLAS than g_g @ cols_g^T when Og is small (16, 32)
    part = np.empty((groups, cg * kh * kw, og), dtype=gy.dtype)
    for b0, b1 in _chunks(n, ckk * ll):
        g = _nol_to_onl(g3[b0:b1], _buffer("g", (o, (b1 - b0) * ll), gy.dtype))
        cols = _cols(x[b0:b1], kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, by_sample=False)
        if groups == 1:
            np.matmul(cols, g.T, out=part[0])
        else:
            np.matmul(cols.reshape(groups, cg * kh * kw, -1),
                      g.reshape(groups, og, -1).transpose(0, 2, 1), out=part)
        gw += part.transpose(0, 2, 1)
    return gw.reshape(o, cg, kh, kw)
