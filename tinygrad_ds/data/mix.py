"""Batch-level MixUp and CutMix: mix each image with another of the same batch and return
soft targets (N, C) float32, which F.cross_entropy accepts as they are.

    loader = DataLoader(train, batch_size=128, shuffle=True, batch_transform=CutMix(10))

Both run in training mode only; in eval mode images and labels pass through unchanged.
"""
from __future__ import annotations

import numpy as np

from ..errors import ShapeError, fmt_shape
from ..random import generator


def one_hot(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """(N,) ints -> (N, num_classes) float32; soft (N, C) targets pass through."""
    labels = np.asarray(getattr(labels, "data", labels))
    if labels.ndim == 2:
        return labels.astype(np.float32, copy=False)
    out = np.zeros((len(labels), num_classes), dtype=np.float32)
    out[np.arange(len(labels)), labels] = 1.0
    return out


class _BatchMix:
    def __init__(self, num_classes: int, alpha: float = 1.0, p: float = 1.0):
        self.num_classes, self.alpha, self.p = num_classes, alpha, p
        self.training = True

    def train(self, mode: bool = True):
        self.training = mode
        return self

    def eval(self):
        return self.train(False)

    def __call__(self, images, labels, rng: np.random.Generator | None = None):
        """images: (N, C, H, W) array or Tensor; labels: (N,) ints or (N, K) soft targets.
        Returns (mixed images (N, C, H, W) float32, targets (N, K) float32) as arrays."""
        if not self.training:
            return images, labels
        rng = rng if rng is not None else generator()
        x = np.asarray(getattr(images, "data", images), dtype=np.float32)
        if x.ndim != 4:
            raise ShapeError(f"{type(self).__name__}: images must be (N, C, H, W), got "
                             f"{fmt_shape(x.shape)}")
        y = one_hot(labels, self.num_classes)
        if rng.random() >= self.p or len(x) < 2:
            return x, y
        lam = float(rng.beta(self.alpha, self.alpha)) if self.alpha > 0 else 1.0
        perm = rng.permutation(len(x))
        x, lam = self.mix(x, x[perm], lam, rng)
        return x, (lam * y + (1 - lam) * y[perm]).astype(np.float32)

    def mix(self, x1, x2, lam, rng):
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(num_classes={self.num_classes}, alpha={self.alpha})"


class MixUp(_BatchMix):
    """x = lam x1 + (1 - lam) x2, y = lam y1 + (1 - lam) y2 with lam ~ Beta(alpha, alpha)
    (alpha = 1: uniform on [0, 1]); Zhang et al., 2017."""

    def mix(self, x1, x2, lam, rng):
        return (lam * x1 + (1 - lam) * x2).astype(np.float32), lam


class CutMix(_BatchMix):
    """Paste a random box of x2 into x1, the box covering a fraction 1 - lam of the image;
    the targets mix by the box's actual area after clipping at the border (Yun et al., 2019)."""

    def mix(self, x1, x2, lam, rng):
        _, _, h, w = x1.shape
        r = np.sqrt(1.0 - lam)
        bh, bw = int(h * r), int(w * r)
        cy, cx = int(rng.integers(0, h)), int(rng.integers(0, w))
        y0, y1 = np.clip([cy - bh // 2, cy + bh // 2], 0, h)
        x0, x1_ = np.clip([cx - bw // 2, cx + bw // 2], 0, w)
        out = x1.copy()
        out[:, :, y0:y1, x0:x1_] = x2[:, :, y0:y1, x0:x1_]
        return out, 1.0 - (y1 - y0) * (x1_ - x0) / (h * w)
