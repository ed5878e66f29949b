"""The cpu backend's array primitives: elementwise ops, reductions, movement, matmul, softmax,
creation, state writes and random masks, on numpy arrays (see table.py for the contracts).

numpy's ufuncs are already vectorised loops over contiguous memory with BLAS behind matmul, so
these are thin: what they add is the table's contract (dtypes, keepdims, the stable softmax).
"""
from __future__ import annotations

import builtins
import math

import numpy as np

# ---- elementwise ----------------------------------------------------------------------------
neg, exp, sqrt, abs, sign, tanh = np.negative, np.exp, np.sqrt, np.abs, np.sign, np.tanh
add, sub, mul, div, maximum, minimum = (np.add, np.subtract, np.multiply, np.divide, np.maximum,
                                        np.minimum)
less, less_equal, equal, not_equal = np.less, np.less_equal, np.equal, np.not_equal


def log(x):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(x)


def pow(a, b):  # noqa: A001 - the table's name
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return np.power(a, b)


def relu(x):
    return np.maximum(x, x.dtype.type(0))


def leaky_relu(x, slope):
    return np.where(x > 0, x, x * x.dtype.type(slope))


def sigmoid(x):
    e = np.exp(-np.abs(x))  # exp of a non-positive number only: no overflow for large |x|
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


_erf = np.frompyfunc(math.erf, 1, 1)


def erf(x):
    # NOTE: 1-D in and out, since the object ufunc gives a Python float for a 0-d input
    return _erf(x.reshape(-1)).astype(x.dtype).reshape(x.shape)


def where(cond, a, b):
    return np.where(cond, a, b)


def cast(x, dtype):
    return x if x.dtype == dtype else x.astype(dtype)


# ---- reductions -------------------------------------------------------------------------------
def sum(x, axes, keepdims):  # noqa: A001
    # float sums keep their dtype; integer and bool sums give int64, as in numpy
    # (np.add.reduce is np.sum without its Python wrapper: a few microseconds per call; unlike
    # np.sum it takes the axes as an int or a tuple only)
    if axes is not None and not isinstance(axes, (int, tuple)):
        axes = int(axes) if isinstance(axes, np.integer) else tuple(axes)
    return np.asarray(np.add.reduce(x, axis=axes, keepdims=keepdims,
                                    dtype=x.dtype if x.dtype.kind == "f" else np.int64))


def mean(x, axes, keepdims):
    n = 1
    for a in axes:
        n *= x.shape[a]
    s = sum(x, axes, keepdims)
    return s * s.dtype.type(1.0 / n) if s.dtype.kind == "f" else s / n


def max(x, axes, keepdims):  # noqa: A001
    return np.asarray(np.max(x, axis=axes, keepdims=keepdims))


def min(x, axes, keepdims):  # noqa: A001
    return np.asarray(np.min(x, axis=axes, keepdims=keepdims))


def argmax(x, axis, keepdims):
    if axis is None:
        out = np.asarray(np.argmax(x), dtype=np.int64)
        return out.reshape((1,) * x.ndim) if keepdims else out
    return np.asarray(np.argmax(x, axis=axis, keepdims=keepdims), dtype=np.int64)


def any(x):  # noqa: A001
    return np.asarray(np.any(x))


def all(x):  # noqa: A001
    return np.asarray(np.all(x))


# ---- movement ---------------------------------------------------------------------------------
def reshape(x, shape):
    return x.reshape(shape)


def permute(x, axes):
    return np.transpose(x, axes)


def expand(x, shape):
    return np.broadcast_to(x, shape)


def contiguous(x):
    return x if x.flags.c_contiguous else np.ascontiguousarray(x)


def copy(x):
    return np.array(x, order="C", copy=True)


def getitem(x, index):
    return x[index]


def _is_basic(index) -> bool:
    """numpy basic indexing (ints, slices, None, Ellipsis): no element is picked twice."""
    items = index if isinstance(index, tuple) else (index,)
    return builtins.all(i is None or i is Ellipsis or isinstance(i, (int, np.integer, slice))
                        for i in items)


def index_add(g, shape, index):
    out = np.zeros(shape, dtype=g.dtype)
    if _is_basic(index):
        out[index] = g
    else:
        np.add.at(out, index, g)
    return out


def pad(x, pad_width, value):
    return np.pad(x, pad_width, constant_values=value)


def concat(xs, axis):
    return np.concatenate(xs, axis=axis)


def gather(x, index, axis):
    return np.take_along_axis(x, index, axis=axis)


def scatter_add(g, index, axis, size):
    shape = list(g.shape)
    shape[axis] = size
    out = np.zeros(shape, dtype=g.dtype)
    idx = list(np.indices(index.shape, sparse=True))
    idx[axis] = index
    np.add.at(out, tuple(idx), g)
    return out


# ---- products and softmax -----------------------------------------------------------------------
def matmul(a, b):
    return np.matmul(a, b)


def _shift(x, axes):
    """x - max(x) (0 where the max is not finite) and log(sum(exp(shifted))). Working with the
    shifted logits keeps float32 accurate: x - (max + log s) would round at max's scale."""
    m = np.max(x, axis=axes, keepdims=True)
    m = np.where(np.isfinite(m), m, 0).astype(x.dtype, copy=False)
    shifted = x - m
    with np.errstate(divide="ignore"):
        return m, shifted, np.log(np.sum(np.exp(shifted), axis=axes, keepdims=True))


def softmax(x, axis):
    if x.size == 0:
        return np.empty_like(x)
    _, shifted, _ = _shift(x, axis)
    e = np.exp(shifted)
    return e / np.sum(e, axis=axis, keepdims=True)


def log_softmax(x, axis):
    if x.size == 0:
        return np.empty_like(x)
    _, shifted, log_s = _shift(x, axis)
    return shifted - log_s


def logsumexp(x, axes, keepdims):
    m, _, log_s = _shift(x, axes)
    out = m + log_s
    return out if keepdims else np.squeeze(out, axis=axes)


# ---- creation, state, randomness, checks ----------------------------------------------------------
def full(shape, value, dtype):
    return np.full(shape, value, dtype=dtype)


def copy_into(dst, src):
    np.copyto(dst, src, casting="unsafe")
    return dst


def bernoulli_mask(gen, like, shape, p):
    if p >= 1.0:
        return np.zeros(shape, like.dtype)
    keep = gen.random(shape) >= p
    return (keep / (1.0 - p)).astype(like.dtype)


def index_errors(t, low, high, ignore):
    bad = (t < low) | (t >= high)
    bad &= t != ignore
    n = int(np.count_nonzero(bad))
    return np.array([n, int(t[bad].flat[0]) if n else 0], dtype=np.int64)
