"""Normalization layers: BatchNorm1d/2d (with running statistics), LayerNorm, GroupNorm and
InstanceNorm2d. The fused kernels live in `tinygrad_ds.functional`.

Batch norm in training mode normalizes with the batch's statistics and updates
running_mean/running_var (the variance unbiased, as PyTorch); in eval mode it uses the running
statistics. The other norms compute statistics per sample and behave the same in both modes."""
from __future__ import annotations

import numpy as np

from .. import dtypes
from .. import functional as F
from ..autograd import no_grad
from ..ops.state import assign
from ..errors import ShapeError, TdsError, fmt_shape
from ..tensor import Tensor
from .module import Module, Parameter


def _param(shape, value: float, dtype) -> Parameter:
    return Parameter(np.full(shape, value, dtypes.to_dtype(dtype)), dtype=dtype)


class _BatchNorm(Module):
    _dims: tuple[int, ...] = ()
    _layout = ""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True, dtype=None):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        self.weight = _param(num_features, 1.0, dtype) if affine else None
        self.bias = _param(num_features, 0.0, dtype) if affine else None
        dt = dtypes.to_dtype(dtype)
        if track_running_stats:
            self.register_buffer("running_mean", Tensor._wrap(np.zeros(num_features, dt)))
            self.register_buffer("running_var", Tensor._wrap(np.ones(num_features, dt)))
            self.register_buffer("num_batches_tracked", Tensor._wrap(np.array(0, np.int64)))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            self.running_mean.data[...] = 0
            self.running_var.data[...] = 1
            self.num_batches_tracked.data = np.array(0, np.int64)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim not in self._dims or x.shape[1] != self.num_features:
            raise ShapeError(f"{type(self).__name__}({self.num_features}): expected input "
                             f"{self._layout} with C = {self.num_features}, got "
                             f"{fmt_shape(x.shape)}")
        momentum = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            nbt = self.num_batches_tracked
            with no_grad():
                count = nbt + 1
                assign(nbt, count)
                if self.momentum is None:  # cumulative moving average, read when it runs
                    # (of the new count: while tracing, the write into nbt is not carried out)
                    momentum = 1.0 / count.astype(x.dtype)
        use_batch_stats = self.training or not self.track_running_stats
        if use_batch_stats:
            n = x.size // x.shape[1]
            if n <= 1:
                raise ShapeError(f"{type(self).__name__}: training needs more than one value per "
                                 f"channel to compute a variance, got input {fmt_shape(x.shape)}")
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                            training=use_batch_stats, momentum=momentum, eps=self.eps)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch norm over (N, C) or (N, C, L): statistics per feature C over the other axes.
    weight (gamma) ones, bias (beta) zeros; buffers running_mean, running_var,
    num_batches_tracked."""

    _dims = (2, 3)
    _layout = "(N, C) or (N, C, L)"


class BatchNorm2d(_BatchNorm):
    """Batch norm over (N, C, H, W): statistics per channel over N, H and W."""

    _dims = (4,)
    _layout = "(N, C, H, W)"


class LayerNorm(Module):
    """Normalize over the last len(normalized_shape) axes of each sample; x: (*, *normalized_shape).
    weight ones and bias zeros of shape normalized_shape."""

    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True,
                 bias: bool = True, dtype=None):
        super().__init__()
        if isinstance(normalized_shape, int):
            normalized_shape = (normalized_shape,)
        self.normalized_shape = tuple(int(s) for s in normalized_shape)
        self.eps, self.elementwise_affine = eps, elementwise_affine
        self.weight = _param(self.normalized_shape, 1.0, dtype) if elementwise_affine else None
        self.bias = _param(self.normalized_shape, 0.0, dtype) \
            if elementwise_affine and bias else None

    def forward(self, x: Tensor) -> Tensor:
        k = len(self.normalized_shape)
        if x.shape[x.ndim - k:] != self.normalized_shape or x.ndim < k:
            raise ShapeError(f"LayerNorm{self.normalized_shape}: input {fmt_shape(x.shape)} "
                             f"should end in {fmt_shape(self.normalized_shape)}")
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}")


class GroupNorm(Module):
    """Split the C channels into num_groups groups and normalize each group of each sample.
    x: (N, C, *); weight ones and bias zeros of shape (C,)."""

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5,
                 affine: bool = True, dtype=None):
        super().__init__()
        if num_groups < 1 or num_channels % num_groups:
            raise TdsError(f"GroupNorm: num_channels {num_channels} must be divisible by "
                           f"num_groups {num_groups}")
        self.num_groups, self.num_channels, self.eps, self.affine = \
            num_groups, num_channels, eps, affine
        self.weight = _param(num_channels, 1.0, dtype) if affine else None
        self.bias = _param(num_channels, 0.0, dtype) if affine else None

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim < 2 or x.shape[1] != self.num_channels:
            raise ShapeError(f"GroupNorm({self.num_groups}, {self.num_channels}): expected input "
                             f"(N, {self.num_channels}, ...), got {fmt_shape(x.shape)}")
        return F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"


class InstanceNorm2d(Module):
    """Normalize each channel of each sample over H and W (group norm with one channel per
    group). x: (N, C, H, W). As PyTorch: affine=False and no running statistics by default."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1,
                 affine: bool = False, track_running_stats: bool = False, dtype=None):
        super().__init__()
        if track_running_stats:
            raise TdsError("InstanceNorm2d: track_running_stats=True is not supported; "
                           "it normalizes with each sample's own statistics")
        self.num_features, self.eps, self.momentum, self.affine = \
            num_features, eps, momentum, affine
        self.weight = _param(num_features, 1.0, dtype) if affine else None
        self.bias = _param(num_features, 0.0, dtype) if affine else None

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1] != self.num_features:
            raise ShapeError(f"InstanceNorm2d({self.num_features}): expected input "
                             f"(N, {self.num_features}, H, W), got {fmt_shape(x.shape)}")
        return F.group_norm(x, self.num_features, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, affine={self.affine}"
