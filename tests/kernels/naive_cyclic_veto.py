"""Slow, readable reference of :mod:`kernels.cyclic_veto`."""

from __future__ import annotations

import math

import numpy as np


def naive_bilinear(img, y, x):
    """``img`` at (y, x), bilinear, coordinates clamped to the image."""
    h, w = img.shape
    y = min(max(y, 0.0), h - 1.0)
    x = min(max(x, 0.0), w - 1.0)
    y0, x0 = math.floor(y), math.floor(x)
    y1, x1 = min(y0 + 1, h - 1), min(x0 + 1, w - 1)
    fy, fx = y - y0, x - x0
    return (
        img[y0, x0] * (1 - fy) * (1 - fx)
        + img[y0, x1] * (1 - fy) * fx
        + img[y1, x0] * fy * (1 - fx)
        + img[y1, x1] * fy * fx
    )


def naive_motion_compensated_change(a, b, flow, labels, valid, n_labels):
    static = [0.0] * n_labels
    compensated = [0.0] * n_labels
    h, w = a.shape
    for y in range(h):
        for x in range(w):
            k = int(labels[y, x])
            if k == 0 or not valid[y, x]:
                continue
            static[k - 1] += abs(float(b[y, x]) - float(a[y, x]))
            moved = naive_bilinear(a.astype(float), y + float(flow[y, x, 1]), x + float(flow[y, x, 0]))
            compensated[k - 1] += abs(float(b[y, x]) - moved)
    return np.array(static), np.array(compensated)
