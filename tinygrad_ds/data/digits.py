"""The built-in handwritten-digits dataset: procedurally drawn glyphs 0-9, 28x28 grey, as MNIST.

Each digit is a few pen strokes (lines, arcs, curves) in a unit box, in one of the ways people
write it (a 7 with or without its bar, an open or closed 4, ...). Every image draws its digit
with its own hand: the strokes bend by a smooth random displacement field (elastic jitter), the
glyph is rotated, sheared, scaled and shifted (an affine distortion), the pen has a random width
and sometimes skips, a stray mark sometimes lands beside the digit, and the ink has a random
strength under Gaussian noise. White ink on black, the digit in about
the centre 20x20 pixels, as MNIST's are. No download: 60,000 training and 10,000 test images are
drawn in a few seconds, and the same seed always gives the same images.

    train, test = load_digits()                   # (60000, 1, 28, 28) and (10000, 1, 28, 28) uint8
    images, labels = make_digits(100, seed=3)
"""
from __future__ import annotations

import functools

import numpy as np

from .dataset import TensorDataset

CLASSES = [str(d) for d in range(10)]
SIZE = 28
MEAN = (0.1652,)  # measured over make_digits(60000, seed=0); about the same for any seed
STD = (0.2981,)


# ---- the glyphs: strokes in a unit box, x to the right, y down, the digit within [-1, 1] ------
def _arc(cx: float, cy: float, rx: float, ry: float, a0: float, a1: float, n: int) -> np.ndarray:
    """n + 1 points on an ellipse from angle a0 to a1 (degrees; 0 is right, 90 is down)."""
    a = np.radians(np.linspace(a0, a1, n + 1))
    return np.stack([cx + rx * np.cos(a), cy + ry * np.sin(a)], axis=1)


def _line(*pts: tuple[float, float], n: int = 4) -> np.ndarray:
    """A polyline through pts, each leg cut into n pieces (so the elastic field can bend it)."""
    out = [np.asarray(pts[0], dtype=float)[None]]
    for p, q in zip(pts[:-1], pts[1:]):
        t = np.linspace(0, 1, n + 1)[1:, None]
        out.append(np.asarray(p) + t * (np.asarray(q) - np.asarray(p)))
    return np.concatenate(out)


def _curve(p0, c, p1, n: int = 8) -> np.ndarray:
    """A quadratic Bezier curve from p0 to p1 pulled towards c."""
    t = np.linspace(0, 1, n + 1)[:, None]
    p0, c, p1 = (np.asarray(v, dtype=float) for v in (p0, c, p1))
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * c + t ** 2 * p1


def _glyphs() -> list[list[list[np.ndarray]]]:
    """Each digit's styles (the ways people write it); each style a list of strokes, each
    stroke an (n, 2) polyline."""
    zero = [_arc(0, 0, 0.5, 0.88, -90, 270, 24)]
    one_flag = [_line((-0.28, -0.55), (0.05, -0.9), (0.05, 0.9), n=5)]
    one_bar = one_flag + [_line((-0.25, 0.9), (0.35, 0.9), n=3)]
    one_plain = [_line((0.0, -0.9), (0.05, 0.9), n=5)]
    two = [np.concatenate([_arc(0, -0.4, 0.48, 0.48, 195, 400, 12),
                           _line((0.37, -0.09), (-0.5, 0.88), (0.55, 0.88), n=4)[1:]])]
    two_curly = [np.concatenate([_arc(0, -0.4, 0.48, 0.48, 195, 400, 12),
                                 _curve((0.37, -0.09), (-0.1, 0.45), (-0.5, 0.88), 6)[1:],
                                 _curve((-0.5, 0.88), (0.0, 0.7), (0.55, 0.88), 5)[1:]])]
    three = [np.concatenate([_arc(0, -0.45, 0.42, 0.43, 200, 450, 12),
                             _arc(0, 0.43, 0.47, 0.45, 270, 520, 12)[1:]])]
    three_flat = [np.concatenate([_line((-0.45, -0.88), (0.45, -0.88), (-0.05, -0.05), n=3),
                                  _arc(0, 0.43, 0.47, 0.45, 270, 520, 12)[1:]])]
    four_open = [_line((0.2, 0.9), (0.2, -0.9), (-0.5, 0.35), (0.58, 0.35), n=4)]
    four_split = [_line((-0.35, -0.9), (-0.45, 0.3), (0.55, 0.3), n=4),
                  _line((0.25, -0.6), (0.25, 0.9), n=5)]
    five = [np.concatenate([_line((0.48, -0.88), (-0.35, -0.88), (-0.38, -0.06), n=3),
                            _arc(0, 0.38, 0.5, 0.5, 240, 510, 14)])]
    five_lifted = [_line((-0.35, -0.88), (-0.38, -0.06), n=3),
                   _arc(0, 0.38, 0.5, 0.5, 240, 510, 14), _line((-0.3, -0.88), (0.5, -0.9))]
    six = [np.concatenate([_curve((0.38, -0.9), (-0.5, -0.6), (-0.45, 0.42), 10),
                           _arc(0, 0.42, 0.45, 0.45, 180, 540, 18)[1:]])]
    seven = [_line((-0.5, -0.88), (0.52, -0.88), (-0.08, 0.9), n=5)]
    seven_bar = seven + [_line((-0.2, 0.02), (0.4, 0.02), n=3)]
    seven_curved = [np.concatenate([_line((-0.5, -0.88), (0.52, -0.88), n=4),
                                    _curve((0.52, -0.88), (0.0, -0.1), (0.0, 0.9), 8)[1:]])]
    eight = [_arc(0, -0.47, 0.38, 0.4, 90, 450, 16), _arc(0, 0.42, 0.46, 0.46, -90, 270, 18)]
    nine = [np.concatenate([_arc(0, -0.4, 0.44, 0.46, 0, 360, 18),
                            _curve((0.44, -0.4), (0.45, 0.35), (0.08, 0.9), 8)[1:]])]
    nine_straight = [np.concatenate([_arc(0, -0.4, 0.44, 0.46, 0, 360, 18),
                                     _line((0.44, -0.4), (0.38, 0.9), n=5)[1:]])]
    return [[zero], [one_flag, one_bar, one_plain], [two, two_curly], [three, three_flat],
            [four_open, four_split], [five, five_lifted], [six],
            [seven, seven_bar, seven_curved], [eight], [nine, nine_straight]]


def _pack(strokes: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """All strokes' points (P, 2) and pen (P - 1,): False between the end of one stroke and the
    start of the next."""
    pts = np.concatenate(strokes)
    pen = np.ones(len(pts) - 1, dtype=bool)
    ends = np.cumsum([len(s) for s in strokes])[:-1]
    pen[ends - 1] = False
    return pts.astype(np.float32), pen


@functools.cache
def _packed() -> list[list[tuple[np.ndarray, np.ndarray]]]:
    """Every digit's styles, packed; built on first use (not at `import tinygrad_ds`)."""
    return [[_pack(style) for style in styles] for styles in _glyphs()]


# ---- one hand per image --------------------------------------------------------------------------
def _draw(rng: np.random.Generator, digit: int, b: int) -> np.ndarray:
    """b images of one digit: (b, 28, 28) float32 in [0, 1]."""
    styles = _packed()[digit]
    pick = rng.integers(0, len(styles), b)
    out = np.empty((b, SIZE, SIZE), dtype=np.float32)
    for k, (pts, pen) in enumerate(styles):
        sel = np.flatnonzero(pick == k)
        if len(sel):
            out[sel] = _draw_style(rng, pts, pen, len(sel))
    return out


def _draw_style(rng: np.random.Generator, pts: np.ndarray, pen: np.ndarray, b: int
                ) -> np.ndarray:
    from ._raster import draw_strokes

    p = pts[None].repeat(b, axis=0)  # (b, P, 2)
    # elastic jitter: a smooth random displacement field, two sine waves per image
    for _ in range(2):
        freq = rng.normal(0, 1.8, (b, 1, 2)).astype(np.float32)
        phase = rng.uniform(0, 2 * np.pi, (b, 1, 1)).astype(np.float32)
        amp = rng.uniform(-0.13, 0.13, (b, 1, 2)).astype(np.float32)
        p = p + amp * np.sin((p * freq).sum(axis=2, keepdims=True) + phase)
    # affine distortion: rotation, shear, scale; then shift within the 28x28 frame
    rot = rng.uniform(-0.3, 0.3, b)
    shear = rng.uniform(-0.35, 0.35, b)
    sx, sy = rng.uniform(0.75, 1.15, b), rng.uniform(0.85, 1.1, b)
    c, s = np.cos(rot), np.sin(rot)
    a = np.stack([np.stack([c * sx, (c * shear - s) * sy], 1),
                  np.stack([s * sx, (s * shear + c) * sy], 1)], 1)  # (b, 2, 2): rot @ shear @ scale
    shift = rng.uniform(-1.8, 1.8, (b, 1, 2))
    p = SIZE / 2 + 9.5 * np.einsum("bij,bpj->bpi", a, p) + shift
    pens = np.repeat(pen[None], b, axis=0)  # (b, P - 1)
    # a pen that skips: in a quarter of the images, one short gap in the strokes
    gap = np.flatnonzero(rng.random(b) < 0.25)
    start = rng.integers(0, len(pen), len(gap))
    pens[gap, start] = False
    pens[gap, np.minimum(start + 1, len(pen) - 1)] = False
    # a stray mark: in a fifth of the images, a short stroke near the edge of the frame
    angle = rng.uniform(0, 2 * np.pi, (b, 1))
    x0 = (SIZE / 2 + rng.uniform(10, 12.5, (b, 1, 1)) * np.stack([np.cos(angle), np.sin(angle)],
                                                               axis=2))
    step = rng.normal(0, 1.5, (b, 2, 2)).cumsum(axis=1)
    p = np.concatenate([p, x0, x0 + step], axis=1)
    stray = rng.random(b) < 0.2
    pens = np.concatenate([pens, np.zeros((b, 1), bool), np.repeat(stray[:, None], 2, 1)], 1)
    half_width = rng.uniform(0.7, 1.9, b).astype(np.float32)
    ink = draw_strokes(np.ascontiguousarray(p, dtype=np.float32), pens, half_width, SIZE)
    strength = rng.uniform(0.7, 1.0, (b, 1, 1)).astype(np.float32)
    sigma = rng.uniform(0.0, 0.12, (b, 1, 1)).astype(np.float32)
    img = ink * strength + sigma * rng.standard_normal(ink.shape, dtype=np.float32)
    return np.clip(img, 0, 1)


def make_digits(n: int, seed: int = 0, chunk: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """n images and labels: images (n, 1, 28, 28) uint8, labels (n,) int64, each digit
    n // 10 times (the remainder spread over the first digits) in a shuffled order."""
    if n < 0:
        raise ValueError(f"make_digits: n must be >= 0, got {n}")
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % 10).astype(np.int64)
    images = np.empty((n, 1, SIZE, SIZE), dtype=np.uint8)
    for s in range(0, n, chunk):
        lab = labels[s:s + chunk]
        block = np.empty((len(lab), SIZE, SIZE), dtype=np.float32)
        for d in range(10):
            sel = np.flatnonzero(lab == d)
            if len(sel):
                block[sel] = _draw(rng, d, len(sel))
        images[s:s + chunk, 0] = np.rint(block * 255).astype(np.uint8)
    return images, labels


def load_digits(n_train: int = 60000, n_val: int = 10000, seed: int = 0,
                train_transform=None, val_transform=None) -> tuple[TensorDataset, TensorDataset]:
    """The digits as (train, validation) TensorDatasets of (1, 28, 28) images; the two sets
    come from different random streams, so no validation image is a training image."""
    xtr, ytr = make_digits(n_train, seed=2 * seed)
    xva, yva = make_digits(n_val, seed=2 * seed + 1)
    return (TensorDataset(xtr, ytr, train_transform, classes=CLASSES),
            TensorDataset(xva, yva, val_transform, classes=CLASSES))
