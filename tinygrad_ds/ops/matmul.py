"""Matrix product: vectors, matrices and batches of matrices, as numpy's matmul."""
from __future__ import annotations

import numpy as np

from ..autograd import Function
from ..backend import kernels_for
from ..errors import ShapeError, fmt_shape
from .elementwise import unbroadcast


class MatMul(Function):
    """(..., n, k) @ (..., k, m) -> (..., n, m); batch axes broadcast."""

    name = "matmul"

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return kernels_for(a, b).matmul(a, b)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        ga = unbroadcast(MatMul.apply(g, b.transpose(-1, -2)), a.shape) if a.requires_grad else None
        gb = unbroadcast(MatMul.apply(a.transpose(-1, -2), g), b.shape) if b.requires_grad else None
        return ga, gb


def matmul(a, b):
    """1-D operands are treated as a row (left) or column (right) vector, then that axis is
    dropped from the result, as in numpy and PyTorch."""
    if a.ndim == 0 or b.ndim == 0:
        raise ShapeError(f"matmul: both operands need at least 1 dim, got shapes "
                         f"{fmt_shape(a.shape)} and {fmt_shape(b.shape)} (use * for scalars)")
    rows = b.shape[-2 if b.ndim > 1 else 0]
    if a.shape[-1] != rows:
        raise ShapeError(
            f"matmul: shapes {fmt_shape(a.shape)} and {fmt_shape(b.shape)} do not fit: "
            f"{a.shape[-1]} columns on the left, {rows} rows on the right"
        )
    a2 = a.reshape(1, a.shape[0]) if a.ndim == 1 else a
    b2 = b.reshape(b.shape[0], 1) if b.ndim == 1 else b
    try:
        np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
    except ValueError:
        raise ShapeError(f"matmul: batch dims of {fmt_shape(a.shape)} and {fmt_shape(b.shape)} "
                         "cannot be broadcast") from None
    out = MatMul.apply(a2, b2)
    if a.ndim == 1:
        out = out.squeeze(-2)
    if b.ndim == 1:
        out = out.squeeze(-1)
    return out
