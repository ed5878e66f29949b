"""The built-in dataset: 10 classes of procedurally drawn 32x32 colour images, no download.

Each class is a shape or a texture: disc, ring, square, frame, triangle, plus, cross, stripes,
checker, pair (two small discs). Every image draws it at a random position, size (radius 5 to
11 pixels), tilt (+-20 degrees) and colour, over a background of another random colour with a
gradient, among thin clutter strokes (some in front of the shape), with Gaussian noise. Colour
says nothing about the class, so a linear classifier does poorly and a convolutional network
must learn shape; strong augmentation and depth both show in the validation curves.

Generation is vectorised numpy, about 10,000 images a second on a laptop core; the same
(n, seed) always gives the same images.
"""
from __future__ import annotations

import numpy as np

from .dataset import TensorDataset

CLASSES = ["disc", "ring", "square", "frame", "triangle", "plus", "cross", "stripes", "checker",
           "pair"]
SIZE = 32
MEAN = (0.5, 0.5, 0.5)  # about right for any seed: colours are uniform
STD = (0.29, 0.29, 0.29)


def _shape_mask(k: int, u: np.ndarray, v: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Class k's mask on tilted pixel coordinates (u, v) relative to the centre; r: (B, 1, 1)."""
    U, V = u / r, v / r  # noqa: N806 - unit-size coordinates
    box = np.maximum(np.abs(U), np.abs(V))
    d2 = U * U + V * V
    if k == 0:
        return d2 < 1
    if k == 1:
        return (d2 < 1) & (d2 > 0.55 ** 2)
    if k == 2:
        return box < 0.8
    if k == 3:
        return (box < 0.8) & (box > 0.45)
    if k == 4:  # equilateral, pointing up: three half-planes at distance 0.5 from the centre
        m = np.ones(U.shape, dtype=bool)
        for a in (-np.pi / 2, np.pi / 6, 5 * np.pi / 6):
            m &= np.cos(a) * U + np.sin(a) * V < 0.5
        return m
    if k in (5, 6):
        if k == 6:
            U, V = (U + V) / np.sqrt(2), (U - V) / np.sqrt(2)  # noqa: N806
        return ((np.abs(U) < 0.25) & (np.abs(V) < 0.9)) | ((np.abs(V) < 0.25) & (np.abs(U) < 0.9))
    if k == 7:
        return (box < 0.85) & (np.sin(2 * np.pi * v / 4.0) > 0)
    if k == 8:
        return (box < 0.85) & ((np.floor(u / 3.0) + np.floor(v / 3.0)) % 2 == 0)
    if k == 9:
        return ((U - 0.55) ** 2 + V * V < 0.42 ** 2) | ((U + 0.55) ** 2 + V * V < 0.42 ** 2)
    raise ValueError(k)


def _strokes(rng, b: int, n: int, xs, ys) -> tuple[np.ndarray, np.ndarray]:
    """n thin random line segments per image: masks (n, B, H, W) and colours (n, B, 3, 1, 1)."""
    masks = np.empty((n, b, SIZE, SIZE), dtype=bool)
    for i in range(n):
        x0, y0 = rng.uniform(0, SIZE, (2, b, 1, 1))
        ang = rng.uniform(0, np.pi, (b, 1, 1))
        length = rng.uniform(4, 14, (b, 1, 1))
        width = rng.uniform(0.5, 1.2, (b, 1, 1))
        dx, dy = xs - x0, ys - y0
        along = dx * np.cos(ang) + dy * np.sin(ang)
        across = -dx * np.sin(ang) + dy * np.cos(ang)
        masks[i] = (np.abs(across) < width) & (np.abs(along) < length / 2) & (
            rng.random((b, 1, 1)) < 0.85)
    return masks, rng.uniform(0, 1, (n, b, 3, 1, 1)).astype(np.float32)


def _draw(rng: np.random.Generator, labels: np.ndarray) -> np.ndarray:
    b = len(labels)
    ys, xs = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32) + 0.5
    # background: a random colour with a linear gradient to a nearby one
    bg = rng.uniform(0, 1, (b, 3, 1, 1)).astype(np.float32)
    bg2 = np.clip(bg + rng.uniform(-0.3, 0.3, (b, 3, 1, 1)), 0, 1).astype(np.float32)
    phi = rng.uniform(0, 2 * np.pi, (b, 1, 1))
    t = ((np.cos(phi) * (xs - 16) + np.sin(phi) * (ys - 16)) / SIZE + 0.5)[:, None]
    img = bg + (bg2 - bg) * t.astype(np.float32)
    # foreground: each channel 0.3 to 0.7 away from the background's, around the colour wheel
    fg = ((bg + 0.5 + rng.uniform(-0.2, 0.2, (b, 3, 1, 1))) % 1.0).astype(np.float32)

    strokes, colours = _strokes(rng, b, 4, xs, ys)
    for i in range(2):  # two strokes behind the shape
        img = np.where(strokes[i][:, None], colours[i], img)

    r = rng.uniform(5, 11, (b, 1, 1)).astype(np.float32)
    cx = rng.uniform(9, 23, (b, 1, 1)).astype(np.float32)
    cy = rng.uniform(9, 23, (b, 1, 1)).astype(np.float32)
    tilt = rng.uniform(-0.35, 0.35, (b, 1, 1)).astype(np.float32)
    dx, dy = xs - cx, ys - cy
    u = np.cos(tilt) * dx + np.sin(tilt) * dy
    v = -np.sin(tilt) * dx + np.cos(tilt) * dy
    mask = np.zeros((b, SIZE, SIZE), dtype=bool)
    for k in range(len(CLASSES)):
        sel = labels == k
        if sel.any():
            mask[sel] = _shape_mask(k, u[sel], v[sel], r[sel])
    img = np.where(mask[:, None], fg, img)

    for i in range(2, 4):  # two strokes in front: partial occlusion
        img = np.where(strokes[i][:, None], colours[i], img)
    sigma = rng.uniform(0.02, 0.08, (b, 1, 1, 1)).astype(np.float32)
    img = img + sigma * rng.standard_normal(img.shape, dtype=np.float32)
    return np.clip(np.rint(img * 255), 0, 255).astype(np.uint8)


def make_shapes(n: int, seed: int = 0, chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """n images and labels: images (n, 3, 32, 32) uint8, labels (n,) int64, classes balanced
    (n // 10 each, the remainder spread over the first classes) in a shuffled order."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % len(CLASSES)).astype(np.int64)
    images = np.empty((n, 3, SIZE, SIZE), dtype=np.uint8)
    for s in range(0, n, chunk):
        images[s:s + chunk] = _draw(rng, labels[s:s + chunk])
    return images, labels


def fit_images(images: np.ndarray, image_shape: tuple[int, ...]) -> np.ndarray:
    """(n, 3, 32, 32) uint8 -> (n, C, H, W) uint8 for a model that takes other images: C = 1
    averages the colour channels into grey, H and W other than 32 resample by nearest pixel
    (so LeNet's (1, 28, 28) trains on the built-in dataset too)."""
    if len(image_shape) != 3 or image_shape[0] not in (1, 3) or min(image_shape[1:]) < 8:
        raise ValueError(f"the built-in dataset makes images of shape (1 or 3, H, W) with H and "
                         f"W at least 8, not {tuple(image_shape)}")
    c, h, w = image_shape
    if c == 1:
        images = np.rint(images.mean(axis=1, keepdims=True)).astype(np.uint8)
    rows = ((np.arange(h) + 0.5) * SIZE / h).astype(np.int64)
    cols = ((np.arange(w) + 0.5) * SIZE / w).astype(np.int64)
    return np.ascontiguousarray(images[:, :, rows][:, :, :, cols])


def load_builtin(n_train: int = 10000, n_val: int = 2000, seed: int = 0,
                 train_transform=None, val_transform=None,
                 image_shape: tuple[int, int, int] = (3, SIZE, SIZE)
                 ) -> tuple[TensorDataset, TensorDataset]:
    """The built-in dataset as (train, val) TensorDatasets; the two sets are drawn from
    different seeds, so no validation image is a training image. image_shape (C, H, W): grey
    (C = 1) and other sizes are made from the 32x32 colour images by `fit_images`."""
    xtr, ytr = make_shapes(n_train, seed=2 * seed)
    xva, yva = make_shapes(n_val, seed=2 * seed + 1)
    if tuple(image_shape) != (3, SIZE, SIZE):
        xtr, xva = fit_images(xtr, image_shape), fit_images(xva, image_shape)
    return (TensorDataset(xtr, ytr, train_transform, classes=CLASSES),
            TensorDataset(xva, yva, val_transform, classes=CLASSES))
