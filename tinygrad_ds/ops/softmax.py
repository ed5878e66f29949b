"""softmax, log_softmax and logsumexp along one axis, each computed stably (max subtracted)."""
from __future__ import annotations

import numpy as np

from ..autograd import Function
from .reduce import normalize_axes


def _lse(x, axis):
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    return m + np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True))


class LogSumExp(Function):
    @staticmethod
    def forward(ctx, x, axis, keepdims):
        out = _lse(x, axis)
        ctx.save_for_backward(x, out)
        return out if keepdims else np.squeeze(out, axis)

    @staticmethod
    def backward(ctx, g):
        x, out = ctx.saved_tensors
        if not ctx.attrs["keepdims"]:
            g = g.unsqueeze(ctx.attrs["axis"])
        return g * (x - out).exp()


class LogSoftmax(Function):
    @staticmethod
    def forward(ctx, x, axis):
        out = x - _lse(x, axis)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, g):
        (out,) = ctx.saved_tensors
        return g - out.exp() * g.sum(axis=ctx.attrs["axis"], keepdims=True)


class Softmax(Function):
    @staticmethod
    def forward(ctx, x, axis):
        out = np.exp(x - _lse(x, axis))
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


def logsumexp(x, axis: int = -1, keepdims: bool = False):
    return LogSumExp.apply(x, axis=_one_axis("logsumexp", axis, x.ndim), keepdims=bool(keepdims))


def log_softmax(x, axis: int = -1):
    return LogSoftmax.apply(x, axis=_one_axis("log_softmax", axis, x.ndim))


def softmax(x, axis: int = -1):
    return Softmax.apply(x, axis=_one_axis("softmax", axis, x.ndim))
