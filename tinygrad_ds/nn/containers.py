"""Sequential and ModuleList: modules held under the names '0', '1', ... as in PyTorch, so that
state_dict keys read `features.0.weight`."""
from __future__ import annotations

from collections import OrderedDict
from typing import Iterable, Iterator

from ..errors import TdsError
from .module import Module


def _check_module(owner: str, m) -> Module:
    if not isinstance(m, Module):
        raise TdsError(f"{owner}: expected an nn.Module, got {type(m).__name__}")
    return m


class _Indexed(Module):
    """Children stored as attributes '0', '1', ...; the attribute walk finds them in order."""

    def _items(self) -> list[Module]:
        return [m for _, m in self.named_children()]

    def _set(self, key: str, m: Module) -> None:
        object.__setattr__(self, key, _check_module(type(self).__name__, m))

    def __len__(self) -> int:
        return sum(1 for _ in self.named_children())

    def __iter__(self) -> Iterator[Module]:
        return iter(self._items())

    def _index(self, i: int) -> int:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"{type(self).__name__}: index {i} is out of range for {n} modules")
        return i % n

    def __getitem__(self, i):
        items = list(self.named_children())
        if isinstance(i, slice):
            return type(self)(*[m for _, m in items[i]]) if isinstance(self, Sequential) \
                else type(self)([m for _, m in items[i]])
        return items[self._index(i)][1]

    def __setitem__(self, i: int, m: Module) -> None:
        key = list(self.named_children())[self._index(i)][0]
        self._set(key, m)

    def append(self, m: Module) -> _Indexed:
        self._set(str(len(self)), m)
        return self

    def extend(self, modules: Iterable[Module]) -> _Indexed:
        for m in modules:
            self.append(m)
        return self


class Sequential(_Indexed):
    """Calls its modules in order: `Sequential(Conv2d(3, 16, 3), ReLU())`, or from an
    OrderedDict of names to modules (then those names appear in state_dict keys)."""

    def __init__(self, *modules):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], (OrderedDict, dict)):
            for name, m in modules[0].items():
                self._set(str(name), m)
        else:
            for i, m in enumerate(modules):
                self._set(str(i), m)

    def forward(self, x):
        for m in self._items():
            x = m(x)
        return x


class ModuleList(_Indexed):
    """A list of modules whose parameters the model owns; the caller decides how to call them."""

    def __init__(self, modules: Iterable[Module] = ()):
        super().__init__()
        self.extend(modules)

    def forward(self, *args, **kwargs):
        raise TdsError("ModuleList has no forward(): iterate over it and call each module")
