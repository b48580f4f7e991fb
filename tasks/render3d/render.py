"""Drawing the layered depth image along a camera path: splat, fill pin-holes, in-paint and flag.

Output frame ``k`` draws every point of the layers (:mod:`tasks.render3d.layers`) into the
path's camera ``k`` with :func:`kernels.splat.splat_points`, the animated front pixels
coloured by loop frame ``k mod L``.  Empty pixels most of whose neighbours are filled are
pin-holes between splats, filled from their background neighbours
(:func:`kernels.splat.fill_pinholes`, twice); what is still empty was seen by no frame and
is in-painted in colour (OpenCV's Telea method, radius 3 px) and flagged.  Frames are drawn
in blocks as parallel Dask tasks; the points are sent to the cluster once.
"""

from __future__ import annotations

import time

import cv2
import dask
import numpy as np

from kernels.splat import fill_pinholes, splat_points
from tasks.render3d.layers import Layers
from tasks.runtime import cluster_compute, shared_inputs

__all__ = ["render_frame", "render_path"]

#: Passes of the pin-hole filler (each closes cracks one pixel wide from both sides).
PINHOLE_PASSES = 2
#: In-painting radius of OpenCV's Telea method (pixels).
INPAINT_RADIUS = 3


def render_frame(
    layers: Layers,
    loop_frame: np.ndarray | None,
    K: np.ndarray,
    cam_from_world: np.ndarray,
    shape: tuple[int, int],
    *,
    depth_tolerance: float = 0.03,
    pinhole_neighbours: int = 4,
) -> tuple[np.ndarray, np.ndarray]:
    """One output frame: (image (H, W, 3) uint8, in-painted (H, W) bool)."""
    colours = layers.colours_at(loop_frame)
    image, depth, weight = splat_points(layers.points, colours, layers.radii, K, cam_from_world, shape,
                                        depth_tolerance=depth_tolerance)
    filled = weight > 0
    for _ in range(PINHOLE_PASSES):
        if filled.all():
            break
        image, depth, filled = fill_pinholes(image, depth, filled, min_neighbours=pinhole_neighbours,
                                             depth_tolerance=depth_tolerance)
    out = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    holes = ~filled
    if holes.any():
        if filled.any():
            out = cv2.inpaint(out, holes.astype(np.uint8), INPAINT_RADIUS, cv2.INPAINT_TELEA)
        else:
            out[:] = 0
    return out, holes


def _render_block(layers, loop, K, poses, shape, first, count, depth_tolerance, pinhole_neighbours):
    images = np.empty((count,) + tuple(shape) + (3,), np.uint8)
    holes = np.empty((count,) + tuple(shape), bool)
    t0 = time.perf_counter()
    for n in range(count):
        k = first + n
        loop_frame = None if loop is None else loop[k % loop.shape[0]]
        images[n], holes[n] = render_frame(layers, loop_frame, K, poses[k], shape, depth_tolerance=depth_tolerance,
                                           pinhole_neighbours=pinhole_neighbours)
    return images, holes, time.perf_counter() - t0


def render_path(
    layers: Layers,
    loop: np.ndarray | None,
    K: np.ndarray,
    poses: np.ndarray,
    shape: tuple[int, int],
    *,
    depth_tolerance: float = 0.03,
    pinhole_neighbours: int = 4,
    frames_per_task: int = 8,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Draw every pose of ``poses`` (F, 3, 4).

    Returns ``(frames (F, H, W, 3) uint8, inpainted (F, H, W) bool, seconds)``, the last the
    sum of the blocks' drawing times (CPU-side, over parallel tasks).
    """
    n = poses.shape[0]
    blocks = [(a, min(frames_per_task, n - a)) for a in range(0, n, frames_per_task)]
    with cluster_compute() as client:
        # the layers and the loop go to the cluster once, not inside the graph (tasks.runtime.shared_inputs)
        shared = shared_inputs(client, (layers, loop, K, poses))
        tasks = [
            dask.delayed(_render_block, pure=True)(*shared, tuple(shape), a, c, depth_tolerance, pinhole_neighbours)
            for a, c in blocks
        ]
        parts = dask.compute(*tasks)
    frames = np.concatenate([p[0] for p in parts])
    holes = np.concatenate([p[1] for p in parts])
    return frames, holes, float(sum(p[2] for p in parts))
