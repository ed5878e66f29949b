"""A GoogLeNet-style network: Inception modules of four parallel branches (1x1, 3x3, 5x5, pool)
joined by concatenation.  Draw it: `tds viz examples/inception.py`."""
from tinygrad_ds.nn import models

model = models.inception_net(num_classes=10)
input_shape = (1, 3, 32, 32)
