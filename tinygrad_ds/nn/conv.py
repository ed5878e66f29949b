"""Conv2d and ConvTranspose2d: parameters and shape checks here, the kernels in
`tinygrad_ds.functional` (conv2d, conv_transpose2d)."""
from __future__ import annotations


from .. import functional as F
from ..errors import ShapeError, TdsError, fmt_shape
from ..tensor import Tensor
from . import init
from .linear import _empty
from .module import Module


def _pair(v) -> tuple[int, int]:
    if isinstance(v, (tuple, list)):
        if len(v) != 2:
            raise TdsError(f"expected an int or a pair, got {v!r}")
        return int(v[0]), int(v[1])
    return int(v), int(v)


class _ConvNd(Module):
    def _init_params(self, weight_shape: tuple, bias: bool, dtype) -> None:
        self.weight = _empty(*weight_shape, dtype=dtype)
        self.bias = _empty(self.out_channels, dtype=dtype) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's default initialisation (see init.default_linear_init_)."""
        init.default_linear_init_(self.weight, self.bias)

    def _check_input(self, x: Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ShapeError(f"{type(self).__name__}({self.in_channels}, {self.out_channels}): "
                             f"expected input (N, {self.in_channels}, H, W), got "
                             f"{fmt_shape(x.shape)}")

    def _check_groups(self) -> None:
        g = self.groups
        if g < 1 or self.in_channels % g or self.out_channels % g:
            raise TdsError(f"{type(self).__name__}: in_channels {self.in_channels} and "
                           f"out_channels {self.out_channels} must both be divisible by groups {g}")

    def extra_repr(self) -> str:
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        return s + ("" if self.bias is not None else ", bias=False")


class Conv2d(_ConvNd):
    """2-D convolution (cross-correlation, as PyTorch). x: (N, C_in, H, W) -> (N, C_out, H', W'),
    H' = (H + 2 padding - dilation (k - 1) - 1) // stride + 1.

    weight: (C_out, C_in / groups, kh, kw), bias: (C_out,). groups=C_in is a depthwise
    convolution (MobileNet); 1 < groups < C_in a grouped one (ResNeXt). padding may be 'same'
    (stride 1, odd kernel) or 'valid'."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 dilation=1, groups: int = 1, bias: bool = True, dtype=None):
        super().__init__()
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size, self.stride = _pair(kernel_size), _pair(stride)
        self.dilation = _pair(dilation)
        if padding == "valid":
            padding = 0
        elif padding == "same":
            if self.stride != (1, 1) or any(d * (k - 1) % 2 for d, k in
                                            zip(self.dilation, self.kernel_size)):
                raise TdsError("Conv2d: padding='same' needs stride 1 and an odd (dilated) kernel")
            padding = tuple(d * (k - 1) // 2 for d, k in zip(self.dilation, self.kernel_size))
        self.padding = _pair(padding)
        self._check_groups()
        self._init_params((out_channels, in_channels // groups) + self.kernel_size, bias, dtype)

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x)
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation,
                        self.groups)


class ConvTranspose2d(_ConvNd):
    """Transposed convolution (the gradient of Conv2d with respect to its input): upsamples.
    x: (N, C_in, H, W) -> (N, C_out, H', W'),
    H' = (H - 1) stride - 2 padding + dilation (k - 1) + output_padding + 1.

    weight: (C_in, C_out / groups, kh, kw), bias: (C_out,)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 output_padding=0, groups: int = 1, bias: bool = True, dilation=1, dtype=None):
        super().__init__()
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size, self.stride = _pair(kernel_size), _pair(stride)
        self.padding, self.dilation = _pair(padding), _pair(dilation)
        self.output_padding = _pair(output_padding)
        self._check_groups()
        self._init_params((in_channels, out_channels // groups) + self.kernel_size, bias, dtype)

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x)
        return F.conv_transpose2d(x, self.weight, self.bias, self.stride, self.padding,
                                  self.output_padding, self.groups, self.dilation)
