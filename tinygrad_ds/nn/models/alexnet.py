"""A small AlexNet for 32x32 inputs: AlexNet's five convolutions (64-192-384-256-256) with ReLU
and max pooling, then a dropout-regularised classifier of two hidden layers (1024 units here
instead of 4096)."""
from __future__ import annotations

from ...tensor import Tensor
from ..activation import ReLU
from ..containers import Sequential
from ..conv import Conv2d
from ..dropout import Dropout
from ..linear import Flatten, Linear
from ..module import Module
from ..pooling import MaxPool2d


class AlexNetSmall(Module):
    """x: (N, in_channels, 32, 32) -> (N, num_classes). features end at (N, 256, 2, 2)."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3, hidden: int = 1024,
                 dropout: float = 0.5):
        super().__init__()
        self.features = Sequential(
            Conv2d(in_channels, 64, 3, stride=2, padding=1), ReLU(), MaxPool2d(2),   # 16 -> 8
            Conv2d(64, 192, 3, padding=1), ReLU(), MaxPool2d(2),                      # 8 -> 4
            Conv2d(192, 384, 3, padding=1), ReLU(),
            Conv2d(384, 256, 3, padding=1), ReLU(),
            Conv2d(256, 256, 3, padding=1), ReLU(), MaxPool2d(2),                     # 4 -> 2
        )
        self.flatten = Flatten()
        self.classifier = Sequential(
            Dropout(dropout), Linear(256 * 2 * 2, hidden), ReLU(),
            Dropout(dropout), Linear(hidden, hidden), ReLU(),
            Linear(hidden, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.flatten(self.features(x)))


def alexnet_small(num_classes: int = 10, in_channels: int = 3, hidden: int = 1024,
                  dropout: float = 0.5) -> AlexNetSmall:
    """AlexNet sized for 32x32 (CIFAR-10) images."""
    return AlexNetSmall(num_classes, in_channels, hidden, dropout)
