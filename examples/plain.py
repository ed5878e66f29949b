"""A plain 20-layer CIFAR network: ResNet-20 without its skip connections (one path only).
Compare the gradient colours: `tds viz examples/plain.py --grads` and the same for resnet.py."""
from tinygrad_ds.nn import models

model = models.plain_cifar(20)
input_shape = (1, 3, 32, 32)
