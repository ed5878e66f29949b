"""Optimizer: the base of SGD and Adam. Holds parameter groups and per-parameter state.

An optimizer updates `p.data` in place from `p.grad.data` with plain numpy: the update is not
part of any graph (PyTorch runs it under no_grad for the same reason).
"""
from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from ..errors import TdsError


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
                else:
                    p.grad.data[...] = 0

    def _with_grads(self, group):
        """(param, grad array, state dict) for each parameter of `group` that has a gradient."""
        for p in group["params"]:
            if p.grad is None:
                continue
            g = p.grad.data if hasattr(p.grad, "data") else np.asarray(p.grad)
            if g.dtype != p.data.dtype:
                g = g.astype(p.data.dtype)
            yield p, g, self.state.setdefault(id(p), {})

    def step(self) -> None:
        raise NotImplementedError

    @property
    def lr(self) -> float:
        """The learning rate of the first group (most models have one group)."""
        return self.param_groups[0]["lr"]

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v}" for k, v in self.defaults.items())
        return f"{type(self).__name__}({opts})"
