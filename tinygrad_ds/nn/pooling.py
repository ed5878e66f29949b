"""Pooling layers over (N, C, H, W); the kernels live in `tinygrad_ds.functional`."""
from __future__ import annotations

from .. import functional as F
from ..errors import ShapeError, fmt_shape
from ..tensor import Tensor
from .module import Module


def _check4(name: str, x: Tensor) -> None:
    if x.ndim != 4:
        raise ShapeError(f"{name}: expected input (N, C, H, W), got {fmt_shape(x.shape)}")


class _Pool2d(Module):
    """What max and average pooling layers share: the window and ceil_mode."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.padding = padding
        self.ceil_mode = ceil_mode

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"
                + (", ceil_mode=True" if self.ceil_mode else ""))


class MaxPool2d(_Pool2d):
    """Maximum over kernel_size windows; stride defaults to kernel_size.
    (N, C, H, W) -> (N, C, (H + 2 padding - k) // stride + 1, ...), rounded up with ceil_mode."""

    def forward(self, x: Tensor) -> Tensor:
        _check4("MaxPool2d", x)
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode)


class AvgPool2d(_Pool2d):
    """Mean over kernel_size windows; stride defaults to kernel_size. Padding zeros count in the
    mean unless count_include_pad=False; ceil_mode as MaxPool2d (both as PyTorch)."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True):
        super().__init__(kernel_size, stride, padding, ceil_mode)
        self.count_include_pad = count_include_pad

    def forward(self, x: Tensor) -> Tensor:
        _check4("AvgPool2d", x)
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad)

    def extra_repr(self) -> str:
        return super().extra_repr() + ("" if self.count_include_pad else
                                       ", count_include_pad=False")


class AdaptiveAvgPool2d(Module):
    """Average-pool to a fixed output_size whatever the input size; output_size=1 is global
    average pooling: (N, C, H, W) -> (N, C, 1, 1)."""

    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def forward(self, x: Tensor) -> Tensor:
        _check4("AdaptiveAvgPool2d", x)
        return F.adaptive_avg_pool2d(x, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"
