"""Reductions over any axes, with keepdims: sum and max are primitives; mean, min, var derive."""
from __future__ import annotations

import builtins

# NOTE: this module defines sum, max, min, any and all as ops; the builtins are not used here.

import numpy as np

from ..autograd import Function
from ..backend import kernels_for
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
        return kernels_for(x).sum(x, axis, keepdims)

    @staticmethod
    def backward(ctx, g):
        axes = ctx.attrs["axis"]
        if not ctx.attrs["keepdims"]:
            g = g.reshape(kept_shape(ctx.in_shape, axes))
        return g.expand(ctx.in_shape)


class Mean(Function):
    """The count divided by is the reduced axes' size when the op runs, so that a graph traced
    at one batch size averages correctly at another."""

    @staticmethod
    def forward(ctx, x, axis, keepdims):
        ctx.in_shape = x.shape
        return kernels_for(x).mean(x, axis, keepdims)

    @staticmethod
    def backward(ctx, g):
        return MeanBackward.apply(g, axis=ctx.attrs["axis"], keepdims=ctx.attrs["keepdims"],
                                  shape=ctx.in_shape)


class MeanBackward(Function):
    """g -> g spread evenly over the reduced axes of an input of `shape` (mean's adjoint)."""

    @staticmethod
    def forward(ctx, g, axis, keepdims, shape):
        k = kernels_for(g)
        if not keepdims:
            g = k.reshape(g, kept_shape(shape, axis))
        n = 1
        for a in axis:
            n *= shape[a]
        return k.mul(k.expand(g, shape), k.full((), 1.0 / n, g.dtype))

    @staticmethod
    def backward(ctx, gg):
        a = ctx.attrs
        return Mean.apply(gg, axis=a["axis"], keepdims=a["keepdims"])


class Max(Function):
    """The gradient goes to the maximal elements, split evenly where several tie (as in
    PyTorch's amax)."""

    @staticmethod
    def forward(ctx, x, axis, keepdims):
        k = kernels_for(x)
        out = k.max(x, axis, True)
        ctx.save_for_backward(x, out)
        return out if keepdims else k.reshape(out, _dropped(out.shape, axis))

    @staticmethod
    def backward(ctx, g):
        x, out = ctx.saved_tensors
        axes = ctx.attrs["axis"]
        if not ctx.attrs["keepdims"]:
            g = g.reshape(kept_shape(x.shape, axes))
        mask = (x == out).astype(g.dtype)
        return mask * (g / mask.sum(axis=axes, keepdims=True))


def _dropped(shape: tuple, axes: tuple) -> tuple:
    return tuple(s for i, s in enumerate(shape) if i not in axes)


class ArgMax(Function):
    differentiable = False
    name = "argmax"

    @staticmethod
    def forward(ctx, x, axis, keepdims):
        return kernels_for(x).argmax(x, axis, keepdims)


class Any(Function):
    """True if any element is non-zero: a 0-d bool (no gradient)."""

    differentiable = False

    @staticmethod
    def forward(ctx, x):
        return kernels_for(x).any(x)


class All(Function):
    differentiable = False

    @staticmethod
    def forward(ctx, x):
        return kernels_for(x).all(x)


def _check_nonempty(op: str, x, axes) -> None:
    if builtins.any(x.shape[a] == 0 for a in axes):
        raise ShapeError(f"{op}: cannot reduce over an empty axis of shape {fmt_shape(x.shape)}")


def sum(x, axis=None, keepdims: bool = False):
    """x: any shape -> summed over `axis` (None: all)."""
    return Sum.apply(x, axis=normalize_axes("sum", axis, x.ndim), keepdims=bool(keepdims))


def mean(x, axis=None, keepdims: bool = False):
    axes = normalize_axes("mean", axis, x.ndim)
    _check_nonempty("mean", x, axes)
    if x.dtype.kind != "f":
        x = x.astype(np.float32)
    return Mean.apply(x, axis=axes, keepdims=bool(keepdims))


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
    from .elementwise import Where, scalar_like

    d = x - mean(x, axes, keepdims=True)
    # the count is taken when the op runs (a graph may run at another batch size); nan where it
    # is not above the correction, as torch.var
    dof = sum(x.ones_like(), axes, keepdims) - correction
    dof = Where.apply(dof > 0, dof, scalar_like(dof, np.nan))
    return sum(d * d, axes, keepdims) / dof


def any(x):  # noqa: A001 - the op's name
    return Any.apply(x)


def all(x):  # noqa: A001
    return All.apply(x)


def argmax(x, axis=None, keepdims: bool = False):
    if axis is not None:
        (axis,) = normalize_axes("argmax", axis, x.ndim)
    return ArgMax.apply(x, axis=axis, keepdims=bool(keepdims))
