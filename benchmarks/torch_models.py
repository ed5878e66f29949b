"""The PyTorch peers of the benchmarked models, built the same way as tinygrad_ds's (for the
benchmarks only: the project does not depend on PyTorch)."""
from __future__ import annotations


def resnet20():
    """ResNet-20 for 32x32 images as tinygrad_ds.nn.models.resnet20: 3 stages of 3 basic blocks
    (16, 32, 64 channels), option A shortcuts (the identity, subsampled and zero-padded)."""
    import torch
    import torch.nn as tnn

    class Block(tnn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = tnn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = tnn.BatchNorm2d(cout)
            self.conv2 = tnn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = tnn.BatchNorm2d(cout)
            self.pad = cout - cin
            self.stride = stride

        def forward(self, x):
            out = torch.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            sc = x[:, :, ::self.stride, ::self.stride] if self.stride > 1 else x
            if self.pad:  # option A: zero-padded identity
                sc = tnn.functional.pad(sc, (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))
            return torch.relu(out + sc)

    layers = [tnn.Conv2d(3, 16, 3, 1, 1, bias=False), tnn.BatchNorm2d(16), tnn.ReLU()]
    cin = 16
    for cout, stride in ((16, 1), (32, 2), (64, 2)):
        for i in range(3):
            layers.append(Block(cin, cout, stride if i == 0 else 1))
            cin = cout
    layers += [tnn.AdaptiveAvgPool2d(1), tnn.Flatten(), tnn.Linear(64, 10)]
    return tnn.Sequential(*layers)
