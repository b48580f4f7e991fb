"""Z-buffered point splatting with a soft depth test, and pin-hole filling.

A coloured point cloud is drawn into a pinhole camera.  Every point covers a
disc whose radius in pixels comes from its depth: a point carries a world
radius (the footprint of the pixel it was lifted from, times a scale), so it
shrinks as it moves away and grows as the camera comes closer, and a surface
stays closed under magnification.  Visibility is a soft z-buffer (two passes):

1. every point writes its camera depth ``z`` into the pixels of its disc,
   keeping the minimum ``z_min`` per pixel;
2. every point whose depth at a covered pixel passes the soft test
   ``z <= z_min (1 + tolerance)`` adds its colour there with the weight
   ``w = g(d) (1 - (z - z_min) / (tolerance z_min))``, where ``d`` is the
   distance from the pixel centre to the projected point, ``g(d) =
   exp(-2 d^2 / r^2)`` the footprint falloff and the second factor favours the
   front of the band (front-to-back blending without sorting: nearer samples
   of the same surface weigh more, farther surfaces get nothing).

The pixel's colour is the weighted mean.  A pixel no disc reached is empty;
:func:`fill_pinholes` fills an empty pixel surrounded by enough filled ones
from its farthest-surface neighbours (a crack between splats, or the
one-pixel disocclusion at a depth edge, shows the background).

Coverage rule (also what the reference implementation follows): a point with
projection ``(u, v)`` and pixel radius ``r`` covers pixel ``(i, j)`` when
``(j - u)^2 + (i - v)^2 <= r^2``, and always covers its nearest pixel
``(floor(v + 0.5), floor(u + 0.5))`` so that no point is lost between pixel
centres.  Points with ``z <= near`` or non-finite coordinates are skipped.

Notes
-----
Soft z-buffering of splats follows surface splatting (Zwicker, Pfister, van
Baar and Gross, "Surface Splatting", SIGGRAPH 2001, Sec. 5: a depth
threshold decides whether a splat belongs to the visible surface and is
accumulated or discarded).  Li et al. ("3D Cinemagraphy from a Single Image",
CVPR 2023) render their animated point clouds the same way.
"""

from __future__ import annotations

import numpy as np

from kernels._jit import jit, jit_with

__all__ = ["splat_points", "fill_pinholes", "NEAR"]

#: Points nearer than this to the camera plane (world units) are skipped.
NEAR = 1e-6


def _check_camera(K, cam_from_world):
    K = np.asarray(K, np.float64)
    if K.shape != (3, 3) or K[2, 2] != 1 or K[0, 0] <= 0 or K[1, 1] <= 0:
        raise ValueError("K must be a (3, 3) intrinsics matrix with positive focal lengths and K[2, 2] == 1")
    pose = np.asarray(cam_from_world, np.float64)
    if pose.shape != (3, 4) or not np.all(np.isfinite(pose)):
        raise ValueError(f"cam_from_world must be a finite (3, 4) matrix, got shape {pose.shape}")
    return np.ascontiguousarray(K), np.ascontiguousarray(pose)


def splat_points(
    points: np.ndarray,
    colours: np.ndarray,
    radii: np.ndarray,
    K: np.ndarray,
    cam_from_world: np.ndarray,
    shape: tuple[int, int],
    *,
    depth_tolerance: float = 0.03,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw coloured points into a camera with a soft z-buffer.

    Parameters
    ----------
    points : ndarray, shape (N, 3), float
        World coordinates.
    colours : ndarray, shape (N, C), uint8 or float
        Colour of each point (any number of channels C >= 1).
    radii : ndarray, shape (N,), float
        World radius of each point's disc; its pixel radius in the camera is
        ``max(fx, fy) * radius / z``.
    K : ndarray, shape (3, 3)
        Intrinsics of the camera (pixel centres at integer coordinates).
    cam_from_world : ndarray, shape (3, 4)
        ``X_cam = R X_world + t``.
    shape : tuple of int
        ``(H, W)`` of the image.
    depth_tolerance : float, default 0.03
        Relative width of the soft depth test (see the module docstring).

    Returns
    -------
    image : ndarray, shape (H, W, C), float32
        Weighted mean colour; 0 where empty.
    depth : ndarray, shape (H, W), float32
        Nearest camera depth ``z_min`` per pixel, ``inf`` where empty.
    weight : ndarray, shape (H, W), float32
        Sum of the blending weights; 0 exactly where empty.

    Examples
    --------
    >>> K = np.array([[2.0, 0, 1.0], [0, 2.0, 1.0], [0, 0, 1]])
    >>> pose = np.hstack([np.eye(3), np.zeros((3, 1))])
    >>> pts = np.array([[0.0, 0.0, 1.0], [0.0, 0.0, 2.0]])      # both project on pixel (1, 1)
    >>> img, z, w = splat_points(pts, np.array([[10], [99]], np.uint8), np.full(2, 0.1), K, pose, (3, 3))
    >>> float(img[1, 1, 0]), float(z[1, 1])                       # the nearer point wins
    (10.0, 1.0)
    """
    points = np.asarray(points, np.float64)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"points must be (N, 3), got shape {points.shape}")
    colours = np.asarray(colours)
    if colours.ndim != 2 or colours.shape[0] != points.shape[0] or colours.shape[1] < 1:
        raise ValueError(f"colours must be (N, C) with N = {points.shape[0]}, got shape {colours.shape}")
    radii = np.asarray(radii, np.float64)
    if radii.shape != (points.shape[0],):
        raise ValueError(f"radii must be (N,) with N = {points.shape[0]}, got shape {radii.shape}")
    if np.any(radii < 0):
        raise ValueError("radii must be non-negative")
    K, pose = _check_camera(K, cam_from_world)
    height, width = (int(v) for v in shape)
    if height < 1 or width < 1:
        raise ValueError(f"shape must be positive, got {shape}")
    if not depth_tolerance > 0:
        raise ValueError(f"depth_tolerance must be positive, got {depth_tolerance}")
    u, v, z, r = _project_points(np.ascontiguousarray(points), np.ascontiguousarray(radii), K, pose)
    zbuf = _zbuffer(u, v, z, r, height, width)
    acc = np.zeros((height, width, colours.shape[1]))
    wsum = np.zeros((height, width))
    _blend(u, v, z, r, np.ascontiguousarray(colours.astype(np.float64)), zbuf, float(depth_tolerance), acc, wsum)
    image = np.zeros_like(acc, dtype=np.float32)
    filled = wsum > 0
    image[filled] = (acc[filled] / wsum[filled, None]).astype(np.float32)
    return image, zbuf.astype(np.float32), wsum.astype(np.float32)


def fill_pinholes(
    image: np.ndarray,
    depth: np.ndarray,
    filled: np.ndarray,
    *,
    min_neighbours: int = 4,
    depth_tolerance: float = 0.03,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fill empty pixels that most of their 8 neighbours surround (one pass).

    Parameters
    ----------
    image : ndarray, shape (H, W, C), float32
    depth : ndarray, shape (H, W), float32
        ``inf`` (or anything) where empty.
    filled : ndarray, shape (H, W), bool
        Pixels that hold a colour.
    min_neighbours : int, default 4
        An empty pixel with at least this many filled 8-neighbours (inside the
        image) is filled.
    depth_tolerance : float, default 0.03
        The fill is the mean of the filled neighbours whose depth is at least
        ``d_max / (1 + depth_tolerance)``, with ``d_max`` the farthest filled
        neighbour: the background side of a crack.

    Returns
    -------
    image, depth, filled : ndarrays like the inputs (new arrays)
        Every decision reads the input arrays, so the result does not depend
        on the order in which pixels are visited.

    Examples
    --------
    >>> img = np.ones((3, 3, 1), np.float32); img[1, 1] = 0
    >>> ok = np.ones((3, 3), bool); ok[1, 1] = False
    >>> out, _, now = fill_pinholes(img, np.ones((3, 3), np.float32), ok)
    >>> bool(now[1, 1]), float(out[1, 1, 0])
    (True, 1.0)
    """
    image = np.asarray(image, np.float32)
    depth = np.asarray(depth, np.float32)
    filled = np.asarray(filled, bool)
    if image.ndim != 3 or depth.shape != image.shape[:2] or filled.shape != image.shape[:2]:
        raise ValueError(
            f"image must be (H, W, C) with depth and filled (H, W); got {image.shape}, {depth.shape}, {filled.shape}"
        )
    if not 1 <= min_neighbours <= 8:
        raise ValueError(f"min_neighbours must be in [1, 8], got {min_neighbours}")
    if not depth_tolerance >= 0:
        raise ValueError(f"depth_tolerance must be non-negative, got {depth_tolerance}")
    out_image = image.copy()
    out_depth = depth.copy()
    out_filled = filled.copy()
    _fill(np.ascontiguousarray(image), np.ascontiguousarray(depth), np.ascontiguousarray(filled),
          int(min_neighbours), float(depth_tolerance), out_image, out_depth, out_filled)
    return out_image, out_depth, out_filled


@jit
def _project_points(points, radii, K, pose):
    n = points.shape[0]
    u = np.empty(n)
    v = np.empty(n)
    z = np.empty(n)
    r = np.empty(n)
    focal = max(K[0, 0], K[1, 1])
    for p in range(n):
        x = pose[0, 0] * points[p, 0] + pose[0, 1] * points[p, 1] + pose[0, 2] * points[p, 2] + pose[0, 3]
        y = pose[1, 0] * points[p, 0] + pose[1, 1] * points[p, 1] + pose[1, 2] * points[p, 2] + pose[1, 3]
        zz = pose[2, 0] * points[p, 0] + pose[2, 1] * points[p, 1] + pose[2, 2] * points[p, 2] + pose[2, 3]
        if not (zz > NEAR and zz < np.inf):
            z[p] = np.nan
            u[p] = np.nan
            v[p] = np.nan
            r[p] = 0.0
            continue
        z[p] = zz
        u[p] = (K[0, 0] * x + K[0, 1] * y) / zz + K[0, 2]
        v[p] = K[1, 1] * y / zz + K[1, 2]
        r[p] = focal * radii[p] / zz
    return u, v, z, r


@jit_with(inline="always")
def _footprint(u, v, z, r, height, width):
    """Pixel box (i0, i1, j0, j1), inclusive, of a point's disc and its nearest pixel.

    A point behind the camera, not finite, or whose disc misses the image gets an empty box
    (i0 > i1), so callers loop over nothing.
    """
    if not (z > 0.0) or not (np.isfinite(u) and np.isfinite(v)):
        return 0, -1, 0, -1, 0, 0
    if u < -r - 1.0 or u > width + r or v < -r - 1.0 or v > height + r:
        return 0, -1, 0, -1, 0, 0
    ic = int(np.floor(v + 0.5))
    jc = int(np.floor(u + 0.5))
    i0 = min(ic, int(np.ceil(v - r)))
    i1 = max(ic, int(np.floor(v + r)))
    j0 = min(jc, int(np.ceil(u - r)))
    j1 = max(jc, int(np.floor(u + r)))
    return max(i0, 0), min(i1, height - 1), max(j0, 0), min(j1, width - 1), ic, jc


@jit_with(inline="always")
def _covered(i, j, u, v, r, ic, jc):
    """Squared distance of pixel (i, j) to the point when the disc covers it, else -1."""
    d2 = (j - u) ** 2 + (i - v) ** 2
    if d2 <= r * r or (i == ic and j == jc):
        return d2
    return -1.0


@jit
def _zbuffer(u, v, z, r, height, width):
    zbuf = np.full((height, width), np.inf)
    for p in range(u.shape[0]):
        up, vp, zz, rr = u[p], v[p], z[p], r[p]
        i0, i1, j0, j1, ic, jc = _footprint(up, vp, zz, rr, height, width)
        for i in range(i0, i1 + 1):
            for j in range(j0, j1 + 1):
                if _covered(i, j, up, vp, rr, ic, jc) >= 0.0 and zz < zbuf[i, j]:
                    zbuf[i, j] = zz
    return zbuf


@jit
def _blend(u, v, z, r, colours, zbuf, tolerance, acc, wsum):
    height, width = zbuf.shape
    channels = colours.shape[1]
    for p in range(u.shape[0]):
        up, vp, zz, rr = u[p], v[p], z[p], r[p]
        i0, i1, j0, j1, ic, jc = _footprint(up, vp, zz, rr, height, width)
        for i in range(i0, i1 + 1):
            for j in range(j0, j1 + 1):
                d2 = _covered(i, j, up, vp, rr, ic, jc)
                if d2 < 0.0:
                    continue
                front = zbuf[i, j]
                band = tolerance * front
                if zz > front + band:
                    continue
                weight = np.exp(-2.0 * d2 / max(rr * rr, 0.25)) * (1.0 - (zz - front) / band)
                if weight <= 0.0:
                    continue
                wsum[i, j] += weight
                for c in range(channels):
                    acc[i, j, c] += weight * colours[p, c]


@jit
def _fill(image, depth, filled, min_neighbours, tolerance, out_image, out_depth, out_filled):
    height, width, channels = image.shape
    for i in range(height):
        for j in range(width):
            if filled[i, j]:
                continue
            count = 0
            far = -np.inf
            for di in range(-1, 2):
                for dj in range(-1, 2):
                    ii = i + di
                    jj = j + dj
                    if (di == 0 and dj == 0) or ii < 0 or ii >= height or jj < 0 or jj >= width:
                        continue
                    if filled[ii, jj]:
                        count += 1
                        if depth[ii, jj] > far:
                            far = depth[ii, jj]
            if count < min_neighbours:
                continue
            limit = far / (1.0 + tolerance)
            n = 0
            sums = np.zeros(channels)
            for di in range(-1, 2):
                for dj in range(-1, 2):
                    ii = i + di
                    jj = j + dj
                    if (di == 0 and dj == 0) or ii < 0 or ii >= height or jj < 0 or jj >= width:
                        continue
                    if filled[ii, jj] and depth[ii, jj] >= limit:
                        n += 1
                        for c in range(channels):
                            sums[c] += image[ii, jj, c]
            for c in range(channels):
                out_image[i, j, c] = np.float32(sums[c] / n)
            out_depth[i, j] = far
            out_filled[i, j] = True
