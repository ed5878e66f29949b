"""Module and Parameter: layers find their parameters by walking attributes, as in PyTorch."""
from __future__ import annotations

from collections import OrderedDict
from typing import Iterator

import numpy as np

from .. import autograd
from ..errors import ShapeError, TdsError, fmt_shape
from ..tensor import Tensor


class Parameter(Tensor):
    """A Tensor that a Module owns and trains: always a leaf that requires grad."""

    __slots__ = ()

    def __init__(self, data, dtype=None, requires_grad: bool = True):
        super().__init__(data, dtype=dtype)
        self.requires_grad = requires_grad

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


class Module:
    """Base of every layer and model. Subclasses set attributes (Parameters, sub-Modules,
    Tensors registered with `register_buffer`) in `__init__` and define `forward`."""

    def __init__(self) -> None:
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_buffers", OrderedDict())

    # ---- attribute walking ------------------------------------------------------------------
    def __setattr__(self, name, value) -> None:
        if "_buffers" not in self.__dict__:
            raise TdsError(f"{type(self).__name__}.__init__ must call super().__init__() before "
                           f"setting attributes (setting {name!r})")
        object.__setattr__(self, name, value)

    def register_buffer(self, name: str, value: Tensor | None) -> None:
        """A Tensor that is state but not trained (BatchNorm's running mean): in state_dict."""
        self._buffers[name] = True
        object.__setattr__(self, name, value)

    def named_children(self) -> Iterator[tuple[str, Module]]:
        for name, v in self.__dict__.items():
            if isinstance(v, Module):
                yield name, v

    def children(self) -> Iterator[Module]:
        return (m for _, m in self.named_children())

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """This module ('' or prefix) and every sub-module, depth first, with dotted paths."""
        seen, stack = set(), [(prefix, self)]
        while stack:
            name, m = stack.pop()
            if id(m) in seen:
                continue
            seen.add(id(m))
            yield name, m
            kids = [(f"{name}.{k}" if name else k, c) for k, c in m.named_children()]
            stack.extend(reversed(kids))

    def modules(self) -> Iterator[Module]:
        return (m for _, m in self.named_modules())

    def named_parameters(self) -> Iterator[tuple[str, Parameter]]:
        seen = set()
        for path, m in self.named_modules():
            for k, v in m.__dict__.items():
                if isinstance(v, Parameter) and id(v) not in seen:
                    seen.add(id(v))
                    yield (f"{path}.{k}" if path else k), v

    def parameters(self) -> list[Parameter]:
        return [p for _, p in self.named_parameters()]

    def named_buffers(self) -> Iterator[tuple[str, Tensor]]:
        for path, m in self.named_modules():
            for k in m._buffers:
                v = m.__dict__.get(k)
                if v is not None:
                    yield (f"{path}.{k}" if path else k), v

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.size for p in self.parameters() if p.requires_grad or not trainable_only)

    # ---- modes --------------------------------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        """Training mode: dropout drops, batch norm uses batch statistics, augmentation runs."""
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self) -> Module:
        return self.train(False)

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = None

    # ---- state ----------------------------------------------------------------------------------
    def state_dict(self) -> OrderedDict[str, np.ndarray]:
        """Parameters and buffers by their PyTorch names (layer1.0.conv1.weight), as arrays."""
        out = OrderedDict((k, p.data.copy()) for k, p in self.named_parameters())
        out.update((k, b.data.copy()) for k, b in self.named_buffers())
        return out

    def load_state_dict(self, state: dict, strict: bool = True) -> None:
        """Copy arrays into the parameters and buffers of the same names and shapes."""
        own = dict(self.named_parameters())
        own.update(self.named_buffers())
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        if strict and (missing or unexpected):
            raise TdsError(f"load_state_dict: missing keys {missing}, unexpected keys {unexpected}")
        for k, t in own.items():
            if k not in state:
                continue
            v = np.asarray(state[k])
            if v.shape != t.shape:
                raise ShapeError(f"load_state_dict: {k} has shape {fmt_shape(v.shape)} in the "
                                 f"checkpoint but {fmt_shape(t.shape)} in the model")
            t.data = v.astype(t.dtype, copy=True)

    def save(self, path: str) -> None:
        """Write state_dict to an .npz file (plain arrays: loading it never runs code)."""
        np.savez(path, **self.state_dict())

    def load(self, path: str, strict: bool = True) -> None:
        with np.load(path, allow_pickle=False) as f:
            self.load_state_dict({k: f[k] for k in f.files}, strict=strict)

    # ---- calling --------------------------------------------------------------------------------
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} has no forward()")

    def __call__(self, *args, **kwargs):
        autograd.module_stack.append(self)
        try:
            return self.forward(*args, **kwargs)
        finally:
            autograd.module_stack.pop()

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        kids = list(self.named_children())
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not kids:
            return head + ")"
        body = "".join(
            f"\n  ({k}): " + repr(m).replace("\n", "\n  ") for k, m in kids
        )
        return head + body + "\n)"
