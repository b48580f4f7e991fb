"""Slow, readable reference of ``kernels.splat``: pixel by pixel, every point tested against every pixel.

The kernel loops over points and scatters; this reference loops over pixels and
gathers, straight from the definitions in the kernel's module docstring.
"""

from __future__ import annotations

import math

import numpy as np

NEAR = 1e-6


def project(point, radius, K, pose):
    """(u, v, z, r) of one world point, or None when it is behind the near plane."""
    x = pose[0, 0] * point[0] + pose[0, 1] * point[1] + pose[0, 2] * point[2] + pose[0, 3]
    y = pose[1, 0] * point[0] + pose[1, 1] * point[1] + pose[1, 2] * point[2] + pose[1, 3]
    z = pose[2, 0] * point[0] + pose[2, 1] * point[1] + pose[2, 2] * point[2] + pose[2, 3]
    if not (NEAR < z < math.inf):
        return None
    u = (K[0, 0] * x + K[0, 1] * y) / z + K[0, 2]
    v = K[1, 1] * y / z + K[1, 2]
    return u, v, z, max(K[0, 0], K[1, 1]) * radius / z


def covers(u, v, r, i, j):
    """Does a point projected at (u, v) with pixel radius r cover pixel (i, j)?"""
    nearest = (math.floor(v + 0.5), math.floor(u + 0.5))
    return (j - u) ** 2 + (i - v) ** 2 <= r * r or (i, j) == nearest


def splat(points, colours, radii, K, pose, shape, tolerance):
    """Same outputs as ``kernels.splat.splat_points`` (float64 image)."""
    height, width = shape
    projected = [project(p, rad, K, pose) for p, rad in zip(points, radii, strict=True)]
    channels = colours.shape[1]
    image = np.zeros((height, width, channels))
    depth = np.full((height, width), np.inf)
    weight = np.zeros((height, width))
    for i in range(height):
        for j in range(width):
            hits = [(k, proj) for k, proj in enumerate(projected) if proj is not None and covers(proj[0], proj[1],
                                                                                              proj[3], i, j)]
            if not hits:
                continue
            front = min(proj[2] for _, proj in hits)
            depth[i, j] = front
            band = tolerance * front
            total = 0.0
            colour = np.zeros(channels)
            for k, (u, v, z, r) in hits:
                if z > front + band:
                    continue
                d2 = (j - u) ** 2 + (i - v) ** 2
                w = math.exp(-2.0 * d2 / max(r * r, 0.25)) * (1.0 - (z - front) / band)
                if w <= 0:
                    continue
                total += w
                colour += w * colours[k].astype(np.float64)
            weight[i, j] = total
            if total > 0:
                image[i, j] = colour / total
    return image, depth, weight


def fill_pinholes(image, depth, filled, min_neighbours, tolerance):
    """Same outputs as ``kernels.splat.fill_pinholes``."""
    height, width = filled.shape
    out_image, out_depth, out_filled = image.astype(np.float64).copy(), depth.copy(), filled.copy()
    for i in range(height):
        for j in range(width):
            if filled[i, j]:
                continue
            neighbours = [
                (i + di, j + dj)
                for di in (-1, 0, 1)
                for dj in (-1, 0, 1)
                if (di, dj) != (0, 0) and 0 <= i + di < height and 0 <= j + dj < width and filled[i + di, j + dj]
            ]
            if len(neighbours) < min_neighbours:
                continue
            far = max(float(depth[p]) for p in neighbours)
            background = [p for p in neighbours if float(depth[p]) >= far / (1 + tolerance)]
            out_image[i, j] = np.mean([image[p].astype(np.float64) for p in background], axis=0)
            out_depth[i, j] = far
            out_filled[i, j] = True
    return out_image, out_depth, out_filled
