"""ResNeXt-style network (Xie et al. 2017) for 32x32: bottleneck blocks whose 3x3 convolution is
grouped into `cardinality` parallel paths of `bottleneck_width` channels each (aggregated
transformations), with projection shortcuts through `nn.Residual`."""
from __future__ import annotations

from ...errors import TdsError
from .resnet import Bottleneck, ResNet, stages


def resnext_cifar(depth: int = 29, cardinality: int = 4, bottleneck_width: int = 4,
                  expansion: int = 2, num_classes: int = 10, stem_channels: int = 32,
                  in_channels: int = 3) -> ResNet:
    """depth = 9n + 2: three stages of n grouped bottleneck blocks. Stage s has group width
    cardinality * bottleneck_width * 2^s (the grouped 3x3 convolution's channels) and outputs
    expansion times that; stages 2 and 3 halve H and W. Defaults are small (0.1M parameters)
    so that it trains on a laptop CPU."""
    if depth < 11 or (depth - 2) % 9:
        raise TdsError(f"resnext_cifar: depth must be 9n + 2 (11, 20, 29, ...), got {depth}")
    def group_width(stage: int) -> int:
        return cardinality * bottleneck_width * 2 ** stage

    layers, c = stages((depth - 2) // 9, stem_channels, lambda s: group_width(s) * expansion,
                       lambda c_in, s, stride: Bottleneck(c_in, group_width(s),
                                                          group_width(s) * expansion, stride,
                                                          groups=cardinality))
    return ResNet(stem_channels, layers, c, num_classes, in_channels)
