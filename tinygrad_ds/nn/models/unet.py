"""A small U-Net (Ronneberger et al. 2015): an encoder of double 3x3 convolutions and 2x2 max
pools, a decoder that upsamples (transposed 2x2 convolution, or nearest + 1x1 convolution) and
concatenates the encoder's feature map of the same size (the skip), and a 1x1 convolution giving
per-pixel class scores."""
from __future__ import annotations

from ... import functional as F
from ...errors import ShapeError, TdsError, fmt_shape
from ...tensor import Tensor
from ..activation import ReLU
from ..containers import ModuleList, Sequential
from ..conv import Conv2d, ConvTranspose2d
from ..module import Module
from ..pooling import MaxPool2d
from ..upsample import Upsample
from ._util import he_init, norm2d


def double_conv(c_in: int, c_out: int, batch_norm: bool = True) -> Sequential:
    """(conv 3x3 - [batch norm] - ReLU) twice; keeps H and W."""
    return Sequential(Conv2d(c_in, c_out, 3, padding=1, bias=not batch_norm),
                      norm2d(c_out, batch_norm), ReLU(),
                      Conv2d(c_out, c_out, 3, padding=1, bias=not batch_norm),
                      norm2d(c_out, batch_norm), ReLU())


class UNet(Module):
    """x: (N, in_channels, H, W) -> (N, num_classes, H, W); H and W divisible by 2^depth.

    down.i: double_conv at width 2^i base_width; pool; bottleneck at 2^depth base_width;
    up.i: upsample halving the channels; dec.i: double_conv of concat([up, skip])."""

    def __init__(self, in_channels: int = 3, num_classes: int = 2, base_width: int = 16,
                 depth: int = 3, batch_norm: bool = True, upsampling: str = "transpose"):
        super().__init__()
        if upsampling not in ("transpose", "nearest"):
            raise TdsError(f"unet: upsampling must be 'transpose' or 'nearest', got "
                           f"{upsampling!r}")
        self.depth = depth
        widths = [base_width * 2 ** i for i in range(depth + 1)]
        self.down = ModuleList()
        c = in_channels
        for w in widths[:-1]:
            self.down.append(double_conv(c, w, batch_norm))
            c = w
        self.pool = MaxPool2d(2)
        self.bottleneck = double_conv(widths[-2], widths[-1], batch_norm)
        self.up, self.dec = ModuleList(), ModuleList()
        for i in reversed(range(depth)):
            if upsampling == "transpose":
                self.up.append(ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2))
            else:
                self.up.append(Sequential(Upsample(scale_factor=2),
                                          Conv2d(widths[i + 1], widths[i], 1)))
            self.dec.append(double_conv(2 * widths[i], widths[i], batch_norm))
        self.head = Conv2d(widths[0], num_classes, 1)
        he_init(self)

    def forward(self, x: Tensor) -> Tensor:
        k = 2 ** self.depth
        if x.ndim != 4 or x.shape[2] % k or x.shape[3] % k:
            raise ShapeError(f"UNet(depth={self.depth}): input (N, C, H, W) needs H and W "
                             f"divisible by {k}, got {fmt_shape(x.shape)}")
        skips = []
        for enc in self.down:
            x = enc(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(x)
        for up, dec, skip in zip(self.up, self.dec, reversed(skips)):
            x = dec(F.concat([up(x), skip], axis=1))  # the U-Net skip: concatenation
        return self.head(x)


def unet_small(in_channels: int = 3, num_classes: int = 2, base_width: int = 16, depth: int = 3,
               batch_norm: bool = True, upsampling: str = "transpose") -> UNet:
    """A small U-Net for segmentation of 32x32 images (or any size divisible by 2^depth):
    per-pixel scores (N, num_classes, H, W)."""
    return UNet(in_channels, num_classes, base_width, depth, batch_norm, upsampling)
