"""Optimizer: the base of SGD and Adam. Holds parameter groups and per-parameter state.

An update is written in Tensor ops under no_grad, each new value written into the parameter (or
its buffer) by `assign`, so that a traced training step holds the update as ops: buffers and the
learning rate are named state that a replayed graph reads when it runs (`slot`, `hyper`).
"""
from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from .. import autograd
from ..backend import constant_kernels
from ..errors import TdsError
from ..ops.state import assign
from ..tensor import Tensor


class Optimizer:
    """params: an iterable of Parameters, or of dicts {'params': [...], 'lr': ...} (param
    groups: each group may override the defaults, as in PyTorch)."""

    def __init__(self, params: Iterable, defaults: dict[str, Any]):
        self.defaults = dict(defaults)
        params = list(params.parameters() if hasattr(params, "parameters") else params)
        if not params:
            raise TdsError(f"{type(self).__name__}: got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        self.param_groups: list[dict[str, Any]] = []
        for g in groups:
            self.add_param_group(g)
        self.state: dict[int, dict[str, Any]] = {}  # id(param) -> that param's buffers

    def add_param_group(self, group: dict[str, Any]) -> None:
        group = dict(group)
        ps = group["params"]
        group["params"] = [ps] if hasattr(ps, "data") else list(ps)
        unknown = set(group) - set(self.defaults) - {"params", "initial_lr"}
        if unknown:
            raise TdsError(f"{type(self).__name__}: unknown option(s) {sorted(unknown)} in a "
                           f"param group; known: {sorted(self.defaults)}")
        for k, v in self.defaults.items():
            group.setdefault(k, v)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        for p in group["params"]:
            if id(p) in seen:
                raise TdsError(f"{type(self).__name__}: a parameter of shape {p.shape} appears "
                               "in more than one param group")
            if not np.issubdtype(p.data.dtype, np.floating):
                raise TdsError(f"{type(self).__name__}: can only optimise floating-point "
                               f"parameters, got {p.data.dtype}")
        self.param_groups.append(group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the gradients of the last backward (they accumulate otherwise)."""
        for g in self.param_groups:
            for p in g["params"]:
                if set_to_none or p.grad is None:
                    p.grad = None
                else:  # a write (an op): a traced step records it and replays it
                    with autograd.no_grad():
                        grad = p.grad if isinstance(p.grad, Tensor) else Tensor._wrap(p.grad)
                        assign(grad, Tensor._wrap(constant_kernels(p.data).full((), 0.0,
                                                                                 grad.dtype)))

    def _with_grads(self, group):
        """(param, grad Tensor) for each parameter of `group` that has a gradient."""
        for p in group["params"]:
            if p.grad is None:
                continue
            g = p.grad if isinstance(p.grad, Tensor) else Tensor(p.grad)
            yield p, (g if g.dtype == p.dtype else g.astype(p.dtype))

    def slot(self, p, key: str, value: float = 0.0, shape: tuple | None = None,
             dtype=None) -> Tensor:
        """The buffer `key` of parameter p (momentum, Adam's moments), made as `value` in p's
        shape and dtype (or `shape`, `dtype`) the first time. While a step is traced, a new
        buffer is made but not stored (tracing changes nothing); a replayed graph makes and
        stores it through the same call."""
        state = self.state.get(id(p))
        t = None if state is None else state.get(key)
        if t is None:
            shape = p.shape if shape is None else shape
            t = Tensor._wrap(constant_kernels(p.data).full(shape, value,
                                                          p.dtype if dtype is None else dtype))
            if autograd.writes_enabled:
                self.state.setdefault(id(p), {})[key] = t
        index = self._index(p)
        return autograd.announce_state(
            t, f"optimizer.state.{index}.{key}",
            lambda: self.slot(p, key, value, shape, dtype))

    def hyper(self, group_index: int, key: str, dtype) -> Tensor:
        """A group's option (the learning rate) as a 0-d Tensor: a replayed graph reads the
        option as it is when it runs (after a schedule changed it)."""
        value = self.param_groups[group_index][key]
        t = Tensor._wrap(np.array(value, dtype=dtype))
        return autograd.announce_state(
            t, f"optimizer.param_groups.{group_index}.{key}",
            lambda: Tensor._wrap(np.array(self.param_groups[group_index][key], dtype=dtype)))

    def _index(self, p) -> int:
        """p's number in the optimizer (group order), as state_dict numbers it."""
        index = self.__dict__.get("_indices")
        if index is None or len(index) != sum(len(g["params"]) for g in self.param_groups):
            index = self._indices = {id(q): i for i, q in
                                     enumerate(q for g in self.param_groups for q in g["params"])}
        return index[id(p)]

    def step(self) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """A copy of the optimizer's state, as PyTorch lays it out: {'state': {index: buffers},
        'param_groups': [options with 'params' as indices]}, parameters numbered in group
        order. Save it with the model's state_dict to resume training."""
        index = {id(p): i for i, p in enumerate(p for g in self.param_groups
                                                 for p in g["params"])}
        state = {index[k]: {name: _saved(v) for name, v in buffers.items()}
                 for k, buffers in self.state.items() if k in index}
        groups = [{**{k: v for k, v in g.items() if k != "params"},
                   "params": [index[id(p)] for p in g["params"]]} for g in self.param_groups]
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what state_dict() returned, for an optimizer over the same parameters in the
        same order: group options and per-parameter buffers (copied). Checked first, whole: a
        mismatch raises and changes nothing."""
        name = type(self).__name__
        _check_saved_state(self, state_dict)
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups):
            raise TdsError(f"{name}.load_state_dict: the saved state has {len(groups)} param "
                           f"group(s), this optimizer {len(self.param_groups)}")
        params = [p for g in self.param_groups for p in g["params"]]
        for k, (saved, mine) in enumerate(zip(groups, self.param_groups)):
            if len(saved["params"]) != len(mine["params"]):
                raise TdsError(f"{name}.load_state_dict: param group {k} has "
                               f"{len(saved['params'])} parameters in the saved state, "
                               f"{len(mine['params'])} here")
        state = {}
        for i, buffers in state_dict["state"].items():
            if not 0 <= int(i) < len(params):
                raise TdsError(f"{name}.load_state_dict: state for parameter {i}, but there "
                               f"are {len(params)}")
            p = params[int(i)]
            for key, v in buffers.items():
                if isinstance(v, np.ndarray) and v.shape != p.data.shape:
                    raise TdsError(f"{name}.load_state_dict: buffer '{key}' of parameter {i} "
                                   f"has shape {v.shape}, the parameter {p.data.shape}")
            state[id(p)] = {key: _loaded(v, p) for key, v in buffers.items()}
        for saved, mine in zip(groups, self.param_groups):
            mine.update({k: v for k, v in saved.items() if k != "params"})
        self.state = state

    @property
    def lr(self) -> float:
        """The learning rate of the first group (most models have one group)."""
        return self.param_groups[0]["lr"]

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v}" for k, v in self.defaults.items())
        return f"{type(self).__name__}({opts})"


def _saved(v):
    """A state entry as state_dict gives it: arrays copied, 0-d counts as Python numbers."""
    if isinstance(v, Tensor):
        v = v.data
    if isinstance(v, np.ndarray):
        return v.item() if v.ndim == 0 else v.copy()
    return v


def _loaded(v, p):
    """A state_dict entry as the optimizer keeps it: a Tensor (buffers in p's dtype)."""
    if isinstance(v, np.ndarray) and v.ndim:
        return Tensor._wrap(v.astype(p.data.dtype))
    return Tensor._wrap(np.array(v, dtype=np.float64))


def _check_saved_state(opt: Optimizer, state_dict: Any) -> None:
    """Check what load_state_dict was given before anything changes: the layout, and every
    saved option against the type and range of the optimizer's default (lr='fast' or
    momentum=-5 would only fail later, inside step()), and every buffer's type."""
    name = f"{type(opt).__name__}.load_state_dict"
    groups = state_dict.get("param_groups") if isinstance(state_dict, dict) else None
    if not isinstance(groups, list) or not isinstance(state_dict.get("state"), dict):
        raise TdsError(f"{name}: expected a dict with 'state' and 'param_groups', as "
                       "state_dict() returns")
    for k, group in enumerate(groups):
        if not isinstance(group, dict) or not isinstance(group.get("params"), list):
            raise TdsError(f"{name}: param group {k} is not a dict with a 'params' list")
        for key, v in group.items():
            if key == "params":
                continue
            default = opt.defaults.get(key, 0.0 if key == "initial_lr" else None)
            if key not in opt.defaults and key != "initial_lr":
                raise TdsError(f"{name}: param group {k} has the unknown option {key!r}; "
                               f"{type(opt).__name__} knows {sorted(opt.defaults)}")
            problem = _option_problem(v, default)
            if problem:
                raise TdsError(f"{name}: param group {k}: {key}={v!r} {problem} (nothing was "
                               "loaded)")
    for i, buffers in state_dict["state"].items():
        if not isinstance(buffers, dict):
            raise TdsError(f"{name}: the state of parameter {i} is not a dict of buffers")
        for key, v in buffers.items():
            if isinstance(v, np.ndarray):
                if v.dtype.kind != "f":
                    raise TdsError(f"{name}: buffer '{key}' of parameter {i} holds {v.dtype}, "
                                   "not floating-point numbers")
            elif not _is_real(v) or v < 0:
                raise TdsError(f"{name}: buffer '{key}' of parameter {i} is {v!r}, not an "
                               "array or a count >= 0")


def _is_real(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(
        v, (bool, np.bool_)) and bool(np.isfinite(v))


def _option_problem(v: Any, default: Any) -> str | None:
    """Why v cannot stand where `default` stands, or None."""
    if isinstance(default, bool):
        return None if isinstance(v, (bool, np.bool_)) else "must be True or False"
    if isinstance(default, (tuple, list)):
        if not isinstance(v, (tuple, list)) or len(v) != len(default):
            return f"must be {len(default)} numbers"
        if not all(_is_real(x) and 0 <= x < 1 for x in v):
            return "must be numbers in [0, 1)"
        return None
    if isinstance(default, (int, float)):
        if not _is_real(v):
            return "must be a finite number"
        if v < 0:
            return "must be >= 0"
    return None
