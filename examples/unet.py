"""A small U-Net: an encoder, a decoder, and skip concatenations between them; the output is a
per-pixel class map.  Draw it: `tds viz examples/unet.py`."""
from tinygrad_ds.nn import models

model = models.unet_small(in_channels=3, num_classes=2)
input_shape = (1, 3, 32, 32)
