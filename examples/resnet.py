"""ResNet-20 for CIFAR-10 (He et al. 2015, section 4.2): 9 residual blocks, so 2^9 = 512 paths
from input to output.  Draw it: `tds viz examples/resnet.py -o resnet.png`."""
from tinygrad_ds.nn import models

model = models.resnet20(num_classes=10)
input_shape = (1, 3, 32, 32)
