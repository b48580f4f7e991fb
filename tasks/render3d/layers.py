"""Layered depth image of the reference view, as coloured points in the reconstruction's world.

* **Front layer**: every reference pixel lifted to 3D with the reference ``depth``; static
  pixels keep the reference colour, animated pixels (``animated_mask``) take the colour of
  the ``loop`` frame being drawn.
* **Back layers**: what other window frames saw and the reference view did not (behind its
  depth edges, or beyond its borders).  Frames are visited nearest first; each is drawn from
  the points gathered so far (:func:`kernels.splat.splat_points`), and its pixels that no
  point reached are new.  Their depth is the frame's own depth obtained by warping the
  reference depth (the drawn z-buffer) and filling its holes from the background side (the
  farthest of the nearest drawn pixels left, right, above and below: a disocclusion shows
  what lies behind the edge).  They are lifted with the frame's camera and kept when, seen
  from the reference camera, they lie behind the front layer (by more than the depth
  tolerance) or outside the reference image.
* What no frame saw stays empty and is in-painted per output frame by the renderer (flagged).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kernels.splat import splat_points

__all__ = ["Layers", "lift_pixels", "build_layers", "background_fill", "pick_back_frames"]


@dataclass
class Layers:
    """Points of the layered depth image.

    Attributes
    ----------
    points : ndarray, shape (N, 3), float64
        World coordinates; the first ``H * W`` rows are the front layer in raster order.
    colours : ndarray, shape (N, 3), uint8
        Static colour of each point (the reference colour for front-layer pixels).
    radii : ndarray, shape (N,), float64
        World radius of each point's disc (its pixel footprint times the point scale).
    animated : ndarray, shape (A,), int64
        Rows of the front layer whose colour comes from the loop (raster index into H x W).
    n_front : int
        ``H * W``.
    source_frame : ndarray, shape (N,), int64
        Window frame each point came from (the reference for the front layer).
    """

    points: np.ndarray
    colours: np.ndarray
    radii: np.ndarray
    animated: np.ndarray
    n_front: int
    source_frame: np.ndarray

    @property
    def n_back(self) -> int:
        return int(self.points.shape[0] - self.n_front)

    def colours_at(self, loop_frame: np.ndarray | None) -> np.ndarray:
        """Colours (N, 3) uint8 with the animated front pixels taken from ``loop_frame`` (H, W, 3)."""
        if loop_frame is None or self.animated.size == 0:
            return self.colours
        colours = self.colours.copy()
        colours[self.animated] = loop_frame.reshape(-1, 3)[self.animated]
        return colours


def lift_pixels(depth: np.ndarray, K: np.ndarray, cam_from_world: np.ndarray,
                rows: np.ndarray | None = None) -> np.ndarray:
    """World points (N, 3) of pixels (all, or the raster indices ``rows``) at their z-depth."""
    height, width = depth.shape
    index = np.arange(height * width) if rows is None else np.asarray(rows)
    ii, jj = np.divmod(index, width)
    z = depth.reshape(-1)[index].astype(np.float64)
    rays = np.linalg.inv(K) @ np.stack([jj, ii, np.ones_like(jj)]).astype(np.float64)
    cam = rays * z
    rot, t = cam_from_world[:, :3], cam_from_world[:, 3]
    return (rot.T @ (cam - t[:, None])).T


def background_fill(depth: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Depth with the unknown pixels set to the farthest of their nearest known pixels along rows and columns.

    Pixels with no known pixel in any of the four directions stay ``inf`` (the image has no
    known pixel at all in that row and column).
    """
    height, width = depth.shape
    values = np.where(known, depth, np.nan).astype(np.float64)

    def nearest(arr: np.ndarray) -> np.ndarray:
        # forward fill along axis 1: the last known value at or before each position
        idx = np.where(np.isfinite(arr), np.arange(arr.shape[1])[None, :], -1)
        np.maximum.accumulate(idx, axis=1, out=idx)
        out = np.take_along_axis(arr, np.maximum(idx, 0), axis=1)
        out[idx < 0] = np.nan
        return out

    candidates = np.stack([
        nearest(values),
        nearest(values[:, ::-1])[:, ::-1],
        nearest(values.T).T,
        nearest(values.T[:, ::-1])[:, ::-1].T,
    ])
    with np.errstate(all="ignore"):
        far = np.nanmax(np.where(np.isnan(candidates), -np.inf, candidates), axis=0)
    out = np.where(known, depth, far)
    out[~np.isfinite(out) | (out <= 0)] = np.inf
    return out


def pick_back_frames(n_frames: int, reference: int, count: int) -> np.ndarray:
    """Up to ``count`` window frames other than the reference, spread over the window, nearest first."""
    others = np.array([t for t in range(n_frames) if t != reference], np.int64)
    if count <= 0 or others.size == 0:
        return np.zeros(0, np.int64)
    if others.size > count:
        picks = np.unique(np.rint(np.linspace(0, others.size - 1, count)).astype(np.int64))
        others = others[picks]
    return others[np.argsort(np.abs(others - reference), kind="stable")]


def build_layers(
    reference_image: np.ndarray,
    depth: np.ndarray,
    K: np.ndarray,
    poses: np.ndarray,
    reference: int,
    frames: np.ndarray,
    animated_mask: np.ndarray,
    *,
    back_frames: np.ndarray | None = None,
    point_scale: float = 0.75,
    depth_tolerance: float = 0.03,
) -> Layers:
    """Front layer from the reference view, back layers from ``frames`` (see the module docstring).

    Parameters
    ----------
    reference_image : ndarray, shape (H, W, 3), uint8
    depth : ndarray, shape (H, W), float32
        Reference z-depth; non-finite or non-positive pixels get no point.
    K : ndarray, shape (3, 3)
        Shared intrinsics.
    poses : ndarray, shape (T, 3, 4)
        ``cam_from_world`` of every window frame.
    reference : int
        Index of the reference frame in the window.
    frames : ndarray, shape (T, H, W, 3), uint8
        The window's frames (unaligned).
    animated_mask : ndarray, shape (H, W), bool
    back_frames : ndarray of int, optional
        Window frames to take back layers from, in this order; default all others, nearest first.
    point_scale : float, default 0.75
        Disc radius as a multiple of the pixel footprint ``z / f``.
    depth_tolerance : float, default 0.03
        Soft depth test of the coverage renders, and the margin "behind the front layer".
    """
    height, width = depth.shape
    focal = float(max(K[0, 0], K[1, 1]))
    depth = np.asarray(depth, np.float32)
    valid = np.isfinite(depth) & (depth > 0)
    front_points = lift_pixels(depth, K, poses[reference])
    front_points[~valid.reshape(-1)] = np.nan
    front_radii = point_scale * np.where(valid, depth, 0).reshape(-1).astype(np.float64) / focal
    front_colours = reference_image.reshape(-1, 3).copy()
    animated = np.flatnonzero(np.asarray(animated_mask, bool).reshape(-1) & valid.reshape(-1))

    points, colours, radii = [front_points], [front_colours], [front_radii]
    sources = [np.full(height * width, reference, np.int64)]
    if back_frames is None:
        back_frames = pick_back_frames(len(poses), reference, len(poses))
    ref_pose = poses[reference]
    for t in back_frames:
        t = int(t)
        all_points = np.concatenate(points)
        all_radii = np.concatenate(radii)
        no_colour = np.zeros((all_points.shape[0], 1), np.uint8)
        _, zbuf, weight = splat_points(all_points, no_colour, all_radii, K, poses[t], (height, width),
                                       depth_tolerance=depth_tolerance)
        covered = weight > 0
        if covered.all():
            continue
        frame_depth = background_fill(zbuf, covered)
        new = np.flatnonzero(~covered.reshape(-1) & np.isfinite(frame_depth.reshape(-1)))
        if new.size == 0:
            continue
        lifted = lift_pixels(frame_depth.astype(np.float32), K, poses[t], new)
        # keep what the reference view cannot show: behind its front layer, or outside its image
        cam = lifted @ ref_pose[:, :3].T + ref_pose[:, 3]
        z = cam[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            u = K[0, 0] * cam[:, 0] / z + K[0, 1] * cam[:, 1] / z + K[0, 2]
            v = K[1, 1] * cam[:, 1] / z + K[1, 2]
        ju, iv = np.floor(u + 0.5), np.floor(v + 0.5)
        inside = (z > 0) & (ju >= 0) & (ju < width) & (iv >= 0) & (iv < height)
        keep = ~inside
        at = np.flatnonzero(inside)
        front = depth[iv[at].astype(np.int64), ju[at].astype(np.int64)]
        keep[at] = ~(np.isfinite(front) & (front > 0)) | (z[at] > front * (1 + depth_tolerance))
        new, lifted = new[keep], lifted[keep]
        if new.size == 0:
            continue
        points.append(lifted)
        colours.append(frames[t].reshape(-1, 3)[new])
        radii.append(point_scale * frame_depth.reshape(-1)[new] / focal)
        sources.append(np.full(new.size, t, np.int64))
    return Layers(
        points=np.concatenate(points),
        colours=np.concatenate(colours),
        radii=np.concatenate(radii),
        animated=animated,
        n_front=height * width,
        source_frame=np.concatenate(sources),
    )
