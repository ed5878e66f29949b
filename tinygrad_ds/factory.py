"""Tensor factories: zeros, ones, full, arange, eye, randn, rand, and the *_like forms.

Shapes come as separate integers or one tuple (`zeros(2, 3)` or `zeros((2, 3))`); the dtype is
float32 unless given; `device` is accepted as in PyTorch ('cpu' is the one there is).
"""
from __future__ import annotations

import numpy as np

from . import dtypes
from .random import generator
from .tensor import Tensor, _check_device, _shape_arg


def _make(array: np.ndarray, requires_grad: bool, device: str) -> Tensor:
    if device != "cpu":
        _check_device(device)
        from .cuda import to_device
        array = to_device(array)  # made on the host, copied once (counted)
    t = Tensor._wrap(array)
    return t.requires_grad_(True) if requires_grad else t


def zeros(*shape, dtype=None, requires_grad: bool = False, device: str = "cpu") -> Tensor:
    return _make(np.zeros(_shape_arg(shape), dtypes.to_dtype(dtype)), requires_grad, device)


def ones(*shape, dtype=None, requires_grad: bool = False, device: str = "cpu") -> Tensor:
    return _make(np.ones(_shape_arg(shape), dtypes.to_dtype(dtype)), requires_grad, device)


def full(shape, fill_value, dtype=None, requires_grad: bool = False,
         device: str = "cpu") -> Tensor:
    """`shape` filled with `fill_value`; an int value gives int64, a bool gives bool."""
    if dtype is None and isinstance(fill_value, (bool, int)):
        dtype = "bool" if isinstance(fill_value, bool) else "int64"
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    return _make(np.full(shape, fill_value, dtypes.to_dtype(dtype)), requires_grad, device)


def arange(start, stop=None, step=1, dtype=None, requires_grad: bool = False,
           device: str = "cpu") -> Tensor:
    """(ceil((stop - start) / step),): integers when start, stop and step are integers (as
    torch.arange), else float32."""
    if stop is None:
        start, stop = 0, start
    if dtype is None:
        ints = all(isinstance(v, (int, np.integer)) for v in (start, stop, step))
        dtype = "int64" if ints else None
    array = np.arange(start, stop, step).astype(dtypes.to_dtype(dtype))
    return _make(array, requires_grad, device)


def eye(n: int, m: int | None = None, dtype=None, requires_grad: bool = False,
        device: str = "cpu") -> Tensor:
    """(n, m or n): ones on the diagonal."""
    return _make(np.eye(n, m, dtype=dtypes.to_dtype(dtype)), requires_grad, device)


def randn(*shape, dtype=None, requires_grad: bool = False, device: str = "cpu") -> Tensor:
    """Standard normal samples from the generator that `tds.manual_seed` seeds."""
    array = generator().standard_normal(_shape_arg(shape)).astype(dtypes.to_dtype(dtype))
    return _make(array, requires_grad, device)


def rand(*shape, dtype=None, requires_grad: bool = False, device: str = "cpu") -> Tensor:
    """Uniform samples in [0, 1) from the generator that `tds.manual_seed` seeds."""
    array = generator().random(_shape_arg(shape)).astype(dtypes.to_dtype(dtype))
    return _make(array, requires_grad, device)


# The *_like forms take the template's shape, dtype and device unless told otherwise.
def zeros_like(t: Tensor, dtype=None, requires_grad: bool = False, device=None) -> Tensor:
    return zeros(t.shape, dtype=t.dtype if dtype is None else dtype, requires_grad=requires_grad,
                 device=t.device if device is None else device)


def ones_like(t: Tensor, dtype=None, requires_grad: bool = False, device=None) -> Tensor:
    return ones(t.shape, dtype=t.dtype if dtype is None else dtype, requires_grad=requires_grad,
                device=t.device if device is None else device)


def full_like(t: Tensor, fill_value, dtype=None, requires_grad: bool = False,
              device=None) -> Tensor:
    return full(t.shape, fill_value, dtype=t.dtype if dtype is None else dtype,
                requires_grad=requires_grad, device=t.device if device is None else device)


def randn_like(t: Tensor, dtype=None, requires_grad: bool = False, device=None) -> Tensor:
    return randn(t.shape, dtype=t.dtype if dtype is None else dtype, requires_grad=requires_grad,
                 device=t.device if device is None else device)


def rand_like(t: Tensor, dtype=None, requires_grad: bool = False, device=None) -> Tensor:
    return rand(t.shape, dtype=t.dtype if dtype is None else dtype, requires_grad=requires_grad,
                device=t.device if device is None else device)
