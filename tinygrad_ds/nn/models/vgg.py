"""VGG (Simonyan and Zisserman 2014): blocks of 3x3 convolutions with the same number of filters,
a 2x2 max pool after each block, filters doubling. VGG-11/13/16/19 from their configurations
(sized for 32x32: after five pools one 512-channel pixel feeds one Linear layer, as the common
CIFAR versions), and `vgg_grid`, the lecture's blocks x convs-per-block family."""
from __future__ import annotations

from ...errors import TdsError
from ...tensor import Tensor
from ..activation import ReLU
from ..containers import Sequential
from ..conv import Conv2d
from ..linear import Flatten, Linear
from ..module import Module
from ..norm import BatchNorm2d
from ..pooling import AdaptiveAvgPool2d, MaxPool2d

# Numbers are 3x3 convolutions' filters, "M" a 2x2 max pool (configurations A, B, D, E).
CONFIGS: dict[str, list] = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg13": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
              512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
              512, 512, 512, 512, "M"],
}


def make_features(cfg: list, in_channels: int = 3, batch_norm: bool = False) -> Sequential:
    """Conv2d(3x3, padding 1) [+ BatchNorm2d] + ReLU per number, MaxPool2d(2) per 'M'."""
    layers: list[Module] = []
    c = in_channels
    for v in cfg:
        if v == "M":
            layers.append(MaxPool2d(2))
            continue
        layers.append(Conv2d(c, v, 3, padding=1))
        if batch_norm:
            layers.append(BatchNorm2d(v))
        layers.append(ReLU())
        c = v
    return Sequential(*layers)


class VGG(Module):
    """features (conv blocks), global average pooling, flatten, one Linear classifier.
    x: (N, C, H, W) -> (N, num_classes)."""

    def __init__(self, features: Sequential, out_channels: int, num_classes: int = 10):
        super().__init__()
        self.features = features
        self.pool = AdaptiveAvgPool2d(1)
        self.flatten = Flatten()
        self.classifier = Linear(out_channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.flatten(self.pool(self.features(x))))


def vgg(name: str, num_classes: int = 10, batch_norm: bool = False, in_channels: int = 3) -> VGG:
    """VGG from a configuration name in CONFIGS ('vgg11', 'vgg13', 'vgg16', 'vgg19')."""
    if name not in CONFIGS:
        raise TdsError(f"vgg: unknown configuration {name!r}; choose one of {sorted(CONFIGS)}")
    cfg = CONFIGS[name]
    return VGG(make_features(cfg, in_channels, batch_norm), cfg[-2], num_classes)


def vgg11(num_classes: int = 10, batch_norm: bool = False, in_channels: int = 3) -> VGG:
    """VGG-11 (configuration A): 8 convolutions + 1 Linear for 32x32 inputs."""
    return vgg("vgg11", num_classes, batch_norm, in_channels)


def vgg13(num_classes: int = 10, batch_norm: bool = False, in_channels: int = 3) -> VGG:
    """VGG-13 (configuration B): 10 convolutions + 1 Linear."""
    return vgg("vgg13", num_classes, batch_norm, in_channels)


def vgg16(num_classes: int = 10, batch_norm: bool = False, in_channels: int = 3) -> VGG:
    """VGG-16 (configuration D): 13 convolutions + 1 Linear."""
    return vgg("vgg16", num_classes, batch_norm, in_channels)


def vgg19(num_classes: int = 10, batch_norm: bool = False, in_channels: int = 3) -> VGG:
    """VGG-19 (configuration E): 16 convolutions + 1 Linear."""
    return vgg("vgg19", num_classes, batch_norm, in_channels)


def vgg_grid(blocks: int, convs_per_block: int, width: int = 16, num_classes: int = 10,
             batch_norm: bool = False, in_channels: int = 3) -> VGG:
    """The lecture's VGG-like depth grid: `blocks` blocks of `convs_per_block` 3x3 convolutions
    with the same filters (width, 2 width, 4 width, ...), a 2x2 max pool after each block,
    global average pooling and one Linear layer. A 32x32 input allows at most 5 blocks."""
    if blocks < 1 or convs_per_block < 1 or width < 1:
        raise TdsError(f"vgg_grid: blocks, convs_per_block and width must be positive, got "
                       f"{blocks}, {convs_per_block}, {width}")
    cfg: list = []
    for b in range(blocks):
        cfg += [width * 2 ** b] * convs_per_block + ["M"]
    return VGG(make_features(cfg, in_channels, batch_norm), width * 2 ** (blocks - 1),
               num_classes)
