"""MetaArray: an array with a shape and a dtype but no data, for tracing in no time.

    x = MetaArray((8, 3, 32, 32))            # float32 by default
    kernels_for(x).sum(x, (1,), True)        # MetaArray((8, 1, 32, 32), float32)

It is not a numpy array and answers no numpy call: every op reaches arrays through the kernel
table, and the 'meta' backend implements each table name as a shape and dtype rule. Asking for a
value (`bool(x)`, `float(x)`, `np.asarray(x)`) raises MetaValueError: a function whose control
flow depends on tensor values cannot be traced by shape alone.
"""
from __future__ import annotations

import numpy as np

from ...errors import TdsError


class MetaValueError(TdsError, TypeError):
    """Code asked a shape-only array for a value (data-dependent control flow)."""


class MetaArray:
    """shape and dtype only: `MetaArray((N, C, H, W), 'float32')`."""

    __slots__ = ("shape", "dtype")
    backend = "meta"

    def __init__(self, shape, dtype=np.float32):
        self.shape = (int(shape),) if isinstance(shape, (int, np.integer)) else \
            tuple(int(s) for s in shape)
        self.dtype = np.dtype(dtype)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a 0-d array")
        return self.shape[0]

    def __repr__(self) -> str:
        return f"MetaArray(shape={self.shape}, dtype={self.dtype})"

    __str__ = __repr__

    def __reduce__(self):
        return (MetaArray, (self.shape, self.dtype))

    # ---- no values ------------------------------------------------------------------------------
    def _no_value(self, what: str):
        raise MetaValueError(
            f"{what} of a shape-only array {self.shape} {self.dtype}: the code reads tensor "
            "values (data-dependent control flow), which shape-only tracing cannot follow")

    def __bool__(self): self._no_value("the truth value")
    def __float__(self): self._no_value("float()")
    def __int__(self): self._no_value("int()")
    def __index__(self): self._no_value("an index")
    def __iter__(self): self._no_value("iterating over the values")
    def item(self, *args): self._no_value("item()")
    def tolist(self): self._no_value("tolist()")
    def __array__(self, *args, **kwargs): self._no_value("a numpy array")
