"""Winograd F(2x2, 3x3): a 3x3 stride-1 'same' convolution with 2.25x fewer multiplications.

The input, zero-bordered and channels-last, is cut into 4x4 tiles at stride 2, one per 2x2 block
of the output. Each tile d becomes V = B^T d B and each kernel g (one per output and input
channel) U = G g G^T; both are 4x4, and the output block is A^T (U . V) A, where . multiplies
elementwise and sums over the input channels. So the 16 positions p of a tile are 16
independent matrix products M[p] = V[p] (tiles, C) @ U[p] (C, O): one batched matmul per chunk
with 16 multiplications per 4 outputs per channel pair, where a direct convolution has 36.

    B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]
    G   = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]]
    A^T = [[1, 1, 1, 0], [0, 1, -1, -1]]

The weight gradient is the adjoint: with dM = A g A^T of each 2x2 block of the output gradient
g, dU[p] = V[p]^T (C, tiles) @ dM[p] (tiles, O), summed over chunks, and gw = G^T dU G. Its
products have the tiles as their long inner dimension, which OpenBLAS runs well; it pays from 32
channels on (backward_weight; conv/__init__.py's WINOGRAD_WEIGHT_MIN_CHANNELS).

The transforms are additions only. Each of their inner loops runs over the channels with few
arrays in it: LLVM vectorises a loop only when it can check its arrays for overlap, and a loop
writing the 16 positions at once (16 outputs and 4 inputs) ran 18 times slower. Float32 results
differ from the direct convolution's by a few units of the last place (about 4e-7 relative).

Forward at batch 128, against shift3 (the kernel it replaces), on the shared 2-core machine:
one thread, 32 channels at 16x16 5.1 to 6.2 ms against 6.9 to 7.6, 64 at 8x8 4.0 to 4.5 against
5.6 to 5.9; two threads, 32 channels 3.9 to 4.8 against 3.6 to 4.1 (it scales worse: its
tiles and products move four times the input through memory), 64 channels 3.2 to 3.5 against
3.1 to 3.7; 16 channels at 32x32 it loses on one thread already (9.9 against 8.8). Two changes
later made it win on two threads from 32 channels: the weight transform in numba (numpy's
matmul over the (O, C) tiny kernels had taken a third of the time, on one thread) and chunks of
a quarter of CHUNK_ELEMENTS, whose tiles and products stay in a core's L2 cache (8 samples at
32 channels). Then, interleaved on two threads: 32 channels 4.3 to 5.1 ms against 5.8 to 7.5,
64 channels 2.8 to 2.9 against 4.8; the weight gradient 3.3 against 5.1 and 3.0 against 4.9;
16 channels still 6.6 against 4.9. Hence conv/__init__.py's WINOGRAD_MIN_CHANNELS of 32.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from . import workspace
from .workspace import _buffer, _chunks, _padded_nhwc, _sum, run_chunks

# chunks of CHUNK_ELEMENTS / CHUNK_DIV tile elements (8 samples of a 32-channel 16x16 layer, 16
# of a 64-channel 8x8 one): a chunk's tiles and products stay in L2 (2 or 8 were slower)
CHUNK_DIV = 4


@njit(cache=True, nogil=True)
def weights(w):
    """w (O, C, 3, 3) -> U (16, C, O): G g G^T of each kernel, position-major.

    NOTE: written out (G's rows are g0, (g0+g1+g2)/2, (g0-g1+g2)/2, g2), not as np.matmul over
    the (O, C) kernels: numpy's loop over 4096 tiny products took 1.4 ms at 64 channels, a
    third of the convolution, on one thread while the other waited."""
    o, c = w.shape[:2]
    u = np.empty((16, c, o), dtype=w.dtype)
    half = w.dtype.type(0.5)
    t = np.empty((4, 3), dtype=w.dtype)
    for oi in range(o):
        for ci in range(c):
            g = w[oi, ci]
            for j in range(3):  # G g: the rows
                t[0, j] = g[0, j]
                t[1, j] = (g[0, j] + g[1, j] + g[2, j]) * half
                t[2, j] = (g[0, j] - g[1, j] + g[2, j]) * half
                t[3, j] = g[2, j]
            for r in range(4):  # (G g) G^T: the columns
                u[4 * r, ci, oi] = t[r, 0]
                u[4 * r + 1, ci, oi] = (t[r, 0] + t[r, 1] + t[r, 2]) * half
                u[4 * r + 2, ci, oi] = (t[r, 0] - t[r, 1] + t[r, 2]) * half
                u[4 * r + 3, ci, oi] = t[r, 2]
    return u


@njit(cache=True, nogil=True)
def _tiles(xh, v):
    """xh (N, H+2, W+2, C) zero-bordered channels-last -> v (16, N*H/2*W/2, C): B^T d B of each
    4x4 tile at stride 2, position-major."""
    n, hp, wp, c = xh.shape
    th, tw = (hp - 2) // 2, (wp - 2) // 2
    t = np.empty((4, wp, c), dtype=xh.dtype)
    t0, t1, t2, t3 = t[0].ravel(), t[1].ravel(), t[2].ravel(), t[3].ravel()
    for b in range(n):
        for i in range(th):
            # B^T along the rows, for the tile row's 4 input rows at once
            r0, r1 = xh[b, 2 * i].ravel(), xh[b, 2 * i + 1].ravel()
            r2, r3 = xh[b, 2 * i + 2].ravel(), xh[b, 2 * i + 3].ravel()
            for e in range(wp * c):
                t0[e] = r0[e] - r2[e]
            for e in range(wp * c):
                t1[e] = r1[e] + r2[e]
            for e in range(wp * c):
                t2[e] = r2[e] - r1[e]
            for e in range(wp * c):
                t3[e] = r1[e] - r3[e]
            # B along the columns, tile by tile
            for u in range(4):
                tu = t[u]
                for j in range(tw):
                    k = (b * th + i) * tw + j
                    a0, a1, a2, a3 = tu[2 * j], tu[2 * j + 1], tu[2 * j + 2], tu[2 * j + 3]
                    d = v[4 * u, k]
                    for ci in range(c):
                        d[ci] = a0[ci] - a2[ci]
                    d = v[4 * u + 1, k]
                    for ci in range(c):
                        d[ci] = a1[ci] + a2[ci]
                    d = v[4 * u + 2, k]
                    for ci in range(c):
                        d[ci] = a2[ci] - a1[ci]
                    d = v[4 * u + 3, k]
                    for ci in range(c):
                        d[ci] = a1[ci] - a3[ci]
    return v


@njit(cache=True, nogil=True)
def _blocks(m, bias, has_bias, yh):
    """m (16, N*H/2*W/2, O) -> yh (N, H, W, O) channels-last: A^T m A of each tile, plus
    bias[o] when has_bias."""
    n, h, w, o = yh.shape
    th, tw = h // 2, w // 2
    s = np.empty((8, o), dtype=yh.dtype)  # A^T m: its two rows, 4 columns each
    add = np.zeros(o, dtype=yh.dtype)
    if has_bias:
        for oi in range(o):
            add[oi] = bias[oi]
    for b in range(n):
        for i in range(th):
            for j in range(tw):
                k = (b * th + i) * tw + j
                for q in range(4):
                    top, bot = s[q], s[4 + q]
                    m0, m1, m2, m3 = m[q, k], m[4 + q, k], m[8 + q, k], m[12 + q, k]
                    for oi in range(o):
                        top[oi] = m0[oi] + m1[oi] + m2[oi]
                    for oi in range(o):
                        bot[oi] = m1[oi] - m2[oi] - m3[oi]
                for r in range(2):
                    s0, s1, s2, s3 = s[4 * r], s[4 * r + 1], s[4 * r + 2], s[4 * r + 3]
                    d = yh[b, 2 * i + r, 2 * j]
                    for oi in range(o):
                        d[oi] = s0[oi] + s1[oi] + s2[oi] + add[oi]
                    d = yh[b, 2 * i + r, 2 * j + 1]
                    for oi in range(o):
                        d[oi] = s1[oi] - s2[oi] - s3[oi] + add[oi]
    return yh


def forward(x, w, bias, has_bias, oh, ow):
    """x (N, C, H, W) with H and W even, w (O, C, 3, 3), bias (O,) (or (1,) zeros when not
    has_bias) -> y (N, O, H, W): stride 1, padding 1."""
    n, c, h, wd = x.shape
    o = w.shape[0]
    u = weights(w)
    y = np.empty((n, o, h, wd), dtype=x.dtype)
    tiles = (h // 2) * (wd // 2)

    def chunk(b0, b1):
        nc = b1 - b0
        v = _tiles(_padded_nhwc(x[b0:b1], 1, 1), _buffer("cols", (16, nc * tiles, c), x.dtype))
        m = np.matmul(v, u, out=_buffer("y", (16, nc * tiles, o), x.dtype))
        yh = _blocks(m, bias, has_bias, _buffer("g", (nc, h, wd, o), x.dtype))
        y[b0:b1] = yh.transpose(0, 3, 1, 2)

    size = max(1, workspace.CHUNK_ELEMENTS // CHUNK_DIV)
    run_chunks(chunk, _chunks(n, 4 * h * wd * max(c, o), size))
    return y


@njit(cache=True, nogil=True)
def _grad_tiles(gh, d):
    """gh (N, H, W, O) channels-last output gradient -> d (16, N*H/2*W/2, O): A g A^T of each
    2x2 block g (the adjoint of _blocks' A^T m A), position-major."""
    n, h, w, o = gh.shape
    th, tw = h // 2, w // 2
    for b in range(n):
        for i in range(th):
            for j in range(tw):
                k = (b * th + i) * tw + j
                g00, g01 = gh[b, 2 * i, 2 * j], gh[b, 2 * i, 2 * j + 1]
                g10, g11 = gh[b, 2 * i + 1, 2 * j], gh[b, 2 * i + 1, 2 * j + 1]
                for r in range(4):  # row r of A g: g0, g0 + g1, g0 - g1, -g1 (g's rows)
                    d0, d1, d2, d3 = d[4 * r, k], d[4 * r + 1, k], d[4 * r + 2, k], d[4 * r + 3, k]
                    for oi in range(o):
                        if r == 0:
                            a, c = g00[oi], g01[oi]
                        elif r == 1:
                            a, c = g00[oi] + g10[oi], g01[oi] + g11[oi]
                        elif r == 2:
                            a, c = g00[oi] - g10[oi], g01[oi] - g11[oi]
                        else:
                            a, c = -g10[oi], -g11[oi]
                        d0[oi] = a  # (A g) A^T along the columns: a, a + c, a - c, -c
                        d1[oi] = a + c
                        d2[oi] = a - c
                        d3[oi] = -c
    return d


@njit(cache=True, nogil=True)
def _weight_grad(du, gw):
    """du (16, C, O), the gradient of U = G g G^T -> gw (O, C, 3, 3) = G^T du G per kernel."""
    c, o = du.shape[1:]
    half = gw.dtype.type(0.5)
    t = np.empty((3, 4), dtype=gw.dtype)
    for ci in range(c):
        for oi in range(o):
            for q in range(4):  # G^T du: rows d0 + (d1 + d2)/2, (d1 - d2)/2, (d1 + d2)/2 + d3
                d0, d1 = du[q, ci, oi], du[4 + q, ci, oi]
                d2, d3 = du[8 + q, ci, oi], du[12 + q, ci, oi]
                t[0, q] = d0 + (d1 + d2) * half
                t[1, q] = (d1 - d2) * half
                t[2, q] = (d1 + d2) * half + d3
            g = gw[oi, ci]
            for r in range(3):  # (G^T du) G: the same along the columns
                g[r, 0] = t[r, 0] + (t[r, 1] + t[r, 2]) * half
                g[r, 1] = (t[r, 1] - t[r, 2]) * half
                g[r, 2] = (t[r, 1] + t[r, 2]) * half + t[r, 3]
    return gw


def backward_weight(gy, x):
    """gy (N, O, H, W), x (N, C, H, W) with H and W even -> gw (O, C, 3, 3) of a stride-1
    padding-1 3x3 convolution: the adjoint of forward. Per chunk the input's tiles V (as
    forward) and the output gradient's A g A^T give dU[p] = V[p]^T @ dM[p] (16 products with
    the chunk's tiles as their long inner dimension), summed over chunks in order; then
    gw = G^T dU G."""
    n, c, h, wd = x.shape
    o = gy.shape[1]
    tiles = (h // 2) * (wd // 2)

    def chunk(b0, b1):
        nc = b1 - b0
        v = _tiles(_padded_nhwc(x[b0:b1], 1, 1), _buffer("cols", (16, nc * tiles, c), x.dtype))
        gh = _buffer("g", (nc, h, wd, o), gy.dtype)
        gh[...] = gy[b0:b1].transpose(0, 2, 3, 1)
        dm = _grad_tiles(gh, _buffer("y", (16, nc * tiles, o), gy.dtype))
        return np.matmul(v.transpose(0, 2, 1), dm)  # (16, C, O)

    size = max(1, workspace.CHUNK_ELEMENTS // CHUNK_DIV)
    du = _sum(run_chunks(chunk, _chunks(n, 4 * h * wd * max(c, o), size)))
    return _weight_grad(du, np.empty((o, c, 3, 3), dtype=x.dtype))

