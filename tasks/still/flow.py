"""Step 4a of the method: a smooth, invertible flow from the labels (Halperin et al. 2021, Sec. 4.4).

The labelled field is smoothed by a Gaussian (normalised inside the region),
subsampled to at most ``max_points`` sparse vectors and densified by a
polyharmonic spline with phi(r) = r (SciPy's ``RBFInterpolator(kernel="linear")``).
The backward field interpolates the inverted sparse vectors: the point
x + F1(x) carries -F1(x).  With ``fade_to_border`` anchor points of zero
displacement on the region's border make the motion fade out towards it.
A few fixed-point steps F2(y) <- -F1(y + F2(y)) at the coarse grid's nodes then sharpen the
inverse (``refine_inverse``, our addition).  Fields are evaluated on a coarse grid (every ``grid_step`` pixels) over the
image and a margin around it, then resized bilinearly.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.interpolate import RBFInterpolator
from scipy.ndimage import distance_transform_edt

from schemas.still import FlowParams
from tasks.still.mask import mask_points

#: The spline is evaluated on at most about this many samples along the image's longer side.
COARSE_LONG_SIDE = 128


@dataclass
class SparseFlow:
    points: np.ndarray  # (K, 2) x, y (pixels)
    vectors: np.ndarray  # (K, 2) dx, dy (pixels)
    anchors: np.ndarray  # (A, 2) x, y of zero-displacement anchors


def smoothed_field(labels, vectors, region_mask, sigma, step):
    """Label vectors on every ``step``-th pixel, Gaussian-smoothed inside the region: ((h, w, 2), (h, w) mask)."""
    lab = labels[::step, ::step]
    m = region_mask[::step, ::step] & (lab >= 0)
    field = np.zeros(lab.shape + (2,), np.float32)
    field[m] = vectors[lab[m]]
    if sigma > 0:
        s = sigma / step
        wsum = cv2.GaussianBlur(m.astype(np.float32), (0, 0), s)
        for c in range(2):
            field[..., c] = cv2.GaussianBlur(field[..., c], (0, 0), s) / np.maximum(wsum, 1e-6)
        field[~m] = 0.0
    return field, m


def sparse_vectors(labels, vectors, region_mask, params: FlowParams, step: int = 2, period: float = 0.0) -> SparseFlow:
    """At most ``max_points`` smoothed vectors of one region on a regular grid, and its border anchors.

    The Gaussian's sigma is ``smooth_sigma`` or ``smooth_period_fraction * period``, the larger.
    """
    sigma = max(params.smooth_sigma, params.smooth_period_fraction * period)
    field, m = smoothed_field(labels, vectors, region_mask, sigma, step)
    n = int(m.sum())
    stride = max(1, int(np.ceil(np.sqrt(n / params.max_points))))
    while True:
        sub = np.zeros_like(m)
        sub[stride // 2 :: stride, stride // 2 :: stride] = True
        ys, xs = np.nonzero(m & sub)
        if len(ys) <= params.max_points or stride > max(m.shape):
            break
        stride += 1
    if len(ys) < 3:  # a thin region: take its pixels spread evenly
        ys, xs = np.nonzero(m)
        pick = np.linspace(0, len(ys) - 1, min(len(ys), params.max_points)).astype(int)
        ys, xs = ys[pick], xs[pick]
    points = np.stack([xs * step, ys * step], axis=1).astype(np.float64)
    vec = field[ys, xs].astype(np.float64)
    anchors = np.empty((0, 2))
    if params.fade_to_border:
        anchors = border_anchors(region_mask, params.anchor_spacing)
        # no vector within fade_width of the border: the spline ramps from 0 there to the field inside
        depth = distance_transform_edt(region_mask)[points[:, 1].astype(int), points[:, 0].astype(int)]
        deep = depth >= params.fade_width
        if deep.sum() < 3:
            deep = depth >= np.sort(depth)[-min(3, len(depth))]
        points, vec = points[deep], vec[deep]
    return SparseFlow(points, vec, anchors)


def border_anchors(region_mask, spacing):
    """Points just outside the region's border, about ``spacing`` pixels apart (x, y)."""
    contours, _ = cv2.findContours(region_mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    out = []
    for c in contours:
        c = c.reshape(-1, 2).astype(np.float64)
        k = max(1, int(round(spacing)))
        out.append(c[::k])
    if not out:
        return np.empty((0, 2))
    pts = np.concatenate(out)
    # push each anchor one pixel outwards (away from the region's centre)
    centre = np.argwhere(region_mask).mean(axis=0)[::-1]
    d = pts - centre
    d /= np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-9)
    return pts + d


def _spline(points, values, anchors):
    pts = np.concatenate([points, anchors]) if len(anchors) else points
    vals = np.concatenate([values, np.zeros((len(anchors), 2))]) if len(anchors) else values
    # duplicate sites make the system singular: keep the first of each
    _, first = np.unique(np.round(pts, 3), axis=0, return_index=True)
    first = np.sort(first)
    return RBFInterpolator(pts[first], vals[first], kernel="linear")


def coarse_grid(shape, margin, step):
    """Coarse sample positions (x, y) covering [-margin, size + margin) and the padded full size."""
    h, w = shape
    ph = int(np.ceil((h + 2 * margin) / step)) * step
    pw = int(np.ceil((w + 2 * margin) / step)) * step
    ys = -margin + (np.arange(ph // step) + 0.5) * step - 0.5
    xs = -margin + (np.arange(pw // step) + 0.5) * step - 0.5
    return xs, ys, (ph, pw)


def refine_inverse(fwd, bwd_coarse, xs, ys, margin, iterations):
    """Fixed-point steps F2(y) <- -F1(y + F2(y)) at the coarse grid's nodes (ours, after the paper's sparse
    inversion); ``fwd`` is the dense padded forward field, ``bwd_coarse`` (len(ys), len(xs), 2) the backward
    field at the nodes (x = xs, y = ys in image pixels).  The nodes' values are then resized like the
    forward field, so the dense inverse is exact at the nodes and smooth between them."""
    if iterations <= 0:
        return bwd_coarse
    gx, gy = np.meshgrid(xs, ys)
    bwd = bwd_coarse.reshape(-1, 2).astype(np.float32)
    for _ in range(iterations):
        bwd = -sample(fwd, gx.ravel() + bwd[:, 0], gy.ravel() + bwd[:, 1], margin)
    return bwd.reshape(bwd_coarse.shape)


def dense_fields(sparse: list[SparseFlow], region_masks, shape, margin, step, refine=0):
    """Forward and backward fields (H + 2 margin, W + 2 margin, 2) float32 over the padded image.

    Each pixel takes the fields of the nearest region; ``refine`` fixed-point steps then make the
    backward field a closer inverse of the forward one (:func:`refine_inverse`).
    """
    step = max(step, int(np.ceil(max(shape) / COARSE_LONG_SIDE)))
    xs, ys, (ph, pw) = coarse_grid(shape, margin, step)
    gx, gy = np.meshgrid(xs, ys)
    q = np.stack([gx.ravel(), gy.ravel()], axis=1)
    if len(sparse) > 1:
        owner = nearest_region(region_masks, shape, margin, step, gx.shape)
    else:
        owner = np.zeros(gx.shape, int)
    fwd = np.zeros(gx.shape + (2,), np.float32)
    bwd = np.zeros(gx.shape + (2,), np.float32)
    for r, sp in enumerate(sparse):
        sel = (owner == r).ravel()
        if not sel.any():
            continue
        fwd.reshape(-1, 2)[sel] = _spline(sp.points, sp.vectors, sp.anchors)(q[sel])
        bwd.reshape(-1, 2)[sel] = _spline(sp.points + sp.vectors, -sp.vectors, sp.anchors)(q[sel])
    h, w = shape  # the coarse grid may reach past the padded image at the bottom right: cut it
    fwd = np.ascontiguousarray(cv2.resize(fwd, (pw, ph), interpolation=cv2.INTER_LINEAR)[: h + 2 * margin, : w + 2 * margin])
    bwd = refine_inverse(fwd, bwd, xs, ys, margin, refine)
    bwd = cv2.resize(bwd, (pw, ph), interpolation=cv2.INTER_LINEAR)[: h + 2 * margin, : w + 2 * margin]
    return fwd, np.ascontiguousarray(bwd)


def nearest_region(region_masks, shape, margin, step, grid_shape):
    """Index of the nearest region at every coarse grid position."""
    h, w = shape
    lab = np.zeros((h + 2 * margin, w + 2 * margin), np.int32)
    for r, m in enumerate(region_masks):
        lab[margin : margin + h, margin : margin + w][m] = r + 1
    _, (iy, ix) = distance_transform_edt(lab == 0, return_indices=True)
    owner = lab[iy, ix] - 1
    gy = np.clip((np.arange(grid_shape[0]) + 0.5) * step - 0.5, 0, lab.shape[0] - 1).astype(int)
    gx = np.clip((np.arange(grid_shape[1]) + 0.5) * step - 0.5, 0, lab.shape[1] - 1).astype(int)
    return owner[np.ix_(gy, gx)]


def sample(field, xs, ys, margin):
    """Bilinear samples of a padded field at image positions (x, y)."""
    return remap_points(field, np.asarray(xs) + margin, np.asarray(ys) + margin, cv2.BORDER_REPLICATE)


def remap_points(array, xs, ys, border=cv2.BORDER_REFLECT):
    """Bilinear samples of ``array`` at the points (xs, ys): (N, channels).

    The points are laid out as rows of 1024 (``cv2.remap`` takes maps of fewer than 32767 rows).
    """
    n = len(xs)
    rows = max(1, -(-n // 1024))
    mx = np.zeros(rows * 1024, np.float32)
    my = np.zeros(rows * 1024, np.float32)
    mx[:n], my[:n] = xs, ys
    out = cv2.remap(array, mx.reshape(rows, 1024), my.reshape(rows, 1024), cv2.INTER_LINEAR, borderMode=border)
    channels = 1 if out.ndim == 2 else out.shape[2]
    return out.reshape(rows * 1024, channels)[:n]


def inversion_error(fwd, bwd, mask, margin, max_points=250_000):
    """|F1(x) + F2(x + F1(x))| at the masked pixels (pixels).

    A statistic: large masks are sampled on a regular grid of at most about ``max_points`` pixels.
    """
    ys, xs = mask_points(mask, max_points)
    f1 = fwd[ys + margin, xs + margin]
    f2 = sample(bwd, xs + f1[:, 0], ys + f1[:, 1], margin)
    return np.linalg.norm(f1 + f2, axis=1)
