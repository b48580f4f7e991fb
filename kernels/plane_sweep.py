"""Plane-sweep matching cost of a reference frame against neighbouring frames.

For every reference pixel and every fronto-parallel plane (one per
inverse-depth label), each neighbour frame is warped into the reference view
through the plane's homography and compared with the reference by normalised
cross-correlation (NCC) of small patches.  The per-neighbour cost
``min(1 - NCC, truncation)`` is reduced over neighbours by summing the best
(smallest) half, which tolerates neighbours in which the pixel is occluded or
moving.  The result is the unary term of the depth labelling.

Memory: the kernel sweeps one label at a time over all neighbours, keeping a
``(N, H, W)`` float32 buffer of that label's per-neighbour costs -- never the
warped copies of all neighbours for all labels.  Each neighbour is warped and
correlated row by row: the window sums of the last ``patch_size`` rows sit in a
``(4, patch_size, W)`` ring buffer, so the per-neighbour work stays in cache.
The output is ``(H, W, D)`` float32.
"""

from __future__ import annotations

import numpy as np

from kernels._jit import jit

__all__ = ["plane_sweep_cost", "plane_homographies"]

#: Patches whose grey-level variance (per pixel) is below this are treated as
#: textureless: NCC is undefined there and the cost is the truncation value.
MIN_VARIANCE = 1e-6


def plane_homographies(K: np.ndarray, neighbour_from_reference: np.ndarray, inverse_depths: np.ndarray) -> np.ndarray:
    """Homographies from reference pixels to neighbour pixels for fronto-parallel planes.

    Parameters
    ----------
    K : ndarray, shape (3, 3)
        Shared intrinsics.
    neighbour_from_reference : ndarray, shape (N, 3, 4)
        ``[R | t]`` with ``X_nbr = R X_ref + t``.
    inverse_depths : ndarray, shape (D,)
        Inverse depths ``1 / z`` of the planes ``z = const`` in the reference
        camera, 1 / world units.

    Returns
    -------
    ndarray, shape (D, N, 3, 3), float64
        ``H[d, n] = K (R_n + t_n [0, 0, w_d]) K^-1``; the third homogeneous
        coordinate of ``H x`` is the neighbour depth divided by the plane
        depth, positive when the point is in front of the neighbour.

    Examples
    --------
    >>> pose = np.hstack([np.eye(3), np.zeros((3, 1))])[None]
    >>> np.allclose(plane_homographies(np.eye(3), pose, np.array([0.5]))[0, 0], np.eye(3))
    True
    """
    K = np.asarray(K, np.float64)
    poses = np.asarray(neighbour_from_reference, np.float64)
    inv = np.asarray(inverse_depths, np.float64)
    k_inv = np.linalg.inv(K)
    rot = poses[:, :, :3]
    trans = poses[:, :, 3]
    plane = np.zeros((inv.size, 1, 3))
    plane[:, 0, 2] = inv
    # (D, N, 3, 3) = R[None] + t[None, :, :, None] * n^T
    mats = rot[None] + trans[None, :, :, None] * plane[:, :, None, :]
    return K @ mats @ k_inv


def plane_sweep_cost(
    reference: np.ndarray,
    neighbours: np.ndarray,
    K: np.ndarray,
    neighbour_from_reference: np.ndarray,
    inverse_depths: np.ndarray,
    *,
    patch_size: int = 5,
    truncation: float = 0.3,
) -> np.ndarray:
    """Plane-sweep cost volume summed over the best half of the neighbours.

    Parameters
    ----------
    reference : ndarray, shape (H, W), float32
        Grey reference image (any range, e.g. [0, 1]).
    neighbours : ndarray, shape (N, H, W), float32
        Grey neighbour images of the same size, ``N >= 1``.
    K : ndarray, shape (3, 3), float
        Shared intrinsics; pixel centres at integer coordinates.
    neighbour_from_reference : ndarray, shape (N, 3, 4), float
        Relative poses ``X_nbr = R X_ref + t``.
    inverse_depths : ndarray, shape (D,), float
        Positive inverse depths of the labels, 1 / world units.
    patch_size : int, default 5
        Odd side of the square NCC patch, pixels.
    truncation : float, default 0.3
        Upper bound of the per-neighbour cost ``1 - NCC``.

    Returns
    -------
    ndarray, shape (H, W, D), float32
        ``cost[i, j, d]`` = sum of the ``ceil(N / 2)`` smallest per-neighbour
        costs, each in ``[0, truncation]``.

    Notes
    -----
    Yan et al. (CVPR 2017), moving-camera depth: 1 - NCC of 5 x 5 patches,
    truncated at 0.3, over up to 100 neighbouring frames, best half summed.
    Details of this implementation:

    * the neighbour is sampled bilinearly at the homography image of each
      reference pixel; a sample outside ``[0, W-1] x [0, H-1]`` or behind the
      neighbour camera is invalid;
    * the patch is the part of the square window inside the reference image;
      if any warped sample of the patch is invalid, or either patch has a
      per-pixel variance below :data:`MIN_VARIANCE`, the cost is ``truncation``;
    * NCC is computed in float64 from window sums (separable running sums).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> ref = rng.random((12, 16)).astype(np.float32)
    >>> pose = np.hstack([np.eye(3), [[0.1], [0], [0]]])[None]
    >>> K = np.array([[20.0, 0, 7.5], [0, 20.0, 5.5], [0, 0, 1]])
    >>> cost = plane_sweep_cost(ref, ref[None], K, pose, np.array([0.5, 1.0]))
    >>> cost.shape, cost.dtype
    ((12, 16, 2), dtype('float32'))
    """
    reference = np.asarray(reference)
    neighbours = np.asarray(neighbours)
    if reference.ndim != 2:
        raise ValueError(f"reference must be (H, W), got shape {reference.shape}")
    if neighbours.ndim != 3 or neighbours.shape[1:] != reference.shape:
        raise ValueError(f"neighbours must be (N, {reference.shape[0]}, {reference.shape[1]}), got {neighbours.shape}")
    if neighbours.shape[0] < 1:
        raise ValueError("need at least one neighbour")
    for name, arr in (("reference", reference), ("neighbours", neighbours)):
        if arr.dtype != np.float32:
            raise TypeError(f"{name} must be float32, got {arr.dtype}")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} contains non-finite values")
    K = np.asarray(K, np.float64)
    if K.shape != (3, 3) or K[2, 2] != 1 or K[0, 0] <= 0 or K[1, 1] <= 0:
        raise ValueError("K must be a (3, 3) intrinsics matrix with positive focal lengths and K[2, 2] == 1")
    poses = np.asarray(neighbour_from_reference, np.float64)
    if poses.shape != (neighbours.shape[0], 3, 4):
        raise ValueError(f"neighbour_from_reference must be ({neighbours.shape[0]}, 3, 4), got {poses.shape}")
    inverse_depths = np.asarray(inverse_depths, np.float64)
    if inverse_depths.ndim != 1 or inverse_depths.size < 1 or np.any(~(inverse_depths > 0)):
        raise ValueError("inverse_depths must be a non-empty 1-D array of positive values")
    if patch_size < 1 or patch_size % 2 != 1:
        raise ValueError(f"patch_size must be a positive odd integer, got {patch_size}")
    if not truncation > 0:
        raise ValueError(f"truncation must be positive, got {truncation}")
    homographies = plane_homographies(K, poses, inverse_depths)
    keep = (neighbours.shape[0] + 1) // 2
    out = np.empty(reference.shape + (inverse_depths.size,), np.float32)
    _plane_sweep(
        np.ascontiguousarray(reference), np.ascontiguousarray(neighbours), homographies,
        keep, float(truncation), patch_size // 2, out,
    )
    return out


@jit
def _reference_stats(ref, radius):
    """Window count, sum and sum of squares of the reference (in-image part)."""
    h, w = ref.shape
    count = np.zeros((h, w))
    s1 = np.zeros((h, w))
    s2 = np.zeros((h, w))
    for i in range(h):
        for j in range(w):
            for ii in range(max(0, i - radius), min(h, i + radius + 1)):
                for jj in range(max(0, j - radius), min(w, j + radius + 1)):
                    v = ref[ii, jj]
                    count[i, j] += 1.0
                    s1[i, j] += v
                    s2[i, j] += v * v
    return count, s1, s2


@jit
def _select_sum(values, n, keep):
    """Sum of the ``keep`` smallest of ``values[:n]`` (reorders ``values``; quickselect)."""
    if keep >= n:
        total = 0.0
        for a in range(n):
            total += values[a]
        return total
    lo = 0
    hi = n - 1
    kth = keep - 1
    while lo < hi:
        pivot = values[(lo + hi) // 2]
        a = lo
        b = hi
        while a <= b:
            while values[a] < pivot:
                a += 1
            while values[b] > pivot:
                b -= 1
            if a <= b:
                tmp = values[a]
                values[a] = values[b]
                values[b] = tmp
                a += 1
                b -= 1
        if kth <= b:
            hi = b
        elif kth >= a:
            lo = a
        else:
            break
    total = 0.0
    for a in range(keep):
        total += values[a]
    return total


@jit
def _row_sums(ref, nbr, hmat, row, radius, vals, ring, slot):
    """Warp one reference row of the neighbour and store its four horizontal window sums in ``ring[:, slot]``.

    The four quantities are the warped value v, v^2, v * reference and an
    invalid-sample flag; windows are clipped to the image (running update).
    """
    w = ref.shape[1]
    hn, wn = nbr.shape
    for j in range(w):
        xh = hmat[0, 0] * j + hmat[0, 1] * row + hmat[0, 2]
        yh = hmat[1, 0] * j + hmat[1, 1] * row + hmat[1, 2]
        zh = hmat[2, 0] * j + hmat[2, 1] * row + hmat[2, 2]
        v = 0.0
        bad = 1.0
        if zh > 0:
            x = xh / zh
            y = yh / zh
            if x >= 0.0 and x <= wn - 1 and y >= 0.0 and y <= hn - 1:
                x0 = int(x)  # x >= 0 here, so truncation is the floor
                y0 = int(y)
                x1 = min(x0 + 1, wn - 1)
                y1 = min(y0 + 1, hn - 1)
                fx = x - x0
                fy = y - y0
                top = (1.0 - fx) * nbr[y0, x0] + fx * nbr[y0, x1]
                bottom = (1.0 - fx) * nbr[y1, x0] + fx * nbr[y1, x1]
                v = (1.0 - fy) * top + fy * bottom
                bad = 0.0
        vals[0, j] = v
        vals[1, j] = v * v
        vals[2, j] = v * ref[row, j]
        vals[3, j] = bad
    for q in range(4):
        acc = 0.0
        for jj in range(min(radius, w)):
            acc += vals[q, jj]
        for j in range(w):
            if j + radius < w:
                acc += vals[q, j + radius]
            if j - radius - 1 >= 0:
                acc -= vals[q, j - radius - 1]
            ring[q, slot, j] = acc


@jit
def _neighbour_costs(ref, ref_s1, ref_var, count, nbr, hmat, truncation, radius, vals, ring, col, out):
    """Truncated 1 - NCC of one neighbour warped through one plane, written to ``out`` (H, W).

    Streams over rows: the horizontal window sums of the last ``2 radius + 1``
    warped rows live in the ring buffer ``ring`` (4, 2 radius + 1, W) and their
    vertical sums in ``col`` (4, W), so the working set stays in cache.
    """
    h, w = ref.shape
    span = 2 * radius + 1
    col[:, :] = 0.0
    for r in range(min(radius, h)):
        _row_sums(ref, nbr, hmat, r, radius, vals, ring, r % span)
        for q in range(4):
            for j in range(w):
                col[q, j] += ring[q, r % span, j]
    for i in range(h):
        add = i + radius
        sub = i - radius - 1
        slot = add % span  # the slot of row ``sub`` too: subtract it before it is overwritten
        if sub >= 0:
            for q in range(4):
                for j in range(w):
                    col[q, j] -= ring[q, slot, j]
        if add < h:
            _row_sums(ref, nbr, hmat, add, radius, vals, ring, slot)
            for q in range(4):
                for j in range(w):
                    col[q, j] += ring[q, slot, j]
        for j in range(w):
            cost = truncation
            c = count[i, j]
            var_i = ref_var[i, j]
            var_j = col[1, j] - col[0, j] * col[0, j] / c
            if col[3, j] < 0.5 and var_i > MIN_VARIANCE * c and var_j > MIN_VARIANCE * c:
                cov = col[2, j] - ref_s1[i, j] * col[0, j] / c
                value = 1.0 - cov / np.sqrt(var_i * var_j)
                if value < 0.0:
                    value = 0.0
                if value < cost:
                    cost = value
            out[i, j] = cost


@jit
def _plane_sweep(ref, nbrs, homographies, keep, truncation, radius, out):
    n_labels = homographies.shape[0]
    n_nbrs = nbrs.shape[0]
    h, w = ref.shape
    count, ref_s1, ref_s2 = _reference_stats(ref, radius)
    ref_var = np.empty((h, w))
    for i in range(h):
        for j in range(w):
            ref_var[i, j] = ref_s2[i, j] - ref_s1[i, j] * ref_s1[i, j] / count[i, j]
    ref64 = ref.astype(np.float64)
    costs = np.empty((n_nbrs, h, w), np.float32)
    vals = np.empty((4, w))
    ring = np.empty((4, 2 * radius + 1, w))
    col = np.empty((4, w))
    values = np.empty(n_nbrs)
    for d in range(n_labels):
        for n in range(n_nbrs):
            _neighbour_costs(ref64, ref_s1, ref_var, count, nbrs[n], homographies[d, n], truncation, radius,
                             vals, ring, col, costs[n])
        for i in range(h):
            for j in range(w):
                for n in range(n_nbrs):
                    values[n] = costs[n, i, j]
                out[i, j, d] = _select_sum(values, n_nbrs, keep)
