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
from schemas.config import WindowParams
from schemas.results import WindowResult
from tasks.runtime import finished_stage, stage_logger
from tasks.store import (
    digest,
    forget_stages,
    open_store,
    record_stage,
    require,
    stage_record,
    update_attrs,
    write_variables,
)

STAGE = "window"

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


def window_digest(store, params: WindowParams, min_frames: int) -> str:
    upstream = (stage_record(store, "ingest") or {}).get("digest")
    return digest(STAGE, upstream, params.model_dump(mode="json"), min_frames)


def build_window(frames: xr.DataArray, params: WindowParams, min_frames: int = MIN_WINDOW_FRAMES):
    """Lazy window variables of a ``frames`` array: (Dataset, WindowResult).

    The returned Dataset holds ``reference``, ``warped`` and ``visible`` as dask
    arrays chunked (all window frames, tile, tile, 3); nothing is computed.
    """
    n = frames.sizes[N.TIME]
    ref, start, stop = window_bounds(n, params)
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
    return ds, WindowResult(reference_index=ref, window_start=start, window_stop=stop)


def select_window(store: str, params: WindowParams, min_frames: int = MIN_WINDOW_FRAMES) -> WindowResult:
    """Write the window variables of ``store`` (identity alignment) and record the stage."""
    t0 = time.perf_counter()
    ds = open_store(store)
    require(ds, store, [N.FRAMES])
    out, result = build_window(ds[N.FRAMES], params, min_frames)
    # the identity alignment replaces whatever an earlier alignment wrote: its records go too
    forget_stages(store, ALIGN_STAGES)
    write_variables(out, store)
    update_attrs(store, {**result.model_dump(), ALIGNED_BY_ATTR: "identity"})
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
