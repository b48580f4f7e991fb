"""Step 4b of the method: texture beyond the mask (Halperin et al. 2021, Sec. 4.4).

Frames sample the image at x - t F(x), which near the mask's border reaches
outside it, where the image does not repeat.  The image is padded by ``margin``
pixels and the band of width ``margin`` around the mask is filled: first by
OpenCV's Telea in-painting, then by the image's own texture copied from inside
the mask along the flow (y takes the colour of y + k F1(y) for the first k in
1, -1, 2, -2, 3, -3 that lands inside the mask), Poisson-blended into the
in-painted band once (``cv2.seamlessClone``).  Inside the mask nothing changes.
"""

from __future__ import annotations

import cv2
import numpy as np

from schemas.still import TextureParams
from tasks.still.flow import remap_points

_STEPS = (1, -1, 2, -2, 3, -3)


def padded(image, margin):
    return cv2.copyMakeBorder(image, margin, margin, margin, margin, cv2.BORDER_REFLECT)


def extend_texture(image, mask, fwd, margin, params: TextureParams | None = None):
    """The padded image (H + 2 margin, W + 2 margin, 3) uint8 with the band around the mask filled.

    Parameters
    ----------
    image : (H, W, 3) uint8
    mask : (H, W) bool, the union of the regions
    fwd : (H + 2 margin, W + 2 margin, 2) float32 forward field over the padded image (pixels)
    margin : int
    """
    params = params or TextureParams()
    pim = padded(image, margin)
    pm = np.zeros(pim.shape[:2], bool)
    pm[margin : margin + mask.shape[0], margin : margin + mask.shape[1]] = mask
    k = 2 * margin + 1
    band = cv2.dilate(pm.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))) > 0
    band &= ~pm
    if not band.any():
        return pim
    base = cv2.inpaint(pim, band.astype(np.uint8), params.inpaint_radius, cv2.INPAINT_TELEA)
    # texture from inside the mask, one period (or two, three) along the flow
    inner = cv2.erode(pm.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    ys, xs = np.nonzero(band)
    f = fwd[ys, xs].astype(np.float64)
    src_x = np.full(len(ys), np.nan)
    src_y = np.full(len(ys), np.nan)
    h, w = pm.shape
    for kk in _STEPS:
        todo = np.isnan(src_x)
        if not todo.any():
            break
        cx = xs[todo] + kk * f[todo, 0]
        cy = ys[todo] + kk * f[todo, 1]
        ix = np.clip(np.rint(cx).astype(int), 0, w - 1)
        iy = np.clip(np.rint(cy).astype(int), 0, h - 1)
        ok = inner[iy, ix] & (cx >= 0) & (cy >= 0) & (cx <= w - 1) & (cy <= h - 1)
        idx = np.nonzero(todo)[0][ok]
        src_x[idx], src_y[idx] = cx[ok], cy[ok]
    found = ~np.isnan(src_x)
    if not found.any():
        return base
    vals = remap_points(pim, src_x[found], src_y[found])
    warped = base.copy()
    warped[ys[found], xs[found]] = vals
    filled = np.zeros_like(pm)
    filled[ys[found], xs[found]] = True
    out = poisson_blend(warped, base, filled) if params.poisson else warped
    out[pm] = pim[pm]
    return out


def poisson_blend(src, dst, region):
    """``src`` blended into ``dst`` over ``region`` by OpenCV's seamless cloning (same placement)."""
    pad = 2
    s = cv2.copyMakeBorder(src, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    d = cv2.copyMakeBorder(dst, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    m = np.zeros(s.shape[:2], np.uint8)
    m[pad:-pad, pad:-pad][region] = 255
    x, y, w, h = cv2.boundingRect(m)
    centre = (x + w // 2, y + h // 2)
    out = cv2.seamlessClone(s, d, m, centre, cv2.NORMAL_CLONE)
    out = out[pad:-pad, pad:-pad]
    res = dst.copy()
    res[region] = out[region]
    return res
