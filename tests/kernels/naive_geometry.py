"""Slow, readable references for the moving-camera geometry kernels.

Written pixel by pixel, straight from the definitions in the kernels'
docstrings, to check ``kernels.plane_sweep`` and ``kernels.warp`` on tiny inputs.
"""

from __future__ import annotations

import math

import numpy as np


def bilinear(image, x, y):
    """Bilinear sample of a 2-D (or H, W, C) image at (x, y); caller checks bounds."""
    h, w = image.shape[:2]
    x0, y0 = int(math.floor(x)), int(math.floor(y))
    x1, y1 = min(x0 + 1, w - 1), min(y0 + 1, h - 1)
    fx, fy = x - x0, y - y0
    img = image.astype(np.float64)
    return (
        (1 - fy) * ((1 - fx) * img[y0, x0] + fx * img[y0, x1])
        + fy * ((1 - fx) * img[y1, x0] + fx * img[y1, x1])
    )


def project_through_plane(K, pose, inverse_depth, x, y):
    """Neighbour pixel of reference pixel (x, y) on the plane z = 1 / inverse_depth.

    Returns (u, v, z_nbr); goes through 3-D explicitly instead of a homography.
    """
    depth = 1.0 / inverse_depth
    point_ref = depth * (np.linalg.inv(K) @ np.array([x, y, 1.0]))
    point_nbr = pose[:, :3] @ point_ref + pose[:, 3]
    if point_nbr[2] <= 0:
        return math.nan, math.nan, point_nbr[2]
    pix = K @ (point_nbr / point_nbr[2])
    return pix[0], pix[1], point_nbr[2]


def ncc_cost(ref_patch, nbr_patch, truncation, min_variance=1e-6):
    """min(1 - NCC, truncation); truncation for flat patches."""
    a = ref_patch - ref_patch.mean()
    b = nbr_patch - nbr_patch.mean()
    if (a**2).mean() <= min_variance or (b**2).mean() <= min_variance:
        return truncation
    ncc = (a * b).sum() / math.sqrt((a**2).sum() * (b**2).sum())
    return min(max(1.0 - ncc, 0.0), truncation)


def plane_sweep_cost(reference, neighbours, K, poses, inverse_depths, patch_size=5, truncation=0.3):
    """Reference for ``kernels.plane_sweep.plane_sweep_cost``."""
    h, w = reference.shape
    radius = patch_size // 2
    n = len(neighbours)
    keep = math.ceil(n / 2)
    out = np.zeros((h, w, len(inverse_depths)))
    for d, inv in enumerate(inverse_depths):
        for i in range(h):
            for j in range(w):
                costs = []
                for nbr, pose in zip(neighbours, poses, strict=True):
                    ref_vals, nbr_vals, ok = [], [], True
                    for ii in range(i - radius, i + radius + 1):
                        for jj in range(j - radius, j + radius + 1):
                            if not (0 <= ii < h and 0 <= jj < w):
                                continue  # window clipped to the reference image
                            u, v, _ = project_through_plane(K, pose, inv, jj, ii)
                            if not (0 <= u <= w - 1 and 0 <= v <= h - 1):
                                ok = False
                                continue
                            ref_vals.append(float(reference[ii, jj]))
                            nbr_vals.append(bilinear(nbr, u, v))
                    if ok:
                        costs.append(ncc_cost(np.array(ref_vals), np.array(nbr_vals), truncation))
                    else:
                        costs.append(truncation)
                out[i, j, d] = sum(sorted(costs)[:keep])
    return out.astype(np.float32)


def project_depth(depth, K, pose):
    """(u, v, z) in the neighbour of every reference pixel, via explicit 3-D points."""
    h, w = depth.shape
    u = np.full((h, w), np.nan)
    v = np.full((h, w), np.nan)
    z = np.full((h, w), np.nan)
    k_inv = np.linalg.inv(K)
    for i in range(h):
        for j in range(w):
            d = float(depth[i, j])
            if not (d > 0 and math.isfinite(d)):
                continue
            point = pose[:, :3] @ (d * (k_inv @ np.array([j, i, 1.0]))) + pose[:, 3]
            z[i, j] = point[2]
            if point[2] > 0:
                u[i, j] = K[0] @ point / point[2]
                v[i, j] = K[1] @ point / point[2]
    return u, v, z


def zbuffer(depth, K, pose, shape):
    """Reference for ``kernels.warp.reference_zbuffer`` (2 x 2 splat)."""
    hn, wn = shape
    u, v, z = project_depth(depth, K, pose)
    buf = np.full((hn, wn), np.inf)
    for i in range(depth.shape[0]):
        for j in range(depth.shape[1]):
            if not (z[i, j] > 0) or math.isnan(u[i, j]):
                continue
            x0, y0 = math.floor(u[i, j]), math.floor(v[i, j])
            for yy in (y0, y0 + 1):
                for xx in (x0, x0 + 1):
                    if 0 <= yy < hn and 0 <= xx < wn:
                        buf[yy, xx] = min(buf[yy, xx], z[i, j])
    return buf


def warp(neighbour, depth, K, pose, tolerance=0.03):
    """Reference for ``kernels.warp.warp_to_reference``."""
    hn, wn = neighbour.shape[:2]
    buf = zbuffer(depth, K, pose, (hn, wn))
    u, v, z = project_depth(depth, K, pose)
    h, w = depth.shape
    warped = np.zeros((h, w, neighbour.shape[2]), np.uint8)
    visible = np.zeros((h, w), bool)
    for i in range(h):
        for j in range(w):
            x, y = u[i, j], v[i, j]
            if not (z[i, j] > 0) or math.isnan(x) or not (0 <= x <= wn - 1 and 0 <= y <= hn - 1):
                continue
            nearest = buf[math.floor(y + 0.5), math.floor(x + 0.5)]
            if z[i, j] > nearest * (1 + tolerance):
                continue
            visible[i, j] = True
            colour = bilinear(neighbour, x, y)
            warped[i, j] = np.clip(np.floor(colour + 0.5), 0, 255).astype(np.uint8)
    return warped, visible
