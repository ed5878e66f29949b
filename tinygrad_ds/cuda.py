"""The GPU device: detection, host<->device copies, and the copy counter.

    import tinygrad_ds as tds
    tds.cuda.is_available()        # False without an NVIDIA GPU or without numba-cuda
    tds.cuda.device_name()         # 'NVIDIA H200', or None
    x = tds.randn(4, 3).cuda()     # data in GPU memory (a numba device array)
    tds.cuda.transfer_stats()      # {'to_device': 1, 'to_host': 0, 'bytes_to_device': 48, ...}

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


def to_device(array: np.ndarray):
    """Copy a numpy array to the GPU (counted)."""
    require()
    array = np.ascontiguousarray(array)
    out = _numba_cuda().to_device(array)
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
           "CudaUnavailableError", "simulated"]
