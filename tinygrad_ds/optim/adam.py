"""Adam (Kingma and Ba) and AdamW (Loshchilov and Hutter: weight decay decoupled from the
gradient), with PyTorch's update rules and defaults."""
from __future__ import annotations

from typing import Iterable

import numpy as np

from ..autograd import no_grad
from ..errors import TdsError
from ..ops.state import assign
from .optimizer import Optimizer


class Adam(Optimizer):
    """For each parameter p with gradient g, at step t = 1, 2, ...:

        g = g + weight_decay * p                 (Adam: an L2 penalty, scaled by 1/sqrt(v) later)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g^2
        p = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

    amsgrad=True uses the running maximum of v in the denominator.
    """

    decoupled = False

    def __init__(self, params: Iterable, lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False):
        if lr < 0 or eps < 0 or weight_decay < 0:
            raise TdsError(f"{type(self).__name__}: lr, eps and weight_decay must be >= 0")
        if not all(0.0 <= b < 1.0 for b in betas):
            raise TdsError(f"{type(self).__name__}: betas must be in [0, 1), got {betas}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps,
                                      weight_decay=weight_decay, amsgrad=amsgrad))

    def step(self) -> None:
        with no_grad():
            for k, group in enumerate(self.param_groups):
                (b1, b2), eps = group["betas"], group["eps"]
                wd, amsgrad = group["weight_decay"], group["amsgrad"]
                lr = self.hyper(k, "lr", np.float64)  # once a group, read when a graph runs
                for p, g in self._with_grads(group):
                    dt = p.dtype
                    step = self.slot(p, "step", shape=(), dtype=np.float64)
                    t = step + 1.0
                    assign(step, t)
                    w = p
                    if wd:
                        if self.decoupled:  # AdamW: decay the weight itself, not the gradient
                            w = p * (1.0 - lr * wd).astype(dt)
                        else:
                            g = g + p * wd
                    m, v = self.slot(p, "exp_avg"), self.slot(p, "exp_avg_sq")
                    m_new = m * b1 + g * (1 - b1)
                    v_new = v * b2 + g * g * (1 - b2)
                    assign(m, m_new)
                    assign(v, v_new)
                    if amsgrad:
                        vmax = self.slot(p, "max_exp_avg_sq")
                        v_new = vmax.maximum(v_new)
                        assign(vmax, v_new)
                    denom = v_new.sqrt() / (1.0 - b2 ** t).sqrt().astype(dt) + eps
                    assign(p, w - m_new * (lr / (1.0 - b1 ** t)).astype(dt) / denom)


class AdamW(Adam):
    """Adam with decoupled weight decay: p = p * (1 - lr * weight_decay) before the Adam step,
    so every weight decays at the same rate whatever its gradient history. Default decay 0.01,
    as in PyTorch."""

    decoupled = True

    def __init__(self, params: Iterable, lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad)
