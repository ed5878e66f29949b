"""Residual(f, shortcut): y = f(x) + shortcut(x), the building block of ResNets.

Every skip connection in the model zoo goes through this class, so that the visualizer can find
residual blocks (an `nn.Residual` with attributes `f` and `shortcut`) and count the 2^T paths
through T stacked blocks. A ReLU after the addition belongs outside, e.g.
`Sequential(Residual(f), ReLU())`: inside f it would make every block's change non-negative.
"""
from __future__ import annotations

from ..tensor import Tensor
from .linear import Identity
from .module import Module


class Residual(Module):
    """y = f(x) + shortcut(x). shortcut None is the identity (nn.Identity); for a change of shape
    pass a projection (a 1x1 Conv2d and BatchNorm2d) or a zero-padding module."""

    def __init__(self, f: Module, shortcut: Module | None = None):
        super().__init__()
        self.f = f
        self.shortcut = Identity() if shortcut is None else shortcut

    def forward(self, x: Tensor) -> Tensor:
        return self.f(x) + self.shortcut(x)
