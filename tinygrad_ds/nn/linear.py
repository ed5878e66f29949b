"""Linear, Identity and Flatten."""
from __future__ import annotations


from .. import dtypes
from ..errors import ShapeError, fmt_shape
from ..tensor import Tensor
from . import init
from .module import Module, Parameter


def _empty(*shape, dtype=None) -> Parameter:
    import numpy as np

    return Parameter(np.zeros(shape, dtypes.to_dtype(dtype)), dtype=dtype)


class Linear(Module):
    """y = x W^T + b. x: (N, *, in_features) -> (N, *, out_features).

    weight: (out_features, in_features), bias: (out_features,). Initialised as PyTorch does:
    weight kaiming_uniform with a=sqrt(5) (that is U(-1/sqrt(in), 1/sqrt(in))), bias
    U(-1/sqrt(in), 1/sqrt(in))."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, dtype=None):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = _empty(out_features, in_features, dtype=dtype)
        self.bias = _empty(out_features, dtype=dtype) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.default_linear_init_(self.weight, self.bias)

    def _linear(self, x: Tensor, weight: Tensor) -> Tensor:
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            raise ShapeError(f"Linear({self.in_features}, {self.out_features}): input of shape "
                             f"{fmt_shape(x.shape)} should end in {self.in_features} features")
        y = x @ weight.T
        return y + self.bias if self.bias is not None else y

    def forward(self, x: Tensor) -> Tensor:
        return self._linear(x, self.weight)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class Identity(Module):
    """Returns its input: a placeholder (the identity shortcut of a residual block)."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, x: Tensor) -> Tensor:
        return x


class Flatten(Module):
    """(N, C, H, W) -> (N, C*H*W) with the defaults start_dim=1, end_dim=-1."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x: Tensor) -> Tensor:
        return x.flatten(self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"
