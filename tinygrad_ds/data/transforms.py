"""Per-sample image transforms on numpy arrays (C, H, W) float32 in [0, 1].

Each transform is called as t(image, rng) and returns a new array of the same shape and dtype.
Random transforms draw only from `rng` (repeatable under a seed) and pass the image through
unchanged in eval mode: `t.eval()`, or `dataset.eval()` which sets every transform it holds.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import ShapeError, TdsError, fmt_shape
from ..random import generator


class Transform:
    """Base: subclasses define apply(image, rng). Deterministic ones set random = False."""

    random = True

    def __init__(self) -> None:
        self.training = True

    def __call__(self, img: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        if img.ndim != 3:
            raise ShapeError(f"{type(self).__name__}: expects one image (C, H, W), got "
                             f"{fmt_shape(img.shape)}")
        if self.random and not self.training:
            return img
        return self.apply(img, rng if rng is not None else generator())

    def apply(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def train(self, mode: bool = True) -> Transform:
        self.training = mode
        return self

    def eval(self) -> Transform:
        return self.train(False)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if k != "training")
        return f"{type(self).__name__}({args})"


class Compose(Transform):
    """Apply transforms in order; train()/eval() reach every one of them."""

    random = False

    def __init__(self, transforms: Sequence):
        super().__init__()
        self.transforms = list(transforms)

    def apply(self, img, rng):
        for t in self.transforms:
            img = t(img, rng)
        return img

    def train(self, mode: bool = True) -> Compose:
        self.training = mode
        for t in self.transforms:
            if hasattr(t, "train"):
                t.train(mode)
        return self

    def __repr__(self) -> str:
        return "Compose([" + ", ".join(repr(t) for t in self.transforms) + "])"


class Normalize(Transform):
    """(x - mean[c]) / std[c] per channel; applied in train and eval mode alike."""

    random = False

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.mean = np.asarray(mean, dtype=np.float32).reshape(-1, 1, 1)
        self.std = np.asarray(std, dtype=np.float32).reshape(-1, 1, 1)
        if np.any(self.std <= 0):
            raise TdsError(f"Normalize: std must be > 0, got {list(np.ravel(std))}")

    def apply(self, img, rng):
        if self.mean.shape[0] not in (1, img.shape[0]):
            raise ShapeError(f"Normalize: {self.mean.shape[0]} channel means for an image with "
                             f"{img.shape[0]} channels")
        return ((img - self.mean) / self.std).astype(np.float32, copy=False)


class RandomCrop(Transform):
    """Pad each side by `padding` (with `fill`), then crop a random size x size window
    (size defaults to the image's own size: the classic CIFAR shift by up to `padding` pixels)."""

    def __init__(self, size: int | None = None, padding: int = 4, fill: float = 0.0):
        super().__init__()
        self.size, self.padding, self.fill = size, padding, fill

    def apply(self, img, rng):
        c, h, w = img.shape
        sh = sw = self.size
        if self.size is None:
            sh, sw = h, w
        p = self.padding
        if sh > h + 2 * p or sw > w + 2 * p:
            raise ShapeError(f"RandomCrop: a {sh}x{sw} crop does not fit a {h}x{w} image padded "
                             f"by {p}")
        padded = np.full((c, h + 2 * p, w + 2 * p), self.fill, dtype=img.dtype)
        padded[:, p:p + h, p:p + w] = img
        i = int(rng.integers(0, h + 2 * p - sh + 1))
        j = int(rng.integers(0, w + 2 * p - sw + 1))
        return padded[:, i:i + sh, j:j + sw].copy()


class RandomHorizontalFlip(Transform):
    """Mirror left-right with probability p."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        self.p = p

    def apply(self, img, rng):
        return img[:, :, ::-1].copy() if rng.random() < self.p else img


class RandomBrightness(Transform):
    """Add one random delta in [-max_delta, max_delta] to every pixel, clipped to [0, 1]
    (Keras' RandomBrightness)."""

    def __init__(self, max_delta: float = 0.2):
        super().__init__()
        self.max_delta = max_delta

    def apply(self, img, rng):
        d = np.float32(rng.uniform(-self.max_delta, self.max_delta))
        return np.clip(img + d, 0.0, 1.0).astype(np.float32, copy=False)


class Cutout(Transform):
    """Set a size x size square (all channels) at a random centre to `fill`; the square may
    hang over the border (DeVries and Taylor, 2017)."""

    def __init__(self, size: int = 8, n_holes: int = 1, fill: float = 0.0):
        super().__init__()
        self.size, self.n_holes, self.fill = size, n_holes, fill

    def apply(self, img, rng):
        _, h, w = img.shape
        out = img.copy()
        for _ in range(self.n_holes):
            cy, cx = int(rng.integers(0, h)), int(rng.integers(0, w))
            y0, y1 = max(0, cy - self.size // 2), min(h, cy + (self.size + 1) // 2)
            x0, x1 = max(0, cx - self.size // 2), min(w, cx + (self.size + 1) // 2)
            out[:, y0:y1, x0:x1] = self.fill
        return out
