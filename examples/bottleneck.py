"""A 29-layer CIFAR ResNet of bottleneck blocks (1x1 reduce, 3x3, 1x1 expand).
Draw it: `tds viz examples/bottleneck.py --depth 3`."""
from tinygrad_ds.nn import models

model = models.resnet_bottleneck_cifar(29)
input_shape = (1, 3, 32, 32)
