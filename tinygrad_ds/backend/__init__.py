"""Kernel backends behind one table of names (`table.KERNELS`), picked by the array's type.

    kernels = kernels_for(x, w)       # the arrays an op is about to work on
    y = kernels.conv2d_forward(x, w, None, 1, 1, 1, 1, 1, 1, 1, oh, ow)

A numpy ndarray goes to the 'cpu' backend (numpy + numba); a MetaArray (its `backend` attribute
says 'meta') to the shape rules. Any other array type is looked up by type
(`register_backend(name, module, array_type)`), or by the name in its `backend` attribute.
Backends are registered by module path and imported on first use: numba is imported only when a
cpu kernel is first needed, never by `import tinygrad_ds`.
"""
from __future__ import annotations

import importlib
from types import ModuleType

import numpy as np

from ..errors import TdsError
from .table import KERNELS, missing

# name -> module, or the dotted path of a module not imported yet
_backends: dict[str, ModuleType | str] = {"cpu": "tinygrad_ds.backend.cpu",
                                          "meta": "tinygrad_ds.backend.meta"}
# array type -> backend name
_by_type: dict[type, str] = {np.ndarray: "cpu", np.random.Generator: "cpu"}
_modules: dict[str, ModuleType] = {}  # names imported already


def register_backend(name: str, module: ModuleType | str, array_type: type | None = None) -> None:
    """Make `module` (or a dotted path, imported on first use) the backend called `name`, and,
    when given, the one for arrays of `array_type` (and its subclasses)."""
    _backends[name] = module
    _modules.pop(name, None)
    if array_type is not None:
        _by_type[array_type] = name


def registered() -> list[str]:
    """Names of the registered backends."""
    return list(_backends)


def get(name: str) -> ModuleType:
    """The backend module called `name`, imported now if it was registered by path."""
    mod = _modules.get(name)
    if mod is not None:
        return mod
    try:
        mod = _backends[name]
    except KeyError:
        raise TdsError(f"no kernel backend called {name!r}; registered: {registered()}") from None
    if isinstance(mod, str):
        mod = _backends[name] = importlib.import_module(mod)
    if isinstance(mod, ModuleType) and "__getattr__" not in vars(mod):
        mod.__getattr__ = _no_kernel(name)  # PEP 562: called for names the module lacks
    _modules[name] = mod
    return mod


class MissingKernelError(TdsError, AttributeError):
    """A backend lacks a kernel an op asked for (an AttributeError, so hasattr() says False)."""


def _no_kernel(backend: str):
    def __getattr__(attr: str):
        if attr.startswith("__"):  # import machinery and introspection probe for these
            raise AttributeError(attr)
        note = "" if attr in KERNELS else f" ({attr!r} is not a name of the kernel table)"
        if backend == "meta" and not note:
            note = ": this op has no shape rule, so it cannot be traced"
        raise MissingKernelError(f"backend {backend!r} has no kernel {attr!r}{note}")
    return __getattr__


def backend_name(array) -> str | None:
    """The backend an array belongs to (by its type, else its `backend` attribute), or None for
    things that are not arrays (None, Python numbers)."""
    cls = type(array)
    name = _by_type.get(cls)
    if name is not None:
        return name
    for base in cls.__mro__[1:]:
        if base in _by_type:
            return _by_type[base]
    hint = getattr(array, "backend", None)
    return hint if isinstance(hint, str) else None


def constant_kernels(array) -> ModuleType:
    """The backend to make a constant on for use beside `array`: its own, except that constants
    made while tracing (beside shape-only arrays) are real cpu arrays, so the graph can hold them."""
    name = backend_name(array)
    return get("cpu" if name in (None, "meta") else name)


def kernels_for(*arrays) -> ModuleType:
    """The backend whose kernels work on `arrays`: 'meta' as soon as one of them is shape-only
    (tracing), else the first array's. Entries that are not arrays (None) are skipped."""
    found = None
    for a in arrays:
        name = backend_name(a)
        if name == "meta":
            return get("meta")
        if found is None:
            found = name
        elif name != found and name is not None:
            found = _mixed(arrays, found, name)
    if found is None:
        raise TdsError(f"no kernel backend for arrays of type "
                       f"{', '.join(type(a).__name__ for a in arrays)}")
    return get(found)


def _mixed(arrays, first: str, other: str) -> str:
    """'cuda' for cuda arrays beside 0-d numpy constants (the cuda kernels copy those over,
    counted in tds.cuda.transfer_stats()) or beside the cpu's random generator (the cuda kernel
    draws a seed from it); else raise naming both devices."""
    if {first, other} == {"cuda", "cpu"}:
        cpu_arrays = [a for a in arrays if backend_name(a) == "cpu"]
        if all(isinstance(a, np.random.Generator) or isinstance(a, np.ndarray) and a.ndim == 0
               for a in cpu_arrays):
            return "cuda"
    shapes = ", ".join(f"{backend_name(a)} {tuple(a.shape)}" for a in arrays
                       if backend_name(a) is not None and hasattr(a, "shape"))
    raise TdsError(f"an op got arrays on two devices, {first!r} and {other!r} ({shapes}): move "
                   f"them to one device first, with .to({first!r}) or .to({other!r})")


__all__ = ["KERNELS", "missing", "MissingKernelError", "register_backend", "registered", "get",
           "kernels_for", "backend_name", "constant_kernels"]
