"""Keep freed array memory in the process, so that a training step does not page-fault.

A ResNet-20 step at batch 128 makes and frees dozens of 2 to 8 MB arrays. glibc's malloc serves
them by mmap and returns them to the kernel when freed, or trims its heap, so the next array of
that size is fresh memory again: the kernel maps and zeroes it page by page on first touch. On
the shared 2-core machine that was 7,500 page faults per compiled step (30 MiB) and 23,000 to
39,000 per eager one, 2 to 3 microseconds each for one thread alone (more when two threads
fault at once). With malloc keeping arrays of up to 32 MB in its heap (M_MMAP_THRESHOLD, the
most glibc allows) and trimming the heap's top only past 256 MB of free memory
(M_TRIM_THRESHOLD), a step takes none, and took 0.93x the time compiled and 0.88x eager in
interleaved runs (benchmarks/malloc.py; RESULTS.md, "Page faults").

The price is memory the process keeps after freeing it (reused by its next arrays; up to 256 MB
of it at the top of the heap is not given back to the system), as PyTorch's caching allocator
keeps it. This is set once,
when the CPU backend is imported, only where the C library is glibc; TDS_MALLOC_KEEP=0 in the
environment leaves malloc as it was.
"""
from __future__ import annotations

import os

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20   # glibc refuses more than 32 MB (HEAP_MAX_SIZE / 2 on 64 bits)
TRIM_THRESHOLD = 256 << 20

_state = {"kept": None}


def keep_freed_memory() -> bool:
    """Sets malloc's thresholds (once); True when they are set. False where the C library is not
    glibc, where TDS_MALLOC_KEEP=0 says not to, or where mallopt refused."""
    if _state["kept"] is not None:
        return _state["kept"]
    _state["kept"] = False
    if os.environ.get("TDS_MALLOC_KEEP", "1") == "0":
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # glibc only: musl and macOS have no such thresholds
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    _state["kept"] = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
                          and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _state["kept"]
