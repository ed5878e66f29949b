"""softmax and log_softmax along one axis, logsumexp over any axes; each computed stably (the
max is subtracted before exp, so large logits never overflow)."""
from __future__ import annotations

from ..autograd import Function
from ..backend import kernels_for
from ..errors import ShapeError, fmt_shape
from .reduce import kept_shape, normalize_axes


class LogSumExp(Function):
    name = "logsumexp"

    @staticmethod
    def forward(ctx, x, axis, keepdims):
        out = kernels_for(x).logsumexp(x, axis, keepdims)
        ctx.save_for_backward(x, out)  # the output itself, so create_graph links through it
        return out

    @staticmethod
    def backward(ctx, g):
        x, out = ctx.saved_tensors
        if not ctx.attrs["keepdims"]:
            kept = kept_shape(x.shape, ctx.attrs["axis"])
            g, out = g.reshape(kept), out.reshape(kept)
        return g * (x - out).exp()  # softmax(x) along the axes


class LogSoftmax(Function):
    @staticmethod
    def forward(ctx, x, axis):
        out = kernels_for(x).log_softmax(x, axis)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, g):
        (out,) = ctx.saved_tensors
        return g - out.exp() * g.sum(axis=ctx.attrs["axis"], keepdims=True)


class Softmax(Function):
    @staticmethod
    def forward(ctx, x, axis):
        out = kernels_for(x).softmax(x, axis)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, g):
        (s,) = ctx.saved_tensors
        gs = g * s
        return gs - s * gs.sum(axis=ctx.attrs["axis"], keepdims=True)


def _one_axis(op, axis, ndim):
    (axis,) = normalize_axes(op, axis, ndim)
    return axis


def logsumexp(x, axis=-1, keepdims: bool = False):
    """log(sum(exp(x))) over `axis` (an int, a tuple, or None for all axes)."""
    axes = normalize_axes("logsumexp", axis, x.ndim)
    if any(x.shape[a] == 0 for a in axes):
        raise ShapeError(f"logsumexp: cannot reduce over an empty axis of shape "
                         f"{fmt_shape(x.shape)}")
    return LogSumExp.apply(x, axis=axes, keepdims=bool(keepdims))


def log_softmax(x, axis: int = -1):
    return LogSoftmax.apply(x, axis=_one_axis("log_softmax", axis, x.ndim))


def softmax(x, axis: int = -1):
    return Softmax.apply(x, axis=_one_axis("softmax", axis, x.ndim))
