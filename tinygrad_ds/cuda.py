"""The GPU device: detection, host<->device copies, and the copy counter.

    import tinygrad_ds as tds
    tds.cuda.is_available()        # False without an NVIDIA GPU or without numba-cuda
    tds.cuda.device_name()         # 'NVIDIA H200', or None
    x = tds.randn(4, 3).cuda()     # data in GPU memory (a numba device array)
    tds.cuda.transfer_stats()      # {'to_device': 1, 'to_host': 0, 'bytes_to_device': 48, ...}
    tds.cuda.launch_stats()        # {'launches': 0}: kernels run on the GPU

numba.cuda is imported on first use, never by `import tinygrad_ds`; nothing is printed.
`NUMBA_ENABLE_CUDASIM=1` (set before numba is imported) runs the same kernels in numba's CUDA
simulator on the CPU: slow, but it checks the kernels' logic on a machine without a GPU.
Install: `pip install 'tinygrad-ds[cuda]'` (the maintained `numba-cuda` package).
"""
from __future__ import annotations

import numpy as np

from .errors import TdsError

_stats = {"to_device": 0, "to_host": 0, "bytes_to_device": 0, "bytes_to_host": 0}
_registered = False

_CHECK = ("check with `python -c \"import tinygrad_ds as tds; print(tds.cuda.is_available(), "
          "tds.cuda.device_name())\"` and `nvidia-smi`")


class CudaUnavailableError(TdsError):
    """Device 'cuda' was asked for, but numba-cuda or an NVIDIA GPU is missing."""


class CudaOutOfMemoryError(TdsError):
    """The GPU has too little free memory for an array: the message gives the bytes asked for
    and the bytes free. Raised before anything is written (the op that asked has not run)."""

    def __init__(self, message: str, requested: int, free: int | None):
        super().__init__(message)
        self.requested = requested
        self.free = free


def _numba_cuda():
    """numba.cuda, or None when the numba-cuda package is not installed."""
    try:
        from numba import cuda
    except ImportError:
        return None
    return cuda


def _why_unavailable() -> str | None:
    """None when 'cuda' can be used, else a sentence saying what is missing."""
    cuda = _numba_cuda()
    if cuda is None:
        return ("device 'cuda' needs the numba-cuda package, which is not installed: "
                "pip install 'tinygrad-ds[cuda]' (or pip install numba-cuda)")
    try:
        ok = cuda.is_available()
    except Exception as e:  # a driver that fails to load
        return f"device 'cuda': the CUDA driver did not load ({type(e).__name__}: {e}); {_CHECK}"
    if not ok:
        return ("device 'cuda': numba-cuda is installed but finds no usable NVIDIA GPU (no GPU, "
                f"or no driver); {_CHECK}; without a GPU, use device='cpu'")
    return None


def is_available() -> bool:
    """True when numba-cuda is installed and finds a GPU (or runs its simulator)."""
    return _why_unavailable() is None


def simulated() -> bool:
    """True when numba's CUDA simulator stands in for a GPU (NUMBA_ENABLE_CUDASIM=1)."""
    if _numba_cuda() is None:
        return False
    from numba import config
    return bool(config.ENABLE_CUDASIM)


def device_name() -> str | None:
    """The GPU's name ('NVIDIA H200'; 'simulator' under NUMBA_ENABLE_CUDASIM), or None."""
    if not is_available():
        return None
    if simulated():
        return "simulator"
    name = _numba_cuda().get_current_device().name
    return name.decode() if isinstance(name, bytes) else str(name)


def require() -> None:
    """Raise CudaUnavailableError saying what is missing, unless 'cuda' can be used. Registers
    the cuda kernel backend for numba's device arrays on first success."""
    global _registered
    if _registered:
        return
    why = _why_unavailable()
    if why is not None:
        raise CudaUnavailableError(why)
    from . import backend
    if simulated():
        _patch_simulator()
    backend.register_backend("cuda", "tinygrad_ds.backend.cuda", device_array_type())
    _registered = True


def device_array_type() -> type:
    """The array type of numba's device arrays (the simulator has its own)."""
    if simulated():
        from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray
        return FakeCUDAArray
    from numba.cuda.cudadrv.devicearray import DeviceNDArray
    return DeviceNDArray


def _patch_simulator() -> None:
    """The simulator's host arrays give shapes that refuse negative indices (as shapes inside a
    kernel do); a real DeviceNDArray's shape outside a kernel is a plain tuple, which the ops
    index from the end. Make the simulator's host-side shape a plain tuple too."""
    from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray
    FakeCUDAArray.shape = property(lambda self: self._ary.shape)


def transfer_stats() -> dict[str, int]:
    """Host<->device copies made by tinygrad_ds since the start (or the last reset): counts and
    bytes each way. A training step on 'cuda' should only add the loss that .item() reads."""
    return dict(_stats)


def reset_transfer_stats() -> None:
    for k in _stats:
        _stats[k] = 0


_launches = {"launches": 0}


def launch_stats() -> dict[str, int]:
    """Kernel launches made by tinygrad_ds on the GPU since the start (or the last reset):
    {'launches': n}. Each launch costs a few microseconds of CPU time whatever its size, so a
    step of many small ops is bound by launches; a compiled step fuses elementwise ops into one."""
    return dict(_launches)


def reset_launch_stats() -> None:
    _launches["launches"] = 0


def _is_out_of_memory(e: Exception) -> bool:
    """numba's CudaAPIError for a failed cuMemAlloc (code 2, CUDA_ERROR_OUT_OF_MEMORY)."""
    return "OUT_OF_MEMORY" in str(e).upper() or str(getattr(e, "code", "")) == "2"


def _out_of_memory(shape: tuple, dtype, what: str) -> CudaOutOfMemoryError:
    dtype = np.dtype(dtype)
    want = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    free = None
    try:
        free, total = _numba_cuda().current_context().get_memory_info()
        have = f"{free:,} bytes are free of {total:,}"
    except Exception:  # the simulator and some drivers cannot say
        have = "the free bytes are unknown here (nvidia-smi shows them)"
    return CudaOutOfMemoryError(
        f"out of GPU memory: {what} of shape {tuple(shape)} {dtype} needs {want:,} bytes and "
        f"{have}; nothing was written. Use a smaller batch, or drop tensors you keep (a list of "
        "losses as tensors keeps their graphs: keep loss.item())", want, free)


def empty(shape: tuple, dtype):
    """A new device array (uninitialised). The one place the cuda backend allocates; out of
    memory raises CudaOutOfMemoryError with the bytes asked for and free."""
    try:
        return _numba_cuda().device_array(tuple(shape), dtype=np.dtype(dtype))
    except Exception as e:  # numba's CudaAPIError, CUDA_ERROR_OUT_OF_MEMORY
        if not _is_out_of_memory(e):
            raise
        raise _out_of_memory(tuple(shape), dtype, "an array") from None


def to_device(array: np.ndarray):
    """Copy a numpy array to the GPU (counted); out of memory raises CudaOutOfMemoryError."""
    require()
    array = np.ascontiguousarray(array)
    try:
        out = _numba_cuda().to_device(array)
    except Exception as e:
        if not _is_out_of_memory(e):
            raise
        raise _out_of_memory(array.shape, array.dtype, "a copy to the GPU") from None
    _stats["to_device"] += 1
    _stats["bytes_to_device"] += array.nbytes
    return out


def to_host(array) -> np.ndarray:
    """Copy a device array to a new numpy array (counted)."""
    out = array.copy_to_host()
    _stats["to_host"] += 1
    _stats["bytes_to_host"] += out.nbytes
    return np.asarray(out)


__all__ = ["is_available", "device_name", "transfer_stats", "reset_transfer_stats",
           "launch_stats", "reset_launch_stats", "CudaUnavailableError", "CudaOutOfMemoryError",
           "simulated"]
