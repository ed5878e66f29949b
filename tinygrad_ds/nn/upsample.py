"""Upsample (nearest neighbour): each pixel repeated scale_factor times along H and W."""
from __future__ import annotations

from ..errors import ShapeError, TdsError, fmt_shape
from ..tensor import Tensor
from .module import Module


def upsample_nearest(x: Tensor, scale: tuple[int, int]) -> Tensor:
    """(N, C, H, W) -> (N, C, H*sh, W*sw), built from reshape and expand so the gradient (a sum
    over each sh x sw block) comes from those ops' own backward."""
    n, c, h, w = x.shape
    sh, sw = scale
    y = x.reshape(n, c, h, 1, w, 1).expand(n, c, h, sh, w, sw)
    return y.reshape(n, c, h * sh, w * sw)


class Upsample(Module):
    """Nearest-neighbour upsampling of (N, C, H, W) by an integer scale_factor, or to a size that
    is an integer multiple of the input size. Only mode='nearest'."""

    def __init__(self, size=None, scale_factor=None, mode: str = "nearest"):
        super().__init__()
        if mode != "nearest":
            raise TdsError(f"Upsample: only mode='nearest' is supported, got {mode!r}")
        if (size is None) == (scale_factor is None):
            raise TdsError("Upsample: give exactly one of size and scale_factor")
        self.size, self.scale_factor, self.mode = size, scale_factor, mode

    def _scale(self, x: Tensor) -> tuple[int, int]:
        h, w = x.shape[2:]
        if self.size is not None:
            oh, ow = (self.size, self.size) if isinstance(self.size, int) else self.size
            if oh % h or ow % w:
                raise ShapeError(f"Upsample: size {(oh, ow)} is not an integer multiple of the "
                                 f"input's {(h, w)}")
            return oh // h, ow // w
        sf = self.scale_factor
        sh, sw = (sf, sf) if not isinstance(sf, (tuple, list)) else sf
        if int(sh) != sh or int(sw) != sw or sh < 1 or sw < 1:
            raise TdsError(f"Upsample: scale_factor must be a positive integer, got {sf}")
        return int(sh), int(sw)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4:
            raise ShapeError(f"Upsample: expected input (N, C, H, W), got {fmt_shape(x.shape)}")
        return upsample_nearest(x, self._scale(x))

    def extra_repr(self) -> str:
        arg = f"size={self.size}" if self.size is not None else f"scale_factor={self.scale_factor}"
        return f"{arg}, mode={self.mode!r}"
