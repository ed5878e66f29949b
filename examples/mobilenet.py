"""MobileNet for 32x32 inputs: depthwise (groups = channels) then pointwise 1x1 convolutions.
Draw it: `tds viz examples/mobilenet.py`."""
from tinygrad_ds.nn import models

model = models.mobilenet(num_classes=10)
input_shape = (1, 3, 32, 32)
