"""The 'meta' backend: every name of the kernel table as a shape and dtype rule.

Tracing runs ops on MetaArrays; the ops call these kernels exactly as they call the cpu ones and
get MetaArrays of the right shape and dtype back, without touching a number. The same rules let
`Graph.check()` verify a graph's shapes. Signatures are the table's (table.py says what each
argument means). A rule raises MetaValueError where the shape depends on the data (a boolean
mask), and ValueError where shapes do not fit.
"""
from __future__ import annotations

import builtins

import numpy as np

from ..table import BINARY, COMPARE, UNARY
from .array import MetaArray, MetaValueError

M = MetaArray


def _float(*arrays) -> np.dtype:
    for a in arrays:
        if a is not None and a.dtype.kind == "f":
            return a.dtype
    return np.dtype(np.float32)


def _bshape(*shapes) -> tuple:
    return tuple(np.broadcast_shapes(*shapes))


def _reduced(shape: tuple, axes, keepdims: bool) -> tuple:
    axes = range(len(shape)) if axes is None else axes
    if keepdims:
        return tuple(1 if i in axes else s for i, s in enumerate(shape))
    return tuple(s for i, s in enumerate(shape) if i not in axes)


# ---- elementwise ----------------------------------------------------------------------------
def _unary(name):
    def rule(x):
        return M(x.shape, x.dtype)
    rule.__name__ = name
    return rule


def _binary(name):
    def rule(a, b):
        return M(_bshape(a.shape, b.shape), np.result_type(a.dtype, b.dtype))
    rule.__name__ = name
    return rule


def _compare(name):
    def rule(a, b):
        return M(_bshape(a.shape, b.shape), np.bool_)
    rule.__name__ = name
    return rule


for _n in UNARY:
    globals()[_n] = _unary(_n)
for _n in BINARY:
    globals()[_n] = _binary(_n)
for _n in COMPARE:
    globals()[_n] = _compare(_n)


def leaky_relu(x, slope):
    return M(x.shape, x.dtype)


def where(cond, a, b):
    return M(_bshape(cond.shape, a.shape, b.shape), np.result_type(a.dtype, b.dtype))


def cast(x, dtype):
    return x if x.dtype == np.dtype(dtype) else M(x.shape, dtype)


# ---- reductions -----------------------------------------------------------------------------------
def sum(x, axes, keepdims):  # noqa: A001 - the table's name
    return M(_reduced(x.shape, axes, keepdims), x.dtype if x.dtype.kind == "f" else np.int64)


def mean(x, axes, keepdims):
    return M(_reduced(x.shape, axes, keepdims), x.dtype if x.dtype.kind == "f" else np.float64)


def max(x, axes, keepdims):  # noqa: A001
    return M(_reduced(x.shape, axes, keepdims), x.dtype)


min = max  # noqa: A001


def argmax(x, axis, keepdims):
    if axis is None:
        return M((1,) * x.ndim if keepdims else (), np.int64)
    return M(_reduced(x.shape, (axis,), keepdims), np.int64)


def any(x):  # noqa: A001
    return M((), np.bool_)


all = any  # noqa: A001


# ---- movement -------------------------------------------------------------------------------------
def reshape(x, shape):
    shape = tuple(shape)
    if builtins.sum(1 for s in shape if s == -1) == 1:
        known = int(np.prod([s for s in shape if s != -1]))
        shape = tuple(x.size // known if s == -1 else s for s in shape)
    if int(np.prod(shape)) != x.size:
        raise ValueError(f"cannot reshape array of size {x.size} into shape {shape}")
    return M(shape, x.dtype)


def permute(x, axes):
    if sorted(axes) != list(range(x.ndim)):
        raise ValueError(f"axes {axes} do not permute {x.ndim} axes")
    return M(tuple(x.shape[a] for a in axes), x.dtype)


def expand(x, shape):
    if _bshape(x.shape, shape) != tuple(shape):
        raise ValueError(f"cannot expand {x.shape} to {shape}")
    return M(shape, x.dtype)


def contiguous(x):
    return x


def copy(x):
    return M(x.shape, x.dtype)


def _stand_in(i):
    """An index item with the same effect on shapes: MetaArrays of integers become zeros."""
    if isinstance(i, MetaArray):
        if i.dtype.kind == "b":
            raise MetaValueError(f"boolean-mask indexing with a shape-only mask {i.shape}: the "
                                 "result's shape depends on the mask's values")
        return np.zeros(i.shape, np.int64)
    if isinstance(i, tuple):
        return tuple(_stand_in(j) for j in i)
    return i


def index_shape(shape: tuple, index) -> tuple:
    """The shape x[index] has, for x of `shape` (numpy's rules), without any data."""
    return np.broadcast_to(np.zeros((), np.bool_), shape)[_stand_in(index)].shape


def getitem(x, index):
    return M(index_shape(x.shape, index), x.dtype)


def index_add(g, shape, index):
    return M(shape, g.dtype)


def pad(x, pad_width, value):
    return M(tuple(s + a + b for s, (a, b) in zip(x.shape, pad_width)), x.dtype)


def concat(xs, axis):
    shape = list(xs[0].shape)
    shape[axis] = builtins.sum(x.shape[axis] for x in xs)
    return M(shape, np.result_type(*[x.dtype for x in xs]))


def gather(x, index, axis):
    return M(index.shape, x.dtype)


def scatter_add(g, index, axis, size):
    shape = list(g.shape)
    shape[axis] = size
    return M(shape, g.dtype)


# ---- products and softmax -----------------------------------------------------------------------
def matmul(a, b):
    if a.shape[-1] != b.shape[-2]:
        raise ValueError(f"matmul: {a.shape} @ {b.shape}")
    batch = _bshape(a.shape[:-2], b.shape[:-2])
    return M(batch + (a.shape[-2], b.shape[-1]), np.result_type(a.dtype, b.dtype))


def softmax(x, axis):
    return M(x.shape, x.dtype)


log_softmax = softmax


def logsumexp(x, axes, keepdims):
    return M(_reduced(x.shape, axes, keepdims), x.dtype)


# ---- creation, state, randomness, checks ----------------------------------------------------------
def full(shape, value, dtype):
    return M(shape, dtype)


def copy_into(dst, src):
    return dst


def bernoulli_mask(gen, like, shape, p):
    return M(shape, like.dtype)


def index_errors(t, low, high, ignore):
    return M((2,), np.int64)


# ---- convolution ------------------------------------------------------------------------------
def conv2d_forward(x, w, b, sh, sw, ph, pw, dh, dw, groups, oh, ow):
    return M((x.shape[0], w.shape[0], oh, ow), _float(x, w))


def conv2d_backward_input(gy, w, sh, sw, ph, pw, dh, dw, groups, h, w_):
    return M((gy.shape[0], w.shape[1] * groups, h, w_), _float(gy, w))


def conv2d_backward_weight(gy, x, sh, sw, ph, pw, dh, dw, groups, kh, kw):
    return M((gy.shape[1], x.shape[1] // groups, kh, kw), _float(gy, x))


# ---- pooling ------------------------------------------------------------------------------------
def max_pool2d_forward(x, kh, kw, sh, sw, ph, pw, oh, ow):
    shape = x.shape[:2] + (oh, ow)
    return M(shape, x.dtype), M(shape, np.int64)


def max_pool2d_backward(gy, argmax, h, w):
    return M(gy.shape[:2] + (h, w), gy.dtype)


def avg_pool2d_forward(x, kh, kw, sh, sw, ph, pw, oh, ow, count_pad):
    return M(x.shape[:2] + (oh, ow), x.dtype)


def avg_pool2d_backward(gy, kh, kw, sh, sw, ph, pw, h, w, count_pad):
    return M(gy.shape[:2] + (h, w), gy.dtype)


def adaptive_avg_pool2d_forward(x, oh, ow):
    return M(x.shape[:2] + (oh, ow), x.dtype)


def adaptive_avg_pool2d_backward(gy, h, w):
    return M(gy.shape[:2] + (h, w), gy.dtype)


# ---- normalization ------------------------------------------------------------------------------
def batch_norm_stats(x):
    return M((2, x.shape[1]), x.dtype)


def batch_norm_apply(x, mean, invstd, weight, bias):
    return M(x.shape, x.dtype)


def batch_norm_backward_reduce(gy, x, mean, invstd):
    return M((2, x.shape[1]), _float(gy, x))


def batch_norm_backward_input(gy, x, mean, invstd, weight, sums):
    return M(x.shape, _float(gy, x))


def layer_norm_forward(x, weight, bias, eps):
    r = x.shape[0]
    return M(x.shape, x.dtype), M((r,), x.dtype), M((r,), x.dtype)


def layer_norm_backward_input(gy, x, mean, invstd, weight):
    return M(x.shape, _float(gy, x))


def layer_norm_backward_affine(gy, x, mean, invstd):
    return M((2, x.shape[-1]), _float(gy, x))


def group_norm_forward(x, weight, bias, groups, eps):
    n = x.shape[0]
    return M(x.shape, x.dtype), M((n, groups), x.dtype), M((n, groups), x.dtype)


def group_norm_backward_input(gy, x, mean, invstd, weight, groups):
    return M(x.shape, _float(gy, x))


def group_norm_backward_affine(gy, x, mean, invstd, groups):
    return M((2, x.shape[1]), _float(gy, x))


# ---- fused loss -----------------------------------------------------------------------------------
def softmax_cross_entropy_forward(logits, target, smoothing):
    n = logits.shape[0]
    return M((n,), logits.dtype), M((n,), np.float64)


def softmax_cross_entropy_backward(gloss, logits, target, lse, smoothing):
    return M(logits.shape, _float(gloss, logits))


__all__ = ["MetaArray", "MetaValueError", "index_shape"]
