"""A small DenseNet for CIFAR: inside a dense block every layer reads the concatenation of all
the earlier ones.  Draw it: `tds viz examples/densenet.py --depth 2`."""
from tinygrad_ds.nn import models

model = models.densenet_cifar()
input_shape = (1, 3, 32, 32)
