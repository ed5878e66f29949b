"""Layers and models, as torch.nn: `from tinygrad_ds import nn`.

The model zoo is `tinygrad_ds.nn.models` (imported on first use: `from tinygrad_ds.nn import
models`)."""
from . import init
from .activation import GELU, LeakyReLU, ReLU, Sigmoid, Tanh
from .containers import ModuleList, Sequential
from .conv import Conv2d, ConvTranspose2d
from .dropout import DropConnect, Dropout, Dropout2d
from .linear import Flatten, Identity, Linear
from .module import Module, Parameter
from .norm import BatchNorm1d, BatchNorm2d, GroupNorm, InstanceNorm2d, LayerNorm
from .pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d
from .residual import Residual
from .upsample import Upsample

__all__ = [
    "Module", "Parameter", "Sequential", "ModuleList", "init",
    "Linear", "Identity", "Flatten", "Conv2d", "ConvTranspose2d",
    "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d",
    "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "GELU",
    "Dropout", "Dropout2d", "DropConnect",
    "BatchNorm1d", "BatchNorm2d", "LayerNorm", "GroupNorm", "InstanceNorm2d",
    "Upsample", "Residual",
]


def __getattr__(name):
    if name == "models":
        import importlib

        return importlib.import_module(".models", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
