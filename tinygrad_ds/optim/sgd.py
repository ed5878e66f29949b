"""Stochastic gradient descent with momentum, dampening, Nesterov and (L2) weight decay."""
from __future__ import annotations

from typing import Iterable

from ..errors import TdsError
from .optimizer import Optimizer


class SGD(Optimizer):
    """PyTorch's update, for each parameter p with gradient g:

        g = g + weight_decay * p                           (L2 penalty folded into the gradient)
        b = g at the first step, else momentum * b + (1 - dampening) * g
        g = g + momentum * b if nesterov else b            (when momentum != 0)
        p = p - lr * g
    """

    def __init__(self, params: Iterable, lr: float = 1e-3, momentum: float = 0.0,
                 dampening: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False):
        if lr < 0 or momentum < 0 or weight_decay < 0:
            raise TdsError(f"SGD: lr, momentum and weight_decay must be >= 0, got lr={lr}, "
                           f"momentum={momentum}, weight_decay={weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise TdsError("SGD: Nesterov momentum needs momentum > 0 and dampening = 0")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov))

    def step(self) -> None:
        for group in self.param_groups:
            lr, mom, damp = group["lr"], group["momentum"], group["dampening"]
            wd, nesterov = group["weight_decay"], group["nesterov"]
            for p, g, state in self._with_grads(group):
                if wd:
                    g = g + wd * p.data
                if mom:
                    buf = state.get("momentum_buffer")
                    if buf is None:
                        buf = state["momentum_buffer"] = g.copy()
                    else:
                        buf *= mom
                        buf += (1 - damp) * g
                    g = g + mom * buf if nesterov else buf
                p.data -= lr * g
