"""Convolution on the CPU: im2col/col2im in numba, the matrix product through numpy's BLAS.

A chunk of samples x[b0:b1] (N_c, C, H, W) becomes cols (C*KH*KW, N_c*OH*OW), one row per
(channel, kernel tap) and one column per output position, so that each chunk is one large GEMM:
(O, C*KH*KW) @ cols. Grouped convolutions are a batched GEMM over groups. Depthwise convolution
(one input channel per group, one output per input) runs as direct loops instead: its GEMM would
have an inner dimension of KH*KW, too small for BLAS to pay.

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

# elements of one chunk's cols buffer (float32: 4 MB)
CHUNK_ELEMENTS = 1 << 20


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
def im2col(x, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, cols):
    """x (N, C, H, W) -> cols (C*KH*KW, N*OH*OW), written into `cols`; taps that fall in the
    padding are 0."""
    n, c, h, w = x.shape
    ll = oh * ow
    # NOTE: indices are offsets into 1-D views, counted from 0, so that LLVM can drop numba's
    # negative-index check and vectorize the copies.
    plane = sh == 1 and sw == 1 and ow == w  # stride 1, "same" width: a tap is one shifted plane
    xf = x.reshape(x.size)
    for r in range(c * kh * kw):
        ci = r // (kh * kw)
        ki = (r // kw) % kh
        kj = r % kw
        jlo, jhi = _span(ow, sw, pw, kj * dw, w)
        ilo, ihi = _span(oh, sh, ph, ki * dh, h)
        off = kj * dw - pw
        row = cols[r]
        for b in range(n):
            dst = row[b * ll:(b + 1) * ll]
            pl = (b * c + ci) * h * w  # the (b, ci) plane's offset in xf
            if ilo >= ihi or jlo >= jhi:
                for t in range(ll):
                    dst[t] = 0
            elif plane:
                # rows ilo..ihi-1 in one run: dst[t] = src[t + shift], then zero the head, the
                # tail and the columns that wrapped around from the neighbouring row
                t0 = ilo * ow + jlo
                run = (ihi - 1) * ow + jhi - t0
                d2 = dst[t0:t0 + run]
                s2 = xf[pl + (ilo - ph + ki * dh) * w + jlo + off:]
                for t in range(run):
                    d2[t] = s2[t]
                for t in range(t0):
                    dst[t] = 0
                for t in range(t0 + run, ll):
                    dst[t] = 0
                if jlo > 0 or jhi < ow:
                    for i in range(ilo, ihi):
                        for j in range(jlo):
                            dst[i * ow + j] = 0
                        for j in range(jhi, ow):
                            dst[i * ow + j] = 0
            else:
                if ilo > 0 or ihi < oh or jlo > 0 or jhi < ow:  # some taps in the padding
                    for t in range(ll):
                        dst[t] = 0
                nj = jhi - jlo
                for i in range(ilo, ihi):
                    d2 = dst[i * ow + jlo:i * ow + jhi]
                    s2 = xf[pl + (i * sh - ph + ki * dh) * w + jlo * sw + off:]
                    if sw == 1:
                        for j in range(nj):
                            d2[j] = s2[j]
                    elif sw == 2:  # a constant stride, so LLVM vectorizes the gather
                        for j in range(nj):
                            d2[j] = s2[2 * j]
                    else:
                        for j in range(nj):
                            d2[j] = s2[j * sw]
    return cols


@njit(cache=True)
def col2im(cols, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, x):
    """The adjoint of im2col: cols (C*KH*KW, N*OH*OW) summed into x (N, C, H, W), which is
    zeroed first. Entries of cols for taps in the padding may be set to 0 (cols is scratch)."""
    n, c, h, w = x.shape
    ll = oh * ow
    xf = x.reshape(x.size)
    for t in range(x.size):
        xf[t] = 0
    plane = sh == 1 and sw == 1 and ow == w  # as in im2col: a tap adds one shifted plane
    for b in range(n):
        for ci in range(c):
            xp = xf[(b * c + ci) * h * w:(b * c + ci + 1) * h * w]
            for ki in range(kh):
                ilo, ihi = _span(oh, sh, ph, ki * dh, h)
                for kj in range(kw):
                    jlo, jhi = _span(ow, sw, pw, kj * dw, w)
                    if ilo >= ihi or jlo >= jhi:
                        continue
                    off = kj * dw - pw
                    src = cols[(ci * kh + ki) * kw + kj, b * ll:(b + 1) * ll]
                    if plane:
                        # one run over rows ilo..ihi-1; the columns that wrap around into the
                        # neighbouring row are padding taps, zeroed so that they add nothing
                        if jlo > 0 or jhi < ow:
                            for i in range(ilo, ihi):
                                for j in range(jlo):
                                    src[i * ow + j] = 0
                                for j in range(jhi, ow):
                                    src[i * ow + j] = 0
                        t0 = ilo * ow + jlo
                        run = (ihi - 1) * ow + jhi - t0
                        s0 = (ilo - ph + ki * dh) * w + jlo + off
                        d2 = xp[s0:s0 + run]
                        s2 = src[t0:t0 + run]
                        for t in range(run):
                            d2[t] += s2[t]
                        continue
                    nj = jhi - jlo
                    for i in range(ilo, ihi):
                        s2 = src[i * ow + jlo:i * ow + jhi]
                        d2 = xp[(i * sh - ph + ki * dh) * w + jlo * sw + off:]
                        if sw == 1:
                            for j in range(nj):
                                d2[j] += s2[j]
                        elif sw == 2:
                            for j in range(nj):
                                d2[2 * j] += s2[j]
                        else:
                            for j in range(nj):
                                d2[j * sw] += s2[j]
    return x


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


# ---- depthwise: direct loops --------------------------------------------------------------
@njit(cache=True)
def _depthwise_forward(x, w, bias, has_bias, sh, sw, ph, pw, dh, dw, oh, ow):
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
def _depthwise_backward_input(gy, w, sh, sw, ph, pw, dh, dw, h, wd):
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
def _depthwise_backward_weight(gy, x, sh, sw, ph, pw, dh, dw, kh, kw):
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


def _chunks(n: int, per_sample: int):
    """Slices of the batch whose cols hold about CHUNK_ELEMENTS elements (at least 1 sample)."""
    step = max(1, min(n, CHUNK_ELEMENTS // max(per_sample, 1)))
    return [(b0, min(n, b0 + step)) for b0 in range(0, n, step)]


def _is_depthwise(c: int, o: int, groups: int) -> bool:
    return groups > 1 and groups == c == o


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
    has_bias = b is not None
    bias = b if has_bias else np.zeros(1, dtype=x.dtype)
    if _is_depthwise(c, o, groups):
        return _depthwise_forward(x, w, bias, has_bias, sh, sw, ph, pw, dh, dw, oh, ow)
    ll, ckk = oh * ow, c * kh * kw
    y = np.empty((n, o, ll), dtype=x.dtype)
    w2 = w.reshape(o, cg * kh * kw)
    for b0, b1 in _chunks(n, ckk * ll):
        cols = im2col(x[b0:b1], kh, kw, sh, sw, ph, pw, dh, dw, oh, ow,
                      _buffer("cols", (ckk, (b1 - b0) * ll), x.dtype))
        yc = _matmul_groups(w2, cols, groups, _buffer("y", (o, (b1 - b0) * ll), x.dtype))
        _onl_to_nol(yc, bias, has_bias, y[b0:b1])
    return y.reshape(n, o, oh, ow)


def conv2d_backward_input(gy, w, sh, sw, ph, pw, dh, dw, groups, h, wd):
    n, o, oh, ow = gy.shape
    _, cg, kh, kw = w.shape
    c = cg * groups
    if _is_depthwise(c, o, groups):
        return _depthwise_backward_input(gy, w, sh, sw, ph, pw, dh, dw, h, wd)
    og, ll, ckk = o // groups, oh * ow, c * kh * kw
    g3 = gy.reshape(n, o, ll)
    gx = np.empty((n, c, h, wd), dtype=gy.dtype)
    # per group: w_g^T (Cg*KK, Og) @ g_g (Og, N_c*L)
    wt = w.reshape(groups, og, cg * kh * kw).transpose(0, 2, 1)
    for b0, b1 in _chunks(n, ckk * ll):
        g = _nol_to_onl(g3[b0:b1], _buffer("g", (o, (b1 - b0) * ll), gy.dtype))
        gcols = _buffer("cols", (groups, cg * kh * kw, (b1 - b0) * ll), gy.dtype)
        if groups == 1:
            np.matmul(wt[0], g, out=gcols[0])
        else:
            np.matmul(wt, g.reshape(groups, og, -1), out=gcols)
        col2im(gcols.reshape(ckk, -1), kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, gx[b0:b1])
    return gx


def conv2d_backward_weight(gy, x, sh, sw, ph, pw, dh, dw, groups, kh, kw):
    n, c = x.shape[:2]
    o, oh, ow = gy.shape[1:]
    if _is_depthwise(c, o, groups):
        return _depthwise_backward_weight(gy, x, sh, sw, ph, pw, dh, dw, kh, kw)
    cg, og, ll, ckk = c // groups, o // groups, oh * ow, c * kh * kw
    g3 = gy.reshape(n, o, ll)
    gw = np.zeros((groups, og, cg * kh * kw), dtype=gy.dtype)
    # per group: cols_g (Cg*KK, N_c*L) @ g_g^T (N_c*L, Og), summed over chunks; this order runs
    # 20-30% faster in OpenBLAS than g_g @ cols_g^T when Og is small (16, 32)
    part = np.empty((groups, cg * kh * kw, og), dtype=gy.dtype)
    for b0, b1 in _chunks(n, ckk * ll):
        g = _nol_to_onl(g3[b0:b1], _buffer("g", (o, (b1 - b0) * ll), gy.dtype))
        cols = im2col(x[b0:b1], kh, kw, sh, sw, ph, pw, dh, dw, oh, ow,
                      _buffer("cols", (ckk, (b1 - b0) * ll), x.dtype))
        if groups == 1:
            np.matmul(cols, g.T, out=part[0])
        else:
            np.matmul(cols.reshape(groups, cg * kh * kw, -1),
                      g.reshape(groups, og, -1).transpose(0, 2, 1), out=part)
        gw += part.transpose(0, 2, 1)
    return gw.reshape(o, cg, kh, kw)
