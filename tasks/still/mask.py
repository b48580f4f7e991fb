"""Step 6: the automatic mask (beyond the paper, which asks the user) and the regions of a mask.

With a period p found along the direction d over the whole image, a pixel is
periodic where its features match those one period away (x +- p d) much
better than those half and a third of a period away (the better side again),
all averaged over a Gaussian window of a quarter period.  The periodic pixels are cleaned by a
morphological opening and closing, holes are filled, and the largest connected
regions are kept; each region then gets its own run of steps 2-4 (the paper's
multiple-mask extension).
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy.ndimage import binary_fill_holes

from schemas.still import MaskParams

#: Shifts (fractions of the period) whose largest feature difference is the score's reference: a pattern
#: that nearly repeats at half its period (a running bond of bricks) is still unlike itself a quarter
#: period away.
REFERENCE_FRACTIONS = (0.25, 1.0 / 3.0, 0.5)
#: A pixel repeats when it matches itself one of these multiples of the period away (perspective
#: makes the period of a facade or a wall change across the picture).
PERIOD_FACTORS = (0.85, 0.92, 1.0, 1.08, 1.15)
#: The periodicity score is computed on the features scaled to at most this longer side (pixels).
WORK_LONG_SIDE = 384


def _shift_error(features, direction, shift, sigma, combine=np.minimum):
    """Smoothed ||F(x) - F(x + s d)||^2 and ||F(x) - F(x - s d)||^2, combined (default: the better side,
    so the first and last units of a region, which repeat on one side only, count as periodic)."""
    h, w, _ = features.shape
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
    sides = []
    for sign in (1.0, -1.0):
        mx = gx + np.float32(sign * shift * direction[0])
        my = gy + np.float32(sign * shift * direction[1])
        moved = cv2.remap(features, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        sides.append(cv2.GaussianBlur(np.sum((features - moved) ** 2, axis=2), (0, 0), sigma))
    return combine(sides[0], sides[1])


def periodicity_score(features, direction, period):
    """1 - err(p) / max(err(p/4), err(p/3), err(p/2)): near 1 where the image repeats with period p along d."""
    d = np.asarray(direction, np.float64)
    d = d / np.linalg.norm(d)
    sigma = max(2.0, period / 4.0)
    # the period may change across the image (perspective): the best of a few periods around it
    at_period = np.minimum.reduce([_shift_error(features, d, period * f, sigma) for f in PERIOD_FACTORS])
    ref = np.maximum.reduce([_shift_error(features, d, period * f, sigma) for f in REFERENCE_FRACTIONS])
    return 1.0 - at_period / np.maximum(ref, 1e-6)


def automatic_mask(features, direction, period, params: MaskParams | None = None):
    """(mask, score): the periodic regions along ``direction`` at ``period``, cleaned."""
    params = params or MaskParams()
    h, w = features.shape[:2]
    factor = min(1.0, WORK_LONG_SIDE / max(h, w))
    if factor < 1.0:  # the score is smooth (a quarter-period window): compute it small, resize it back
        size = (max(2, int(round(w * factor))), max(2, int(round(h * factor))))
        small = np.dstack([cv2.resize(features[..., c : c + 4], size, interpolation=cv2.INTER_AREA).reshape(
            size[1], size[0], -1) for c in range(0, features.shape[2], 4)])
        score = cv2.resize(periodicity_score(small, direction, period * factor), (w, h), interpolation=cv2.INTER_LINEAR)
    else:
        score = periodicity_score(features, direction, period)
    raw = (score > params.threshold).astype(np.uint8)
    k = max(3, int(round(period / 4)) | 1)
    se = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    clean = cv2.morphologyEx(raw, cv2.MORPH_OPEN, se)
    clean = cv2.morphologyEx(clean, cv2.MORPH_CLOSE, se)
    clean = binary_fill_holes(clean > 0)
    regions = split_regions(clean, params.min_region_fraction, params.max_regions)
    mask = np.zeros_like(clean)
    for r in regions:
        mask |= r
    return mask, score


def split_regions(mask, min_fraction=0.0, max_regions=None):
    """Connected regions of ``mask`` (8-connected), the largest first, each at least min_fraction of the image."""
    n, lab, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    areas = stats[1:, cv2.CC_STAT_AREA]
    order = np.argsort(-areas, kind="stable")
    out = []
    for i in order:
        if areas[i] < min_fraction * mask.size:
            break
        out.append(lab == i + 1)
        if max_regions is not None and len(out) >= max_regions:
            break
    return out


def mask_points(mask, max_points):
    """(ys, xs) of the masked pixels, on every k-th row and column so that about ``max_points`` at most remain."""
    stride = max(1, int(np.ceil(np.sqrt(np.count_nonzero(mask) / max_points))))
    ys, xs = np.nonzero(mask[::stride, ::stride])
    return ys * stride, xs * stride
