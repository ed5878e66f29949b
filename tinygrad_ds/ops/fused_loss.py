"""Softmax cross-entropy as one op: logits (N, C), class indices (N,) -> per-sample loss (N,).

Fused because the gradient softmax - onehot is both cheaper and more stable than the chain
log_softmax -> pick -> negate; cross_entropy uses it for (N, C) logits with class-index targets.
With label smoothing e the loss is lse - (1 - e) x[target] - e mean(x). Under create_graph=True
the gradient is built from Tensor ops (softmax, a constant one-hot), so it can be differentiated
again.
"""
from __future__ import annotations

from .. import autograd
from ..autograd import Function
from ..backend import kernels_for
from ..errors import GradError
from .conv import contiguous
from .movement import ScatterAdd


class SoftmaxCrossEntropy(Function):
    name = "softmax_cross_entropy"
    saved_names = ("logits", "target", "lse")

    @staticmethod
    def forward(ctx, logits, target, *, smoothing):
        loss, lse = kernels_for(logits).softmax_cross_entropy_forward(
            contiguous(logits), contiguous(target), smoothing)
        ctx.save_for_backward(logits, target, lse)
        return loss

    @staticmethod
    def backward(ctx, g):
        logits, target, lse = ctx.saved_tensors
        e = ctx.attrs["smoothing"]
        if autograd.is_grad_enabled():  # create_graph=True: Tensor ops, differentiable again
            n, c = logits.shape
            ones = (1.0 - e) * g.reshape(n, 1).ones_like()
            onehot = ScatterAdd.apply(ones, target.reshape(n, 1), axis=1, size=c)
            return g.reshape(n, 1) * (logits.softmax(-1) - (onehot + e / c)), None
        return SoftmaxCrossEntropyBackward.apply(g, logits, target, lse, smoothing=e), None


class SoftmaxCrossEntropyBackward(Function):
    """g (N,) -> g * (softmax(logits) - (1 - e) onehot(target) - e / C), (N, C)."""

    @staticmethod
    def forward(ctx, g, logits, target, lse, *, smoothing):
        return kernels_for(logits).softmax_cross_entropy_backward(
            contiguous(g), contiguous(logits), contiguous(target), lse, smoothing)

    @staticmethod
    def backward(ctx, gg):  # not reached: under create_graph the backward above is Tensor ops
        raise GradError("internal: the fused cross-entropy backward was recorded on the tape; "
                        "under create_graph=True it should be Tensor ops")


def softmax_cross_entropy(logits, target, label_smoothing: float = 0.0):
    """logits: (N, C) float; target: (N,) int64 class indices in [0, C) (checked by the caller).
    Returns the per-sample loss (N,)."""
    if target.dtype != "int64":
        target = target.astype("int64")
    return SoftmaxCrossEntropy.apply(logits, target, smoothing=float(label_smoothing))
