"""Depth of the reference frame of a moving-camera clip.

Plane sweep over inverse-depth labels (:mod:`kernels.plane_sweep`) gives a
unary cost per pixel and label; alpha-expansion with a truncated-linear
smoothness term (:mod:`kernels.alpha_expansion`) picks one label per pixel;
the label is mapped back to depth.  The depth range comes from the sparse SfM
points visible in the reference frame.

Paper parameters (Yan et al., CVPR 2017): depth range from the visible SfM
points with the 1 % nearest and farthest dropped, 128 labels uniform in inverse
depth, ``1 - NCC`` of 5 x 5 patches truncated at 0.3 against up to 100
neighbouring frames (50 before, 50 after), best half summed, truncated-linear
pairwise term (truncation 4 labels, weight 0.15), alpha-expansion.

Label convention: label 0 is the farthest depth ``d_far``, label ``L - 1`` the
nearest ``d_near``; inverse depth is uniform in between.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from kernels.alpha_expansion import alpha_expansion
from kernels.plane_sweep import plane_sweep_cost

__all__ = [
    "DepthResult",
    "relative_pose",
    "depth_range_from_points",
    "inverse_depth_labels",
    "labels_to_depth",
    "select_neighbours",
    "reference_depth",
]


@dataclass
class DepthResult:
    """Depth of the reference frame.

    Attributes
    ----------
    depth : ndarray, shape (H, W), float32
        z-depth of every reference pixel, world units of the poses.
    labels : ndarray, shape (H, W), int32
        Chosen inverse-depth label (0 = farthest).
    inverse_depths : ndarray, shape (L,), float64
        Inverse depth of each label.
    energy : float
        Energy of the labeling reported by the solver.
    neighbours : ndarray, shape (N,), int64
        Frames the cost volume was built from.
    unary : ndarray, shape (H, W, L), float32, optional
        The cost volume, only when requested.
    """

    depth: np.ndarray
    labels: np.ndarray
    inverse_depths: np.ndarray
    energy: float
    neighbours: np.ndarray
    unary: np.ndarray | None = None
    seconds_cost_volume: float = 0.0
    seconds_graph_cut: float = 0.0


def relative_pose(cam_from_world_ref: np.ndarray, cam_from_world_other: np.ndarray) -> np.ndarray:
    """``other_from_ref`` (3, 4): ``X_other = R X_ref + t`` from two ``cam_from_world`` poses."""
    ref = np.asarray(cam_from_world_ref, np.float64)
    other = np.asarray(cam_from_world_other, np.float64)
    rot = other[:, :3] @ ref[:, :3].T
    return np.hstack([rot, (other[:, 3] - rot @ ref[:, 3])[:, None]])


def depth_range_from_points(
    points3d: np.ndarray,
    cam_from_world: np.ndarray,
    *,
    K: np.ndarray | None = None,
    image_shape: tuple[int, int] | None = None,
    drop_fraction: float = 0.01,
) -> tuple[float, float]:
    """Near and far scene depth of the reference camera from sparse 3D points.

    Parameters
    ----------
    points3d : ndarray, shape (P, 3)
        World points, ideally those observed in the reference frame (e.g.
        ``sfm.points3d[sfm.points_seen_in(ref)]``).
    cam_from_world : ndarray, shape (3, 4)
        Reference pose.
    K : ndarray, shape (3, 3), optional
        With ``image_shape``, keep only points projecting inside the image.
    image_shape : tuple of int, optional
        ``(H, W)``.
    drop_fraction : float, default 0.01
        Fraction of the nearest and of the farthest points ignored.

    Returns
    -------
    (d_near, d_far) : tuple of float
        Quantiles ``drop_fraction`` and ``1 - drop_fraction`` of the depths of
        the points in front of the camera.

    Raises
    ------
    ValueError
        With fewer than 2 usable points or a degenerate range.

    Examples
    --------
    >>> pts = np.stack([np.zeros(101), np.zeros(101), np.linspace(2, 12, 101)], axis=1)
    >>> near, far = depth_range_from_points(pts, np.hstack([np.eye(3), np.zeros((3, 1))]))
    >>> round(near, 2), round(far, 2)
    (2.1, 11.9)
    """
    pts = np.asarray(points3d, np.float64)
    pose = np.asarray(cam_from_world, np.float64)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise ValueError(f"points3d must be (P, 3), got {pts.shape}")
    if pose.shape != (3, 4):
        raise ValueError(f"cam_from_world must be (3, 4), got {pose.shape}")
    if not 0 <= drop_fraction < 0.5:
        raise ValueError("drop_fraction must be in [0, 0.5)")
    cam = pts @ pose[:, :3].T + pose[:, 3]
    keep = cam[:, 2] > 0
    if K is not None and image_shape is not None:
        with np.errstate(divide="ignore", invalid="ignore"):
            pix = cam @ np.asarray(K, np.float64).T
            x, y = pix[:, 0] / pix[:, 2], pix[:, 1] / pix[:, 2]
        h, w = image_shape
        keep &= (x >= -0.5) & (x <= w - 0.5) & (y >= -0.5) & (y <= h - 0.5)
    z = cam[keep, 2]
    if z.size < 2:
        raise ValueError(f"only {z.size} points in front of the reference camera; cannot bound depth")
    near, far = np.quantile(z, [drop_fraction, 1.0 - drop_fraction])
    if not far > near > 0:
        raise ValueError(f"degenerate depth range [{near}, {far}]")
    return float(near), float(far)


def inverse_depth_labels(d_near: float, d_far: float, n_labels: int = 128) -> np.ndarray:
    """Inverse depths of ``n_labels`` labels uniform in ``[1/d_far, 1/d_near]``; label 0 is far.

    Examples
    --------
    >>> inverse_depth_labels(1.0, 4.0, 4)
    array([0.25, 0.5 , 0.75, 1.  ])
    """
    if not d_far > d_near > 0:
        raise ValueError(f"need 0 < d_near < d_far, got {d_near}, {d_far}")
    if n_labels < 2:
        raise ValueError("need at least two labels")
    return np.linspace(1.0 / d_far, 1.0 / d_near, n_labels)


def labels_to_depth(labels: np.ndarray, d_near: float, d_far: float, n_labels: int = 128) -> np.ndarray:
    """Depth (float32) of integer labels, inverse of :func:`inverse_depth_labels`.

    Examples
    --------
    >>> labels_to_depth(np.array([0, 3]), 1.0, 4.0, 4)
    array([4., 1.], dtype=float32)
    """
    labels = np.asarray(labels)
    if labels.size and (labels.min() < 0 or labels.max() >= n_labels):
        raise ValueError(f"labels must lie in [0, {n_labels})")
    inv = inverse_depth_labels(d_near, d_far, n_labels)
    return (1.0 / inv[labels]).astype(np.float32)


def select_neighbours(n_frames: int, ref_index: int, max_each_side: int = 50) -> np.ndarray:
    """Up to ``max_each_side`` frames before and after ``ref_index`` (the reference excluded)."""
    if not 0 <= ref_index < n_frames:
        raise ValueError(f"ref_index {ref_index} outside [0, {n_frames})")
    before = np.arange(max(0, ref_index - max_each_side), ref_index)
    after = np.arange(ref_index + 1, min(n_frames, ref_index + 1 + max_each_side))
    return np.concatenate([before, after]).astype(np.int64)


def slab_cost(reference, neighbours, K, neighbour_from_reference, patch_size, truncation, inverse_depths):
    """Cost volume of one slab of labels: :func:`kernels.plane_sweep.plane_sweep_cost` with positional arguments."""
    return plane_sweep_cost(
        reference, neighbours, K, neighbour_from_reference, inverse_depths, patch_size=patch_size, truncation=truncation
    )


def map_in_turn(fn: Callable[..., np.ndarray], shared: tuple, slabs: list[np.ndarray]) -> list[np.ndarray]:
    """``[fn(*shared, slab) for slab in slabs]``: the default, sequential slab mapper of :func:`reference_depth`."""
    return [fn(*shared, slab) for slab in slabs]


def _grey(frame: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0


def reference_depth(
    frames: np.ndarray,
    K: np.ndarray,
    cam_from_world: np.ndarray,
    ref_index: int,
    neighbours: Sequence[int] | None = None,
    *,
    depth_range: tuple[float, float],
    n_labels: int = 128,
    patch_size: int = 5,
    truncation: float = 0.3,
    pairwise_weight: float = 0.15,
    pairwise_truncation: float = 4,
    max_neighbours_each_side: int = 50,
    solver: Callable[..., Any] | None = None,
    solver_options: dict | None = None,
    return_unary: bool = False,
    label_slab: int | None = None,
    map_slabs: Callable[[Callable[..., np.ndarray], tuple, list[np.ndarray]], list[np.ndarray]] | None = None,
) -> DepthResult:
    """Depth map of the reference frame by plane sweep and alpha-expansion.

    Parameters
    ----------
    frames : ndarray, shape (T, H, W, 3), uint8
        RGB frames (the analysis window).
    K : ndarray, shape (3, 3)
        Shared intrinsics.
    cam_from_world : ndarray, shape (T, 3, 4)
        Poses of all frames.
    ref_index : int
        Reference frame.
    neighbours : sequence of int, optional
        Frames to match against; default :func:`select_neighbours` with
        ``max_neighbours_each_side``.
    depth_range : (float, float)
        ``(d_near, d_far)``, e.g. from :func:`depth_range_from_points`.
    n_labels : int, default 128
        Number of inverse-depth labels.
    patch_size : int, default 5
        NCC patch side, pixels.
    truncation : float, default 0.3
        Truncation of ``1 - NCC``.
    pairwise_weight : float, default 0.15
        Weight of the truncated-linear smoothness term.
    pairwise_truncation : float, default 4
        Truncation of the smoothness term, labels.
    max_neighbours_each_side : int, default 50
        Used when ``neighbours`` is None.
    solver : callable, optional
        ``solver(unary, "truncated_linear", pairwise_weight=..., truncation=...,
        **solver_options)`` returning an object with ``.labels`` (H, W) and
        ``.energy``.  Default :func:`kernels.alpha_expansion.alpha_expansion`.
    solver_options : dict, optional
        Extra keyword arguments of the solver (e.g. ``max_cycles``).
    return_unary : bool, default False
        Keep the (H, W, L) cost volume in the result.
    label_slab : int, optional
        Build the cost volume in slabs of this many labels (default: one slab).
    map_slabs : callable, optional
        ``map_slabs(slab_cost, shared, slabs)`` returns
        ``[slab_cost(*shared, s) for s in slabs]`` (:func:`map_in_turn`, the
        default); each is an (H, W, len(s)) float32 array.  The pipeline passes
        one that runs the slabs as parallel Dask tasks, with the large
        ``shared`` arrays (the grey neighbours) in the graph once.

    Returns
    -------
    DepthResult

    Notes
    -----
    Yan et al. (CVPR 2017): the unary term is the sum of the best half of the
    truncated ``1 - NCC`` costs over the neighbours (so its scale grows with
    the number of neighbours while the pairwise weight is fixed, as in the
    paper).  Memory: the cost volume (H, W, L) float32 plus one (N, H, W)
    float32 buffer of per-neighbour costs of one label (see
    :mod:`kernels.plane_sweep`).

    Examples
    --------
    >>> from tasks.synthetic_scene import render_synthetic_clip
    >>> clip = render_synthetic_clip(n_frames=9, height=60, width=80)   # doctest: +SKIP
    >>> result = reference_depth(clip.frames, clip.K, clip.cam_from_world, 4,
    ...                          depth_range=(2.5, 8.0), n_labels=32)   # doctest: +SKIP
    >>> result.depth.shape                                               # doctest: +SKIP
    (60, 80)
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be (T, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
    n_frames = frames.shape[0]
    poses = np.asarray(cam_from_world, np.float64)
    if poses.shape != (n_frames, 3, 4):
        raise ValueError(f"cam_from_world must be ({n_frames}, 3, 4), got {poses.shape}")
    if neighbours is None:
        neighbours = select_neighbours(n_frames, ref_index, max_neighbours_each_side)
    neighbours = np.asarray(neighbours, np.int64)
    if neighbours.size == 0 or np.any((neighbours < 0) | (neighbours >= n_frames)) or np.any(neighbours == ref_index):
        raise ValueError("neighbours must be non-empty frame indices other than the reference")
    d_near, d_far = depth_range
    inv = inverse_depth_labels(d_near, d_far, n_labels)

    reference = _grey(frames[ref_index])
    nbr_grey = np.empty((neighbours.size,) + reference.shape, np.float32)
    rel = np.empty((neighbours.size, 3, 4))
    for k, n in enumerate(neighbours):
        nbr_grey[k] = _grey(frames[n])
        rel[k] = relative_pose(poses[ref_index], poses[n])
    t0 = time.perf_counter()
    step = n_labels if label_slab is None else max(1, int(label_slab))
    slabs = [inv[a : a + step] for a in range(0, n_labels, step)]
    shared = (reference, nbr_grey, np.asarray(K, np.float64), rel, patch_size, truncation)
    parts = (map_slabs or map_in_turn)(slab_cost, shared, slabs)
    unary = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=2)
    del nbr_grey, parts, shared
    seconds_cost = time.perf_counter() - t0

    if solver is None:
        solver = alpha_expansion
    result = solver(
        unary, "truncated_linear", pairwise_weight=pairwise_weight, truncation=pairwise_truncation,
        **(solver_options or {}),
    )
    seconds_cut = time.perf_counter() - t0 - seconds_cost
    labels = np.asarray(result.labels).astype(np.int32)
    if labels.shape != reference.shape:
        raise ValueError(f"solver returned labels of shape {labels.shape}, expected {reference.shape}")
    return DepthResult(
        depth=labels_to_depth(labels, d_near, d_far, n_labels),
        labels=labels,
        inverse_depths=inv,
        energy=float(result.energy),
        neighbours=neighbours,
        unary=unary if return_unary else None,
        seconds_cost_volume=seconds_cost,
        seconds_graph_cut=seconds_cut,
    )
