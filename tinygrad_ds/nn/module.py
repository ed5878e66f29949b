"""Module and Parameter: layers find their parameters by walking attributes, as in PyTorch."""
from __future__ import annotations

import os
import zipfile
import zlib
from collections import OrderedDict
from typing import Iterator

import numpy as np

from .. import autograd, dtypes
from ..errors import TdsError, fmt_shape
from ..tensor import Tensor


def _first(keys: list[str], n: int = 8) -> str:
    """At most n keys of a long list, and how many more: a message a person can read."""
    return str(keys) if len(keys) <= n else f"{keys[:n]} and {len(keys) - n} more"


def load_npz(path: str, records: bool = False) -> dict[str, np.ndarray]:
    """Every array of the .npz at `path`, read without pickle and checked before use: each
    entry's header must agree with its size (a corrupt header claiming 1e11 elements is an
    error, not a MemoryError) and hold real numbers (bool, int, float: a complex or string
    array is refused). Keys starting with '__tds' are a checkpoint's own records (its JSON
    text, the optimizer's buffers): kept only with records=True. Every failure is one
    TdsError naming the file."""
    path = os.fspath(path)
    where = f"cannot read checkpoint {path}"
    if not os.path.exists(path):
        raise TdsError(f"{where}: no such file")
    if not zipfile.is_zipfile(path):
        # np.load would call it pickled data and suggest allow_pickle=True: never do that
        raise TdsError(f"{where}: not an .npz file (Module.save and tds train write "
                       "checkpoints as .npz)")
    out: dict[str, np.ndarray] = {}
    try:
        with zipfile.ZipFile(path) as z:
            for info in z.infolist():
                key = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
                with z.open(info) as f:
                    out[key] = _read_npy(f, info.file_size, key, key.startswith("__tds"))
    except TdsError as e:
        raise TdsError(f"{where}: {e}") from None
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError, MemoryError) as e:
        raise TdsError(f"{where}: the file is corrupt ({type(e).__name__}: {e}); write it "
                       "again") from None
    for k in [k for k in out if k.startswith("__tds") and not records]:
        del out[k]  # a self-describing checkpoint's metadata: read_checkpoint reads it
    return out


def _read_npy(f, size: int, key: str, text_ok: bool) -> np.ndarray:
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
    else:
        raise TdsError(f"entry {key!r}: .npy format version {version} is not supported")
    if dtype.hasobject:
        raise TdsError(f"entry {key!r} holds Python objects (pickled data), which a "
                       "checkpoint never needs; refusing to load it")
    if dtype.kind not in "biuf" and not (text_ok and dtype.kind == "U"):
        kind = "complex numbers" if dtype.kind == "c" else f"{dtype} values"
        raise TdsError(f"entry {key!r} holds {kind}, not real numbers")
    count = 1
    for d in shape:
        count *= int(d)
    want = count * dtype.itemsize
    have = size - f.tell()
    if want != have:
        raise TdsError(f"entry {key!r} is corrupt: its header says shape {fmt_shape(shape)} "
                       f"({want:,} bytes), the entry holds {have:,} bytes")
    data = np.frombuffer(f.read(want), dtype=dtype)
    if data.nbytes != want:
        raise TdsError(f"entry {key!r} is truncated")
    return data.reshape(shape, order="F" if fortran else "C").copy()


class Parameter(Tensor):
    """A Tensor that a Module owns and trains: always a leaf that requires grad."""

    __slots__ = ()
    is_parameter = True  # what the tracer asks (graph/ sits below nn/ and does not import it)

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

    def apply(self, fn) -> Module:
        """Call fn(m) on every sub-module and then on this one (for custom initialisation)."""
        for m in reversed(list(self.modules())):
            fn(m)
        return self

    def astype(self, dtype) -> Module:
        """Cast every floating-point parameter and buffer in place (float64 for gradchecks)."""
        dt = dtypes.to_dtype(dtype)
        for t in list(self.parameters()) + [b for _, b in self.named_buffers()]:
            if dtypes.is_floating(t.dtype):
                t.data = t.data.astype(dt)
                t.grad = None
        return self

    def double(self) -> Module:
        return self.astype(dtypes.float64)

    def float(self) -> Module:
        return self.astype(dtypes.float32)

    def to(self, device: str) -> Module:
        """Move every parameter's and buffer's data (and a parameter's .grad) to `device`
        ('cpu' or 'cuda') in place: the Parameter objects stay the same, so an optimizer made
        before keeps them (make it after .to(), so that its state is created on the device)."""
        for t in [*self.parameters(), *(b for _, b in self.named_buffers())]:
            if t.device != device.split(":")[0]:
                t.data = t.to(device).data
                if t.grad is not None:
                    t.grad = t.grad.to(device)
            else:
                t.to(device)  # checks the name
        return self

    # ---- state ----------------------------------------------------------------------------------
    def state_dict(self) -> OrderedDict[str, np.ndarray]:
        """Parameters and buffers by their PyTorch names (layer1.0.conv1.weight), as array copies,
        in PyTorch's order: each module's parameters, then its buffers, depth first."""
        out: OrderedDict[str, np.ndarray] = OrderedDict()
        seen: set[int] = set()
        for path, m in self.named_modules():
            pre = f"{path}." if path else ""
            for k, v in m.__dict__.items():
                if isinstance(v, Parameter) and id(v) not in seen:
                    seen.add(id(v))
                    out[pre + k] = v.data.copy()
            for k in m._buffers:
                v = m.__dict__.get(k)
                if v is not None:
                    out[pre + k] = v.data.copy()
        return out

    def load_state_dict(self, state: dict, strict: bool = True) -> None:
        """Copy arrays into the parameters and buffers of the same names and shapes.

        Checks everything before copying anything: a mismatch raises one error that lists the
        missing keys, the unexpected keys and the keys whose shapes differ (with strict=False
        only the shape mismatches count)."""
        own = dict(self.named_parameters())
        own.update(self.named_buffers())
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        not_real = [f"{k}: {np.asarray(state[k]).dtype}" for k in own
                    if k in state and np.asarray(state[k]).dtype.kind not in "biuf"]
        if not_real:  # a string or complex array of the right shape must not pass halfway
            raise TdsError(f"load_state_dict: {len(not_real)} value(s) are not real numbers "
                           f"(nothing was loaded): {_first(not_real)}")
        mismatched = [f"{k}: checkpoint {fmt_shape(np.shape(state[k]))}, model "
                      f"{fmt_shape(t.shape)}"
                      for k, t in own.items() if k in state and np.shape(state[k]) != t.shape]
        if mismatched or (strict and (missing or unexpected)):
            lines = [f"load_state_dict: the checkpoint does not fit {type(self).__name__}"]
            if own and state and len(missing) == len(own):
                lines[0] += (" (none of its keys is in this model: is it a checkpoint of "
                             "another model?)")
            if strict or not mismatched:
                lines += [f"  missing keys ({len(missing)}): {_first(missing)}",
                          f"  unexpected keys ({len(unexpected)}): {_first(unexpected)}"]
            lines.append(f"  mismatched shapes ({len(mismatched)}): {_first(mismatched)}")
            raise TdsError("\n".join(lines))
        for k, t in own.items():
            if k in state:
                t.data = np.array(state[k], dtype=t.dtype, copy=True)

    def save(self, path: str) -> None:
        """Write state_dict to an .npz file at exactly `path` (plain arrays: loading it never
        runs code). tinygrad_ds.train.save_checkpoint adds what the model was trained with."""
        with open(path, "wb") as f:
            np.savez(f, **self.state_dict())

    def load(self, path: str, strict: bool = True) -> None:
        """Load an .npz written by `save` or `tds train` (with allow_pickle=False: a checkpoint
        never runs code). The file is read and checked whole before any parameter changes;
        errors name the file."""
        state = load_npz(path)
        try:
            self.load_state_dict(state, strict=strict)
        except TdsError as e:
            raise TdsError(f"{path}: {e}") from None

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
