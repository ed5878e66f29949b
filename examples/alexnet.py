"""A small AlexNet for 32x32 colour images.  Draw it: `tds viz examples/alexnet.py`."""
from tinygrad_ds.nn import models

model = models.alexnet_small(num_classes=10)
input_shape = (1, 3, 32, 32)
