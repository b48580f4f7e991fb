"""Backward warp of a neighbour frame into the reference view, with z-buffer visibility.

Each reference pixel is lifted to 3D with the reference depth map, moved into
the neighbour camera and projected; the neighbour's colour there (bilinear) is
the warped colour.  The neighbour's own depth is unknown, so visibility is
decided by the standard z-buffer test on the reference geometry: all
reference points are splatted into the neighbour view keeping the nearest
depth per neighbour pixel, and a reference pixel is visible in the neighbour
only if it lands inside the neighbour image and its depth there is within a
relative tolerance of that z-buffer minimum.  Pixels that are not visible get
colour 0 -- never made-up colour.
"""

from __future__ import annotations

import numpy as np

from kernels._jit import jit

__all__ = ["reference_zbuffer", "warp_to_reference"]


def _check_geometry(depth, K, neighbour_from_reference):
    depth = np.asarray(depth)
    if depth.ndim != 2:
        raise ValueError(f"depth must be (H, W), got shape {depth.shape}")
    if depth.dtype != np.float32:
        raise TypeError(f"depth must be float32, got {depth.dtype}")
    K = np.asarray(K, np.float64)
    if K.shape != (3, 3) or K[2, 2] != 1 or K[0, 0] <= 0 or K[1, 1] <= 0:
        raise ValueError("K must be a (3, 3) intrinsics matrix with positive focal lengths and K[2, 2] == 1")
    pose = np.asarray(neighbour_from_reference, np.float64)
    if pose.shape != (3, 4) or not np.all(np.isfinite(pose)):
        raise ValueError(f"neighbour_from_reference must be a finite (3, 4) matrix, got shape {pose.shape}")
    return np.ascontiguousarray(depth), K, pose


def reference_zbuffer(
    depth: np.ndarray, K: np.ndarray, neighbour_from_reference: np.ndarray, shape: tuple[int, int]
) -> np.ndarray:
    """Z-buffer of the reference points seen from a neighbour camera.

    Parameters
    ----------
    depth : ndarray, shape (H, W), float32
        Reference z-depth, world units; pixels with non-finite or non-positive
        depth are skipped.
    K : ndarray, shape (3, 3)
        Shared intrinsics (pixel centres at integer coordinates).
    neighbour_from_reference : ndarray, shape (3, 4)
        ``X_nbr = R X_ref + t``.
    shape : tuple of int
        ``(Hn, Wn)`` of the neighbour image.

    Returns
    -------
    ndarray, shape (Hn, Wn), float64
        Minimum neighbour-camera depth of the reference points splatted onto
        each neighbour pixel, ``inf`` where none landed.  Each point is
        splatted onto the 2 x 2 pixels around its projection (its bilinear
        footprint), which closes the holes of a slightly magnifying warp.

    Examples
    --------
    >>> pose = np.hstack([np.eye(3), np.zeros((3, 1))])
    >>> K = np.array([[4.0, 0, 1.5], [0, 4.0, 1.5], [0, 0, 1]])
    >>> float(reference_zbuffer(np.full((4, 4), 2.0, np.float32), K, pose, (4, 4)).max())
    2.0
    """
    depth, K, pose = _check_geometry(depth, K, neighbour_from_reference)
    hn, wn = (int(v) for v in shape)
    if hn < 1 or wn < 1:
        raise ValueError(f"shape must be positive, got {shape}")
    u, v, z = _project(depth, np.linalg.inv(K), K, pose)
    return _splat(u, v, z, hn, wn)


def warp_to_reference(
    neighbour: np.ndarray,
    depth: np.ndarray,
    K: np.ndarray,
    neighbour_from_reference: np.ndarray,
    *,
    depth_tolerance: float = 0.03,
) -> tuple[np.ndarray, np.ndarray]:
    """Warp a neighbour frame into the reference view through the reference depth.

    Parameters
    ----------
    neighbour : ndarray, shape (Hn, Wn, C), uint8
        Neighbour frame (C channels, typically 3).
    depth : ndarray, shape (H, W), float32
        Reference z-depth, world units.
    K : ndarray, shape (3, 3)
        Shared intrinsics (pixel centres at integer coordinates).
    neighbour_from_reference : ndarray, shape (3, 4)
        Relative pose ``X_nbr = R X_ref + t``.
    depth_tolerance : float, default 0.03
        A reference point is visible when its neighbour depth ``z`` satisfies
        ``z <= zbuffer * (1 + depth_tolerance)`` at the nearest neighbour pixel.

    Returns
    -------
    warped : ndarray, shape (H, W, C), uint8
        Bilinearly sampled neighbour colours (rounded), 0 where not visible.
    visible : ndarray, shape (H, W), bool
        True where the reference point projects inside
        ``[0, Wn-1] x [0, Hn-1]``, lies in front of the neighbour camera and
        passes the z-buffer test.

    Notes
    -----
    Yan et al. (CVPR 2017) warp the frames around the reference frame into the
    reference camera with the reconstructed depth and poses, so that the
    per-pixel temporal analysis of the static-camera case applies.

    Examples
    --------
    >>> frame = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
    >>> pose = np.hstack([np.eye(3), np.zeros((3, 1))])
    >>> K = np.array([[4.0, 0, 1.5], [0, 4.0, 1.5], [0, 0, 1]])
    >>> warped, visible = warp_to_reference(frame, np.full((4, 4), 2.0, np.float32), K, pose)
    >>> bool(visible.all()), bool((warped == frame).all())
    (True, True)
    """
    neighbour = np.asarray(neighbour)
    if neighbour.ndim != 3:
        raise ValueError(f"neighbour must be (H, W, C), got shape {neighbour.shape}")
    if neighbour.dtype != np.uint8:
        raise TypeError(f"neighbour must be uint8, got {neighbour.dtype}")
    depth, K, pose = _check_geometry(depth, K, neighbour_from_reference)
    if not depth_tolerance >= 0:
        raise ValueError(f"depth_tolerance must be non-negative, got {depth_tolerance}")
    neighbour = np.ascontiguousarray(neighbour)
    u, v, z = _project(depth, np.linalg.inv(K), K, pose)
    zbuf = _splat(u, v, z, neighbour.shape[0], neighbour.shape[1])
    warped = np.zeros(depth.shape + (neighbour.shape[2],), np.uint8)
    visible = np.zeros(depth.shape, np.bool_)
    _sample_visible(neighbour, u, v, z, zbuf, float(depth_tolerance), warped, visible)
    return warped, visible


@jit
def _project(depth, k_inv, K, pose):
    """Neighbour pixel coordinates (u, v) and depth z of every reference pixel (nan if invalid)."""
    h, w = depth.shape
    u = np.empty((h, w))
    v = np.empty((h, w))
    z = np.empty((h, w))
    for i in range(h):
        for j in range(w):
            d = np.float64(depth[i, j])
            if not (d > 0.0 and d < np.inf):
                u[i, j] = np.nan
                v[i, j] = np.nan
                z[i, j] = np.nan
                continue
            rx = (k_inv[0, 0] * j + k_inv[0, 1] * i + k_inv[0, 2]) * d
            ry = (k_inv[1, 0] * j + k_inv[1, 1] * i + k_inv[1, 2]) * d
            rz = (k_inv[2, 0] * j + k_inv[2, 1] * i + k_inv[2, 2]) * d
            x = pose[0, 0] * rx + pose[0, 1] * ry + pose[0, 2] * rz + pose[0, 3]
            y = pose[1, 0] * rx + pose[1, 1] * ry + pose[1, 2] * rz + pose[1, 3]
            zz = pose[2, 0] * rx + pose[2, 1] * ry + pose[2, 2] * rz + pose[2, 3]
            z[i, j] = zz
            if zz > 0.0:
                u[i, j] = (K[0, 0] * x + K[0, 1] * y + K[0, 2] * zz) / zz
                v[i, j] = (K[1, 0] * x + K[1, 1] * y + K[1, 2] * zz) / zz
            else:
                u[i, j] = np.nan
                v[i, j] = np.nan
    return u, v, z


@jit
def _splat(u, v, z, hn, wn):
    zbuf = np.full((hn, wn), np.inf)
    h, w = u.shape
    for i in range(h):
        for j in range(w):
            zz = z[i, j]
            if not (zz > 0.0) or not (u[i, j] > -1.0 and u[i, j] < wn and v[i, j] > -1.0 and v[i, j] < hn):
                continue
            x0 = int(np.floor(u[i, j]))
            y0 = int(np.floor(v[i, j]))
            for yy in range(y0, y0 + 2):
                for xx in range(x0, x0 + 2):
                    if 0 <= yy < hn and 0 <= xx < wn and zz < zbuf[yy, xx]:
                        zbuf[yy, xx] = zz
    return zbuf


@jit
def _sample_visible(image, u, v, z, zbuf, tolerance, warped, visible):
    h, w = u.shape
    hn, wn, channels = image.shape
    for i in range(h):
        for j in range(w):
            x = u[i, j]
            y = v[i, j]
            zz = z[i, j]
            if not (zz > 0.0 and x >= 0.0 and x <= wn - 1 and y >= 0.0 and y <= hn - 1):
                continue
            xr = int(np.floor(x + 0.5))
            yr = int(np.floor(y + 0.5))
            if zz > zbuf[yr, xr] * (1.0 + tolerance):
                continue
            visible[i, j] = True
            x0 = int(np.floor(x))
            y0 = int(np.floor(y))
            x1 = min(x0 + 1, wn - 1)
            y1 = min(y0 + 1, hn - 1)
            fx = x - x0
            fy = y - y0
            for c in range(channels):
                top = (1.0 - fx) * image[y0, x0, c] + fx * image[y0, x1, c]
                bottom = (1.0 - fx) * image[y1, x0, c] + fx * image[y1, x1, c]
                value = np.floor((1.0 - fy) * top + fy * bottom + 0.5)
                warped[i, j, c] = np.uint8(min(max(value, 0.0), 255.0))
