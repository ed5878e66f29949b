"""Stochastic gradient descent with momentum, dampening, Nesterov and (L2) weight decay."""
from __future__ import annotations

from typing import Iterable

from ..autograd import no_grad
from ..errors import TdsError
from ..ops.state import assign
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
        with no_grad():
            for k, group in enumerate(self.param_groups):
                mom, damp = group["momentum"], group["dampening"]
                wd, nesterov = group["weight_decay"], group["nesterov"]
                lrs: dict = {}  # the learning rate once a group (and dtype), not once a parameter
                for p, g in self._with_grads(group):
                    if wd:
                        g = g + p * wd
                    if mom:
                        # the buffer starts at 0, so its first value m 0 + g is g, as PyTorch's
                        buf = self.slot(p, "momentum_buffer")
                        if damp:  # PyTorch does not damp the first step: remember it was taken
                            started = self.slot(p, "momentum_started", shape=(), dtype=p.dtype)
                            new = buf * mom + g * (1.0 - started * damp)
                            assign(started, started.ones_like())
                        else:
                            new = buf * mom + g
                        assign(buf, new)
                        g = g + new * mom if nesterov else new
                    lr = lrs.get(p.dtype)
                    if lr is None:
                        lr = lrs[p.dtype] = self.hyper(k, "lr", p.dtype)
                    assign(p, p - g * lr)
