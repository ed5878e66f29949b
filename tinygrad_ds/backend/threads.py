"""The CPU kernels' threads: how many, and a pool that runs independent chunks of work.

The convolution kernels cut the batch into chunks (conv/workspace.py); with several threads the
chunks run at once, each thread doing its chunk's copies (numba kernels compiled with
nogil=True) and its products (BLAS on one thread: OpenBLAS's count is set to 1 while the chunks
run and put back after, so the pool's threads and OpenBLAS's own do not fight over the cores,
and a matrix product outside the kernels still gets every core).

    tds.set_num_threads(1)     # everything serial, as before
    TDS_NUM_THREADS=2          # the environment's say, read at the first use

Default: the cores this process may run on, when numpy's BLAS is OpenBLAS (its thread count can
be read and set); otherwise 1 (another BLAS's threads would multiply with ours).
The pool's threads wait on a queue (no spinning), and a chunk that lands on a busy core leaves
the rest to the other threads.

With the default (neither set_num_threads nor TDS_NUM_THREADS), the kernels run serially while
the machine is busy with other work: a 1-minute load average of at least threads + 1. There,
threads lose more than they gain: a thread that the OS takes off its core while it holds
Python's lock (between two kernels) stalls the others, and on a shared 2-core machine a
ResNet-20 step ran 5 to 40% slower on 2 threads than on 1. A count that is set explicitly is
always used.
"""
from __future__ import annotations

import contextlib
import ctypes
import itertools
import os
import threading
import time
from collections.abc import Callable, Iterable

_state: dict = {"n": None, "explicit": False, "pool": None, "pool_n": 0, "blas": None,
                "busy": False, "checked": -1.0, "sharing": 0, "blas_before": 1}
BUSY_CHECK_S = 1.0  # how often the load average is read
_lock = threading.Lock()
_blas_lock = threading.Lock()
_in_worker = threading.local()


def _blas_threads():
    """(get, set) of numpy's OpenBLAS thread count, or None when numpy's BLAS is not OpenBLAS.

    NOTE: the count is process-wide: numpy's OpenBLAS (a pthreads build) applies even
    openblas_set_num_threads_local to every thread, so map_ordered sets 1 for the work it
    shares out and puts the old count back after, instead of setting it once per worker."""
    if _state["blas"] is None:
        _state["blas"] = False
        import numpy as np  # noqa: F401  (loads the BLAS library into the process)

        try:
            with open("/proc/self/maps") as f:
                paths = {line.split()[-1] for line in f if "openblas" in line.lower()}
        except OSError:
            paths = set()
        for p in sorted(paths):
            try:
                lib = ctypes.CDLL(p)
            except OSError:
                continue
            for prefix, suffix in (("scipy_openblas", "64_"), ("scipy_openblas", ""),
                                   ("openblas", "64_"), ("openblas", "")):
                get = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
                put = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
                if get is not None and put is not None:
                    get.argtypes, get.restype = [], ctypes.c_int
                    put.argtypes, put.restype = [ctypes.c_int], None
                    _state["blas"] = (get, put)
                    break
            if _state["blas"]:
                break
    return _state["blas"] or None


def _default() -> int:
    env = os.environ.get("TDS_NUM_THREADS")
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            from ..errors import TdsError

            raise TdsError(f"TDS_NUM_THREADS={env!r}: give a whole number of threads, such as "
                           "1 or 4") from None
    if _blas_threads() is None:
        return 1
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def get_num_threads() -> int:
    """How many threads the CPU kernels use (see the module doc; with the default, a busy
    machine runs them on 1 for now: `threads_now()`)."""
    if _state["n"] is None:
        _state["explicit"] = bool(os.environ.get("TDS_NUM_THREADS"))
        _state["n"] = _default()
    return _state["n"]


def threads_now() -> int:
    """The threads to use for the work about to start: get_num_threads(), or 1 while the
    machine is busy with other work and the count is the default (see the module doc)."""
    n = get_num_threads()
    if n == 1 or _state["explicit"]:
        return n
    now = time.monotonic()
    if now - _state["checked"] >= BUSY_CHECK_S:
        _state["checked"] = now
        try:
            _state["busy"] = os.getloadavg()[0] >= n + 1
        except (AttributeError, OSError):  # no load average here
            _state["busy"] = False
    return 1 if _state["busy"] else n


def split(n: int, size: int, min_size: int, parts: int = 8) -> list[tuple[int, int]]:
    """[a, b) ranges cutting range(n) into `parts` (fewer when n is smaller) for map_ordered,
    when the work is worth sharing (its arrays have min_size elements or more) and there are
    several threads now; else the one range (0, n)."""
    if n < 2 or size < min_size or threads_now() == 1:
        return [(0, n)]
    step = -(-n // min(n, parts))
    return [(a, min(n, a + step)) for a in range(0, n, step)]


def set_num_threads(n: int) -> None:
    """Use n threads in the CPU kernels (1: serial). Results do not depend on n."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        from ..errors import TdsError

        raise TdsError(f"set_num_threads: give a whole number >= 1, got {n!r}")
    _state["n"] = n
    _state["explicit"] = True


def _init_worker() -> None:
    _in_worker.yes = True


def _pool(n: int):
    """The pool of n helper threads (the calling thread is the other worker): a
    ThreadPoolExecutor, imported on first use so that `import tinygrad_ds` stays light."""
    from concurrent.futures import ThreadPoolExecutor

    with _lock:
        if _state["pool"] is None or _state["pool_n"] != n:
            if _state["pool"] is not None:
                _state["pool"].shutdown(wait=False)
            _state["pool"] = ThreadPoolExecutor(n, thread_name_prefix="tds-kernel",
                                                initializer=_init_worker)
            _state["pool_n"] = n
        return _state["pool"]


def _forget_pool() -> None:
    """In a child made by fork: the parent's pool threads do not exist here (start a new one),
    and neither do the parent's other threads that were sharing work out (the locks they may
    have held are made anew, and OpenBLAS gets its count back)."""
    global _lock, _blas_lock
    _lock, _blas_lock = threading.Lock(), threading.Lock()
    _state["pool"], _state["pool_n"] = None, 0
    if _state["sharing"] and _state["blas"]:
        _state["blas"][1](_state["blas_before"])
    _state["sharing"] = 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


@contextlib.contextmanager
def _one_blas_thread():
    """OpenBLAS on one thread inside (process-wide: see _blas_threads), the old count after;
    nested uses and several calling threads share one setting (a count of users)."""
    blas = _blas_threads()
    with _blas_lock:
        if _state["sharing"] == 0 and blas is not None:
            _state["blas_before"] = blas[0]()
            blas[1](1)
        _state["sharing"] += 1
    try:
        yield
    finally:
        with _blas_lock:
            _state["sharing"] -= 1
            if _state["sharing"] == 0 and blas is not None:
                blas[1](_state["blas_before"])


def map_ordered(fn: Callable, items: Iterable) -> list:
    """[fn(item) for item in items], on the pool when there are several threads and items (and
    this is not already a pool thread); results in the items' order.

    The calling thread works too, and every thread takes the next item from one shared counter:
    a future per thread, not per item, since a batch's chunks are many and short (a tenth of a
    millisecond each). The items' BLAS calls run on one thread whether the pool is used or not:
    OpenBLAS on several threads may split a product's inner dimension and round differently,
    and results must not depend on whether the machine was busy."""
    items = list(items)
    if getattr(_in_worker, "yes", False):
        return [fn(i) for i in items]
    with _one_blas_thread():
        n = min(threads_now(), len(items))
        if n <= 1:
            return [fn(i) for i in items]
        results: list = [None] * len(items)
        counter = itertools.count()
        failed: list = []

        def work() -> None:
            for k in iter(counter.__next__, None):  # (next() of a count is atomic: the GIL)
                if k >= len(items) or failed:
                    return
                try:
                    results[k] = fn(items[k])
                except BaseException as e:  # noqa: BLE001  (re-raised in the calling thread)
                    failed.append(e)
                    return

        helpers = [_pool(get_num_threads() - 1).submit(work) for _ in range(n - 1)]
        _in_worker.yes = True  # fn's own kernels stay serial in this thread too
        try:
            work()
        finally:
            _in_worker.yes = False
            for h in helpers:
                h.result()
        if failed:
            raise failed[0]
        return results
