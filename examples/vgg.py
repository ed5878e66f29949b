"""VGG-11 (Simonyan and Zisserman 2014), sized for 32x32 inputs: blocks of 3x3 convolutions,
each block ending in a 2x2 max-pool.  Draw it: `tds viz examples/vgg.py`."""
from tinygrad_ds.nn import models

model = models.vgg11(num_classes=10, batch_norm=True)
input_shape = (1, 3, 32, 32)
