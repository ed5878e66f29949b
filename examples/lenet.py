"""LeNet-5 (LeCun et al. 1998) for 28x28 grey images.  Draw it: `tds viz examples/lenet.py`.

`tds train examples/lenet.py --epochs 2` trains it on the built-in handwritten digits (a
(1, 28, 28) input picks them: 60,000 training and 10,000 validation images, drawn in a few
seconds) and reaches about 99% validation accuracy (at least 95%), as LeNet did on MNIST
(benchmarks/lenet_digits.py measures it; see benchmarks/RESULTS.md). The run folder is
runs/lenet: history.csv, curves.png, best.npz, last.npz. Then:

    tds eval examples/lenet.py runs/lenet/best.npz      # the same validation accuracy
    tds train examples/lenet.py --resume runs/lenet --epochs 4
"""
from tinygrad_ds.nn import models

model = models.lenet5(num_classes=10, in_channels=1, input_size=28)
input_shape = (1, 1, 28, 28)
