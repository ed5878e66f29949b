"""LeNet-5 (LeCun et al. 1998) for 28x28 grey images.  Draw it: `tds viz examples/lenet.py`."""
from tinygrad_ds.nn import models

model = models.lenet5(num_classes=10, in_channels=1, input_size=28)
input_shape = (1, 1, 28, 28)
