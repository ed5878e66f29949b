"""Fused softmax cross-entropy on the CPU: one pass per row for the loss, one for the gradient
(serial loops: see conv/__init__.py).

The log-sum-exp is kept in float64: at large logits (a row near 1e4) a float32 lse carries an
absolute error near its ulp, and exp(x - lse) would turn it into a relative error of the softmax.
The smoothing term is added only when smoothing is on, so that a logit of -inf (a masked class)
gives no 0 * inf."""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def softmax_cross_entropy_forward(logits, target, smoothing):
    n, c = logits.shape
    loss = np.empty(n, dtype=logits.dtype)
    lse = np.empty(n, dtype=np.float64)
    for r in range(n):
        m = -np.inf
        for k in range(c):
            m = max(m, logits[r, k])
        if not np.isfinite(m):
            m = 0.0
        s = 0.0
        tot = 0.0
        for k in range(c):
            s += np.exp(logits[r, k] - m)
            tot += logits[r, k]
        z = m + np.log(s)
        lse[r] = z
        v = z - (1.0 - smoothing) * logits[r, target[r]]
        if smoothing != 0.0:
            v -= smoothing * tot / c
        loss[r] = v
    return loss, lse


@njit(cache=True, nogil=True)
def softmax_cross_entropy_backward(gloss, logits, target, lse, smoothing):
    n, c = logits.shape
    g = np.empty_like(logits)
    for r in range(n):
        z = lse[r]
        gr = gloss[r]
        for k in range(c):
            g[r, k] = gr * (np.exp(np.float64(logits[r, k]) - z) - smoothing / c)
        g[r, target[r]] -= gr * (1.0 - smoothing)
    return g
