"""Reductions over any axes, with keepdims: sum and max are primitives; mean, min, var derive."""
from __future__ import annotations

# NOTE: this module defines sum, max and min as ops; the builtins are not used here.

import numpy as np

from ..autograd import Function
from ..errors import ShapeError, fmt_shape


def normalize_axes(op: str, axis, ndim: int) -> tuple[int, ...]:
    """None -> all axes; int or tuple, negatives allowed -> sorted tuple of non-negative axes."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    out, n = [], ndim if ndim > 0 else 1
    for a in axes:
        if not -n <= a < n:
            raise ShapeError(f"{op}: axis {a} is out of range for a tensor with {ndim} dims")
        out.append(int(a) % n)
    if len(set(out)) != len(out):
        raise ShapeError(f"{op}: axis {axis} repeats an axis")
    return tuple(sorted(out))


def kept_shape(shape: tuple, axes: tuple) -> tuple:
    """The shape with each reduced axis set to 1 (what keepdims=True gives)."""
    return tuple(1 if i in axes else s for i, s in enumerate(shape))


class Sum(Function):
    @staticmethod
    def forward(ctx, x, axis, keepdims):
        ctx.in_shape = x.shape
        # NOTE: float sums keep their dtype; integer and bool sums give int64, as in numpy
        dtype = x.dtype if x.dtype.kind == "f" else None
        return np.sum(x, axis=axis, keepdims=keepdims, dtype=dtype)

    @staticmethod
    def backward(ctx, g):
        axes = ctx.attrs["axis"]
        if not ctx.attrs["keepdims"]:
            g = g.reshape(kept_shape(ctx.in_shape, axes))
        return g.expand(ctx.in_shape)


class Max(Function):
    """The gradient goes to the maximal elements, split evenly where several tie (as in
    PyTorch's amax)."""

    @staticmethod
    def forward(ctx, x, axis, keepdims):
        out = np.max(x, axis=axis, keepdims=True)
        ctx.save_for_backward(x, out)
        return out if keepdims else np.squeeze(out, axis=axis)

    @staticmethod
    def backward(ctx, g):
        x, out = ctx.saved_tensors
        axes = ctx.attrs["axis"]
        if not ctx.attrs["keepdims"]:
            g = g.reshape(kept_shape(x.shape, axes))
        mask = (x == out).astype(g.dtype)
        return mask * (g / mask.sum(axis=axes, keepdims=True))


class ArgMax(Function):
    differentiable = False

    @staticmethod
    def forward(ctx, x, axis, keepdims):
        if axis is None:
            out = np.argmax(x)
            return np.array(out).reshape((1,) * x.ndim) if keepdims else np.array(out)
        return np.argmax(x, axis=axis, keepdims=keepdims)


def _check_nonempty(op: str, x, axes) -> None:
    if any(x.shape[a] == 0 for a in axes):
        raise ShapeError(f"{op}: cannot reduce over an empty axis of shape {fmt_shape(x.shape)}")


def sum(x, axis=None, keepdims: bool = False):
    """x: any shape -> summed over `axis` (None: all)."""
    return Sum.apply(x, axis=normalize_axes("sum", axis, x.ndim), keepdims=bool(keepdims))


def mean(x, axis=None, keepdims: bool = False):
    axes = normalize_axes("mean", axis, x.ndim)
    _check_nonempty("mean", x, axes)
    n = int(np.prod([x.shape[a] for a in axes]))
    return sum(x, axes, keepdims) * (1.0 / n)


def max(x, axis=None, keepdims: bool = False):
    axes = normalize_axes("max", axis, x.ndim)
    _check_nonempty("max", x, axes)
    return Max.apply(x, axis=axes, keepdims=bool(keepdims))


def min(x, axis=None, keepdims: bool = False):
    return -max(-x, axis, keepdims)


def var(x, axis=None, keepdims: bool = False, correction: int = 1):
    """Variance with Bessel's correction by default (unbiased, as torch.var)."""
    axes = normalize_axes("var", axis, x.ndim)
    _check_nonempty("var", x, axes)
    n = int(np.prod([x.shape[a] for a in axes]))
    d = x - mean(x, axes, keepdims=True)
    return sum(d * d, axes, keepdims) * (1.0 / (n - correction) if n > correction else np.nan)


def argmax(x, axis=None, keepdims: bool = False):
    if axis is not None:
        (axis,) = normalize_axes("argmax", axis, x.ndim)
    return ArgMax.apply(x, axis=axis, keepdims=bool(keepdims))
