"""Ops with effects: writing persistent state, and drawing random masks.

`assign(dst, src)` is the one way an op changes an existing array (a parameter, a batch-norm
running statistic, an optimizer's buffer). It is an op like any other, so a traced graph holds
the write as a node and replays it. While a function is traced (autograd.writes_enabled is
False) the write is recorded but not carried out: tracing changes nothing.

`bernoulli_mask(gen, like, shape, p)` draws a dropout mask from a generator that is an input of
the op (the Tensor `random.generator_tensor()` gives), so that a graph reads the generator when it
runs, as eager code does.
"""
from __future__ import annotations

from .. import autograd
from ..autograd import Function
from ..backend import kernels_for
from ..errors import ShapeError, fmt_shape


class Assign(Function):
    """dst <- src in place (src broadcast to dst's shape, cast to its dtype); returns dst."""

    differentiable = False

    @staticmethod
    def forward(ctx, dst, src):
        if autograd.writes_enabled:
            kernels_for(dst, src).copy_into(dst, src)
            autograd.bump_version(dst)
        return dst


def assign(dst, src):
    """Write src into dst's memory. Returns dst. A tensor that requires grad (a parameter) is
    written only under no_grad, as in PyTorch: the tape knows nothing of the write."""
    if dst.requires_grad and autograd.is_grad_enabled():
        raise ShapeError(f"assign: the target of shape {fmt_shape(dst.shape)} requires grad; "
                         "write into it under tds.no_grad() (as an optimizer does)")
    try:
        from numpy import broadcast_shapes

        if broadcast_shapes(dst.shape, src.shape) != tuple(dst.shape):
            raise ValueError
    except ValueError:
        raise ShapeError(f"assign: a value of shape {fmt_shape(src.shape)} cannot be written "
                         f"into a tensor of shape {fmt_shape(dst.shape)}") from None
    Assign.apply(dst, src)
    return dst


class BernoulliMask(Function):
    """(generator, like) -> like's dtype in `shape`: 1/(1-p) with probability 1-p, else 0."""

    differentiable = False

    @staticmethod
    def forward(ctx, gen, like, shape, p):
        return kernels_for(like, gen).bernoulli_mask(gen, like, shape, p)


def bernoulli_mask(like, shape: tuple, p: float):
    """A dropout mask of `shape` in like's dtype, on like's backend, from the global generator."""
    from ..random import generator_tensor

    return BernoulliMask.apply(generator_tensor(), like, shape=tuple(shape), p=float(p))
