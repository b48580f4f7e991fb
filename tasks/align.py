"""Alignment of the analysis window to the reference view (Yan et al., CVPR 2017, Sec. 3).

Four stages, each a Prefect task that reads and writes the item's store:

``motion``
    KLT tracks from the reference frame measure how the camera moves over the
    window and choose the alignment mode (``config.align.mode = "auto"``,
    :func:`choose_mode`): *steady* when part of the scene stays still (however
    much moves in front of it), *homography* when one homography per frame
    explains the tracks (a pan or turn, a distant or planar scene), *moving*
    when there is parallax.  Writes ``homography``.
``sfm`` (moving only)
    Structure from motion of the window with pycolmap (:mod:`tasks.sfm`):
    ``camera_intrinsics``, ``cam_from_world``, ``camera_registered``,
    ``points3d``, ``point_error``, ``point_in_reference``.  When it fails the
    failure is recorded (so a rerun does not retry it) and the flow aligns the
    window by homography instead.
``depth`` (moving only)
    Plane-sweep depth of the reference frame, 1 - NCC cost volume built in
    label slabs as parallel Dask tasks, alpha-expansion (:mod:`tasks.depth`):
    ``depth``.
``warp``
    Writes ``warped`` and ``visible`` of the chosen mode: the identity (kept
    from the window stage when it is still there), one homography per frame,
    or the z-buffer depth warp (:mod:`kernels.warp`), frames in blocks as Dask
    tasks.  Samples outside the frame or occluded in it are invisible, with
    colour 0 -- never made-up colour.

Variable names are in :mod:`schemas.names`; the README's store table documents them.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import cv2
import dask
import numpy as np
import xarray as xr
from prefect import task

from kernels.alpha_expansion import alpha_expansion
from kernels.warp import warp_to_reference
from schemas import names as N
from schemas.config import AlignParams, WindowParams
from schemas.results import DepthSummary, MotionResult, SfMSummary, WarpResult
from tasks.depth import depth_range_from_points, reference_depth, relative_pose, select_neighbours
from tasks.runtime import cluster_compute, finished_stage, shared_inputs, stage_logger
from tasks.sfm import FOCAL_FLAT_PROFILE, SfMFailed, run_sfm
from tasks.stabilise import track_features
from tasks.store import (
    config_values,
    digest,
    drop_variables,
    open_store,
    read_attrs,
    record_stage,
    require,
    stage_record,
    update_attrs,
    write_variables,
)
from tasks.threads import thread_budget
from tasks.window import ALIGNED_BY_ATTR, build_window

MODES = ("steady", "homography", "moving")

_MOTION_KEYS = (
    "mode",
    "steady_max_motion_px",
    "steady_min_still_fraction",
    "homography_min_inliers",
    "max_features",
    "min_tracks",
    "ransac_px",
)
_SFM_KEYS = (
    "sfm_max_frames", "sfm_max_features", "sfm_overlap", "sfm_camera_model", "sfm_seed", "sfm_focal_prior_fov",
)
_DEPTH_KEYS = (
    "depth_labels",
    "depth_drop_fraction",
    "max_neighbours_each_side",
    "ncc_patch",
    "ncc_truncation",
    "smoothness_weight",
    "smoothness_truncation",
    "graph_cut_cycles",
)


def _subset(params: AlignParams, keys) -> dict:
    values = config_values(params)
    return {k: values[k] for k in keys if k in values}


# --------------------------------------------------------------------------
# reading the window


def window_location(store: str) -> tuple[int, int, int]:
    """(start, stop, reference index inside the window) as the window stage recorded them."""
    attrs = read_attrs(store)
    try:
        start, stop, ref = int(attrs["window_start"]), int(attrs["window_stop"]), int(attrs["reference_index"])
    except KeyError:
        from tasks.store import StoreError

        raise StoreError(f"{store}: the window stage has not run (no window bounds in the store)") from None
    return start, stop, ref - start


def _window_frames(ds: xr.Dataset, start: int, stop: int) -> np.ndarray:
    with cluster_compute():
        return np.asarray(ds[N.FRAMES].isel({N.TIME: slice(start, stop)}).data.compute())


def _grey(frames: np.ndarray) -> np.ndarray:
    return np.stack([cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY) for f in frames])


# --------------------------------------------------------------------------
# motion and mode


@dataclass
class MotionStats:
    """Per-frame motion of the tracks from the reference frame (NaN where a frame has too few tracks).

    Attributes
    ----------
    homographies : ndarray, shape (T, 3, 3), float64
        Frame pixel -> reference pixel (RANSAC), NaN where not fitted; the identity for the reference.
    n_tracks : int
        Tracks started in the reference frame.
    displacement : ndarray, shape (T,)
        Median distance of the tracks from their reference position (pixels).
    still : ndarray, shape (T,)
        Fraction of the tracks that moved at most ``steady_max_motion_px``.
    inliers : ndarray, shape (T,)
        Fraction of the tracks within ``ransac_px`` of the frame's homography.
    residual : ndarray, shape (T,)
        75th percentile of the tracks' distance to the frame's homography (pixels).
    """

    homographies: np.ndarray
    n_tracks: int
    displacement: np.ndarray
    still: np.ndarray
    inliers: np.ndarray
    residual: np.ndarray


def measure_motion(grey: np.ndarray, ref: int, params: AlignParams) -> MotionStats:
    """Track features from frame ``ref`` through ``grey`` (T, H, W) uint8 and fit one homography per frame.

    Uses ``max_features``, ``min_tracks``, ``ransac_px`` and ``steady_max_motion_px`` of ``params``;
    see :class:`MotionStats` for what is measured.  The reference frame itself is left NaN.
    """
    n_frames, height, width = grey.shape
    tracks = track_features(grey, ref, np.ones((height, width), bool), max_features=params.max_features)
    homographies = np.full((n_frames, 3, 3), np.nan)
    homographies[ref] = np.eye(3)
    figures = np.full((4, n_frames), np.nan)
    for t in range(n_frames):
        if t == ref:
            continue
        ok = np.isfinite(tracks[t]).all(axis=1) & np.isfinite(tracks[ref]).all(axis=1)
        if ok.sum() < params.min_tracks:
            continue
        src = tracks[t, ok].astype(np.float64)
        dst = tracks[ref, ok].astype(np.float64)
        distance = np.linalg.norm(src - dst, axis=1)
        hmat, _ = cv2.findHomography(src, dst, cv2.RANSAC, params.ransac_px, maxIters=2000, confidence=0.999)
        if hmat is None or not np.all(np.isfinite(hmat)):
            continue
        mapped = cv2.perspectiveTransform(src.reshape(-1, 1, 2), hmat).reshape(-1, 2)
        off = np.linalg.norm(mapped - dst, axis=1)
        figures[:, t] = (
            np.median(distance),
            np.mean(distance <= params.steady_max_motion_px),
            np.mean(off <= params.ransac_px),
            np.percentile(off, 75),
        )
        homographies[t] = hmat / hmat[2, 2]
    return MotionStats(homographies, int(tracks.shape[1]), *figures)


def choose_mode(stats: MotionStats, params: AlignParams) -> tuple[str, str]:
    """(mode, reason) from the measured motion, or the mode forced by ``params.mode``.

    Auto: *steady* when in at least 90 % of the measured frames a fraction
    ``steady_min_still_fraction`` of the tracks has not moved (a tripod shot keeps its
    background still however much moves in front of it); else *homography* when one
    homography per frame explains ``homography_min_inliers`` of the tracks in the median
    frame (a pan or turn, a distant or planar scene); else *moving* (parallax: depth needed).
    """
    measured = np.isfinite(stats.inliers)
    if measured.sum() >= 1:
        still = float(np.percentile(stats.still[measured], 10))
        inliers = float(np.median(stats.inliers[measured]))
        figures = (
            f"still tracks {100 * still:.0f} % (10th percentile over frames), homography inliers "
            f"{100 * inliers:.0f} % (median), median displacement up to {np.nanmax(stats.displacement):.1f} px"
        )
    if params.mode != "auto":
        measured_text = figures if measured.sum() >= 1 else "too few tracked frames to measure"
        return params.mode, f"forced by config (align.mode = {params.mode}); measured {measured_text}"
    if stats.n_tracks < params.min_tracks or measured.sum() < 1:
        return "steady", (
            f"only {stats.n_tracks} features could be tracked from the reference frame: camera motion cannot be "
            "measured, the clip is taken as steady"
        )
    if still >= params.steady_min_still_fraction:
        return "steady", f"steady camera: {figures}"
    if inliers >= params.homography_min_inliers:
        return "homography", f"camera moves without parallax: {figures}"
    return "moving", f"moving camera with parallax: {figures}"


def motion_digest(store: str, params: AlignParams) -> str:
    upstream = (stage_record(store, "window") or {}).get("digest")
    return digest("motion", upstream, _subset(params, _MOTION_KEYS))


def classify_motion(store: str, params: AlignParams) -> MotionResult:
    """Measure the camera motion of the window, write ``homography`` and record the chosen mode."""
    t0 = time.perf_counter()
    ds = open_store(store)
    require(ds, store, [N.FRAMES])
    start, stop, ref = window_location(store)
    grey = _grey(_window_frames(ds, start, stop))
    stats = measure_motion(grey, ref, params)
    mode, reason = choose_mode(stats, params)
    out = xr.Dataset({N.HOMOGRAPHY: ((N.WINDOW_TIME, N.ROW3, N.COL3), stats.homographies)})
    write_variables(out, store)
    measured = np.isfinite(stats.inliers)
    some = bool(measured.any())
    result = MotionResult(
        mode=mode,
        requested=params.mode,
        reason=reason,
        n_tracks=stats.n_tracks,
        frames_measured=int(measured.sum()),
        motion_px=float(np.nanmax(stats.displacement)) if some else None,
        still_fraction=float(np.percentile(stats.still[measured], 10)) if some else None,
        inlier_fraction=float(np.median(stats.inliers[measured])) if some else None,
        parallax_px=float(np.nanmedian(stats.residual)) if some else None,
    )
    record_stage(store, "motion", motion_digest(store, params), time.perf_counter() - t0, result.model_dump())
    return result


@task(name="classify_motion")
def classify_motion_task(store: str, params: AlignParams) -> MotionResult:
    """Prefect task: measure the camera motion over the window and choose steady, homography or moving."""
    done = finished_stage(store, "motion", motion_digest(store, params), MotionResult)
    if done is not None:
        return done
    log = stage_logger("motion")
    result = classify_motion(store, params)
    log.info("stage motion finished: mode %s (%s)", result.mode, result.reason)
    return result


# --------------------------------------------------------------------------
# structure from motion


def sfm_digest(store: str, params: AlignParams) -> str:
    upstream = (stage_record(store, "window") or {}).get("digest")
    return digest("sfm", upstream, _subset(params, _SFM_KEYS))


def sfm_threads(params: AlignParams) -> int:
    """COLMAP's thread count for the sfm stage: ``params.sfm_threads``, else the thread count of the
    Dask worker process running it (a corpus run's one-thread workers keep COLMAP on one core each,
    as its other stages), else every CPU this process may use (:func:`tasks.threads.thread_budget`)."""
    return params.sfm_threads or thread_budget()


def structure_from_motion(store: str, params: AlignParams) -> SfMSummary:
    """Reconstruct the window's cameras and write them; a failure is recorded, not raised."""
    t0 = time.perf_counter()
    ds = open_store(store)
    require(ds, store, [N.FRAMES])
    start, stop, ref = window_location(store)
    frames = _window_frames(ds, start, stop)
    n_frames = frames.shape[0]
    step = max(1, math.ceil(n_frames / params.sfm_max_frames))
    sampled = len(set(range(0, n_frames, step)) | {n_frames - 1, ref})
    threads = sfm_threads(params)
    try:
        sfm = run_sfm(
            frames,
            step=step,
            always_include=(ref,),
            camera_model=params.sfm_camera_model,
            overlap=params.sfm_overlap,
            max_num_features=params.sfm_max_features,
            num_threads=threads,
            seed=params.sfm_seed,
            focal_prior_fov_degrees=params.sfm_focal_prior_fov,
        )
        in_ref = np.zeros(len(sfm.points3d), bool)
        in_ref[sfm.points_seen_in(ref)] = True
        try:
            reference_depth_range(sfm.points3d, in_ref, sfm.cam_from_world[ref], sfm.K, frames.shape[1:3], 0.0)
        except ValueError as exc:
            raise SfMFailed(f"the reconstruction cannot bound the depth of the reference frame ({exc})") from None
    except SfMFailed as exc:
        drop_variables(store, N.CAMERA_VARIABLES)
        summary = SfMSummary(ok=False, message=str(exc), frames_reconstructed=sampled)
    else:
        out = xr.Dataset(
            {
                N.CAMERA_INTRINSICS: ((N.ROW3, N.COL3), sfm.K),
                N.CAM_FROM_WORLD: ((N.WINDOW_TIME, N.ROW3, N.COL4), sfm.cam_from_world),
                N.CAMERA_REGISTERED: ((N.WINDOW_TIME,), sfm.registered),
                N.POINTS3D: ((N.POINT, N.XYZ), sfm.points3d),
                N.POINT_ERROR: ((N.POINT,), sfm.point_errors),
                N.POINT_IN_REFERENCE: ((N.POINT,), in_ref),
            }
        )
        drop_variables(store, N.CAMERA_VARIABLES)
        write_variables(out, store)
        summary = SfMSummary(
            ok=True,
            frames_reconstructed=sampled,
            frames_registered=int(sfm.registered.sum()),
            n_points=len(sfm.points3d),
            focal_px=float(sfm.K[0, 0]),
            focal_prior_px=sfm.focal_prior,
            focal_profile=None if sfm.focal_profile is None else {f"{k:g}": v for k, v in sfm.focal_profile.items()},
            focal_determined=None if sfm.focal_profile is None else bool(
                np.mean(list(sfm.focal_profile.values())) >= 1 + FOCAL_FLAT_PROFILE
            ),
            mean_reprojection_error=sfm.mean_reprojection_error,
        )
    record_stage(store, "sfm", sfm_digest(store, params), time.perf_counter() - t0, summary.model_dump())
    return summary


@task(name="structure_from_motion")
def structure_from_motion_task(store: str, params: AlignParams) -> SfMSummary:
    """Prefect task: pycolmap structure from motion of the window (poses, intrinsics, sparse points)."""
    done = finished_stage(store, "sfm", sfm_digest(store, params), SfMSummary)
    if done is not None:
        return done
    log = stage_logger("sfm")
    summary = structure_from_motion(store, params)
    if summary.ok:
        log.info(
            "stage sfm finished: %d of %d frames registered, %d points, focal %.1f px, reprojection error %.2f px",
            summary.frames_registered, summary.frames_reconstructed, summary.n_points, summary.focal_px,
            summary.mean_reprojection_error,
        )
    else:
        log.warning("stage sfm finished without cameras: %s; the window is aligned by homography", summary.message)
    return summary


# --------------------------------------------------------------------------
# depth


def depth_digest(store: str, params: AlignParams) -> str:
    upstream = (stage_record(store, "sfm") or {}).get("digest")
    return digest("depth", upstream, _subset(params, _DEPTH_KEYS))


def _read_cameras(store: str, ds: xr.Dataset):
    require(ds, store, [N.CAMERA_INTRINSICS, N.CAM_FROM_WORLD])
    K = np.asarray(ds[N.CAMERA_INTRINSICS].values, np.float64)
    poses = np.asarray(ds[N.CAM_FROM_WORLD].values, np.float64)
    return K, poses


def reference_depth_range(points, seen, pose, K, image_shape, drop_fraction: float) -> tuple[float, float]:
    """(near, far) of the reference frame from the SfM points it sees (all points when it sees fewer than 2).

    Raises ValueError when the points cannot bound a depth range (see
    :func:`tasks.depth.depth_range_from_points`); the sfm stage treats that as a failed reconstruction.
    """
    points = np.asarray(points, np.float64)
    seen = np.asarray(seen, bool)
    if seen.sum() >= 2:
        points = points[seen]
    return depth_range_from_points(points, pose, K=K, image_shape=image_shape, drop_fraction=drop_fraction)


def _dask_slabs(fn, shared, slabs):
    """Cost-volume slabs as parallel Dask tasks (on the flow's cluster when there is one).

    Each shared input (the grey reference and neighbours, the poses) is sent to the cluster once,
    not once per slab.  On a cluster they are scattered to its workers straight from this process
    (about 90 MB of grey neighbours for a 100-frame window at 640x360): inside the graph they went
    through the scheduler, and Dask warned of the large graph on every hand-held run.
    """
    with cluster_compute() as client:
        keys = shared_inputs(client, shared)
        tasks = [dask.delayed(fn, pure=True)(*keys, slab) for slab in slabs]
        return list(dask.compute(*tasks))


def compute_reference_depth(store: str, params: AlignParams) -> DepthSummary:
    """Plane sweep + alpha-expansion depth of the reference frame; writes ``depth``."""
    t0 = time.perf_counter()
    ds = open_store(store)
    require(ds, store, [N.FRAMES, N.POINTS3D, N.POINT_IN_REFERENCE])
    start, stop, ref = window_location(store)
    frames = _window_frames(ds, start, stop)
    K, poses = _read_cameras(store, ds)
    near, far = reference_depth_range(
        ds[N.POINTS3D].values, ds[N.POINT_IN_REFERENCE].values, poses[ref], K, frames.shape[1:3],
        params.depth_drop_fraction,
    )
    neighbours = select_neighbours(frames.shape[0], ref, params.max_neighbours_each_side)
    result = reference_depth(
        frames,
        K,
        poses,
        ref,
        neighbours,
        depth_range=(near, far),
        n_labels=params.depth_labels,
        patch_size=params.ncc_patch,
        truncation=params.ncc_truncation,
        pairwise_weight=params.smoothness_weight,
        pairwise_truncation=params.smoothness_truncation,
        solver=alpha_expansion,
        solver_options={"max_cycles": params.graph_cut_cycles},
        label_slab=params.label_slab,
        map_slabs=_dask_slabs,
    )
    tile = ds[N.REFERENCE].chunks[0][0] if ds[N.REFERENCE].chunks else 64
    write_variables(xr.Dataset({N.DEPTH: ((N.Y, N.X), result.depth)}), store, chunks={N.Y: tile, N.X: tile})
    summary = DepthSummary(
        depth_near=near,
        depth_far=far,
        n_labels=params.depth_labels,
        n_neighbours=int(neighbours.size),
        energy=result.energy,
        seconds_cost_volume=round(result.seconds_cost_volume, 3),
        seconds_graph_cut=round(result.seconds_graph_cut, 3),
    )
    record_stage(store, "depth", depth_digest(store, params), time.perf_counter() - t0, summary.model_dump())
    return summary


@task(name="reference_depth")
def reference_depth_task(store: str, params: AlignParams) -> DepthSummary:
    """Prefect task: plane-sweep cost volume (Dask slabs) and alpha-expansion depth of the reference frame."""
    done = finished_stage(store, "depth", depth_digest(store, params), DepthSummary)
    if done is not None:
        return done
    log = stage_logger("depth")
    summary = compute_reference_depth(store, params)
    log.info(
        "stage depth finished: %d labels over [%.3g, %.3g], %d neighbours; cost volume %.1f s, graph cut %.1f s",
        summary.n_labels, summary.depth_near, summary.depth_far, summary.n_neighbours,
        summary.seconds_cost_volume, summary.seconds_graph_cut,
    )
    return summary


# --------------------------------------------------------------------------
# warp


def homography_warp(frame: np.ndarray, hmat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Warp ``frame`` into the reference view by ``hmat`` (frame pixel -> reference pixel).

    Returns ``(warped, visible)``; a reference pixel is visible when its preimage
    lies inside the frame (pixel centres ``[0, W-1] x [0, H-1]``).  Invisible
    pixels are 0; a frame without a homography (NaN) is wholly invisible.
    """
    height, width = frame.shape[:2]
    if not np.all(np.isfinite(hmat)):
        return np.zeros_like(frame), np.zeros((height, width), bool)
    warped = cv2.warpPerspective(
        np.ascontiguousarray(frame), hmat, (width, height), flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT, borderValue=0,
    )
    inverse = np.linalg.inv(hmat)
    ys, xs = np.mgrid[0:height, 0:width]
    pts = np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)], axis=0).astype(np.float64)
    src = inverse @ pts
    with np.errstate(divide="ignore", invalid="ignore"):
        u, v = src[0] / src[2], src[1] / src[2]
    eps = 1e-6
    visible = (src[2] > 0) & (u >= -eps) & (u <= width - 1 + eps) & (v >= -eps) & (v <= height - 1 + eps)
    visible = visible.reshape(height, width)
    warped[~visible] = 0
    return warped, visible


def _warp_block(block, block_info=None, *, mode, homographies=None, depth=None, K=None, poses=None, ref=0,
                tolerance=0.03):
    """Warp one block of window frames: (t, H, W, 3) uint8 -> (t, H, W, 4) uint8, channel 3 = visible."""
    first = block_info[0]["array-location"][0][0]
    out = np.empty(block.shape[:3] + (4,), np.uint8)
    for k in range(block.shape[0]):
        t = first + k
        if mode == "homography":
            warped, visible = homography_warp(block[k], homographies[t])
        else:
            if t == ref:
                warped, visible = block[k], np.ones(block.shape[1:3], bool)
            else:
                warped, visible = warp_to_reference(
                    block[k], depth, K, relative_pose(poses[ref], poses[t]), depth_tolerance=tolerance
                )
        out[k, ..., :3] = warped
        out[k, ..., 3] = visible
    return out


def warp_digest(store: str, params: AlignParams, mode: str, tile: int) -> str:
    upstream = [(stage_record(store, s) or {}).get("digest") for s in ("window", "motion")]
    if mode == "moving":
        upstream.append((stage_record(store, "depth") or {}).get("digest"))
    return digest("warp", mode, upstream, params.depth_tolerance if mode == "moving" else None, tile)


def warp_window(store: str, params: AlignParams, mode: str, tile: int = 64) -> WarpResult:
    """Write ``warped`` and ``visible`` of the window aligned by ``mode``; record the ``warp`` stage."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    t0 = time.perf_counter()
    ds = open_store(store)
    require(ds, store, [N.FRAMES])
    start, stop, ref = window_location(store)
    attrs = read_attrs(store)
    frames_unaligned = 0
    if mode != "moving":
        drop_variables(store, [N.DEPTH, *N.CAMERA_VARIABLES])
    if mode == "steady":
        if attrs.get(ALIGNED_BY_ATTR) != "identity" or N.WARPED not in ds:
            window_params = WindowParams(reference_index=start + ref, frames_before=ref,
                                         frames_after=stop - start - ref - 1, tile=tile)
            out, _ = build_window(ds[N.FRAMES], window_params, 1)
            write_variables(out[[N.WARPED, N.VISIBLE]], store)
        visible_fraction = 1.0
    else:
        window = ds[N.FRAMES].isel({N.TIME: slice(start, stop)}).data
        height, width = window.shape[1:3]
        window = window.rechunk((params.frames_per_task, height, width, 3))
        kwargs = {"mode": mode, "ref": ref}
        if mode == "homography":
            require(ds, store, [N.HOMOGRAPHY])
            homographies = np.asarray(ds[N.HOMOGRAPHY].values, np.float64)
            kwargs["homographies"] = homographies
            frames_unaligned = int((~np.isfinite(homographies).all(axis=(1, 2))).sum())
        else:
            require(ds, store, [N.DEPTH])
            K, poses = _read_cameras(store, ds)
            kwargs.update(depth=np.asarray(ds[N.DEPTH].values, np.float32), K=K, poses=poses,
                          tolerance=params.depth_tolerance)
        both = window.map_blocks(_warp_block, dtype=np.uint8, chunks=window.chunks[:3] + ((4,),), **kwargs)
        n = stop - start
        chunks = (n, tile, tile)
        warped = both[..., :3].rechunk(chunks + (3,))
        visible = (both[..., 3] > 0).rechunk(chunks)
        coord = {N.WINDOW_TIME: np.arange(start, stop)}
        out = xr.Dataset(
            {
                N.WARPED: ((N.WINDOW_TIME, N.Y, N.X, N.CHANNEL), warped),
                N.VISIBLE: ((N.WINDOW_TIME, N.Y, N.X), visible),
            },
            coords=coord,
        )
        with cluster_compute():
            write_variables(out, store)
            visible_fraction = float(open_store(store)[N.VISIBLE].data.mean().compute())
    update_attrs(store, {ALIGNED_BY_ATTR: {"steady": "identity", "homography": "homography", "moving": "depth"}[mode]})
    result = WarpResult(mode=mode, visible_fraction=visible_fraction, frames_unaligned=frames_unaligned)
    record_stage(store, "warp", warp_digest(store, params, mode, tile), time.perf_counter() - t0, result.model_dump())
    return result


@task(name="warp_window")
def warp_window_task(store: str, params: AlignParams, mode: str, tile: int = 64) -> WarpResult:
    """Prefect task: write the window aligned to the reference view (`warped`, `visible`)."""
    done = finished_stage(store, "warp", warp_digest(store, params, mode, tile), WarpResult)
    if done is not None:
        return done
    log = stage_logger("warp")
    result = warp_window(store, params, mode, tile)
    log.info(
        "stage warp finished: %s alignment, %.1f %% of the window's samples visible%s",
        result.mode, 100 * result.visible_fraction,
        f", {result.frames_unaligned} frames without a homography" if result.frames_unaligned else "",
    )
    return result
