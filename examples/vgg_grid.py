"""One cell of the lecture's VGG-like grid: 3 blocks x 2 convolutions per block, then global
average pooling.  Draw it: `tds viz examples/vgg_grid.py`."""
from tinygrad_ds.nn import models

model = models.vgg_grid(3, 2)
input_shape = (1, 3, 32, 32)
