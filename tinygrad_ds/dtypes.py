"""The dtypes a Tensor may hold, and how names like 'float32' map to numpy."""
from __future__ import annotations

import numpy as np

from .errors import DTypeError

float32 = np.dtype(np.float32)
float64 = np.dtype(np.float64)
int32 = np.dtype(np.int32)
int64 = np.dtype(np.int64)
bool_ = np.dtype(np.bool_)

_NAMES = {
    "float32": float32, "float": float32, "f4": float32,
    "float64": float64, "double": float64, "f8": float64,
    "int32": int32, "int": int64, "int64": int64, "long": int64,
    "bool": bool_,
}
SUPPORTED = (float32, float64, int32, int64, bool_)
default_float = float32


def to_dtype(dtype) -> np.dtype:
    """Accept a name ('float64'), a numpy dtype or type, or Python float/int/bool."""
    if dtype is None:
        return default_float
    if isinstance(dtype, str):
        if dtype in _NAMES:
            return _NAMES[dtype]
        raise DTypeError(f"unknown dtype {dtype!r}; use one of {sorted(set(_NAMES))}")
    if dtype is float:
        return float32
    if dtype is int:
        return int64
    if dtype is bool:
        return bool_
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise DTypeError(f"unknown dtype {dtype!r}; use one of {sorted(set(_NAMES))}") from None
    if dt not in SUPPORTED:
        raise DTypeError(f"dtype {dt} is not supported; use one of float32, float64, int32, "
                         "int64, bool")
    return dt


def is_floating(dtype) -> bool:
    return np.dtype(dtype).kind == "f"
