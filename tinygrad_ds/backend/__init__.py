"""Kernel backends behind one table of names (`table.KERNELS`), picked by the array's type.

    kernels = kernels_for(x)          # x: the array an op is about to work on
    y = kernels.conv2d_forward(x, w, None, 1, 1, 1, 1, 1, 1, 1, oh, ow)

A numpy ndarray goes to the 'cpu' backend (numpy + numba). Any other array type is looked up by
type (`register_backend(name, module, array_type)`), or by the name in its `backend` attribute.
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
_backends: dict[str, ModuleType | str] = {"cpu": "tinygrad_ds.backend.cpu"}
# array type -> backend name
_by_type: dict[type, str] = {np.ndarray: "cpu"}


def register_backend(name: str, module: ModuleType | str, array_type: type | None = None) -> None:
    """Make `module` (or a dotted path, imported on first use) the backend called `name`, and,
    when given, the one for arrays of `array_type` (and its subclasses)."""
    _backends[name] = module
    if array_type is not None:
        _by_type[array_type] = name


def registered() -> list[str]:
    """Names of the registered backends."""
    return list(_backends)


def get(name: str) -> ModuleType:
    """The backend module called `name`, imported now if it was registered by path."""
    try:
        mod = _backends[name]
    except KeyError:
        raise TdsError(f"no kernel backend called {name!r}; registered: {registered()}") from None
    if isinstance(mod, str):
        mod = _backends[name] = importlib.import_module(mod)
    return mod


def kernels_for(array) -> ModuleType:
    """The backend whose kernels work on `array`: by its type, else by its `backend` attribute."""
    for cls in type(array).__mro__:
        if cls in _by_type:
            return get(_by_type[cls])
    hint = getattr(array, "backend", None)
    if isinstance(hint, str):
        return get(hint)
    raise TdsError(f"no kernel backend for arrays of type {type(array).__name__}")


__all__ = ["KERNELS", "missing", "register_backend", "registered", "get", "kernels_for"]
