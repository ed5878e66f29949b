"""Small pieces the model families share: conv + batch norm + ReLU, He initialisation."""
from __future__ import annotations

from .. import init
from ..activation import ReLU
from ..containers import Sequential
from ..conv import Conv2d
from ..linear import Identity
from ..module import Module
from ..norm import BatchNorm2d


def norm2d(channels: int, batch_norm: bool = True) -> Module:
    """BatchNorm2d, or Identity (no parameters, same position in the model) without it."""
    return BatchNorm2d(channels) if batch_norm else Identity()


def conv_bn_relu(c_in: int, c_out: int, kernel_size: int, stride: int = 1, padding: int = 0,
                 groups: int = 1, batch_norm: bool = True) -> Sequential:
    """Conv2d (no bias when batch norm follows: its beta plays that part), BatchNorm2d, ReLU."""
    return Sequential(Conv2d(c_in, c_out, kernel_size, stride, padding, groups=groups,
                             bias=not batch_norm),
                      norm2d(c_out, batch_norm), ReLU())


def he_init(model: Module) -> Module:
    """kaiming_normal_(mode='fan_out', nonlinearity='relu') for every Conv2d, as torchvision
    initialises its ResNets, DenseNets and MobileNets; batch norm stays (1, 0), Linear as
    PyTorch's default."""
    for m in model.modules():
        if isinstance(m, Conv2d):
            init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                init.zeros_(m.bias)
    return model
