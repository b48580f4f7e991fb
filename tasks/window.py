"""Analysis window: the reference frame and the frames around it, aligned to the reference view.

Everything downstream reads ``warped`` (window_time, y, x, channel) and
``visible`` (window_time, y, x), so cost does not grow with the clip's length.
This stage is also where the store is rechunked, once: ``frames`` is chunked
for sequential writing (short time chunks), the window for per-pixel temporal
kernels (all window frames in a chunk, small spatial tiles).

This stage writes the identity alignment: ``warped`` is the window of
``frames`` and every sample is visible.  The alignment stages of
:mod:`tasks.align` then keep it (steady footage) or replace ``warped`` and
``visible`` by a homography or depth warp into the reference view.

The window's own time dimension is ``window_time`` (its coordinate holds the
frame indices into ``time``): one xarray Dataset cannot hold two lengths of
the same dimension.
"""

from __future__ import annotations

import time

import dask.array as da
import numpy as np
import xarray as xr
from prefect import task

from schemas import names as N
from schemas.config import IngestParams, WindowParams
from schemas.results import ShotsResult, WindowResult
from tasks.runtime import finished_stage, stage_logger
from tasks.shots import detect_cuts, shots_from_cuts
from tasks.store import (
    config_values,
    digest,
    forget_stages,
    open_store,
    read_attrs,
    record_stage,
    require,
    stage_done,
    stage_record,
    update_attrs,
    write_variables,
)

STAGE = "window"
SHOTS_STAGE = "shots"

#: Store attribute with the clip's shots, [[start, stop), ...] in frame indices (written by the shots stage).
SHOTS_ATTR = "shots"

#: The stages that align the window after this one (tasks.align); rewriting the window voids them.
ALIGN_STAGES = ("motion", "sfm", "depth", "warp")

#: Store attribute naming what wrote `warped`/`visible`: "identity", "homography" or "depth".
ALIGNED_BY_ATTR = "aligned_by"

#: The smallest window the cyclicity score is defined on, with tau = 4 (2 tau + 2 frames).
MIN_WINDOW_FRAMES = 10


class WindowError(ValueError):
    """The clip is too short, or the requested reference frame is outside it."""


def window_bounds(n_frames: int, params: WindowParams) -> tuple[int, int, int]:
    """(reference_index, start, stop) of the analysis window, clipped to the clip."""
    ref = n_frames // 2 if params.reference_index is None else params.reference_index
    if not 0 <= ref < n_frames:
        raise WindowError(f"reference_index {ref} is outside the clip's {n_frames} frames")
    start = max(0, ref - params.frames_before)
    stop = min(n_frames, ref + params.frames_after + 1)
    return ref, start, stop


def choose_window(
    n_frames: int, params: WindowParams, shots: list[tuple[int, int]] | None = None, min_frames: int = 1
) -> WindowResult:
    """Reference frame and window, kept inside one shot when ``params.shots == "inside"``.

    ``shots`` are [start, stop) frame ranges covering the clip (None or one shot: no cut known).
    Without a requested ``reference_index`` the reference is the middle of the longest shot (the
    earliest of equally long ones); a requested reference keeps its own shot.  A shot shorter than
    ``min_frames`` cannot hold a window: the window then ignores the shot boundaries and says so.
    """
    shots = [tuple(map(int, s)) for s in shots or []]
    if len(shots) < 2 or params.shots == "off":
        ref, start, stop = window_bounds(n_frames, params)
        why = "the middle frame" if params.reference_index is None else "the requested frame"
        return WindowResult(
            reference_index=ref, window_start=start, window_stop=stop, shots=shots,
            shot=0 if shots else None, reason=f"reference {why}; " + (
                "one shot" if shots else "no shot detection"),
        )
    if params.reference_index is None:
        k = max(range(len(shots)), key=lambda i: (shots[i][1] - shots[i][0], -i))
        a, b = shots[k]
        ref = a + (b - a) // 2
        why = f"reference in the middle of the longest shot ({k}: frames {a}-{b})"
    else:
        ref = params.reference_index
        if not 0 <= ref < n_frames:
            raise WindowError(f"reference_index {ref} is outside the clip's {n_frames} frames")
        k = next(i for i, (a, b) in enumerate(shots) if a <= ref < b)
        a, b = shots[k]
        why = f"the requested reference is in shot {k} (frames {a}-{b})"
    full_start = max(0, ref - params.frames_before)
    full_stop = min(n_frames, ref + params.frames_after + 1)
    inside = params.shots == "inside" and b - a >= min_frames
    start, stop = (max(a, full_start), min(b, full_stop)) if inside else (full_start, full_stop)
    if params.shots == "inside" and not inside:
        why += f"; the shot is shorter than the {min_frames} frames a window needs, so the window crosses cuts"
    elif inside:
        why += "; window kept inside it"
    crosses = start < a or stop > b
    return WindowResult(
        reference_index=ref,
        window_start=start,
        window_stop=stop,
        shots=shots,
        shot=k,
        reason=why,
        crosses_cut=crosses,
        cut_by_shot=(start, stop) != (full_start, full_stop),
    )


def window_digest(store, params: WindowParams, min_frames: int) -> str:
    upstream = [(stage_record(store, s) or {}).get("digest") for s in ("ingest", SHOTS_STAGE)]
    return digest(STAGE, upstream, config_values(params), min_frames)


def build_window(
    frames: xr.DataArray,
    params: WindowParams,
    min_frames: int = MIN_WINDOW_FRAMES,
    shots: list[tuple[int, int]] | None = None,
):
    """Lazy window variables of a ``frames`` array: (Dataset, WindowResult).

    ``shots`` ([start, stop) frame ranges) keep the window inside one shot (see :func:`choose_window`).

    The returned Dataset holds ``reference``, ``warped`` and ``visible`` as dask
    arrays chunked (all window frames, tile, tile, 3); nothing is computed.
    """
    n = frames.sizes[N.TIME]
    choice = choose_window(n, params, shots, min_frames)
    ref, start, stop = choice.reference_index, choice.window_start, choice.window_stop
    if stop - start < min_frames:
        raise WindowError(
            f"the analysis window holds {stop - start} frames (clip of {n}); at least {min_frames} are needed"
        )
    tile = params.tile
    win = frames.isel({N.TIME: slice(start, stop)}).rename({N.TIME: N.WINDOW_TIME})
    win = win.assign_coords({N.WINDOW_TIME: np.arange(start, stop)})
    win = win.chunk({N.WINDOW_TIME: -1, N.Y: tile, N.X: tile, N.CHANNEL: -1})
    h, w = frames.sizes[N.Y], frames.sizes[N.X]
    visible = da.ones((stop - start, h, w), dtype=bool, chunks=(stop - start, tile, tile))
    reference = frames.isel({N.TIME: ref}).chunk({N.Y: tile, N.X: tile, N.CHANNEL: -1})
    ds = xr.Dataset(
        {
            N.REFERENCE: reference.drop_vars(N.TIME, errors="ignore"),
            N.WARPED: win,
            N.VISIBLE: ((N.WINDOW_TIME, N.Y, N.X), visible),
        }
    )
    return ds, choice


def select_window(store: str, params: WindowParams, min_frames: int = MIN_WINDOW_FRAMES) -> WindowResult:
    """Write the window variables of ``store`` (identity alignment) and record the stage."""
    t0 = time.perf_counter()
    ds = open_store(store)
    require(ds, store, [N.FRAMES])
    shots = read_attrs(store).get(SHOTS_ATTR) if params.shots != "off" else None
    out, result = build_window(ds[N.FRAMES], params, min_frames, shots)
    # the identity alignment replaces whatever an earlier alignment wrote: its records go too
    forget_stages(store, ALIGN_STAGES)
    write_variables(out, store)
    bounds = {k: v for k, v in result.model_dump().items() if k in ("reference_index", "window_start", "window_stop")}
    update_attrs(store, {**bounds, ALIGNED_BY_ATTR: "identity"})
    record_stage(
        store, STAGE, window_digest(store, params, min_frames), time.perf_counter() - t0, result.model_dump()
    )
    return result


@task(name="select_window")
def select_window_task(store: str, params: WindowParams, min_frames: int = MIN_WINDOW_FRAMES) -> WindowResult:
    """Prefect task: choose the reference and window, write `reference`, `warped`, `visible`."""
    key = window_digest(store, params, min_frames)
    done = finished_stage(store, STAGE, key, WindowResult)
    if done is not None:
        return done
    log = stage_logger(STAGE)
    result = select_window(store, params, min_frames)
    log.info(
        "stage window finished: reference frame %d, window [%d, %d)",
        result.reference_index,
        result.window_start,
        result.window_stop,
    )
    return result


# --------------------------------------------------------------------------
# The shots stage: hard cuts of the source, in ingested frame indices


def shots_digest(store, source: str, ingest: IngestParams, params: WindowParams) -> str:
    """What the stored shots depend on: the ingested frames (the ingest stage's digest), which source
    frames they are (start, end, stride) and the shot options.  Other ingest options (chunking,
    codec, threads, downscale) change no shot; the ingest digest already counts them where they
    change pixels.  A store whose shots were recorded with every ingest option in the digest (as
    before) keeps that record while those options are unchanged."""
    upstream = (stage_record(store, "ingest") or {}).get("digest")
    frames = {k: getattr(ingest, k) for k in ("start_frame", "end_frame", "stride")}
    earlier = digest(SHOTS_STAGE, upstream, ingest.model_dump(mode="json"), params.shots, params.shot_threshold)
    if stage_done(store, SHOTS_STAGE, earlier):
        return earlier
    return digest(SHOTS_STAGE, upstream, frames, params.shots, params.shot_threshold)


def find_shots(source: str, store: str, ingest: IngestParams, params: WindowParams) -> ShotsResult:
    """Detect the hard cuts of ``source`` and store the shots (ingested frame indices) as the `shots` attribute.

    The cuts are found on the source file (PySceneDetect decodes it once more) and mapped to the
    frames ingest kept (``start_frame``, ``end_frame``, ``stride``).  When detection fails the clip
    is one shot and the result says why.
    """
    t0 = time.perf_counter()
    n = int(read_attrs(store)["n_frames"])
    warnings: list[str] = []
    cuts: list[int] = []
    if params.shots != "off":
        try:
            cuts = detect_cuts(source, params.shot_threshold, ingest.start_frame, ingest.end_frame)
        except Exception as exc:  # the detector's own decoding failed: one shot, said out loud
            warnings.append(f"shot detection failed ({type(exc).__name__}: {exc}); the clip is taken as one shot")
    shots = shots_from_cuts(cuts, n, ingest.start_frame, ingest.stride)
    result = ShotsResult(shots=shots, detected=params.shots != "off" and not warnings, warnings=warnings)
    update_attrs(store, {SHOTS_ATTR: [list(s) for s in shots]})
    record_stage(
        store, SHOTS_STAGE, shots_digest(store, source, ingest, params), time.perf_counter() - t0,
        result.model_dump(),
    )
    return result


@task(name="find_shots")
def find_shots_task(source: str, store: str, ingest: IngestParams, params: WindowParams) -> ShotsResult:
    """Prefect task: the clip's shots (hard cuts by PySceneDetect), stored for the window stage."""
    done = finished_stage(store, SHOTS_STAGE, shots_digest(store, source, ingest, params), ShotsResult)
    if done is not None:
        return done
    log = stage_logger(SHOTS_STAGE)
    result = find_shots(source, store, ingest, params)
    log.info("stage shots finished: %d shot(s) %s", len(result.shots), result.shots)
    for w in result.warnings:
        log.warning(w)
    return result
