"""A GoogLeNet-style network (Szegedy et al. 2014) for 32x32: Inception blocks run four branches
in parallel (1x1; 1x1 then 3x3; 1x1 then 5x5; 3x3 max pool then 1x1) and concatenate their
outputs along the channels."""
from __future__ import annotations

from ... import functional as F
from ...tensor import Tensor
from ..containers import Sequential
from ..linear import Flatten, Linear
from ..module import Module
from ..pooling import AdaptiveAvgPool2d, MaxPool2d
from ._util import conv_bn_relu, he_init


class Inception(Module):
    """Four parallel branches, concatenated: (N, in_channels, H, W) ->
    (N, n1x1 + n3x3 + n5x5 + pool_proj, H, W). Each convolution is followed by batch norm and
    ReLU; the 1x1 reductions (n3x3red, n5x5red) make the 3x3 and 5x5 branches cheap."""

    def __init__(self, in_channels: int, n1x1: int, n3x3red: int, n3x3: int, n5x5red: int,
                 n5x5: int, pool_proj: int):
        super().__init__()
        self.branch1 = conv_bn_relu(in_channels, n1x1, 1)
        self.branch2 = Sequential(conv_bn_relu(in_channels, n3x3red, 1),
                                  conv_bn_relu(n3x3red, n3x3, 3, padding=1))
        self.branch3 = Sequential(conv_bn_relu(in_channels, n5x5red, 1),
                                  conv_bn_relu(n5x5red, n5x5, 5, padding=2))
        self.branch4 = Sequential(MaxPool2d(3, stride=1, padding=1),
                                  conv_bn_relu(in_channels, pool_proj, 1))
        self.out_channels = n1x1 + n3x3 + n5x5 + pool_proj

    def forward(self, x: Tensor) -> Tensor:
        return F.concat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)],
                        axis=1)


class InceptionNet(Module):
    """stem (3x3 conv) - inception3a - inception3b - maxpool - inception4a - inception4b -
    maxpool - inception5a - avgpool - flatten - fc. 32x32 -> 8x8 before global pooling."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3, width: int = 1):
        super().__init__()
        w = width
        self.stem = conv_bn_relu(in_channels, 32 * w, 3, padding=1)
        self.inception3a = Inception(32 * w, 16 * w, 16 * w, 24 * w, 4 * w, 8 * w, 8 * w)   # 56
        self.inception3b = Inception(56 * w, 24 * w, 24 * w, 32 * w, 8 * w, 16 * w, 8 * w)  # 80
        self.pool3 = MaxPool2d(2)
        self.inception4a = Inception(80 * w, 32 * w, 24 * w, 40 * w, 8 * w, 16 * w, 16 * w)  # 104
        self.inception4b = Inception(104 * w, 40 * w, 32 * w, 48 * w, 8 * w, 24 * w, 16 * w)  # 128
        self.pool4 = MaxPool2d(2)
        self.inception5a = Inception(128 * w, 48 * w, 32 * w, 64 * w, 8 * w, 24 * w, 24 * w)  # 160
        self.avgpool = AdaptiveAvgPool2d(1)
        self.flatten = Flatten()
        self.fc = Linear(self.inception5a.out_channels, num_classes)
        he_init(self)

    def forward(self, x: Tensor) -> Tensor:
        x = self.inception3b(self.inception3a(self.stem(x)))
        x = self.inception4b(self.inception4a(self.pool3(x)))
        x = self.inception5a(self.pool4(x))
        return self.fc(self.flatten(self.avgpool(x)))


def inception_net(num_classes: int = 10, in_channels: int = 3, width: int = 1) -> InceptionNet:
    """A small GoogLeNet-style network of five Inception blocks for 32x32 inputs; width
    multiplies every channel count."""
    return InceptionNet(num_classes, in_channels, width)
