"""Elementwise ops: arithmetic with numpy broadcasting, unary math, activations, comparisons.

A binary op's gradient is summed back to each input's shape (`unbroadcast`), since broadcasting
copied that input along the new or size-1 axes.
"""
from __future__ import annotations

import math

import numpy as np

from ..autograd import Function
from ..backend import constant_kernels, kernels_for
from ..errors import ShapeError, fmt_shape


def scalar_like(t, value):
    """A 0-d constant Tensor of t's dtype on t's backend (broadcasts against anything)."""
    return type(t)._wrap(constant_kernels(t.data).full((), value, t.dtype))


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

    name = None  # a base, not an op

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

    @classmethod
    def forward(cls, ctx, a, b):
        return getattr(kernels_for(a, b), cls.name)(a, b)


class Add(Binary):
    @classmethod
    def forward(cls, ctx, a, b):
        ctx.shapes = (a.shape, b.shape)
        return kernels_for(a, b).add(a, b)

    @staticmethod
    def backward(ctx, g):
        need_a, need_b = ctx.needs_input_grad
        return (unbroadcast(g, ctx.shapes[0]) if need_a else None,
                unbroadcast(g, ctx.shapes[1]) if need_b else None)


class Mul(Binary):
    @classmethod
    def forward(cls, ctx, a, b):
        ctx.save_for_backward(a, b)
        return kernels_for(a, b).mul(a, b)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad
        return (unbroadcast(g * b, a.shape) if need_a else None,
                unbroadcast(g * a, b.shape) if need_b else None)


class Div(Binary):
    @classmethod
    def forward(cls, ctx, a, b):
        ctx.save_for_backward(a, b)
        return kernels_for(a, b).div(a, b)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad
        return (unbroadcast(g / b, a.shape) if need_a else None,
                unbroadcast(-g * a / (b * b), b.shape) if need_b else None)


class Pow(Binary):
    @classmethod
    def forward(cls, ctx, a, b):
        out = kernels_for(a, b).pow(a, b)
        ctx.save_for_backward(a, b, out)
        return out

    @staticmethod
    def backward(ctx, g):
        a, b, out = ctx.saved_tensors
        ga = None
        if a.requires_grad:  # b a^(b-1); where b = 0 that is 0 (x ** 0 is constant), also at
            # a = 0, so the exponent there is taken as 0 rather than -1 (no 0 * inf)
            expo = Where.apply(b != 0, b - 1.0, b)
            ga = unbroadcast(g * b * a ** expo, a.shape)
        gb = None
        if b.requires_grad:  # d(a^b)/db = a^b log a, taken as 0 where a^b = 0
            safe_log = Where.apply(a > 0, a, scalar_like(a, 1)).log()
            gb = unbroadcast(g * out * safe_log, b.shape)
        return ga, gb


class Maximum(Binary):
    """Where the inputs tie, the gradient is split evenly between them (as in PyTorch)."""

    @classmethod
    def forward(cls, ctx, a, b):
        ctx.save_for_backward(a, b)
        return kernels_for(a, b).maximum(a, b)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        return _split_grad(ctx, g, (a > b).astype(g.dtype) + (a == b).astype(g.dtype) * 0.5)


class Minimum(Binary):
    @classmethod
    def forward(cls, ctx, a, b):
        ctx.save_for_backward(a, b)
        return kernels_for(a, b).minimum(a, b)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        return _split_grad(ctx, g, (a < b).astype(g.dtype) + (a == b).astype(g.dtype) * 0.5)


def _split_grad(ctx, g, wa):
    """maximum/minimum: the share `wa` of g goes to a, the rest to b."""
    (a, b), (need_a, need_b) = ctx.inputs, ctx.needs_input_grad
    return (unbroadcast(g * wa, a.shape) if need_a else None,
            unbroadcast(g * (1.0 - wa), b.shape) if need_b else None)


# ---- comparisons: boolean results, no gradient; the forward is Binary's (the table's name) ----
class Less(Binary):
    differentiable = False


class LessEqual(Binary):
    differentiable = False


class Equal(Binary):
    differentiable = False


class NotEqual(Binary):
    differentiable = False


class Where(Function):
    """where(cond, a, b): a where cond is true, else b. No gradient flows to the mask."""

    @classmethod
    def apply(cls, cond, a, b):
        broadcast_shape(cls.name, cond.shape, a.shape, b.shape)
        if cond.dtype.kind != "b":
            cond = cond != scalar_like(cond, 0)
        return super().apply(cond, a, b)

    @staticmethod
    def forward(ctx, cond, a, b):
        ctx.save_for_backward(cond)
        ctx.shapes = (a.shape, b.shape)
        return kernels_for(cond, a, b).where(cond, a, b)

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
        return kernels_for(x).cast(x, dtype)

    @staticmethod
    def backward(ctx, g):
        return g.astype(ctx.in_dtype)


class FullLike(Function):
    """x -> `value` in x's shape and dtype (x's values are not read; no gradient)."""

    differentiable = False

    @staticmethod
    def forward(ctx, x, value):
        return kernels_for(x).full(x.shape, value, x.dtype)


# ---- unary ----------------------------------------------------------------------------------
class Unary(Function):
    """Base of unary ops: the forward is the table's kernel of the op's name."""

    name = None  # a base, not an op

    @classmethod
    def forward(cls, ctx, x):
        return getattr(kernels_for(x), cls.name)(x)


class FloatUnary(Unary):
    """A unary op of real analysis (exp, log, sigmoid, ...): integer and boolean input is made
    float32 first, as in PyTorch."""

    name = None

    @classmethod
    def apply(cls, x, **attrs):
        if x.dtype.kind != "f":
            x = x.astype(np.float32)
        return super().apply(x, **attrs)


class SavesOutput(FloatUnary):
    """A unary op whose backward reads its own output (exp, sqrt, sigmoid, tanh)."""

    name = None

    @classmethod
    def forward(cls, ctx, x):
        out = getattr(kernels_for(x), cls.name)(x)
        ctx.save_for_backward(out)
        return out


class SavesInput(FloatUnary):
    """A unary op whose backward reads its input (log, erf)."""

    name = None

    @classmethod
    def forward(cls, ctx, x):
        ctx.save_for_backward(x)
        return getattr(kernels_for(x), cls.name)(x)


class Neg(Unary):
    @staticmethod
    def backward(ctx, g):
        return -g


class Exp(SavesOutput):
    @staticmethod
    def backward(ctx, g):
        (out,) = ctx.saved_tensors
        return g * out


class Log(SavesInput):
    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g / x


class Sqrt(SavesOutput):
    @staticmethod
    def backward(ctx, g):
        (out,) = ctx.saved_tensors
        return g / (out * 2.0)


class Sign(Unary):
    differentiable = False


class Abs(Unary):
    """d|x|/dx = sign(x), 0 at 0 (as in PyTorch)."""

    @classmethod
    def forward(cls, ctx, x):
        ctx.save_for_backward(x)
        return kernels_for(x).abs(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * x.sign()


class Relu(Unary):
    @classmethod
    def forward(cls, ctx, x):
        out = kernels_for(x).relu(x)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, g):
        (out,) = ctx.saved_tensors
        return g * (out > 0).astype(g.dtype)


class LeakyRelu(FloatUnary):
    @classmethod
    def forward(cls, ctx, x, negative_slope):
        ctx.save_for_backward(x)
        return kernels_for(x).leaky_relu(x, negative_slope)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return Where.apply(x > 0, g, g * ctx.attrs["negative_slope"])


class Sigmoid(SavesOutput):
    @staticmethod
    def backward(ctx, g):
        (out,) = ctx.saved_tensors
        return g * out * (1.0 - out)


class Tanh(SavesOutput):
    @staticmethod
    def backward(ctx, g):
        (out,) = ctx.saved_tensors
        return g * (1.0 - out * out)


class Erf(SavesInput):
    """The error function; d erf(x)/dx = 2/sqrt(pi) exp(-x^2)."""

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
