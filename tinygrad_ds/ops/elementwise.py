"""Elementwise ops: arithmetic with numpy broadcasting, unary math, activations, comparisons.

A binary op's gradient is summed back to each input's shape (`unbroadcast`), since broadcasting
copied that input along the new or size-1 axes.
"""
from __future__ import annotations

import math

import numpy as np

from ..autograd import Function
from ..errors import ShapeError, fmt_shape


def scalar_like(t, value):
    """A 0-d constant Tensor of t's dtype (broadcasts against anything)."""
    return type(t)._wrap(np.array(value, dtype=t.dtype))


def broadcast_shape(op: str, *shapes) -> tuple:
    """The shape numpy broadcasting gives, or a ShapeError naming `op` and every shape."""
    try:
        return np.broadcast_shapes(*shapes)
    except ValueError:
        raise ShapeError(
            f"{op}: shapes {' and '.join(fmt_shape(s) for s in shapes)} cannot be broadcast "
            "together (trailing axes must be equal or 1)"
        ) from None


def unbroadcast(grad, shape: tuple):
    """Sum `grad` over the axes that broadcasting added or stretched, giving `shape`."""
    if grad.shape == tuple(shape):
        return grad
    lead = grad.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, s in enumerate(shape) if s == 1 and grad.shape[lead + i] != 1
    )
    return grad.sum(axis=axes, keepdims=True).reshape(shape) if axes else grad.reshape(shape)


def _broadcastable(sa: tuple, sb: tuple) -> bool:
    # NOTE: a plain loop; np.broadcast_shapes costs more than a small op itself
    for x, y in zip(reversed(sa), reversed(sb)):
        if x != y and x != 1 and y != 1:
            return False
    return True


class Binary(Function):
    """Base of broadcasting binary ops: checks the shapes once, with a clear message, and lets
    an integer or boolean operand take the other's floating dtype (int64 * float32 -> float32,
    as in PyTorch; numpy would give float64)."""

    @classmethod
    def apply(cls, a, b, **attrs):
        if a.shape != b.shape and not _broadcastable(a.shape, b.shape):
            broadcast_shape(cls.name, a.shape, b.shape)
        da, db = a.dtype, b.dtype
        if da != db:
            if da.kind == "f" and db.kind != "f":
                b = b.astype(da)
            elif db.kind == "f" and da.kind != "f":
                a = a.astype(db)
        return super().apply(a, b, **attrs)


class Add(Binary):
    @staticmethod
    def forward(ctx, a, b):
        ctx.shapes = (a.shape, b.shape)
        return np.add(a, b)

    @staticmethod
    def backward(ctx, g):
        need_a, need_b = ctx.needs_input_grad
        return (unbroadcast(g, ctx.shapes[0]) if need_a else None,
                unbroadcast(g, ctx.shapes[1]) if need_b else None)


class Mul(Binary):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return np.multiply(a, b)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad
        return (unbroadcast(g * b, a.shape) if need_a else None,
                unbroadcast(g * a, b.shape) if need_b else None)


class Div(Binary):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return np.divide(a, b)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad
        return (unbroadcast(g / b, a.shape) if need_a else None,
                unbroadcast(-g * a / (b * b), b.shape) if need_b else None)


class Pow(Binary):
    @staticmethod
    def forward(ctx, a, b):
        out = np.power(a, b)
        ctx.save_for_backward(a, b, out)
        return out

    @staticmethod
    def backward(ctx, g):
        a, b, out = ctx.saved_tensors
        ga = unbroadcast(g * b * a ** (b - 1), a.shape) if a.requires_grad else None
        gb = None
        if b.requires_grad:  # d(a^b)/db = a^b log a, taken as 0 where a^b = 0
            safe_log = Where.apply(a > 0, a, scalar_like(a, 1)).log()
            gb = unbroadcast(g * out * safe_log, b.shape)
        return ga, gb


class Maximum(Binary):
    """Where the inputs tie, the gradient is split evenly between them (as in PyTorch)."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return np.maximum(a, b)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        return _split_grad(ctx, g, (a > b).astype(g.dtype) + (a == b).astype(g.dtype) * 0.5)


class Minimum(Binary):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return np.minimum(a, b)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        return _split_grad(ctx, g, (a < b).astype(g.dtype) + (a == b).astype(g.dtype) * 0.5)


def _split_grad(ctx, g, wa):
    """maximum/minimum: the share `wa` of g goes to a, the rest to b."""
    (a, b), (need_a, need_b) = ctx.inputs, ctx.needs_input_grad
    return (unbroadcast(g * wa, a.shape) if need_a else None,
            unbroadcast(g * (1.0 - wa), b.shape) if need_b else None)


# ---- comparisons: boolean results, no gradient ---------------------------------------------
class Less(Binary):
    differentiable = False

    @staticmethod
    def forward(ctx, a, b):
        return np.less(a, b)


class LessEqual(Binary):
    differentiable = False
    name = "less_equal"

    @staticmethod
    def forward(ctx, a, b):
        return np.less_equal(a, b)


class Equal(Binary):
    differentiable = False

    @staticmethod
    def forward(ctx, a, b):
        return np.equal(a, b)


class NotEqual(Binary):
    differentiable = False
    name = "not_equal"

    @staticmethod
    def forward(ctx, a, b):
        return np.not_equal(a, b)


class Where(Function):
    """where(cond, a, b): a where cond is true, else b. No gradient flows to the mask."""

    @classmethod
    def apply(cls, cond, a, b):
        broadcast_shape(cls.name, cond.shape, a.shape, b.shape)
        return super().apply(cond, a, b)

    @staticmethod
    def forward(ctx, cond, a, b):
        cond = cond.astype(bool, copy=False)
        ctx.save_for_backward(cond)
        ctx.shapes = (a.shape, b.shape)
        return np.where(cond, a, b)

    @staticmethod
    def backward(ctx, g):
        (cond,) = ctx.saved_tensors
        _, need_a, need_b = ctx.needs_input_grad
        zero = scalar_like(g, 0)
        return (None,
                unbroadcast(Where.apply(cond, g, zero), ctx.shapes[0]) if need_a else None,
                unbroadcast(Where.apply(cond, zero, g), ctx.shapes[1]) if need_b else None)


class Cast(Function):
    @staticmethod
    def forward(ctx, x, dtype):
        ctx.in_dtype = x.dtype
        return x.astype(dtype)

    @staticmethod
    def backward(ctx, g):
        return g.astype(ctx.in_dtype)


# ---- unary ----------------------------------------------------------------------------------
class Neg(Function):
    @staticmethod
    def forward(ctx, x):
        return np.negative(x)

    @staticmethod
    def backward(ctx, g):
        return -g


class Exp(Function):
    @staticmethod
    def forward(ctx, x):
        out = np.exp(x)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, g):
        (out,) = ctx.saved_tensors
        return g * out


class Log(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g / x


class Sqrt(Function):
    @staticmethod
    def forward(ctx, x):
        with np.errstate(invalid="ignore"):
            out = np.sqrt(x)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, g):
        (out,) = ctx.saved_tensors
        return g / (out * 2.0)


class Sign(Function):
    differentiable = False

    @staticmethod
    def forward(ctx, x):
        return np.sign(x)


class Abs(Function):
    """d|x|/dx = sign(x), 0 at 0 (as in PyTorch)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return np.abs(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * x.sign()


class Relu(Function):
    @staticmethod
    def forward(ctx, x):
        out = np.maximum(x, 0)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, g):
        (out,) = ctx.saved_tensors
        return g * (out > 0).astype(g.dtype)


class LeakyRelu(Function):
    @staticmethod
    def forward(ctx, x, negative_slope):
        ctx.save_for_backward(x)
        return np.where(x > 0, x, x * x.dtype.type(negative_slope))

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return Where.apply(x > 0, g, g * ctx.attrs["negative_slope"])


class Sigmoid(Function):
    @staticmethod
    def forward(ctx, x):
        # exp of a non-positive number only: no overflow for large |x|
        e = np.exp(-np.abs(x))
        out = np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, g):
        (out,) = ctx.saved_tensors
        return g * out * (1.0 - out)


class Tanh(Function):
    @staticmethod
    def forward(ctx, x):
        out = np.tanh(x)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, g):
        (out,) = ctx.saved_tensors
        return g * (1.0 - out * out)


_erf = np.frompyfunc(math.erf, 1, 1)


class Erf(Function):
    """The error function; d erf(x)/dx = 2/sqrt(pi) exp(-x^2)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        # NOTE: 1-D in and out, since the object ufunc gives a Python float for a 0-d input
        return _erf(x.reshape(-1)).astype(x.dtype).reshape(x.shape)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * (-(x * x)).exp() * (2.0 / math.sqrt(math.pi))


def gelu(x, approximate: str = "none"):
    """GELU(x) = x Phi(x), Phi the standard normal CDF (PyTorch's approximate='none');
    approximate='tanh' uses 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""
    if approximate == "none":
        return x * ((Erf.apply(x * (1.0 / math.sqrt(2.0))) + 1.0) * 0.5)
    if approximate == "tanh":
        inner = (x + x * x * x * 0.044715) * math.sqrt(2.0 / math.pi)
        return x * 0.5 * (inner.tanh() + 1.0)
    raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
