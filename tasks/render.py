"""Render: loop every animated region, freeze everything else to the reference frame.

Reads ``warped``, ``reference``, ``cyclic_mask`` (and ``display_mask`` when a
display stage wrote one); writes ``animated_mask`` (y, x) bool,
``loop_regions`` (y, x) int32 (0 = frozen, r >= 1 = region r) and ``loop``
(loop_time, y, x, channel) uint8.

Looping (documented choice):

* ``animated_mask`` is the union of the cyclic and display masks; its
  8-connected components are the regions, each looped independently.
* A region plays the best interval ``[i, j)`` of its *mean* luminance signal
  (the cyclicity kernel run on one signal), repeated: output frame ``t`` shows
  window frame ``i + (t mod (j - i))``.
* The loop length is ``render.loop_frames`` when given; otherwise the least
  common multiple of the regions' interval lengths when it is at most
  ``render.max_loop_frames``, else the longest interval.  Every region whose
  length divides the loop length completes whole cycles; any other region
  cross-fades, over the loop's last ``crossfade_frames`` frames, into the
  frames that lead up to its interval's start, so the loop's end flows into its
  beginning.
* Edges are feathered inside the mask only: outside ``animated_mask`` every
  output pixel equals the reference frame exactly.
"""

from __future__ import annotations

import math
import time

import dask
import dask.array as da
import numpy as np
import xarray as xr
from prefect import task
from scipy import ndimage

from kernels.cyclicity import dft_cyclicity, min_interval_length
from kernels.loop_render import composite_loop
from schemas import names as N
from schemas.config import CyclicityParams, RenderParams
from schemas.results import LoopQuality, RegionLoop, RenderResult
from tasks.cyclicity import luminance
from tasks.runtime import cluster_compute, stage_logger
from tasks.store import digest, open_store, record_stage, require, stage_done, stage_record, write_variables

STAGE = "render"
LOOP_REGIONS = "loop_regions"


def choose_loop_length(lengths: list[int], params: RenderParams) -> int:
    """Output loop length for regions whose intervals have ``lengths`` frames."""
    if params.loop_frames is not None:
        return params.loop_frames
    if not lengths:
        return 2
    common = 1
    for n in lengths:
        common = common * n // math.gcd(common, n)
        if common > params.max_loop_frames:
            return max(lengths)
    return max(common, 2)


def loop_tables(intervals: list[tuple[int, int]], loop_frames: int, crossfade_frames: int):
    """Per-region frame tables of the loop.

    Returns
    -------
    frame_a, frame_b : ndarray, (R + 1, loop_frames) int32
    weight_b : ndarray, (R + 1, loop_frames) float32
    crossfade : list of bool, one per region
    """
    n = len(intervals)
    fa = np.zeros((n + 1, loop_frames), np.int32)
    fb = np.zeros((n + 1, loop_frames), np.int32)
    wb = np.zeros((n + 1, loop_frames), np.float32)
    t = np.arange(loop_frames)
    fades = []
    for r, (i, j) in enumerate(intervals, start=1):
        length = j - i
        fa[r] = i + t % length
        fb[r] = fa[r]
        fade = loop_frames % length != 0
        fades.append(fade)
        if fade:
            f = min(crossfade_frames, loop_frames - 1, length - 1)
            if f > 0:
                tail = t[loop_frames - f :]
                # frames that lead into the interval's start at t = loop_frames
                fb[r, loop_frames - f :] = i + (tail - loop_frames) % length
                wb[r, loop_frames - f :] = (tail - (loop_frames - f) + 1) / f
    return fa, fb, wb, fades


def feather(mask: np.ndarray, width: float) -> np.ndarray:
    """Opacity that ramps from the mask's edge to 1 over ``width`` pixels inside it; 0 outside."""
    if width <= 0:
        return mask.astype(np.float32)
    dist = ndimage.distance_transform_edt(mask)
    return np.clip(dist / width, 0.0, 1.0).astype(np.float32)


def region_signals(warped: da.Array, regions: np.ndarray, n_regions: int) -> np.ndarray:
    """Mean luminance of every region over the window: (R, T) float64, summed tile by tile."""

    def tile_sums(w, lab):
        lum = luminance(w)  # (T, h, w)
        flat = lab.ravel()
        sums = np.zeros((w.shape[0], n_regions + 1), np.float64)
        for t in range(w.shape[0]):
            sums[t] = np.bincount(flat, weights=lum[t].ravel(), minlength=n_regions + 1)
        return sums

    blocks = warped.rechunk({0: -1, 3: -1}).to_delayed()
    y_edges = np.cumsum((0, *warped.chunks[1]))
    x_edges = np.cumsum((0, *warped.chunks[2]))
    parts = []
    for by in range(len(warped.chunks[1])):
        for bx in range(len(warped.chunks[2])):
            lab = regions[y_edges[by] : y_edges[by + 1], x_edges[bx] : x_edges[bx + 1]]
            if lab.any():
                parts.append(dask.delayed(tile_sums)(blocks[0, by, bx, 0], lab))
    sums = dask.delayed(sum)(parts).compute()  # (T, R + 1)
    areas = np.bincount(regions.ravel(), minlength=n_regions + 1)
    return (sums[:, 1:] / np.maximum(areas[1:], 1)).T


def render_digest(store, render: RenderParams, cyclicity: CyclicityParams) -> str:
    upstream = [(stage_record(store, s) or {}).get("digest") for s in ("window", "cyclicity", "displays")]
    return digest(STAGE, upstream, render.model_dump(mode="json"), cyclicity.model_dump(mode="json"))


def render_loop(store: str, render: RenderParams, cyclicity: CyclicityParams) -> RenderResult:
    """Compute and write ``animated_mask``, ``loop_regions`` and ``loop``; record the stage."""
    t0 = time.perf_counter()
    ds = open_store(store)
    require(ds, store, [N.WARPED, N.REFERENCE, N.CYCLIC_MASK])
    animated = ds[N.CYCLIC_MASK].values.astype(bool)
    if N.DISPLAY_MASK in ds:
        animated |= ds[N.DISPLAY_MASK].values.astype(bool)
    regions, n_regions = ndimage.label(animated, structure=np.ones((3, 3), bool))
    regions = regions.astype(np.int32)
    warped = ds[N.WARPED].data
    n_window = warped.shape[0]
    with cluster_compute():
        intervals, scores = [], []
        if n_regions:
            signals = region_signals(warped, regions, n_regions)
            score, interval, _ = dft_cyclicity(
                signals,
                tau=cyclicity.tau,
                min_length=min_interval_length(n_window, cyclicity.min_interval_fraction),
                eps=cyclicity.eps,
            )
            intervals = [(int(a), int(b)) for a, b in interval]
            scores = [float(s) for s in score]
        loop_frames = choose_loop_length([b - a for a, b in intervals], render)
        fa, fb, wb, fades = loop_tables(intervals, loop_frames, render.crossfade_frames)
        alpha = feather(animated, render.feather_px)

        chunks2 = warped.chunks[1:3]
        labels_da = da.from_array(regions, chunks=chunks2)
        alpha_da = da.from_array(alpha, chunks=chunks2)
        reference = ds[N.REFERENCE].data.rechunk((*chunks2, -1))

        def block(v, ref, lab, al):
            return composite_loop(v, ref[0], lab[0, :, :, 0], al[0, :, :, 0], fa, fb, wb)

        loop = da.map_blocks(
            block,
            warped,
            reference[None],
            labels_da[None, :, :, None],
            alpha_da[None, :, :, None],
            chunks=((loop_frames,), *chunks2, warped.chunks[3]),
            dtype=np.uint8,
            meta=np.empty((0, 0, 0, 0), np.uint8),
        )
        dims2 = (N.Y, N.X)
        out = xr.Dataset(
            {
                N.ANIMATED_MASK: (dims2, da.from_array(animated, chunks=chunks2)),
                LOOP_REGIONS: (dims2, labels_da),
                N.LOOP: ((N.LOOP_TIME, N.Y, N.X, N.CHANNEL), loop),
            }
        )
        write_variables(out, store)
        quality = loop_quality(open_store(store)[N.LOOP].data, animated)
    regions_out = [
        RegionLoop(
            label=r,
            area=int((regions == r).sum()),
            start=intervals[r - 1][0],
            stop=intervals[r - 1][1],
            score=scores[r - 1],
            crossfade=fades[r - 1],
        )
        for r in range(1, n_regions + 1)
    ]
    result = RenderResult(
        loop_frames=loop_frames, animated_pixels=int(animated.sum()), regions=regions_out, quality=quality
    )
    record_stage(
        store, STAGE, render_digest(store, render, cyclicity), time.perf_counter() - t0, result.model_dump()
    )
    return result


def loop_quality(loop: da.Array, animated: np.ndarray) -> LoopQuality:
    """Seam and stillness figures of a stored loop (see :class:`schemas.results.LoopQuality`)."""
    lp = loop.astype(np.int16)
    still = ~animated
    # largest change from the first frame outside the animated region
    diff0 = da.absolute(lp - lp[:1]).max(axis=(0, 3))
    stillness = float(da.where(da.from_array(still, chunks=diff0.chunks), diff0, 0).max().compute())
    if not animated.any():
        return LoopQuality(seam=None, stillness=stillness)
    m = da.from_array(animated, chunks=lp.chunks[1:3])
    step = da.absolute(lp[1:] - lp[:-1]).mean(axis=3)  # (T-1, y, x)
    seam_step = da.absolute(lp[-1] - lp[0]).mean(axis=2)  # (y, x)
    n_anim = animated.sum()
    consecutive = float((step * m[None]).sum().compute()) / (n_anim * step.shape[0])
    seam = float((seam_step * m).sum().compute()) / n_anim
    return LoopQuality(
        seam=seam / consecutive if consecutive > 0 else (0.0 if seam == 0 else float("inf")),
        stillness=stillness,
    )


@task(name="render_loop")
def render_loop_task(store: str, render: RenderParams, cyclicity: CyclicityParams) -> RenderResult:
    """Prefect task: loop every animated region, freeze the rest, write `loop`."""
    log = stage_logger(STAGE)
    if stage_done(store, STAGE, render_digest(store, render, cyclicity)):
        log.info("stage render already complete; skipped")
        return RenderResult.model_validate(stage_record(store, STAGE)["summary"])
    result = render_loop(store, render, cyclicity)
    log.info(
        "stage render finished: %d frames, %d regions, %d animated pixels, seam %s",
        result.loop_frames,
        len(result.regions),
        result.animated_pixels,
        "n/a" if result.quality.seam is None else f"{result.quality.seam:.2f}",
    )
    return result
