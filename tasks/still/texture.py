"""Step 4b of the method: texture beyond the mask (Halperin et al. 2021, Sec. 4.4).

Frames sample the image at x - t F(x), which near the mask's border reaches
outside it, where the image does not repeat.  The image is padded by ``margin``
pixels and the band of width ``margin`` around the mask is filled: first by
OpenCV's Telea in-painting, then by the image's own texture copied from inside
the mask along the flow (y takes the colour of y + k F1(y) for the first k in
1, -1, 2, -2, 3, -3 that lands inside the mask), Poisson-blended into the
in-painted band once (``cv2.seamlessClone``).  Inside the mask nothing changes.
In-painting and the (smooth) Poisson correction are computed on the image
scaled to ``work_long_side`` and resized back.
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
    # the band: pixels outside the mask within ``margin`` of it (a distance transform, not a huge dilation)
    band = (cv2.distanceTransform((~pm).astype(np.uint8), cv2.DIST_L2, 5) <= margin) & ~pm
    if not band.any():
        return pim
    factor = max(1, int(np.ceil(max(pim.shape[:2]) / params.work_long_side)))
    base = _at_scale(lambda im, hole: cv2.inpaint(im, hole, params.inpaint_radius, cv2.INPAINT_TELEA), pim, band, factor)
    ys, xs = np.nonzero(band)
    filled_base = pim.copy()
    filled_base[ys, xs] = base[ys, xs]
    base = filled_base
    # texture from inside the mask, one period (or two, three) along the flow
    inner = cv2.erode(pm.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    f = fwd[ys, xs].astype(np.float32)
    src_x = np.full(len(ys), np.nan, np.float32)
    src_y = np.full(len(ys), np.nan, np.float32)
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
    if params.poisson:
        # the Poisson correction is smooth (a membrane): solve it at the working scale, add it at full size
        def correction(im, region):
            small_base = cv2.resize(base, im.shape[1::-1], interpolation=cv2.INTER_AREA) if factor > 1 else base
            return poisson_blend(im, small_base, region > 0).astype(np.float32) - im.astype(np.float32)

        corr = _at_scale(correction, warped, filled, factor, keep_float=True)
        fy, fx = ys[found], xs[found]
        out = warped
        out[fy, fx] = np.clip(np.rint(warped[fy, fx] + corr[fy, fx]), 0, 255).astype(np.uint8)
    else:
        out = warped
    return out  # inside the mask: the image itself (only band pixels were changed)


def _at_scale(fn, image, region, factor, keep_float=False):
    """``fn(image, region)`` on the image downscaled by ``factor``, resized back (the identity scale when 1)."""
    if factor <= 1:
        return fn(image, region.astype(np.uint8))
    h, w = image.shape[:2]
    size = (max(1, w // factor), max(1, h // factor))
    small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    small_region = cv2.resize(region.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST)
    out = fn(small, small_region)
    out = cv2.resize(out, (w, h), interpolation=cv2.INTER_LINEAR)
    return out if keep_float else out.astype(image.dtype)


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
