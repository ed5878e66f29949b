"""DenseNet-BC (Huang et al. 2017) for 32x32: inside a dense block every layer receives the
concatenation of all earlier feature maps and adds `growth_rate` new ones; transition layers
(1x1 convolution compressing the channels, 2x2 average pool) sit between blocks."""
from __future__ import annotations

from collections import OrderedDict

from ... import functional as F
from ...errors import TdsError
from ...tensor import Tensor
from ..activation import ReLU
from ..containers import Sequential
from ..conv import Conv2d
from ..linear import Flatten, Linear
from ..module import Module
from ..norm import BatchNorm2d
from ..pooling import AdaptiveAvgPool2d, AvgPool2d
from ._util import he_init


class DenseLayer(Module):
    """norm1 - relu1 - conv1 (1x1, bn_size * growth_rate) - norm2 - relu2 - conv2 (3x3,
    growth_rate); the output is concat([x, new], channels):
    (N, C, H, W) -> (N, C + growth_rate, H, W)."""

    def __init__(self, in_channels: int, growth_rate: int, bn_size: int = 4):
        super().__init__()
        self.norm1 = BatchNorm2d(in_channels)
        self.relu1 = ReLU()
        self.conv1 = Conv2d(in_channels, bn_size * growth_rate, 1, bias=False)
        self.norm2 = BatchNorm2d(bn_size * growth_rate)
        self.relu2 = ReLU()
        self.conv2 = Conv2d(bn_size * growth_rate, growth_rate, 3, padding=1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        new = self.conv1(self.relu1(self.norm1(x)))
        new = self.conv2(self.relu2(self.norm2(new)))
        return F.concat([x, new], axis=1)


class Transition(Sequential):
    """norm - relu - conv (1x1, out_channels) - pool (2x2 average): halves H and W."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(OrderedDict([
            ("norm", BatchNorm2d(in_channels)), ("relu", ReLU()),
            ("conv", Conv2d(in_channels, out_channels, 1, bias=False)),
            ("pool", AvgPool2d(2)),
        ]))


class DenseNet(Module):
    """features (conv0, denseblock1, transition1, ..., norm5, relu5) - avgpool - flatten -
    classifier, with torchvision's state_dict names (features.denseblock1.denselayer1.conv1)."""

    def __init__(self, growth_rate: int = 12, block_config=(6, 6, 6), bn_size: int = 4,
                 compression: float = 0.5, num_classes: int = 10, in_channels: int = 3):
        super().__init__()
        if not 0 < compression <= 1:
            raise TdsError(f"densenet: compression must be in (0, 1], got {compression}")
        c = 2 * growth_rate
        parts: list = [("conv0", Conv2d(in_channels, c, 3, padding=1, bias=False))]
        for i, n in enumerate(block_config):
            layers = []
            for j in range(n):
                layers.append((f"denselayer{j + 1}", DenseLayer(c, growth_rate, bn_size)))
                c += growth_rate
            parts.append((f"denseblock{i + 1}", Sequential(OrderedDict(layers))))
            if i != len(block_config) - 1:
                out = int(c * compression)
                parts.append((f"transition{i + 1}", Transition(c, out)))
                c = out
        parts += [(f"norm{len(block_config) + 2}", BatchNorm2d(c)),
                  (f"relu{len(block_config) + 2}", ReLU())]
        self.features = Sequential(OrderedDict(parts))
        self.avgpool = AdaptiveAvgPool2d(1)
        self.flatten = Flatten()
        self.classifier = Linear(c, num_classes)
        he_init(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.flatten(self.avgpool(self.features(x))))


def densenet_cifar(growth_rate: int = 12, block_config=(6, 6, 6), bn_size: int = 4,
                   compression: float = 0.5, num_classes: int = 10,
                   in_channels: int = 3) -> DenseNet:
    """A small DenseNet-BC: three dense blocks of block_config[i] bottleneck layers
    (depth = 2 sum(block_config) + 4: (6, 6, 6) is DenseNet-BC-40; (16, 16, 16) is
    DenseNet-BC-100, 0.8M parameters with growth rate 12)."""
    return DenseNet(growth_rate, tuple(block_config), bn_size, compression, num_classes,
                    in_channels)
