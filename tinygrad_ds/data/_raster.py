"""The digits dataset's rasteriser: pen strokes (polylines) to anti-aliased grey pixels.

A numba loop (imported only when digits are drawn): each segment touches only the pixels of its
own bounding box, so a 28x28 digit of ~60 short segments costs a few thousand distance
computations instead of 60 x 784. `NUMBA_DISABLE_JIT=1` turns it back into Python.
"""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def draw_strokes(points, pen, half_width, size):
    """points: (N, P, 2) float32 pixel coordinates (x, y); pen: (N, P - 1) bool, True where
    the pen draws from point i to point i + 1; half_width: (N,) float32. Returns (N, size, size)
    float32 ink in [0, 1]: 1 within half_width of a stroke, fading to 0 over one more pixel."""
    n, p = points.shape[0], points.shape[1]
    out = np.zeros((n, size, size), dtype=np.float32)
    for b in range(n):
        hw = half_width[b]
        reach = hw + 1.0
        for s in range(p - 1):
            if not pen[b, s]:
                continue
            ax, ay = points[b, s, 0], points[b, s, 1]
            bx, by = points[b, s + 1, 0], points[b, s + 1, 1]
            dx, dy = bx - ax, by - ay
            ll = dx * dx + dy * dy
            x0 = max(0, int(np.floor(min(ax, bx) - reach)))
            x1 = min(size - 1, int(np.ceil(max(ax, bx) + reach)))
            y0 = max(0, int(np.floor(min(ay, by) - reach)))
            y1 = min(size - 1, int(np.ceil(max(ay, by) + reach)))
            for i in range(y0, y1 + 1):
                py = i + 0.5
                for j in range(x0, x1 + 1):
                    px = j + 0.5
                    t = 0.0
                    if ll > 0:
                        t = ((px - ax) * dx + (py - ay) * dy) / ll
                        t = min(1.0, max(0.0, t))
                    ex, ey = px - (ax + t * dx), py - (ay + t * dy)
                    ink = 1.0 - (np.sqrt(ex * ex + ey * ey) - hw)
                    if ink > out[b, i, j]:
                        out[b, i, j] = min(ink, 1.0)
    return out
