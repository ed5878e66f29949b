"""Normalization on the CPU: batch, layer and group norm, forward and backward.

Statistics accumulate in float64 around a shift (the first value of each slice), so that
sum(x^2)/M - mean^2 does not cancel catastrophically in one pass. Each backward is two loops over
the data: one reduction (sum gy, sum gy * xhat), one elementwise pass writing gx.

NOTE: the loops are serial and walk contiguous memory; fastmath's `reassoc` lets LLVM split the
float64 sums into SIMD lanes (without it a sum is one long dependency chain, slower than
memory can feed it). No `nnan`/`ninf`: a NaN in the input must still come out as NaN. Per-channel
coefficients are computed once in float64 and stored in the data's dtype, so the inner loops of
a float32 tensor run in float32. Batch norm's kernels share large arrays out among the threads
of backend/threads.py (channels for the sums, samples for the elementwise passes): each
channel's sum runs in the same order on any number of threads, so results do not depend on it.
Layer and group norm stay serial.

The input-gradient kernels take (N, C, ...) arrays of any rank and return gx in that shape, in
memory it owns (allocated in Python): a reshaped view, or an array numba allocated, would be
copied once more when it becomes a leaf's .grad.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from .. import threads

_FAST = {"reassoc", "contract"}
# batch norm's kernels share their work among threads from this many elements on
PARALLEL_ELEMENTS = 1 << 18


# ---- batch norm: statistics per channel over (N, L) ----------------------------------------
def _parts(n: int, size: int) -> list[tuple[int, int]]:
    """[a, b) ranges of n channels (or samples) for the pool's threads (threads.split)."""
    return threads.split(n, size, PARALLEL_ELEMENTS)


def batch_norm_stats(x):
    """x (N, C, L) -> (2, C): mean and biased variance per channel (channels shared out among
    the threads; each channel's sum is the same on any number of threads)."""
    stats = np.empty((2, x.shape[1]), dtype=x.dtype)
    threads.map_ordered(lambda r: _batch_norm_stats(x, r[0], r[1], stats),
                        _parts(x.shape[1], x.size))
    return stats


@njit(cache=True, nogil=True, fastmath=_FAST)
def _batch_norm_stats(x, c0, c1, stats):
    """stats[:, c0:c1] of x (N, C, L): the whole array is passed (a slice of its channels would
    be a strided array, whose loops numba does not vectorize)."""
    n, c, ll = x.shape
    m = n * ll
    for ci in range(c0, c1):
        k = np.float64(x[0, ci, 0])
        s1 = 0.0
        s2 = 0.0
        for b in range(n):
            for i in range(ll):
                d = np.float64(x[b, ci, i]) - k
                s1 += d
                s2 += d * d
        mu = s1 / m
        stats[0, ci] = k + mu
        stats[1, ci] = max(s2 / m - mu * mu, 0.0)
    return stats


def batch_norm_apply(x, mean, invstd, weight, bias):
    """x (N, C, L) -> (x - mean) * invstd * weight + bias (samples shared out among threads)."""
    y = np.empty_like(x)
    threads.map_ordered(lambda r: _batch_norm_apply(x[r[0]:r[1]], mean, invstd, weight, bias,
                                                    y[r[0]:r[1]]), _parts(x.shape[0], x.size))
    return y


@njit(cache=True, nogil=True, fastmath=_FAST)
def _batch_norm_apply(x, mean, invstd, weight, bias, y):
    n, c, ll = x.shape
    coef = np.empty((2, c), dtype=x.dtype)  # scale, shift in x's dtype
    for ci in range(c):
        scale = np.float64(invstd[ci]) * weight[ci]
        coef[0, ci] = scale
        coef[1, ci] = bias[ci] - mean[ci] * scale
    for b in range(n):
        for ci in range(c):
            scale = coef[0, ci]
            shift = coef[1, ci]
            for i in range(ll):
                y[b, ci, i] = x[b, ci, i] * scale + shift
    return y


def batch_norm_backward_reduce(gy, x, mean, invstd):
    """gy, x (N, C, L) -> (2, C): sum of gy and of gy * xhat per channel (channels shared out
    among the threads)."""
    sums = np.empty((2, x.shape[1]), dtype=gy.dtype)
    threads.map_ordered(lambda r: _batch_norm_backward_reduce(gy, x, mean, invstd, r[0], r[1],
                                                              sums),
                        _parts(x.shape[1], x.size))
    return sums


@njit(cache=True, nogil=True, fastmath=_FAST)
def _batch_norm_backward_reduce(gy, x, mean, invstd, c0, c1, sums):
    """sums[:, c0:c1] (see batch_norm_backward_reduce)."""
    n, c, ll = x.shape
    for ci in range(c0, c1):
        mu = np.float64(mean[ci])
        sg = 0.0
        sgx = 0.0
        for b in range(n):
            for i in range(ll):
                g = np.float64(gy[b, ci, i])
                sg += g
                sgx += g * (x[b, ci, i] - mu)
        sums[0, ci] = sg
        sums[1, ci] = sgx * invstd[ci]
    return sums


def _owned_like(gy):
    """A fresh array of gy's shape and dtype that owns its memory: autograd keeps such an array
    as a leaf's .grad as it is, where a view or a numba-allocated array would be copied."""
    return np.empty(gy.shape, dtype=gy.dtype)


def batch_norm_backward_input(gy, x, mean, invstd, weight, sums):
    n, c = x.shape[:2]
    gx = _owned_like(gy)
    g3, x3, gx3 = gy.reshape(n, c, -1), x.reshape(n, c, -1), gx.reshape(n, c, -1)
    m = g3.shape[0] * g3.shape[2]  # values per channel in the whole batch
    threads.map_ordered(lambda r: _batch_norm_backward_input(  # samples shared out
        g3[r[0]:r[1]], x3[r[0]:r[1]], mean, invstd, weight, sums, m, gx3[r[0]:r[1]]),
        _parts(n, gy.size))
    return gx


@njit(cache=True, nogil=True, fastmath=_FAST)
def _batch_norm_backward_input(gy, x, mean, invstd, weight, sums, m, gx):
    """gx for samples gy, x (n, C, L) of a batch of m values per channel."""
    n, c, ll = x.shape
    # gx = k * (gy - mg - (x - mean) * mgx) = a0 * gy + a1 * (x - mean) + a2; x - mean is
    # taken in the data's dtype (exact when x is near mean), not expanded into a difference of
    # two large products
    coef = np.empty((4, c), dtype=gy.dtype)
    for ci in range(c):
        k = np.float64(weight[ci]) * invstd[ci]
        mg = np.float64(sums[0, ci]) / m
        mgx = np.float64(sums[1, ci]) / m * invstd[ci]  # mean(gy * xhat) * invstd
        coef[0, ci] = k
        coef[1, ci] = -k * mgx
        coef[2, ci] = -k * mg
        coef[3, ci] = mean[ci]
    for b in range(n):
        for ci in range(c):
            a0 = coef[0, ci]
            a1 = coef[1, ci]
            a2 = coef[2, ci]
            mu = coef[3, ci]
            for i in range(ll):
                gx[b, ci, i] = a0 * gy[b, ci, i] + a1 * (x[b, ci, i] - mu) + a2
    return gx


# ---- layer norm: statistics per row ---------------------------------------------------------
@njit(cache=True, nogil=True, fastmath=_FAST)
def layer_norm_forward(x, weight, bias, eps):
    r, d = x.shape
    y = np.empty_like(x)
    mean = np.empty(r, dtype=x.dtype)
    invstd = np.empty(r, dtype=x.dtype)
    for ri in range(r):
        k = np.float64(x[ri, 0])
        s1 = 0.0
        s2 = 0.0
        for i in range(d):
            v = np.float64(x[ri, i]) - k
            s1 += v
            s2 += v * v
        mu = s1 / d
        var = max(s2 / d - mu * mu, 0.0)
        mean[ri] = mu + k
        invstd[ri] = 1.0 / np.sqrt(var + eps)
        mu_t = mean[ri]  # in x's dtype, so that the loop below runs in it
        inv_t = invstd[ri]
        for i in range(d):
            y[ri, i] = (x[ri, i] - mu_t) * inv_t * weight[i] + bias[i]
    return y, mean, invstd


def layer_norm_backward_input(gy, x, mean, invstd, weight):
    d = weight.size
    gx = _owned_like(gy)
    _layer_norm_backward_input(gy.reshape(-1, d), x.reshape(-1, d), mean, invstd,
                               weight.reshape(d), gx.reshape(-1, d))
    return gx


@njit(cache=True, nogil=True, fastmath=_FAST)
def _layer_norm_backward_input(gy, x, mean, invstd, weight, gx):
    r, d = x.shape
    coef = np.empty(2, dtype=gy.dtype)
    for ri in range(r):
        mu_t = mean[ri]
        inv = np.float64(invstd[ri])
        s1 = 0.0
        s2 = 0.0
        for i in range(d):
            gw = np.float64(gy[ri, i]) * weight[i]
            s1 += gw
            s2 += gw * (x[ri, i] - mu_t)
        # gx = inv * (gy * w - mean(gy w) - (x - mu) * mean(gy w (x - mu)) inv^2)
        coef[0] = -inv * (s1 / d)
        coef[1] = -inv * (s2 / d) * inv * inv
        inv_t = invstd[ri]
        a = coef[0]
        bb = coef[1]
        for i in range(d):
            gx[ri, i] = inv_t * gy[ri, i] * weight[i] + a + (x[ri, i] - mu_t) * bb
    return gx


@njit(cache=True, nogil=True, fastmath=_FAST)
def layer_norm_backward_affine(gy, x, mean, invstd):
    r, d = x.shape
    part = np.zeros((2, d))  # float64 sums, accumulated row by row (SIMD across columns)
    for ri in range(r):
        mu = np.float64(mean[ri])
        inv = np.float64(invstd[ri])
        for i in range(d):
            g = np.float64(gy[ri, i])
            part[0, i] += g
            part[1, i] += g * (x[ri, i] - mu) * inv
    return part.astype(gy.dtype)


# ---- group norm: statistics per (sample, group) over (C/G, L) -------------------------------
@njit(cache=True, nogil=True, fastmath=_FAST)
def group_norm_forward(x, weight, bias, groups, eps):
    n, c, ll = x.shape
    cg = c // groups
    m = cg * ll
    y = np.empty_like(x)
    mean = np.empty((n, groups), dtype=x.dtype)
    invstd = np.empty((n, groups), dtype=x.dtype)
    coef = np.empty(2, dtype=x.dtype)
    for b in range(n):
        for g in range(groups):
            k = np.float64(x[b, g * cg, 0])
            s1 = 0.0
            s2 = 0.0
            for ci in range(g * cg, (g + 1) * cg):
                for i in range(ll):
                    v = np.float64(x[b, ci, i]) - k
                    s1 += v
                    s2 += v * v
            mu = s1 / m
            var = max(s2 / m - mu * mu, 0.0)
            mu += k
            inv = 1.0 / np.sqrt(var + eps)
            mean[b, g] = mu
            invstd[b, g] = inv
            for ci in range(g * cg, (g + 1) * cg):
                scale = inv * weight[ci]
                coef[0] = scale
                coef[1] = bias[ci] - mu * scale
                sc = coef[0]
                sh = coef[1]
                for i in range(ll):
                    y[b, ci, i] = x[b, ci, i] * sc + sh
    return y, mean, invstd


def group_norm_backward_input(gy, x, mean, invstd, weight, groups):
    n, c = x.shape[:2]
    gx = _owned_like(gy)
    _group_norm_backward_input(gy.reshape(n, c, -1), x.reshape(n, c, -1), mean, invstd, weight,
                               groups, gx.reshape(n, c, -1))
    return gx


@njit(cache=True, nogil=True, fastmath=_FAST)
def _group_norm_backward_input(gy, x, mean, invstd, weight, groups, gx):
    n, c, ll = x.shape
    cg = c // groups
    m = cg * ll
    coef = np.empty(4, dtype=gy.dtype)
    for b in range(n):
        for g in range(groups):
            mu = np.float64(mean[b, g])
            inv = np.float64(invstd[b, g])
            s1 = 0.0
            s2 = 0.0
            for ci in range(g * cg, (g + 1) * cg):
                wc = np.float64(weight[ci])
                for i in range(ll):
                    gw = np.float64(gy[b, ci, i]) * wc
                    s1 += gw
                    s2 += gw * (x[b, ci, i] - mu)
            a = s1 / m
            bb = s2 / m * inv * inv
            # gx = inv * (gy * w - a - (x - mu) * bb) = a0 * gy + a1 * (x - mu) + a2
            coef[1] = -inv * bb
            coef[2] = -inv * a
            coef[3] = mu
            a1 = coef[1]
            a2 = coef[2]
            mu_t = coef[3]
            for ci in range(g * cg, (g + 1) * cg):
                coef[0] = inv * weight[ci]
                a0 = coef[0]
                for i in range(ll):
                    gx[b, ci, i] = a0 * gy[b, ci, i] + a1 * (x[b, ci, i] - mu_t) + a2
    return gx


@njit(cache=True, nogil=True, fastmath=_FAST)
def group_norm_backward_affine(gy, x, mean, invstd, groups):
    n, c, ll = x.shape
    cg = c // groups
    out = np.empty((2, c), dtype=gy.dtype)
    for ci in range(c):
        g = ci // cg
        s0 = 0.0
        s1 = 0.0
        for b in range(n):
            mu = np.float64(mean[b, g])
            inv = np.float64(invstd[b, g])
            t0 = 0.0
            t1 = 0.0
            for i in range(ll):
                v = np.float64(gy[b, ci, i])
                t0 += v
                t1 += v * (x[b, ci, i] - mu)
            s0 += t0
            s1 += t1 * inv
        out[0, ci] = s0
        out[1, ci] = s1
    return out
