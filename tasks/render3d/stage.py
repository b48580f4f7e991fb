"""The ``render3d`` stage: read the moving-camera item's store, draw the 3D loop, write it and encode it.

Reads ``reference``, ``depth``, ``camera_intrinsics``, ``cam_from_world``, the window's
``frames``, ``animated_mask`` and ``loop``; writes ``camera_path`` (frame, row3, col4),
``camera_path_intrinsics`` (row3, col3), ``loop_3d`` (frame, y, x, channel) uint8 and
``loop_3d_filled`` (frame, y, x) bool, and ``cinemagraph_3d.mp4`` / ``.gif`` next to the store.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import xarray as xr
from prefect import task

from schemas import names as N
from schemas.render3d import Render3dParams, Render3dResult
from tasks.align import window_location
from tasks.encode import write_gif, write_mp4
from tasks.render3d.layers import build_layers, pick_back_frames
from tasks.render3d.paths import named_path, read_path_file
from tasks.render3d.render import render_path
from tasks.runtime import cluster_compute, finished_stage, stage_logger
from tasks.store import (
    config_values,
    digest,
    drop_variables,
    open_store,
    read_attrs,
    record_stage,
    require,
    stage_record,
    write_variables,
)

STAGE = "render3d"
_INPUTS = (N.REFERENCE, N.DEPTH, N.CAMERA_INTRINSICS, N.CAM_FROM_WORLD, N.FRAMES, N.ANIMATED_MASK, N.LOOP)


class Render3dRefused(ValueError):
    """The item cannot have a 3D cinemagraph (no depth: steady or homography footage)."""


def refusal(mode: str, source: str) -> str:
    """The one line that says why ``render3d`` is refused for footage aligned as ``mode``."""
    return (
        f"{source}: render3d refused: the 3D cinemagraph needs moving-camera footage with depth, and this clip "
        f"was aligned as {mode} (no parallax to reconstruct)"
    )


def render3d_digest(store: str, params: Render3dParams) -> str:
    upstream = [(stage_record(store, s) or {}).get("digest") for s in ("depth", "render", "video_loop")]
    path_text = None
    if params.path_file is not None and Path(params.path_file).is_file():
        path_text = Path(params.path_file).read_text(encoding="utf-8", errors="replace")
    return digest(STAGE, upstream, config_values(params), path_text)


def render_3d(store: str, out_dir: str, params: Render3dParams, fps: float | None = None) -> Render3dResult:
    """Build the layered depth image, draw it along the camera path, write the store and the files."""
    t0 = time.perf_counter()
    if params.path_file is not None:  # bad input first, before any heavy work
        K_file, poses_file = read_path_file(params.path_file)
    ds = open_store(store)
    if N.DEPTH not in ds.variables or N.CAM_FROM_WORLD not in ds.variables:
        aligned = read_attrs(store).get("aligned_by", "unknown")
        mode = {"identity": "steady", "homography": "homography"}.get(aligned, aligned)
        raise Render3dRefused(refusal(mode, store))
    require(ds, store, _INPUTS)
    start, stop, ref = window_location(store)
    with cluster_compute():
        frames = np.asarray(ds[N.FRAMES].isel({N.TIME: slice(start, stop)}).data.compute())
    reference = np.asarray(ds[N.REFERENCE].values)
    depth = np.asarray(ds[N.DEPTH].values, np.float32)
    K = np.asarray(ds[N.CAMERA_INTRINSICS].values, np.float64)
    poses = np.asarray(ds[N.CAM_FROM_WORLD].values, np.float64)
    animated = np.asarray(ds[N.ANIMATED_MASK].values, bool)
    loop = np.asarray(ds[N.LOOP].values)
    height, width = depth.shape
    finite = depth[np.isfinite(depth) & (depth > 0)]
    median_depth = float(np.median(finite)) if finite.size else 1.0

    layers = build_layers(
        reference, depth, K, poses, ref, frames, animated,
        back_frames=pick_back_frames(frames.shape[0], ref, params.back_layer_frames),
        point_scale=params.point_scale, depth_tolerance=params.depth_tolerance,
    )
    t_layers = time.perf_counter() - t0

    if params.path_file is not None:
        path_K, path_poses, path_name = K_file, poses_file, f"file:{params.path_file}"
    else:
        n_out = params.frames or loop.shape[0]
        path_K = K
        path_poses = named_path(params.path, poses[ref], median_depth, params.amplitude, n_out)
        path_name = params.path
    t1 = time.perf_counter()
    out_frames, holes, splat_seconds = render_path(
        layers, loop, path_K, path_poses, (height, width),
        depth_tolerance=params.depth_tolerance, pinhole_neighbours=params.pinhole_neighbours,
    )
    t_render = time.perf_counter() - t1

    tile = ds[N.REFERENCE].chunks[0][0] if ds[N.REFERENCE].chunks else 64
    n_out = out_frames.shape[0]
    data = xr.Dataset(
        {
            N.CAMERA_PATH: ((N.FRAME, N.ROW3, N.COL4), path_poses),
            N.CAMERA_PATH_INTRINSICS: ((N.ROW3, N.COL3), path_K),
            N.LOOP_3D: ((N.FRAME, N.Y, N.X, N.CHANNEL), out_frames),
            N.LOOP_3D_FILLED: ((N.FRAME, N.Y, N.X), holes),
        }
    )
    drop_variables(store, N.RENDER3D_VARIABLES)
    write_variables(data, store, chunks={N.FRAME: min(n_out, 16), N.Y: tile, N.X: tile})

    fps = fps or float(read_attrs(store).get("fps", 25.0))
    out = Path(out_dir)
    mp4 = write_mp4(out / N.MP4_3D_NAME, out_frames, fps, params.crf)
    gif = write_gif(out / N.GIF_3D_NAME, out_frames, fps).path if params.write_gif else None
    fractions = [float(f) for f in holes.reshape(n_out, -1).mean(axis=1)]
    result = Render3dResult(
        path=path_name,
        amplitude=params.amplitude,
        median_depth=median_depth,
        frames=n_out,
        n_points=int(layers.points.shape[0]),
        n_back_points=layers.n_back,
        inpainted_fraction=fractions,
        max_inpainted_fraction=max(fractions),
        camera_path=path_poses.tolist(),
        intrinsics=np.asarray(path_K).tolist(),
        mp4=str(mp4),
        gif=None if gif is None else str(gif),
        seconds_layers=round(t_layers, 3),
        seconds_render=round(t_render, 3),
        splat_points_per_second=(layers.points.shape[0] * n_out / splat_seconds) if splat_seconds > 0 else None,
    )
    record_stage(store, STAGE, render3d_digest(store, params), time.perf_counter() - t0, result.model_dump())
    return result


@task(name="render_3d")
def render_3d_task(store: str, out_dir: str, params: Render3dParams, fps: float | None = None) -> Render3dResult:
    """Prefect task: the 3D cinemagraph (layered depth image splatted along a camera path)."""
    done = finished_stage(store, STAGE, render3d_digest(store, params), Render3dResult)
    if done is not None and done.mp4 and Path(done.mp4).exists():
        return done
    log = stage_logger(STAGE)
    result = render_3d(store, out_dir, params, fps)
    log.info(
        "stage render3d finished: %s path, %d frames, %d points (%d behind edges), in-painted up to %.2f %%",
        result.path, result.frames, result.n_points, result.n_back_points, 100 * result.max_inpainted_fraction,
    )
    return result
