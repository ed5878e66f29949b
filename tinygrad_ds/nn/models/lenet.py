"""LeNet-5 (LeCun et al. 1998): two convolution + subsampling stages, three fully connected
layers; 61,706 parameters for 10 classes."""
from __future__ import annotations

from ...errors import TdsError
from ...tensor import Tensor
from ..activation import ReLU, Sigmoid, Tanh
from ..containers import Sequential
from ..conv import Conv2d
from ..linear import Flatten, Linear
from ..module import Module
from ..pooling import AvgPool2d, MaxPool2d

_ACTS = {"tanh": Tanh, "relu": ReLU, "sigmoid": Sigmoid}


class LeNet5(Module):
    """features: conv 5x5 (6) - act - pool 2 - conv 5x5 (16) - act - pool 2;
    classifier: 400 - 120 - 84 - num_classes. x: (N, in_channels, 28 or 32, 28 or 32)."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, input_size: int = 28,
                 activation: str = "tanh", pooling: str = "avg"):
        super().__init__()
        if input_size not in (28, 32):
            raise TdsError(f"lenet5: input_size must be 28 (MNIST, padded to 32) or 32, "
                           f"got {input_size}")
        if activation not in _ACTS:
            raise TdsError(f"lenet5: activation must be one of {sorted(_ACTS)}, got {activation!r}")
        act = _ACTS[activation]
        pool = {"avg": AvgPool2d, "max": MaxPool2d}[pooling]
        self.features = Sequential(
            Conv2d(in_channels, 6, 5, padding=2 if input_size == 28 else 0), act(), pool(2),
            Conv2d(6, 16, 5), act(), pool(2),
        )
        self.flatten = Flatten()
        self.classifier = Sequential(Linear(16 * 5 * 5, 120), act(), Linear(120, 84), act(),
                                     Linear(84, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.flatten(self.features(x)))


def lenet5(num_classes: int = 10, in_channels: int = 1, input_size: int = 28,
           activation: str = "tanh", pooling: str = "avg") -> LeNet5:
    """LeNet-5 for 28x28 (first convolution padded by 2, as for MNIST) or 32x32 inputs.
    activation 'tanh' (the original's squashing), 'relu' or 'sigmoid'; pooling 'avg'
    (the original's subsampling) or 'max'."""
    return LeNet5(num_classes, in_channels, input_size, activation, pooling)
