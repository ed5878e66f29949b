"""RandAugment (Cubuk et al., 2020): apply N operations drawn at random from a fixed list, all
at one magnitude M. The operations are pure numpy on (C, H, W) float32 images in [0, 1];
each is also a public function here (rotate(img, 30), solarize(img, 0.5), ...) for figures.

Magnitudes follow torchvision: M in [0, 30] maps linearly onto each operation's range
(rotate up to 30 degrees, shear up to 0.3, translate up to 45% of the side, enhancement
factors 1 +- 0.9, solarize threshold 1 -> 0, posterize 8 -> 4 bits), with a random sign for
the signed ones.
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import TdsError
from .transforms import Transform

_GRAY = np.array([0.299, 0.587, 0.114], dtype=np.float32).reshape(3, 1, 1)


def _blend(a: np.ndarray, b: np.ndarray, factor: float) -> np.ndarray:
    """a + factor * (b - a), clipped: factor 0 gives a, 1 gives b (PIL's ImageEnhance)."""
    return np.clip(a + np.float32(factor) * (b - a), 0.0, 1.0).astype(np.float32, copy=False)


def _grayscale(img: np.ndarray) -> np.ndarray:
    if img.shape[0] == 3:
        return (img * _GRAY).sum(axis=0, keepdims=True)
    return img.mean(axis=0, keepdims=True)


def affine(img: np.ndarray, matrix: np.ndarray, fill: float = 0.0) -> np.ndarray:
    """Warp by the 2x3 `matrix` that maps output (x, y) to input (x, y), both relative to the
    image centre; nearest-neighbour sampling, `fill` outside the image."""
    _, h, w = img.shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    cy, cx = (h - 1) / 2, (w - 1) / 2
    u, v = xs - cx, ys - cy
    sx = matrix[0, 0] * u + matrix[0, 1] * v + matrix[0, 2] + cx
    sy = matrix[1, 0] * u + matrix[1, 1] * v + matrix[1, 2] + cy
    ix, iy = np.rint(sx).astype(np.int64), np.rint(sy).astype(np.int64)
    inside = (ix >= 0) & (ix < w) & (iy >= 0) & (iy < h)
    out = np.full_like(img, fill)
    out[:, inside] = img[:, iy[inside], ix[inside]]
    return out


def rotate(img, degrees: float, fill: float = 0.0):
    """Rotate counter-clockwise by `degrees` about the centre."""
    t = math.radians(degrees)
    c, s = math.cos(t), math.sin(t)
    # y points down in an image: a counter-clockwise turn on screen samples the input at R(t)
    return affine(img, np.array([[c, -s, 0.0], [s, c, 0.0]]), fill)


def shear_x(img, factor: float, fill: float = 0.0):
    return affine(img, np.array([[1.0, factor, 0.0], [0.0, 1.0, 0.0]]), fill)


def shear_y(img, factor: float, fill: float = 0.0):
    return affine(img, np.array([[1.0, 0.0, 0.0], [factor, 1.0, 0.0]]), fill)


def translate_x(img, pixels: float, fill: float = 0.0):
    """Shift right by `pixels` (left when negative)."""
    return affine(img, np.array([[1.0, 0.0, -pixels], [0.0, 1.0, 0.0]]), fill)


def translate_y(img, pixels: float, fill: float = 0.0):
    """Shift down by `pixels` (up when negative)."""
    return affine(img, np.array([[1.0, 0.0, 0.0], [0.0, 1.0, -pixels]]), fill)


def brightness(img, factor: float):
    """factor 0: black; 1: unchanged; 2: twice as bright (clipped)."""
    return _blend(np.zeros_like(img), img, factor)


def contrast(img, factor: float):
    """Blend with the mean grey level: factor 0 gives a flat grey image."""
    return _blend(np.full_like(img, _grayscale(img).mean()), img, factor)


def color(img, factor: float):
    """Saturation: factor 0 gives the greyscale image (single-channel images are unchanged)."""
    return _blend(np.broadcast_to(_grayscale(img), img.shape), img, factor)


def sharpness(img, factor: float):
    """Blend with PIL's smoothing filter [[1,1,1],[1,5,1],[1,1,1]] / 13 (border kept):
    factor 0 blurs, 2 sharpens."""
    _, h, w = img.shape
    if h < 3 or w < 3:
        return img.copy()
    smooth = img.copy()
    acc = 4 * img[:, 1:-1, 1:-1]
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            acc = acc + img[:, 1 + dy:h - 1 + dy, 1 + dx:w - 1 + dx]
    smooth[:, 1:-1, 1:-1] = acc / 13
    return _blend(smooth, img, factor)


def solarize(img, threshold: float):
    """Invert every value at or above `threshold`."""
    return np.where(img >= threshold, 1.0 - img, img).astype(np.float32, copy=False)


def posterize(img, bits: int):
    """Keep the top `bits` bits of each 8-bit value."""
    q = np.clip(np.rint(img * 255), 0, 255).astype(np.uint8)
    mask = np.uint8((0xFF << (8 - int(bits))) & 0xFF)
    return (q & mask).astype(np.float32) / 255


def autocontrast(img):
    """Stretch each channel to span [0, 1]."""
    lo = img.min(axis=(1, 2), keepdims=True)
    hi = img.max(axis=(1, 2), keepdims=True)
    span = np.where(hi > lo, hi - lo, 1.0)
    return np.where(hi > lo, (img - lo) / span, img).astype(np.float32, copy=False)


def equalize(img):
    """Histogram equalisation of each channel over 256 levels (PIL's algorithm)."""
    q = np.clip(np.rint(img * 255), 0, 255).astype(np.int64)
    out = np.empty_like(img)
    for c in range(img.shape[0]):
        hist = np.bincount(q[c].ravel(), minlength=256)
        nonzero = hist[hist > 0]
        step = (nonzero.sum() - nonzero[-1]) // 255
        if step == 0:
            out[c] = img[c]
            continue
        lut = (np.concatenate([[0], np.cumsum(hist)[:-1]]) + step // 2) // step
        out[c] = np.clip(lut, 0, 255)[q[c]] / 255
    return out


def identity(img):
    return img.copy()


def _signed(m: float, rng) -> float:
    return m if rng.random() < 0.5 else -m


# name -> f(img, level in [0, 1], rng, fill); the lecture's list of 14 operations
OPS = {
    "Identity": lambda im, lv, rng, fill: identity(im),
    "AutoContrast": lambda im, lv, rng, fill: autocontrast(im),
    "Equalize": lambda im, lv, rng, fill: equalize(im),
    "Rotate": lambda im, lv, rng, fill: rotate(im, _signed(30 * lv, rng), fill),
    "Solarize": lambda im, lv, rng, fill: solarize(im, 1.0 - lv),
    "Color": lambda im, lv, rng, fill: color(im, 1 + _signed(0.9 * lv, rng)),
    "Posterize": lambda im, lv, rng, fill: posterize(im, 8 - int(round(4 * lv))),
    "Contrast": lambda im, lv, rng, fill: contrast(im, 1 + _signed(0.9 * lv, rng)),
    "Brightness": lambda im, lv, rng, fill: brightness(im, 1 + _signed(0.9 * lv, rng)),
    "Sharpness": lambda im, lv, rng, fill: sharpness(im, 1 + _signed(0.9 * lv, rng)),
    "ShearX": lambda im, lv, rng, fill: shear_x(im, _signed(0.3 * lv, rng), fill),
    "ShearY": lambda im, lv, rng, fill: shear_y(im, _signed(0.3 * lv, rng), fill),
    "TranslateX": lambda im, lv, rng, fill: translate_x(
        im, _signed(0.45 * lv * im.shape[2], rng), fill),
    "TranslateY": lambda im, lv, rng, fill: translate_y(
        im, _signed(0.45 * lv * im.shape[1], rng), fill),
}


class RandAugment(Transform):
    """Apply `num_ops` (N) operations drawn uniformly (with replacement) from `ops`, each at
    magnitude `magnitude` (M, 0..num_magnitude_bins-1). Training mode only."""

    def __init__(self, num_ops: int = 2, magnitude: int = 9, num_magnitude_bins: int = 31,
                 ops: list[str] | None = None, fill: float = 0.0):
        super().__init__()
        if not 0 <= magnitude < num_magnitude_bins:
            raise TdsError(f"RandAugment: magnitude must be in [0, {num_magnitude_bins - 1}], "
                           f"got {magnitude}")
        ops = list(OPS) if ops is None else list(ops)
        unknown = [o for o in ops if o not in OPS]
        if unknown:
            raise TdsError(f"RandAugment: unknown operation(s) {unknown}; known: {list(OPS)}")
        self.num_ops, self.magnitude = num_ops, magnitude
        self.num_magnitude_bins = num_magnitude_bins
        self.ops, self.fill = ops, fill

    def apply(self, img, rng):
        level = self.magnitude / (self.num_magnitude_bins - 1)
        for k in rng.integers(0, len(self.ops), size=self.num_ops):
            img = OPS[self.ops[k]](img, level, rng, self.fill).astype(np.float32, copy=False)
        return img
