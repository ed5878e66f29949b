"""MobileNet (Howard et al. 2017) for 32x32: depthwise-separable convolutions, each a 3x3
depthwise convolution (groups = channels: one filter per channel) and a 1x1 pointwise one that
mixes channels, each followed by batch norm and ReLU."""
from __future__ import annotations

from ...tensor import Tensor
from ..activation import ReLU
from ..containers import Sequential
from ..conv import Conv2d
from ..linear import Flatten, Linear
from ..module import Module
from ..norm import BatchNorm2d
from ..pooling import AdaptiveAvgPool2d
from ._util import he_init

# Output channels of each separable block; (channels, 2) halves H and W (the CIFAR version:
# the first convolution keeps 32x32, three of the stride-2 blocks remain).
CONFIG: list = [64, (128, 2), 128, (256, 2), 256, (512, 2), 512, 512, 512, 512, 512,
                (1024, 2), 1024]


class DepthwiseSeparable(Module):
    """conv1 (3x3 depthwise, stride) - bn1 - ReLU - conv2 (1x1 pointwise) - bn2 - ReLU.
    (N, in_channels, H, W) -> (N, out_channels, H / stride, W / stride). Weights:
    9 in + in out, against 9 in out for a full 3x3 convolution."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = Conv2d(in_channels, in_channels, 3, stride, 1, groups=in_channels,
                            bias=False)
        self.bn1 = BatchNorm2d(in_channels)
        self.relu1 = ReLU()
        self.conv2 = Conv2d(in_channels, out_channels, 1, bias=False)
        self.bn2 = BatchNorm2d(out_channels)
        self.relu2 = ReLU()

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu1(self.bn1(self.conv1(x)))
        return self.relu2(self.bn2(self.conv2(x)))


class MobileNet(Module):
    """conv1 (3x3, 32) - bn1 - relu - layers (13 separable blocks) - avgpool - flatten - fc."""

    def __init__(self, num_classes: int = 10, width_mult: float = 1.0, in_channels: int = 3):
        super().__init__()

        def ch(c: int) -> int:
            return max(8, int(c * width_mult))

        self.conv1 = Conv2d(in_channels, ch(32), 3, 1, 1, bias=False)
        self.bn1 = BatchNorm2d(ch(32))
        self.relu = ReLU()
        blocks, c = [], ch(32)
        for v in CONFIG:
            out, stride = (v, 1) if isinstance(v, int) else v
            blocks.append(DepthwiseSeparable(c, ch(out), stride))
            c = ch(out)
        self.layers = Sequential(*blocks)
        self.avgpool = AdaptiveAvgPool2d(1)
        self.flatten = Flatten()
        self.fc = Linear(c, num_classes)
        he_init(self)

    def forward(self, x: Tensor) -> Tensor:
        x = self.layers(self.relu(self.bn1(self.conv1(x))))
        return self.fc(self.flatten(self.avgpool(x)))


def mobilenet(num_classes: int = 10, width_mult: float = 1.0, in_channels: int = 3) -> MobileNet:
    """MobileNet v1 for 32x32 inputs; width_mult scales every layer's channels (0.25, 0.5, ...).
    3.2M parameters at width_mult=1."""
    return MobileNet(num_classes, width_mult, in_channels)
