"""The 'meta' backend: every kernel of the table (`table.KERNELS`), computing shapes only.

Tracing (`tinygrad_ds.graph.trace`) runs a model on MetaArrays; the ops call these kernels exactly
as they call the cpu ones, and get MetaArrays of the right shape and dtype back in no time.
Signatures are the table's (see table.py for what each argument means).
"""
from __future__ import annotations

import numpy as np

from ..meta import MetaArray


def _float(*arrays) -> np.dtype:
    for a in arrays:
        if a is not None and a.dtype.kind == "f":
            return a.dtype
    return np.dtype(np.float32)


# ---- convolution ------------------------------------------------------------------------------
def conv2d_forward(x, w, b, sh, sw, ph, pw, dh, dw, groups, oh, ow):
    return MetaArray((x.shape[0], w.shape[0], oh, ow), _float(x, w))


def conv2d_backward_input(gy, w, sh, sw, ph, pw, dh, dw, groups, h, w_):
    return MetaArray((gy.shape[0], w.shape[1] * groups, h, w_), _float(gy, w))


def conv2d_backward_weight(gy, x, sh, sw, ph, pw, dh, dw, groups, kh, kw):
    return MetaArray((gy.shape[1], x.shape[1] // groups, kh, kw), _float(gy, x))


# ---- pooling ------------------------------------------------------------------------------------
def max_pool2d_forward(x, kh, kw, sh, sw, ph, pw, oh, ow):
    shape = x.shape[:2] + (oh, ow)
    return MetaArray(shape, x.dtype), MetaArray(shape, np.int64)


def max_pool2d_backward(gy, argmax, h, w):
    return MetaArray(gy.shape[:2] + (h, w), gy.dtype)


def avg_pool2d_forward(x, kh, kw, sh, sw, ph, pw, oh, ow, count_pad):
    return MetaArray(x.shape[:2] + (oh, ow), x.dtype)


def avg_pool2d_backward(gy, kh, kw, sh, sw, ph, pw, h, w, count_pad):
    return MetaArray(gy.shape[:2] + (h, w), gy.dtype)


def adaptive_avg_pool2d_forward(x, oh, ow):
    return MetaArray(x.shape[:2] + (oh, ow), x.dtype)


def adaptive_avg_pool2d_backward(gy, h, w):
    return MetaArray(gy.shape[:2] + (h, w), gy.dtype)


# ---- normalization ------------------------------------------------------------------------------
def batch_norm_stats(x):
    c = x.shape[1]
    return MetaArray((c,), x.dtype), MetaArray((c,), x.dtype)


def batch_norm_apply(x, mean, invstd, weight, bias):
    return MetaArray(x.shape, x.dtype)


def batch_norm_backward_reduce(gy, x, mean, invstd):
    return MetaArray((2, x.shape[1]), _float(gy, x))


def batch_norm_backward_input(gy, x, mean, invstd, weight, sums):
    return MetaArray(x.shape, _float(gy, x))


def layer_norm_forward(x, weight, bias, eps):
    r = x.shape[0]
    return MetaArray(x.shape, x.dtype), MetaArray((r,), x.dtype), MetaArray((r,), x.dtype)


def layer_norm_backward_input(gy, x, mean, invstd, weight):
    return MetaArray(x.shape, _float(gy, x))


def layer_norm_backward_affine(gy, x, mean, invstd):
    return MetaArray((2, x.shape[1]), _float(gy, x))


def group_norm_forward(x, weight, bias, groups, eps):
    n = x.shape[0]
    return (MetaArray(x.shape, x.dtype), MetaArray((n, groups), x.dtype),
            MetaArray((n, groups), x.dtype))


def group_norm_backward_input(gy, x, mean, invstd, weight, groups):
    return MetaArray(x.shape, _float(gy, x))


def group_norm_backward_affine(gy, x, mean, invstd, groups):
    return MetaArray((2, x.shape[1]), _float(gy, x))


# ---- fused loss -----------------------------------------------------------------------------------
def softmax_cross_entropy_forward(logits, target, smoothing):
    n = logits.shape[0]
    return MetaArray((n,), logits.dtype), MetaArray((n,), logits.dtype)


def softmax_cross_entropy_backward(gloss, logits, target, lse, smoothing):
    return MetaArray(logits.shape, _float(gloss, logits))
