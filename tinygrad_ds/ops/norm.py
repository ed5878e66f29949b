"""batch_norm, layer_norm and group_norm, as PyTorch, with fused forward and backward kernels.

Each op normalizes x over some axes, xhat = (x - mean) * invstd with invstd = 1/sqrt(var + eps)
(var biased), then scales and shifts per channel (or per element of normalized_shape). The
backward of the training-mode ops is the fused formula
    gx = w * invstd * (gy - mean(gy) - xhat * mean(gy * xhat))
computed by two ops: a reduction (sum gy, sum gy * xhat, which are also the bias and weight
gradients) and an elementwise pass. Missing weight/bias act as ones/zeros.

Under create_graph=True the backward is built from Tensor ops instead (_normalized,
_input_grad), the statistics recomputed from x, so that gradients of gradients are exact: slower, but every op in
it has a backward of its own.
"""
from __future__ import annotations

import numpy as np

from .. import autograd
from ..autograd import Function, wrap
from ..backend import constant_kernels, kernels_for
from ..errors import GradError, ShapeError, fmt_shape
from .conv import as_shape, check_float, contiguous
from .state import assign


def _ncl(shape: tuple) -> tuple:
    """(N, C, L) for an (N, C, ...) shape, L the product of the rest (also for an empty batch)."""
    n, c, ll = shape[0], shape[1], 1
    for s in shape[2:]:
        ll *= s
    return n, c, ll


def _no_double_backward(name: str):
    """The fused backward ops are applied only outside create_graph (where nothing records
    them), so this never runs; it says so if it ever does."""
    def backward(ctx, gg):
        raise GradError(f"internal: {name}'s fused backward kernels were recorded on the tape; "
                        "under create_graph=True its backward should be Tensor ops")
    return staticmethod(backward)


def _normalized(x, axes: tuple, eps: float):
    """(xhat, invstd) of x over axes, in Tensor ops (so differentiable twice)."""
    xc = x - x.mean(axis=axes, keepdims=True)
    invstd = ((xc * xc).mean(axis=axes, keepdims=True) + eps) ** -0.5
    return xc * invstd, invstd


def _input_grad(h, xhat, invstd, axes: tuple):
    """gx for y = xhat * w + b given h = dL/dxhat = g * w: the fused formula in Tensor ops."""
    return invstd * (h - h.mean(axis=axes, keepdims=True)
                     - xhat * (h * xhat).mean(axis=axes, keepdims=True))


def _ones_zeros(x, c: int, weight, bias):
    """weight and bias Tensors, ones and zeros (constants) where None."""
    k = constant_kernels(x.data)
    w = weight if weight is not None else wrap(k.full((c,), 1, x.dtype))
    b = bias if bias is not None else wrap(k.full((c,), 0, x.dtype))
    return w, b


# ---- batch norm ---------------------------------------------------------------------------------
class BatchNorm(Function):
    """x (N, C, ...), weight (C,), bias (C,), mean (C,), invstd (C,) -> y (N, C, ...).

    training=True: mean/invstd are this batch's statistics and the gradient flows through them;
    training=False: they are the running statistics, constants."""

    name = "batch_norm"

    @staticmethod
    def forward(ctx, x, weight, bias, mean, invstd, *, training, eps=1e-5):
        ctx.save_for_backward(x, weight, mean, invstd)
        x3 = as_shape(x, _ncl(x.shape))
        return as_shape(kernels_for(x).batch_norm_apply(x3, mean, invstd, weight, bias), x.shape)

    @staticmethod
    def backward(ctx, g):
        x, weight, mean, invstd = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        if autograd.is_grad_enabled():  # create_graph=True: Tensor ops, differentiable again
            shape = (1, -1) + (1,) * (x.ndim - 2)  # a (C,) vector against x
            axes = (0,) + tuple(range(2, x.ndim))  # every axis but the channels'
            h = g * weight.reshape(shape)
            if ctx.attrs["training"]:
                xhat, invstd_t = _normalized(x, axes, ctx.attrs.get("eps", 1e-5))
                gx = _input_grad(h, xhat, invstd_t, axes)
            else:  # the running statistics are constants
                xhat = (x - mean.reshape(shape)) * invstd.reshape(shape)
                gx = h * invstd.reshape(shape)
            return (gx if need_x else None, (g * xhat).sum(axis=axes) if need_w else None,
                    g.sum(axis=axes) if need_b else None, None, None)
        sums = BatchNormBackwardReduce.apply(g, x, mean, invstd)
        if not need_x:
            gx = None
        elif ctx.attrs["training"]:
            gx = BatchNormBackwardInput.apply(g, x, mean, invstd, weight, sums)
        else:  # statistics are constants: y is x times a per-channel scale
            scale = (weight * invstd).reshape((1, -1) + (1,) * (x.ndim - 2))
            gx = g * scale
        return gx, sums[1] if need_w else None, sums[0] if need_b else None, None, None


class BatchNormStats(Function):
    """x (N, C, ...) -> (3, C): [mean, biased var, unbiased var] per channel over N and the
    spatial axes. No gradient flows through it: batch_norm's backward accounts for the batch
    statistics (the fused formula). The unbiased variance (for the running statistic) divides by
    M - 1 with M counted when the op runs, so a graph keeps it right at another batch size."""

    differentiable = False

    @staticmethod
    def forward(ctx, x):
        n, c = x.shape[:2]
        k = kernels_for(x)
        stats = k.batch_norm_stats(k.reshape(contiguous(x), _ncl(x.shape)))
        m = x.size // c
        unbiased = k.mul(k.getitem(stats, slice(1, 2)), k.full((), m / (m - 1), stats.dtype))
        return k.concat((stats, unbiased), 0)


class BatchNormBackwardReduce(Function):
    """g, x (N, C, ...), mean, invstd (C,) -> (2, C): [sum g, sum g * xhat] per channel."""

    @staticmethod
    def forward(ctx, g, x, mean, invstd):
        n, c = x.shape[:2]
        return kernels_for(x).batch_norm_backward_reduce(
            as_shape(g, _ncl(x.shape)), as_shape(x, _ncl(x.shape)), mean, invstd)

    backward = _no_double_backward("batch_norm")


class BatchNormBackwardInput(Function):
    """Training-mode input gradient: w invstd (g - sums[0]/M - xhat sums[1]/M)."""

    @staticmethod
    def forward(ctx, g, x, mean, invstd, weight, sums):
        # (N, C, ...) as it is: the kernel returns gx in x's shape, in memory of its own
        gx = kernels_for(x).batch_norm_backward_input(contiguous(g), contiguous(x), mean, invstd,
                                                      weight, sums)
        return gx if gx.shape == x.shape else as_shape(gx, x.shape)

    backward = _no_double_backward("batch_norm")


def batch_norm(x, running_mean, running_var, weight=None, bias=None, training: bool = False,
               momentum: float = 0.1, eps: float = 1e-5):
    """Batch normalization over (N, ...) per channel. x: (N, C) or (N, C, H, W) (any (N, C, ...));
    running_mean, running_var, weight, bias: (C,) or None.

    training=True normalizes with this batch's mean and biased variance and, when given, updates
    running_mean <- (1 - momentum) running_mean + momentum mean and running_var likewise with
    the unbiased variance (in place, as PyTorch). training=False uses the running statistics.
    """
    op = "batch_norm"
    if x.ndim < 2:
        raise ShapeError(f"{op}: input must be (N, C) or (N, C, H, W), got {fmt_shape(x.shape)}")
    check_float(op, input=x, weight=weight, bias=bias)
    n, c = x.shape[:2]
    m = x.size // c if c else 0
    for name, t in (("running_mean", running_mean), ("running_var", running_var),
                    ("weight", weight), ("bias", bias)):
        if t is not None and t.shape != (c,):
            raise ShapeError(f"{op}: {name} must have shape ({c},) for input "
                             f"{fmt_shape(x.shape)} with {c} channels, got {fmt_shape(t.shape)}")
    w, b = _ones_zeros(x, c, weight, bias)
    with autograd.no_grad():  # the statistics are constants to the tape (see BatchNormStats)
        if training:
            if m <= 1:
                raise ShapeError(f"{op}: training mode needs more than one value per channel "
                                 f"to take a batch variance, got input {fmt_shape(x.shape)}")
            stats = BatchNormStats.apply(x)
            mean, var = stats[0], stats[1]
            # running <- (1 - momentum) running + momentum batch (a Tensor momentum is allowed)
            for running, batch in ((running_mean, mean), (running_var, stats[2])):
                if running is not None:
                    assign(running, running * (1.0 - momentum) + batch.astype(running.dtype)
                           * momentum)
        else:
            if running_mean is None or running_var is None:
                raise ValueError(f"{op}: eval mode (training=False) needs running_mean and "
                                 "running_var")
            mean, var = running_mean.astype(x.dtype), running_var.astype(x.dtype)
        invstd = 1.0 / (var + eps).sqrt()
    return BatchNorm.apply(x, w, b, mean, invstd, training=bool(training), eps=float(eps))


# ---- layer norm ---------------------------------------------------------------------------------
class LayerNorm(Function):
    """x (..., *normalized_shape) normalized over its last `ndim` axes, weight and bias of
    normalized_shape."""

    name = "layer_norm"
    saved_names = ("x", "weight", "mean", "invstd")

    @staticmethod
    def forward(ctx, x, weight, bias, *, ndim, eps):
        d = int(np.prod(x.shape[x.ndim - ndim:]))
        y, mean, invstd = kernels_for(x).layer_norm_forward(
            as_shape(x, (x.size // d, d)), as_shape(weight, (d,)), as_shape(bias, (d,)), eps)
        ctx.save_for_backward(x, weight, mean, invstd)
        return as_shape(y, x.shape)

    @staticmethod
    def backward(ctx, g):
        x, weight, mean, invstd = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad
        if autograd.is_grad_enabled():  # create_graph=True: Tensor ops, differentiable again
            nd = ctx.attrs["ndim"]
            axes, lead = tuple(range(x.ndim - nd, x.ndim)), tuple(range(x.ndim - nd))
            xhat, invstd_t = _normalized(x, axes, ctx.attrs["eps"])
            return (_input_grad(g * weight, xhat, invstd_t, axes) if need_x else None,
                    (g * xhat).sum(axis=lead) if need_w else None,
                    g.sum(axis=lead) if need_b else None)
        gx = LayerNormBackwardInput.apply(g, x, mean, invstd, weight) if need_x else None
        gw = gb = None
        if need_w or need_b:
            sums = LayerNormBackwardAffine.apply(g, x, mean, invstd)
            gw = sums[1].reshape(weight.shape) if need_w else None
            gb = sums[0].reshape(weight.shape) if need_b else None
        return gx, gw, gb


class LayerNormBackwardInput(Function):
    @staticmethod
    def forward(ctx, g, x, mean, invstd, weight):
        gx = kernels_for(x).layer_norm_backward_input(contiguous(g), contiguous(x), mean, invstd,
                                                      contiguous(weight))
        return gx if gx.shape == x.shape else as_shape(gx, x.shape)

    backward = _no_double_backward("layer_norm")


class LayerNormBackwardAffine(Function):
    """-> (2, D): [sum over rows of g, of g * xhat]."""

    @staticmethod
    def forward(ctx, g, x, mean, invstd):
        d = x.size // mean.size
        return kernels_for(x).layer_norm_backward_affine(
            as_shape(g, (x.size // d, d)), as_shape(x, (x.size // d, d)), mean, invstd)

    backward = _no_double_backward("layer_norm")


def layer_norm(x, normalized_shape, weight=None, bias=None, eps: float = 1e-5):
    """Normalize over the trailing axes `normalized_shape` (an int or a tuple), per sample.
    x: (..., *normalized_shape); weight, bias: normalized_shape or None."""
    op = "layer_norm"
    shape = (normalized_shape,) if isinstance(normalized_shape, (int, np.integer)) \
        else tuple(normalized_shape)
    shape = tuple(int(s) for s in shape)
    if not shape or x.ndim < len(shape) or tuple(x.shape[x.ndim - len(shape):]) != shape:
        raise ShapeError(f"{op}: normalized_shape {fmt_shape(shape)} must match the trailing "
                         f"axes of the input {fmt_shape(x.shape)}")
    if 0 in shape:
        raise ShapeError(f"{op}: normalized_shape {fmt_shape(shape)} is empty")
    check_float(op, input=x, weight=weight, bias=bias)
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and t.shape != shape:
            raise ShapeError(f"{op}: {name} must have normalized_shape {fmt_shape(shape)}, got "
                             f"{fmt_shape(t.shape)}")
    d = int(np.prod(shape))
    w, b = _ones_zeros(x, d, weight, bias)
    return LayerNorm.apply(x, w.reshape(shape) if weight is None else w,
                           b.reshape(shape) if bias is None else b, ndim=len(shape),
                           eps=float(eps))


# ---- group norm ---------------------------------------------------------------------------------
class GroupNorm(Function):
    """x (N, C, ...) normalized per sample over groups of C/G channels; weight, bias (C,)."""

    name = "group_norm"
    saved_names = ("x", "weight", "mean", "invstd")

    @staticmethod
    def forward(ctx, x, weight, bias, *, groups, eps):
        n, c = x.shape[:2]
        y, mean, invstd = kernels_for(x).group_norm_forward(
            as_shape(x, _ncl(x.shape)), weight, bias, groups, eps)
        ctx.save_for_backward(x, weight, mean, invstd)
        return as_shape(y, x.shape)

    @staticmethod
    def backward(ctx, g):
        x, weight, mean, invstd = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad
        groups = ctx.attrs["groups"]
        if autograd.is_grad_enabled():  # create_graph=True: Tensor ops, differentiable again
            n = x.shape[0]
            shape = (1, -1) + (1,) * (x.ndim - 2)
            axes = (0,) + tuple(range(2, x.ndim))
            xhat_g, invstd_t = _normalized(x.reshape(n, groups, -1), (2,), ctx.attrs["eps"])
            h = (g * weight.reshape(shape)).reshape(n, groups, -1)
            gx = _input_grad(h, xhat_g, invstd_t, (2,)).reshape(x.shape) if need_x else None
            xhat = xhat_g.reshape(x.shape)
            return (gx, (g * xhat).sum(axis=axes) if need_w else None,
                    g.sum(axis=axes) if need_b else None)
        gx = GroupNormBackwardInput.apply(g, x, mean, invstd, weight, groups=groups) \
            if need_x else None
        gw = gb = None
        if need_w or need_b:
            sums = GroupNormBackwardAffine.apply(g, x, mean, invstd, groups=groups)
            gw, gb = (sums[1] if need_w else None), (sums[0] if need_b else None)
        return gx, gw, gb


class GroupNormBackwardInput(Function):
    @staticmethod
    def forward(ctx, g, x, mean, invstd, weight, *, groups):
        gx = kernels_for(x).group_norm_backward_input(contiguous(g), contiguous(x), mean, invstd,
                                                      weight, groups)
        return gx if gx.shape == x.shape else as_shape(gx, x.shape)

    backward = _no_double_backward("group_norm")


class GroupNormBackwardAffine(Function):
    """-> (2, C): [sum g, sum g * xhat] per channel."""

    @staticmethod
    def forward(ctx, g, x, mean, invstd, *, groups):
        n, c = x.shape[:2]
        return kernels_for(x).group_norm_backward_affine(
            as_shape(g, _ncl(x.shape)), as_shape(x, _ncl(x.shape)), mean, invstd,
            groups)

    backward = _no_double_backward("group_norm")


def group_norm(x, num_groups: int, weight=None, bias=None, eps: float = 1e-5):
    """Normalize each sample over groups of C/num_groups channels (and all spatial positions).
    x: (N, C, ...); weight, bias: (C,) or None. num_groups=C is instance norm, 1 is layer norm
    over (C, H, W)."""
    op = "group_norm"
    if x.ndim < 2:
        raise ShapeError(f"{op}: input must be (N, C, ...), got {fmt_shape(x.shape)}")
    c = x.shape[1]
    if not isinstance(num_groups, (int, np.integer)) or num_groups < 1:
        raise ValueError(f"{op}: num_groups must be a positive int, got {num_groups!r}")
    if c % num_groups:
        raise ShapeError(f"{op}: {c} channels of input {fmt_shape(x.shape)} are not divisible "
                         f"by num_groups={num_groups}")
    if x.size == 0:
        raise ShapeError(f"{op}: input {fmt_shape(x.shape)} is empty")
    check_float(op, input=x, weight=weight, bias=bias)
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and t.shape != (c,):
            raise ShapeError(f"{op}: {name} must have shape ({c},), got {fmt_shape(t.shape)}")
    w, b = _ones_zeros(x, c, weight, bias)
    return GroupNorm.apply(x, w, b, groups=int(num_groups), eps=float(eps))
