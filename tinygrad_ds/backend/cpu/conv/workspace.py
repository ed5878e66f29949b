"""Scratch memory for the convolution kernels, the cut of a batch into chunks, and the threads
that run the chunks.

The batch is cut into chunks whose im2col matrix takes about CHUNK_ELEMENTS entries (4 MB in
float32), not one GEMM for the whole batch: the whole-batch cols of a 16-channel 32x32 layer at
batch 128 is 75 MB, written to and read back from main memory, while a chunk stays in cache
between its copy and its product, and the scratch buffers stay small. A chunk of several samples
still keeps each GEMM at tens of MFLOP; much smaller chunks make the BLAS calls too small.

A fresh np.empty of a few MB per chunk costs a page fault per 4 KB, so the chunk buffers are
reused, one per role and dtype and thread; padded copies of the input keep their zero border
between calls.

Chunks are independent (each writes its own samples of the output, or returns its part of a
weight gradient, summed in chunk order), so `run_chunks` hands them to a pool of threads
(tinygrad_ds.backend.threads: the numba kernels release the GIL, and OpenBLAS runs on one
thread while the chunks do). The copies then use every core, not only the products. The results
do not depend on the number of threads: the parts are summed in the same order.
"""
from __future__ import annotations

import math
import threading
from collections.abc import Callable

import numpy as np

from ... import threads

# elements of one chunk's cols buffer (float32: 4 MB)
CHUNK_ELEMENTS = 1 << 20
MIN_CHUNKS = 8

# per thread: one growing buffer per role ("cols", "y", "g", "pad") and dtype, and the
# zero-bordered padded buffers
_local = threading.local()


def _spaces() -> tuple[dict, dict]:
    try:
        return _local.buffers, _local.padded
    except AttributeError:
        _local.buffers, _local.padded = {}, {}
        return _local.buffers, _local.padded


def _buffer(role: str, shape: tuple, dtype) -> np.ndarray:
    """A scratch array of this shape from this thread's buffer for (role, dtype), grown when too
    small; its contents are left over from the last call."""
    size = math.prod(shape)
    key = (role, np.dtype(dtype))
    buffers = _spaces()[0]
    buf = buffers.get(key)
    if buf is None or buf.size < size:
        buf = buffers[key] = np.empty(size, dtype=dtype)
    return buf[:size].reshape(shape)


def _padded_buffer(layout: str, shape: tuple, ph: int, pw: int, dtype) -> np.ndarray:
    """This thread's zero-bordered buffer for a padded input, one per layout, shape, padding and
    dtype: the border is written only when the buffer is made (np.zeros), the interior by every
    call (a network has few shapes)."""
    padded = _spaces()[1]
    key = (layout, shape, ph, pw, np.dtype(dtype))
    buf = padded.get(key)
    if buf is None:
        if len(padded) >= 64:  # many shapes (tests, varying batch sizes): start over
            padded.clear()
        buf = padded[key] = np.zeros(shape, dtype=dtype)
    return buf


def _padded_nhwc(x: np.ndarray, ph: int, pw: int) -> np.ndarray:
    """x (N, C, H, W) -> this thread's zero-bordered channels-last copy (N, H+2ph, W+2pw, C)."""
    n, c, h, w = x.shape
    xh = _padded_buffer("nhwc", (n, h + 2 * ph, w + 2 * pw, c), ph, pw, x.dtype)
    xh[:, ph:ph + h, pw:pw + w, :] = x.transpose(0, 2, 3, 1)
    return xh


def _chunks(n: int, per_sample: int, elements: int | None = None) -> list[tuple[int, int]]:
    """Slices [b0, b1) of a batch of n whose cols hold about CHUNK_ELEMENTS elements (or the
    given number) at per_sample elements a sample; at least 1 sample each. A batch of more than
    one chunk's work is cut into MIN_CHUNKS chunks at least (where n allows), so that threads
    share it, and a thread slowed by a busy core leaves its share to the others. The cut does
    not depend on the number of threads (nor, then, do the sums over chunks)."""
    size = elements or CHUNK_ELEMENTS
    step = max(1, min(n, size // max(per_sample, 1)))
    if n * per_sample >= size:  # worth sharing: at least MIN_CHUNKS chunks where n allows
        step = max(1, min(step, -(-n // MIN_CHUNKS)))
    return [(b0, min(n, b0 + step)) for b0 in range(0, n, step)]


def run_chunks(body: Callable[[int, int], object], chunks: list[tuple[int, int]]) -> list:
    """body(b0, b1) for every chunk, on the pool's threads when there are several; returns the
    bodies' results in chunk order (sum them in that order: the same sum on any thread count)."""
    return threads.map_ordered(lambda c: body(*c), chunks)


def _sum(parts: list[np.ndarray]) -> np.ndarray:
    """The chunks' parts of a weight gradient, summed in chunk order into the first."""
    acc = parts[0]
    for p in parts[1:]:
        acc += p
    return acc
