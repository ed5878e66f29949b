"""Learning-rate schedules: StepLR, CosineAnnealingLR, LinearWarmup (which hands over to another
schedule with `then=`). Call `scheduler.step()` once per epoch (or per step: your choice of
unit), after `optimizer.step()`, as in PyTorch.

Each schedule is a closed form lr(t) of the group's initial learning rate, so composing them is
a matter of shifting t: LinearWarmup(opt, 5, then=CosineAnnealingLR(opt, T_max=95)) warms up for
5 steps, then anneals over the next 95.
"""
from __future__ import annotations

import math

from .. import autograd
from ..errors import TdsError
from .optimizer import Optimizer


class LRScheduler:
    def __init__(self, optimizer: Optimizer):
        if not isinstance(optimizer, Optimizer):
            raise TdsError(f"{type(self).__name__}: expected an Optimizer, got "
                           f"{type(optimizer).__name__}")
        self.optimizer = optimizer
        for g in optimizer.param_groups:
            g.setdefault("initial_lr", g["lr"])
        self.last_epoch = 0
        self._apply()

    def factor(self, t: int, base_lr: float) -> float:
        """The learning rate at step t for a group whose initial rate is base_lr."""
        raise NotImplementedError

    def _apply(self) -> None:
        for g in self.optimizer.param_groups:
            g["lr"] = self.factor(self.last_epoch, g["initial_lr"])

    def step(self) -> None:
        if not autograd.writes_enabled:  # inside tds.trace(fn, ...)
            raise TdsError(
                f"{type(self).__name__}.step() inside a traced function: a schedule is Python "
                "state that a graph cannot replay (and tracing must change nothing); call "
                "scheduler.step() after graph.run(...), which reads the learning rate when it "
                "runs")
        self.last_epoch += 1
        self._apply()

    def get_last_lr(self) -> list[float]:
        return [g["lr"] for g in self.optimizer.param_groups]

    def state_dict(self) -> dict:
        """The schedule's position (its other settings come from its constructor)."""
        return {"last_epoch": self.last_epoch}

    def load_state_dict(self, state_dict: dict) -> None:
        self.last_epoch = int(state_dict["last_epoch"])
        self._apply()


class StepLR(LRScheduler):
    """lr = initial_lr * gamma ** (t // step_size)."""

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1):
        if step_size < 1:
            raise TdsError(f"StepLR: step_size must be >= 1, got {step_size}")
        self.step_size, self.gamma = step_size, gamma
        super().__init__(optimizer)

    def factor(self, t: int, base_lr: float) -> float:
        return base_lr * self.gamma ** (t // self.step_size)


class CosineAnnealingLR(LRScheduler):
    """lr = eta_min + (initial_lr - eta_min) * (1 + cos(pi * t / T_max)) / 2, held at eta_min
    after T_max (no restarts)."""

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0):  # noqa: N803
        if T_max < 1:
            raise TdsError(f"CosineAnnealingLR: T_max must be >= 1, got {T_max}")
        self.T_max, self.eta_min = T_max, eta_min
        super().__init__(optimizer)

    def factor(self, t: int, base_lr: float) -> float:
        t = min(t, self.T_max)
        cos = (1 + math.cos(math.pi * t / self.T_max)) / 2
        return self.eta_min + (base_lr - self.eta_min) * cos


class LinearWarmup(LRScheduler):
    """lr rises linearly from start_factor * initial_lr to initial_lr over warmup_steps, then
    follows `then` (another schedule, counted from the end of the warm-up) or stays constant."""

    def __init__(self, optimizer: Optimizer, warmup_steps: int, start_factor: float = 0.1,
                 then: LRScheduler | None = None):
        if warmup_steps < 1:
            raise TdsError(f"LinearWarmup: warmup_steps must be >= 1, got {warmup_steps}")
        if then is not None and then.optimizer is not optimizer:
            raise TdsError("LinearWarmup: `then` must schedule the same optimizer")
        self.warmup_steps, self.start_factor, self.then = warmup_steps, start_factor, then
        super().__init__(optimizer)

    def factor(self, t: int, base_lr: float) -> float:
        if t < self.warmup_steps:
            return base_lr * (self.start_factor + (1 - self.start_factor) * t / self.warmup_steps)
        if self.then is None:
            return base_lr
        return self.then.factor(t - self.warmup_steps, base_lr)
