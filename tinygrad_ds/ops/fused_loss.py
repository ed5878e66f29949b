"""Softmax cross-entropy as one op: logits (N, C), class indices (N,) -> per-sample loss (N,).

Fused because the gradient softmax - onehot is both cheaper and more stable than the chain
log_softmax -> pick -> negate; cross_entropy uses it for (N, C) logits with class-index targets.
With label smoothing e the loss is lse - (1 - e) x[target] - e mean(x).
"""
from __future__ import annotations

from ..autograd import Function
from ..backend import kernels_for
from ..errors import GradError
from .conv import contiguous


class SoftmaxCrossEntropy(Function):
    name = "softmax_cross_entropy"

    @staticmethod
    def forward(ctx, logits, target, *, smoothing):
        loss, lse = kernels_for(logits).softmax_cross_entropy_forward(
            contiguous(logits), contiguous(target), smoothing)
        ctx.save_for_backward(logits, target, lse)
        return loss

    @staticmethod
    def backward(ctx, g):
        logits, target, lse = ctx.saved_tensors
        gl = SoftmaxCrossEntropyBackward.apply(g, logits, target, lse,
                                               smoothing=ctx.attrs["smoothing"])
        return gl, None


class SoftmaxCrossEntropyBackward(Function):
    """g (N,) -> g * (softmax(logits) - (1 - e) onehot(target) - e / C), (N, C)."""

    @staticmethod
    def forward(ctx, g, logits, target, lse, *, smoothing):
        return kernels_for(logits).softmax_cross_entropy_backward(
            contiguous(g), contiguous(logits), contiguous(target), lse, smoothing)

    @staticmethod
    def backward(ctx, gg):
        raise GradError("cross_entropy: gradients of its gradient (create_graph=True) are not "
                        "supported by the fused kernel")


def softmax_cross_entropy(logits, target, label_smoothing: float = 0.0):
    """logits: (N, C) float; target: (N,) int64 class indices in [0, C) (checked by the caller).
    Returns the per-sample loss (N,)."""
    if target.dtype != "int64":
        target = target.astype("int64")
    return SoftmaxCrossEntropy.apply(logits, target, smoothing=float(label_smoothing))
