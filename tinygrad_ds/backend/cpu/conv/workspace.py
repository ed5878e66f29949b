"""Scratch memory for the convolution kernels, and the cut of a batch into chunks.

The batch is cut into chunks whose im2col matrix takes about CHUNK_ELEMENTS entries (4 MB in
float32), not one GEMM for the whole batch: the whole-batch cols of a 16-channel 32x32 layer at
batch 128 is 75 MB, written to and read back from main memory, while a chunk stays in cache
between its copy and its product, and the scratch buffers stay small. A chunk of several samples
still keeps each GEMM at tens of MFLOP; much smaller chunks make the BLAS calls too small.

A fresh np.empty of a few MB per chunk costs a page fault per 4 KB, so the chunk buffers are
reused, one per role and dtype; padded copies of the input keep their zero border between calls.
"""
from __future__ import annotations

import numpy as np

# elements of one chunk's cols buffer (float32: 4 MB)
CHUNK_ELEMENTS = 1 << 20

# one growing buffer per role ("cols", "y", "g", "pad") and dtype
_workspace: dict = {}


def _buffer(role: str, shape: tuple, dtype) -> np.ndarray:
    """A scratch array of this shape from the buffer for (role, dtype), grown when too small;
    its contents are left over from the last call."""
    size = int(np.prod(shape))
    key = (role, np.dtype(dtype))
    buf = _workspace.get(key)
    if buf is None or buf.size < size:
        buf = _workspace[key] = np.empty(size, dtype=dtype)
    return buf[:size].reshape(shape)


# zero-bordered buffers for padded inputs, one per layout, shape, padding and dtype: the border
# is written only when the buffer is made (np.zeros), the interior by every call (a network has
# few shapes)
_padded: dict = {}


def _padded_buffer(layout: str, shape: tuple, ph: int, pw: int, dtype) -> np.ndarray:
    key = (layout, shape, ph, pw, np.dtype(dtype))
    buf = _padded.get(key)
    if buf is None:
        if len(_padded) >= 64:  # many shapes (tests, varying batch sizes): start over
            _padded.clear()
        buf = _padded[key] = np.zeros(shape, dtype=dtype)
    return buf


def _chunks(n: int, per_sample: int, elements: int | None = None) -> list[tuple[int, int]]:
    """Slices [b0, b1) of a batch of n whose cols hold about CHUNK_ELEMENTS elements (or the
    given number) at per_sample elements a sample; at least 1 sample each."""
    step = max(1, min(n, (elements or CHUNK_ELEMENTS) // max(per_sample, 1)))
    return [(b0, min(n, b0 + step)) for b0 in range(0, n, step)]
