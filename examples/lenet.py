"""LeNet-5 (LeCun et al. 1998) for 28x28 grey images.  Draw it: `tds viz examples/lenet.py`.

Trained on the built-in dataset (`tds train examples/lenet.py`), the original's tanh units and
average pooling barely learn in a few epochs: 12% after 6 (chance is 10%), and the same network
in PyTorch with the same recipe does no better. Its shapes move, turn and sit among clutter,
unlike MNIST's centred digits. `models.lenet5(..., activation="relu", pooling="max")` learns
(25% after 6 epochs here, still rising), and the ResNets reach 90% in a few minutes."""
from tinygrad_ds.nn import models

model = models.lenet5(num_classes=10, in_channels=1, input_size=28)
input_shape = (1, 1, 28, 28)
