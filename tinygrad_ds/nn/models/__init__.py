"""The model zoo: functions returning nn.Modules, sized for 32x32 inputs unless noted.

    from tinygrad_ds.nn import models
    net = models.resnet20()            # 0.27M parameters
    net = models.vgg_grid(3, 2, 16)    # the lecture's VGG-like depth grid
"""
from .alexnet import AlexNetSmall, alexnet_small
from .densenet import DenseLayer, DenseNet, Transition, densenet_cifar
from .inception import Inception, InceptionNet, inception_net
from .lenet import LeNet5, lenet5
from .mobilenet import DepthwiseSeparable, MobileNet, mobilenet
from .resnet import (BasicBlock, Bottleneck, ResNet, ZeroPadShortcut, make_shortcut, plain_cifar,
                     projection, resnet20, resnet32, resnet44, resnet56, resnet110,
                     resnet_bottleneck_cifar, resnet_cifar)
from .resnext import resnext_cifar
from .unet import UNet, double_conv, unet_small
from .vgg import CONFIGS as VGG_CONFIGS
from .vgg import VGG, vgg, vgg11, vgg13, vgg16, vgg19, vgg_grid

__all__ = [
    "lenet5", "alexnet_small", "vgg", "vgg11", "vgg13", "vgg16", "vgg19", "vgg_grid",
    "resnet_cifar", "plain_cifar", "resnet20", "resnet32", "resnet44", "resnet56", "resnet110",
    "resnet_bottleneck_cifar", "resnext_cifar", "mobilenet", "inception_net", "densenet_cifar",
    "unet_small",
    "LeNet5", "AlexNetSmall", "VGG", "VGG_CONFIGS", "ResNet", "BasicBlock", "Bottleneck",
    "ZeroPadShortcut", "make_shortcut", "projection", "MobileNet", "DepthwiseSeparable",
    "Inception", "InceptionNet", "DenseNet", "DenseLayer", "Transition", "UNet", "double_conv",
]
