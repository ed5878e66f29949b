"""Normalization on the CPU: batch, layer and group norm, forward and backward.

Statistics accumulate in float64 around a shift (the first value of each slice), so that
sum(x^2)/M - mean^2 does not cancel catastrophically in one pass. Each backward is two loops over
the data: one reduction (sum gy, sum gy * xhat), one elementwise pass writing gx.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange


# ---- batch norm: statistics per channel over (N, L) ----------------------------------------
@njit(cache=True, parallel=True)
def batch_norm_stats(x):
    n, c, ll = x.shape
    mean = np.empty(c, dtype=x.dtype)
    var = np.empty(c, dtype=x.dtype)
    m = n * ll
    for ci in prange(c):
        k = np.float64(x[0, ci, 0])
        s1 = 0.0
        s2 = 0.0
        for b in range(n):
            for i in range(ll):
                d = np.float64(x[b, ci, i]) - k
                s1 += d
                s2 += d * d
        mu = s1 / m
        mean[ci] = k + mu
        var[ci] = max(s2 / m - mu * mu, 0.0)
    return mean, var


@njit(cache=True, parallel=True)
def batch_norm_apply(x, mean, invstd, weight, bias):
    n, c, ll = x.shape
    y = np.empty_like(x)
    for bc in prange(n * c):
        b = bc // c
        ci = bc % c
        scale = invstd[ci] * weight[ci]
        shift = bias[ci] - mean[ci] * scale
        for i in range(ll):
            y[b, ci, i] = x[b, ci, i] * scale + shift
    return y


@njit(cache=True, parallel=True)
def batch_norm_backward_reduce(gy, x, mean, invstd):
    n, c, ll = x.shape
    sums = np.empty((2, c), dtype=gy.dtype)
    for ci in prange(c):
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


@njit(cache=True, parallel=True)
def batch_norm_backward_input(gy, x, mean, invstd, weight, sums):
    n, c, ll = x.shape
    gx = np.empty_like(gy)
    m = n * ll
    for bc in prange(n * c):
        b = bc // c
        ci = bc % c
        k = weight[ci] * invstd[ci]
        mg = sums[0, ci] / m
        mgx = sums[1, ci] / m * invstd[ci]  # mean(gy * xhat) * invstd, multiplies (x - mean)
        mu = mean[ci]
        for i in range(ll):
            gx[b, ci, i] = k * (gy[b, ci, i] - mg - (x[b, ci, i] - mu) * mgx)
    return gx


# ---- layer norm: statistics per row ---------------------------------------------------------
@njit(cache=True, parallel=True)
def layer_norm_forward(x, weight, bias, eps):
    r, d = x.shape
    y = np.empty_like(x)
    mean = np.empty(r, dtype=x.dtype)
    invstd = np.empty(r, dtype=x.dtype)
    for ri in prange(r):
        k = np.float64(x[ri, 0])
        s1 = 0.0
        s2 = 0.0
        for i in range(d):
            v = np.float64(x[ri, i]) - k
            s1 += v
            s2 += v * v
        mu = s1 / d
        var = max(s2 / d - mu * mu, 0.0)
        mu += k
        inv = 1.0 / np.sqrt(var + eps)
        mean[ri] = mu
        invstd[ri] = inv
        for i in range(d):
            y[ri, i] = (x[ri, i] - mu) * inv * weight[i] + bias[i]
    return y, mean, invstd


@njit(cache=True, parallel=True)
def layer_norm_backward_input(gy, x, mean, invstd, weight):
    r, d = x.shape
    gx = np.empty_like(gy)
    for ri in prange(r):
        mu = mean[ri]
        inv = invstd[ri]
        s1 = 0.0
        s2 = 0.0
        for i in range(d):
            gw = np.float64(gy[ri, i]) * weight[i]
            s1 += gw
            s2 += gw * (x[ri, i] - mu) * inv
        a = s1 / d
        bb = s2 / d
        for i in range(d):
            xhat = (x[ri, i] - mu) * inv
            gx[ri, i] = inv * (gy[ri, i] * weight[i] - a - xhat * bb)
    return gx


@njit(cache=True, parallel=True)
def layer_norm_backward_affine(gy, x, mean, invstd):
    r, d = x.shape
    chunks = min(r, 8)
    part = np.zeros((chunks, 2, d))
    for ch in prange(chunks):  # rows split in chunks, one partial sum per chunk
        for ri in range(ch * r // chunks, (ch + 1) * r // chunks):
            mu = mean[ri]
            inv = invstd[ri]
            for i in range(d):
                g = gy[ri, i]
                part[ch, 0, i] += g
                part[ch, 1, i] += g * (x[ri, i] - mu) * inv
    out = np.empty((2, d), dtype=gy.dtype)
    for i in range(d):
        s0 = 0.0
        s1 = 0.0
        for ch in range(chunks):
            s0 += part[ch, 0, i]
            s1 += part[ch, 1, i]
        out[0, i] = s0
        out[1, i] = s1
    return out


# ---- group norm: statistics per (sample, group) over (C/G, L) -------------------------------
@njit(cache=True, parallel=True)
def group_norm_forward(x, weight, bias, groups, eps):
    n, c, ll = x.shape
    cg = c // groups
    m = cg * ll
    y = np.empty_like(x)
    mean = np.empty((n, groups), dtype=x.dtype)
    invstd = np.empty((n, groups), dtype=x.dtype)
    for bg in prange(n * groups):
        b = bg // groups
        g = bg % groups
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
            shift = bias[ci] - mu * scale
            for i in range(ll):
                y[b, ci, i] = x[b, ci, i] * scale + shift
    return y, mean, invstd


@njit(cache=True, parallel=True)
def group_norm_backward_input(gy, x, mean, invstd, weight, groups):
    n, c, ll = x.shape
    cg = c // groups
    m = cg * ll
    gx = np.empty_like(gy)
    for bg in prange(n * groups):
        b = bg // groups
        g = bg % groups
        mu = mean[b, g]
        inv = invstd[b, g]
        s1 = 0.0
        s2 = 0.0
        for ci in range(g * cg, (g + 1) * cg):
            wc = weight[ci]
            for i in range(ll):
                gw = np.float64(gy[b, ci, i]) * wc
                s1 += gw
                s2 += gw * (x[b, ci, i] - mu)
        a = s1 / m
        bb = s2 / m * inv * inv
        for ci in range(g * cg, (g + 1) * cg):
            wc = weight[ci]
            for i in range(ll):
                gx[b, ci, i] = inv * (gy[b, ci, i] * wc - a - (x[b, ci, i] - mu) * bb)
    return gx


@njit(cache=True, parallel=True)
def group_norm_backward_affine(gy, x, mean, invstd, groups):
    n, c, ll = x.shape
    cg = c // groups
    out = np.empty((2, c), dtype=gy.dtype)
    for ci in prange(c):
        g = ci // cg
        s0 = 0.0
        s1 = 0.0
        for b in range(n):
            mu = mean[b, g]
            inv = invstd[b, g]
            for i in range(ll):
                v = np.float64(gy[b, ci, i])
                s0 += v
                s1 += v * (x[b, ci, i] - mu) * inv
        out[0, ci] = s0
        out[1, ci] = s1
    return out
