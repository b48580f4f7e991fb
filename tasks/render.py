"""Render: clean and loop every animated region, freeze everything else to the reference frame.

Reads ``warped``, ``visible``, ``reference``, ``cyclic_mask`` (and
``display_mask`` when a display stage wrote one); writes ``animated_mask``
(y, x) bool, ``loop_regions`` (y, x) int32 (0 = frozen, r >= 1 = region r) and
``loop`` (loop_time, y, x, channel) uint8.

Regions and their kinds (documented choice):

* ``animated_mask`` is the union of the cyclic and display masks; its
  8-connected components are the regions, each looped independently.
* A region is a *display segment* when it overlaps ``display_mask`` in more
  pixels than ``cyclic_mask``; otherwise it is *cyclic*.  Without a
  ``display_mask`` every region is cyclic.

The processing chain of a region (Yan et al., CVPR 2017, Sec. 5) runs on a crop
of the window (the region's bounding box plus ``context_px``) as Dask tasks --
one for in-painting and stabilisation, then one per band of rows and colour
channel for RPCA -- with BLAS pinned to one thread inside each task:

1. *in-painting* (``inpaint``, every kind): the crop's invisible samples are
   filled by :func:`kernels.inpaint.inpaint_spacetime` from its visible ones;
2. *stabilisation* (``stabilise``, display segments):
   :func:`tasks.stabilise.stabilise_segment` maps every frame onto the
   reference frame by a homography fitted to static KLT tracks in and around
   the segment; samples the warp leaves without data inside the segment are
   in-painted again, on a box around them (:func:`gap_box`); the others (or all
   of them with in-painting off) keep their unstabilised values, since only the
   segment's pixels are used;
3. *robust PCA* (``rpca``, display segments): per colour channel the matrix
   ``P`` (a row per frame, a column per segment pixel) is split by
   :func:`kernels.rpca.rpca_apg` into low-rank plus sparse parts and the
   segment shows the low-rank part.  ``lambda = 0.005 + 0.015 gamma`` with
   ``gamma`` the fraction of ones in the segment's Delta1 descriptor (of its
   mean colour, threshold ``gamma_theta``); ``gamma_fallback`` when no Delta1
   bit is valid (fewer than 8 frames) or ``rpca_gamma`` when fixed.  Segments
   larger than ``rpca_tile_pixels`` are cut into bands of whole rows solved
   separately.  The singular value thresholding (``rpca_svd``) diagonalises
   the small frames x frames Gram matrix by default ("gram": two matrix
   products and a 100 x 100 eigenproblem per iteration, about ten times
   faster than the exact thin SVD, "full", on a 100 x 20 000 band, with the
   same result to about ``1e-12`` of the top singular value); the kernel's
   randomised partial SVD (Ritz residual below ``1e-10`` times the top
   singular value) is an option, faster only when few singular values
   survive -- display content keeps tens (27 on the benchmark's slideshow).

Regions that need none of these steps (e.g. fully visible cyclic regions) are
read straight from ``warped``.

Looping (documented choice):

* A cyclic region *repeats* the best interval ``[i, j)`` of its mean
  luminance (the cyclicity kernel run on one signal): output frame ``t`` shows
  window frame ``i + (t mod (j - i))``; its period is ``j - i``.  With
  ``whole_periods`` (the default) the interval is replaced by one of a whole
  number of the region's dominant period, the loop length chosen for those,
  and a region that does not fit is retimed: :mod:`tasks.loop_timing`.
* A display segment plays its interval (the whole window, or
  ``display_frames`` frames centred on the reference frame) *forward then
  backward*: ``i, ..., j-1, j-2, ..., i+1``, period ``2 (j - i - 1)``.  The
  step from the loop's last frame to its first is then a consecutive step of
  the video, so the loop has no seam.  ``display_playback="repeat"`` repeats
  it instead.
* The loop length is ``loop_frames`` when given; otherwise the least common
  multiple of the regions' periods when it is at most ``max_loop_frames``,
  else the longest period.  Every region whose period divides the loop length
  completes whole cycles; any other region cross-fades, over the loop's last
  ``crossfade_frames`` frames, into the frames of its playback that lead up to
  its start, so the loop's end flows into its beginning.
* Edges are feathered inside the mask only: outside ``animated_mask`` every
  output pixel equals the reference frame exactly.

Scheduling (on a Dask cluster; documented choice): the chains are submitted first and run while the
stage goes on.  The preparations (in-painting, stabilisation) come first, then the RPCA tasks, largest
first.  The loop's timing needs only the regions that are not display segments (a display plays the
rule's interval), so the render waits for their chains only, then times the loop, writes the masks and
sends the composite tiles, all in its own thread (dask's synchronous scheduler: nothing it computes
queues behind the RPCA tasks).  Tiles without a display segment fill the cores' gaps while RPCA runs
(their priority is below every RPCA task's); a display segment's tiles follow its last RPCA task, and
its score (of its processed luminance) is taken at the end.  The output is the same as computing the
steps one after another.

Quality figures (:class:`schemas.results.LoopQuality`, per region in
:class:`schemas.results.RegionLoop`): seam and stillness of the loop, and the
flicker ratio of each region -- the mean absolute second temporal difference
``|L[t+1] - 2 L[t] + L[t-1]|`` inside the region over the loop (cyclically, so
the seam counts), over the same figure of ``warped`` over the frames the region
plays.

One pass over the loop (documented choice): every tile of the loop is
composited, written to the store and summarised in one task
(:func:`composite_graph`): its per-pixel minimum and maximum, the window's
sample range there, integer sums of steps and wraps per region and the flicker
sums.  The sample-range guard (:mod:`tasks.sample_range`) and every figure
above come from these summaries, so the stored loop is not read back; only when
the guard sets pixels back to the reference frame are the figures taken again
from the stored loop.  The processed crops of the chain stay where Dask
computed them (``dask.persist``): the composite tasks read them there.
"""

from __future__ import annotations

import math
import time
from typing import NamedTuple

import dask
import dask.array as da
import numpy as np
import xarray as xr
from prefect import task
from scipy import ndimage
from threadpoolctl import threadpool_limits

from kernels.binary_patterns import delta1_gamma, delta_fraction, region_descriptor
from kernels.cyclicity import dft_cyclicity, min_interval_length
from kernels.inpaint import inpaint_spacetime
from kernels.loop_render import composite_loop
from kernels.rpca import display_lambda
from schemas import names as N
from schemas.config import CyclicityParams, RenderParams
from schemas.results import LoopQuality, RegionLoop, RenderResult
from tasks.cyclicity import luminance
from tasks.loop_timing import (
    apply_plan,
    loop_wrap_figures,
    plan_for_render,
    timing_fields,
    wrap_sums,
    wraps_from_sums,
)
from tasks.runtime import cluster_compute, finished_stage, shared_inputs, stage_logger
from tasks.sample_range import RangeGuard, check_loop_range, guard_loop_range, rpca_about_median, window_range
from tasks.stabilise import stabilise_segment
from tasks.store import (
    aligned_digest,
    config_values,
    digest,
    group,
    open_store,
    read_attrs,
    record_stage,
    require,
    stage_record,
    write_variables,
)

STAGE = "render"
LOOP_REGIONS = "loop_regions"
CYCLIC = "cyclic"
DISPLAY = "display"
REPEAT = "repeat"
FORWARD_BACKWARD = "forward_backward"


# --------------------------------------------------------------------------
# Loop tables


def bounded_lcm(lengths, max_frames: int) -> int:
    """Least common multiple of ``lengths`` (frames) if at most ``max_frames``, else the longest; at least 2."""
    lengths = [int(n) for n in lengths]
    if not lengths:
        return 2
    common = 1
    for n in lengths:
        common = common * n // math.gcd(common, n)
        if common > max_frames:
            return max(lengths)
    return max(common, 2)


def choose_loop_length(lengths: list[int], params: RenderParams) -> int:
    """Output loop length for regions whose playback periods have ``lengths`` frames."""
    if params.loop_frames is not None:
        return params.loop_frames
    return bounded_lcm(lengths, params.max_loop_frames)


def playback_sequence(start: int, stop: int, playback: str = REPEAT) -> np.ndarray:
    """Window frames of one playback cycle of the interval ``[start, stop)``.

    ``repeat``: ``start .. stop-1``; ``forward_backward``: ``start .. stop-1``
    then ``stop-2`` down to ``start+1`` (length ``2 (stop - start - 1)``; the
    cycle's last frame ``start+1`` is followed by ``start``, a consecutive
    step).  An interval of one frame gives ``[start]`` either way.

    Examples
    --------
    >>> playback_sequence(2, 6, "forward_backward").tolist()
    [2, 3, 4, 5, 4, 3]
    """
    if stop <= start:
        raise ValueError(f"empty interval [{start}, {stop})")
    forward = np.arange(start, stop, dtype=np.int32)
    if playback == REPEAT or stop - start == 1:
        return forward
    if playback == FORWARD_BACKWARD:
        return np.concatenate([forward, np.arange(stop - 2, start, -1, dtype=np.int32)])
    raise ValueError(f"playback must be {REPEAT!r} or {FORWARD_BACKWARD!r}, got {playback!r}")


def loop_tables(
    intervals: list[tuple[int, int]],
    loop_frames: int,
    crossfade_frames: int,
    playbacks: list[str] | None = None,
):
    """Per-region frame tables of the loop.

    Parameters
    ----------
    intervals : list of (start, stop)
        Played window interval of every region (region ``r`` is entry ``r - 1``).
    loop_frames : int
        Output frames.
    crossfade_frames : int
        Length of the closing cross-fade of regions whose period does not
        divide ``loop_frames``.
    playbacks : list of str, optional
        ``"repeat"`` (default) or ``"forward_backward"`` per region.

    Returns
    -------
    frame_a, frame_b : ndarray, (R + 1, loop_frames) int32
    weight_b : ndarray, (R + 1, loop_frames) float32
    crossfade : list of bool, one per region
    """
    n = len(intervals)
    playbacks = playbacks or [REPEAT] * n
    fa = np.zeros((n + 1, loop_frames), np.int32)
    fb = np.zeros((n + 1, loop_frames), np.int32)
    wb = np.zeros((n + 1, loop_frames), np.float32)
    t = np.arange(loop_frames)
    fades = []
    for r, ((i, j), playback) in enumerate(zip(intervals, playbacks, strict=True), start=1):
        seq = playback_sequence(i, j, playback)
        period = len(seq)
        fa[r] = seq[t % period]
        fb[r] = fa[r]
        fade = loop_frames % period != 0
        fades.append(fade)
        if fade:
            f = min(crossfade_frames, loop_frames - 1, period - 1)
            if f > 0:
                tail = t[loop_frames - f :]
                # frames of the playback that lead into its start at t = loop_frames
                fb[r, loop_frames - f :] = seq[(tail - loop_frames) % period]
                wb[r, loop_frames - f :] = (tail - (loop_frames - f) + 1) / f
    return fa, fb, wb, fades


def feather(mask: np.ndarray, width: float) -> np.ndarray:
    """Opacity that ramps from the mask's edge to 1 over ``width`` pixels inside it; 0 outside."""
    if width <= 0:
        return mask.astype(np.float32)
    dist = ndimage.distance_transform_edt(mask)
    return np.clip(dist / width, 0.0, 1.0).astype(np.float32)


def region_kinds(regions: np.ndarray, n_regions: int, cyclic_mask: np.ndarray, display_mask) -> list[str]:
    """``"display"`` for regions overlapping ``display_mask`` in more pixels than ``cyclic_mask``, else ``"cyclic"``."""
    if display_mask is None or n_regions == 0:
        return [CYCLIC] * n_regions
    in_display = np.bincount(regions.ravel(), weights=display_mask.ravel(), minlength=n_regions + 1)
    in_cyclic = np.bincount(regions.ravel(), weights=cyclic_mask.ravel(), minlength=n_regions + 1)
    return [DISPLAY if in_display[r] > in_cyclic[r] else CYCLIC for r in range(1, n_regions + 1)]


def display_interval(n_window: int, reference: int, frames: int | None) -> tuple[int, int]:
    """Played interval of a display segment: the window, or ``frames`` frames centred on ``reference``."""
    if frames is None or frames >= n_window:
        return 0, n_window
    start = min(max(reference - frames // 2, 0), n_window - frames)
    return start, start + frames


# --------------------------------------------------------------------------
# The processing chain of one region (pure numpy; the bodies of Dask tasks)


class ChainOutput(NamedTuple):
    """What the chain hands back for one region."""

    video: np.ndarray  # (T, h, w, 3) uint8: the processed crop (only the region's pixels are used)
    inpainted: int  # invisible samples of the region that were filled
    n_tracks: int | None  # static tracks of the stabilisation (None: not attempted)
    gamma: float | None
    lam: float | None
    rpca_iterations: int | None
    rpca_converged: bool | None
    seconds: dict[str, float]


def pin_blas() -> None:
    """Limit BLAS to one thread in this process (Dask provides the parallelism; nested pools oversubscribe).

    Deliberately not a context manager inside tasks: the limit is process-wide, so concurrent tasks that
    restored it on exit would lift it under each other.  :func:`render_loop` restores the caller's limit
    after its computations; a Dask worker process keeps one BLAS thread (as its nanny's default does).
    """
    threadpool_limits(limits=1, user_api="blas")


def segment_gamma(video: np.ndarray, mask: np.ndarray, theta: float, fallback: float) -> float:
    """Fraction of ones in the Delta1 descriptor of the segment's mean colour (``fallback`` without valid bits)."""
    samples = video[:, mask]  # (T, n, 3)
    if np.issubdtype(samples.dtype, np.integer):
        # integer sums are exact, so this is the float mean to the bit, without a float64 copy of the samples
        colour = samples.sum(axis=1, dtype=np.int64) / samples.shape[1]
    else:
        colour = samples.astype(np.float64).mean(axis=1)
    bits, valid, _ = region_descriptor(colour, theta=theta)
    n = video.shape[0]
    if delta_fraction(valid, valid, n, delta=1) == 0.0:  # no valid Delta1 bit
        return float(fallback)
    return float(delta1_gamma(bits, valid, n))


def row_bands(mask: np.ndarray, max_pixels: int) -> list[np.ndarray]:
    """Split ``mask`` into masks of consecutive whole rows holding at most ``max_pixels`` pixels each
    (a single row longer than that stays whole)."""
    per_row = mask.sum(axis=1)
    bands, current, count = [], [], 0
    for y in np.flatnonzero(per_row):
        if current and count + per_row[y] > max_pixels:
            bands.append(current)
            current, count = [], 0
        current.append(y)
        count += per_row[y]
    if current:
        bands.append(current)
    out = []
    for rows in bands:
        band = np.zeros_like(mask)
        band[rows] = mask[rows]
        out.append(band)
    return out


def prepare_region(
    video: np.ndarray,
    visible: np.ndarray | None,
    mask: np.ndarray,
    kind: str,
    reference: int,
    params: RenderParams,
) -> ChainOutput:
    """In-paint and (display segments) stabilise one region's crop.

    Parameters
    ----------
    video : ndarray, (T, h, w, 3) uint8
        The crop of ``warped``.
    visible : ndarray, (T, h, w) bool or None
        The crop of ``visible`` (None: all visible).
    mask : ndarray, (h, w) bool
        The region inside the crop.
    kind : {"cyclic", "display"}
        Stabilisation applies to display segments only.
    reference : int
        Index of the reference frame in the window.
    params : RenderParams
        Which steps run, and their settings.
    """
    seconds = {"inpaint": 0.0, "stabilise": 0.0, "rpca": 0.0}
    video = np.asarray(video)
    inpainted, n_tracks = 0, None
    pin_blas()
    t0 = time.perf_counter()
    holes = None if visible is None else ~np.asarray(visible, bool)
    if params.inpaint and holes is not None and holes.any() and not holes.all():
        inpainted = int(holes[:, mask].sum())
        filled = inpaint_spacetime(video.astype(np.float32), ~holes, tol=params.inpaint_tol)
        video = np.clip(np.rint(filled), 0, 255).astype(np.uint8)
        holes = None
    seconds["inpaint"] += time.perf_counter() - t0
    if kind == DISPLAY and params.stabilise:
        t0 = time.perf_counter()
        res = stabilise_segment(
            video,
            mask,
            reference,
            visible=None if holes is None else ~holes,
            margin=params.stabilise_margin_px,
            min_points=params.stabilise_min_tracks,
        )
        n_tracks = res.n_tracks
        seconds["stabilise"] += time.perf_counter() - t0
        if res.stabilised:
            gap = ~res.visible if holes is None else (~res.visible & ~holes)
            t0 = time.perf_counter()
            # samples without data keep their unstabilised values, except those in the region (only its
            # pixels are used downstream): they are in-painted on the box around them (see gap_box)
            video = np.where(gap[..., None], video, res.video)
            box = gap_box(gap, mask) if params.inpaint else None
            if box is not None and not gap[box].all():
                filled = inpaint_spacetime(res.video[box].astype(np.float32), ~gap[box], tol=params.inpaint_tol)
                video[box] = np.clip(np.rint(filled), 0, 255).astype(np.uint8)
                seconds["inpaint"] += time.perf_counter() - t0
    return ChainOutput(video, inpainted, n_tracks, None, None, None, None, seconds)


#: Margin (frames, pixels, pixels) around a region's samples that the stabilising warp left without data,
#: of the box in-painted to fill them (see :func:`gap_box`).
GAP_MARGIN = (2, 8, 8)


def gap_box(gap: np.ndarray, mask: np.ndarray, margin: tuple[int, int, int] = GAP_MARGIN):
    """Slices (t, y, x) of the part of the crop in-painted after stabilisation, or None when none is needed.

    ``gap`` (T, h, w) marks the samples the warp left without data, ``mask`` (h, w) the region.  Only the
    gap samples inside the region matter; the box is theirs widened by ``margin`` (and clipped to the
    crop), whose samples with data are the in-painting's boundary values.  A warp by a few pixels leaves
    gaps along the crop's border, in its context margin and at most at the region's edge, so the box is
    small; in-painting the whole crop (as before) cost seconds per display segment for a few samples.
    """
    need = gap & mask[None]
    if not need.any():
        return None
    box = ndimage.find_objects(need.astype(np.uint8))[0]
    return tuple(
        slice(max(b.start - m, 0), min(b.stop + m, n)) for b, m, n in zip(box, margin, gap.shape, strict=True)
    )


def region_gamma(prepared: ChainOutput, mask: np.ndarray, params: RenderParams) -> float:
    """``rpca_gamma`` when fixed, else the segment's Delta1 fraction (see :func:`segment_gamma`)."""
    if params.rpca_gamma is not None:
        return float(params.rpca_gamma)
    return segment_gamma(prepared.video, mask, params.gamma_theta, params.gamma_fallback)


def prepare_display(
    video: np.ndarray,
    visible: np.ndarray | None,
    mask: np.ndarray,
    reference: int,
    params: RenderParams,
) -> ChainOutput:
    """:func:`prepare_region` of a display segment, with its :func:`region_gamma` in the ``gamma`` field
    (for RPCA; one task instead of two)."""
    prepared = prepare_region(video, visible, mask, DISPLAY, reference, params)
    return prepared._replace(gamma=region_gamma(prepared, mask, params))


def rpca_part(prepared: ChainOutput, band: np.ndarray, channel: int, params: RenderParams):
    """Low-rank part of one colour channel of one band of a segment: ((T, n) float64, iterations, converged, s)."""
    t0 = time.perf_counter()
    pin_blas()
    P = prepared.video[:, band, channel].astype(np.float64)  # a row per frame, a column per pixel
    # about each pixel's median: un-centred, small or static segments came out black (tasks.sample_range)
    low_rank, n_iter, converged = rpca_about_median(
        P,
        display_lambda(prepared.gamma),
        tol=params.rpca_tol,
        max_iter=params.rpca_max_iter,
        mu_ratio=params.rpca_mu_ratio,
        svd=params.rpca_svd,
    )
    return low_rank, n_iter, converged, time.perf_counter() - t0


def finish_rpca(prepared: ChainOutput, bands: list[np.ndarray], parts: list) -> ChainOutput:
    """Write the low-rank parts (``parts`` ordered band by band, channel by channel) into the crop."""
    video = prepared.video.copy()
    n_channels = video.shape[3]
    for b, band in enumerate(bands):
        for c in range(n_channels):
            low = parts[b * n_channels + c][0]
            video[:, band, c] = np.clip(np.rint(low), 0, 255).astype(np.uint8)
    seconds = dict(prepared.seconds)
    seconds["rpca"] += sum(p[3] for p in parts)
    return prepared._replace(
        video=video,
        gamma=float(prepared.gamma),
        lam=display_lambda(prepared.gamma),
        rpca_iterations=max((p[1] for p in parts), default=0),
        rpca_converged=all(p[2] for p in parts),
        seconds=seconds,
    )


#: Dask priority of a display segment's preparation: above every RPCA task (whose priority is its pixel
#: count), so all segments' RPCA tasks are ready early and the largest run first.
PREPARE_PRIORITY = 2**40


def region_chain_graph(video, visible, mask: np.ndarray, kind: str, reference: int, params: RenderParams):
    """Delayed :class:`ChainOutput` of one region: a preparation task, then (display segments with
    ``rpca``) one RPCA task per band of rows and colour channel, which run in parallel.

    Priorities (used by a Dask cluster): preparations (every region's) first, then the RPCA tasks largest
    first, so the small ones fill the workers' last gaps (a band's cost grows with its pixel count)."""
    if kind != DISPLAY or not params.rpca or not mask.any():
        with dask.annotate(priority=PREPARE_PRIORITY):
            return dask.delayed(prepare_region, pure=True)(video, visible, mask, kind, reference, params)
    with dask.annotate(priority=PREPARE_PRIORITY):
        prepared = dask.delayed(prepare_display, pure=True)(video, visible, mask, reference, params)
    bands = row_bands(mask, params.rpca_tile_pixels)
    parts = []
    for band in bands:
        with dask.annotate(priority=int(band.sum())):
            parts += [dask.delayed(rpca_part, pure=True)(prepared, band, c, params) for c in range(video.shape[3])]
    return dask.delayed(finish_rpca, pure=True)(prepared, bands, parts)


def process_region(
    video: np.ndarray,
    visible: np.ndarray | None,
    mask: np.ndarray,
    kind: str,
    reference: int,
    params: RenderParams,
) -> ChainOutput:
    """The whole chain of one region in this thread: in-paint, stabilise, RPCA (see the module docstring).

    Arguments as :func:`prepare_region`; RPCA applies to display segments.
    """
    if kind != DISPLAY or not params.rpca or not mask.any():
        return prepare_region(video, visible, mask, kind, reference, params)
    prepared = prepare_display(video, visible, mask, reference, params)
    bands = row_bands(mask, params.rpca_tile_pixels)
    parts = [rpca_part(prepared, band, c, params) for band in bands for c in range(video.shape[3])]
    return finish_rpca(prepared, bands, parts)


class ChainSummary(NamedTuple):
    """What the render needs here of a region's :class:`ChainOutput` (its crop stays where it was made)."""

    chain: ChainOutput  # without its video (None)
    luminance: np.ndarray  # (T,) mean luminance of the region in the processed crop


def chain_summary(chain: ChainOutput, mask: np.ndarray) -> ChainSummary:
    """:class:`ChainSummary` of a region's chain output (``mask`` the region in its crop)."""
    return ChainSummary(chain._replace(video=None), luminance(chain.video)[:, mask].mean(axis=1))


# --------------------------------------------------------------------------
# Dask graph pieces


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
    if not parts:
        return np.zeros((n_regions, warped.shape[0]))
    sums = dask.delayed(sum)(parts).compute()  # (T, R + 1)
    areas = np.bincount(regions.ravel(), minlength=n_regions + 1)
    return (sums[:, 1:] / np.maximum(areas[1:], 1)).T


def _composite_tile(video, reference, labels, alpha, pieces, fa, fb, wb):
    """Paste the processed regions into a tile of ``warped``, then composite its loop frames."""
    if pieces:
        video = video.copy()
        for ys, xs, data, mask in pieces:
            sub = video[:, ys, xs]
            sub[:, mask] = data[:, mask]
    return composite_loop(video, reference, labels, alpha, fa, fb, wb)


def composite_graph(
    store: str, warped, visible, reference, regions, alpha, crops, fa, fb, wb, intervals, client=None
) -> list[dask.delayed]:
    """Delayed tasks, one per tile of ``warped``, that composite the ``loop`` (loop_time, y, x, channel) uint8
    tile by tile, write each tile into the store's ``loop`` (created beforehand, chunked like the tiles) and
    return its :class:`TailTile` figures.

    ``crops`` maps a region label to ``(ys, xs, video)``: its crop slices in the
    frame and the processed crop (T, h, w, C) uint8; inside the region it
    replaces ``warped``.  ``intervals`` are the regions' played window intervals
    (for the flicker figure's source part).  Each tile is composited once and
    summarised while in memory, so the checks and figures need no second read
    of the loop (a Dask write of a lazy loop would fuse the tiles into their
    store tasks and composite them again for the figures).

    ``regions`` and ``alpha`` go to the cluster once (``client``, what
    :func:`tasks.runtime.cluster_compute` yielded; :func:`tasks.runtime.shared_inputs`)
    and each tile's task slices its part: inside the graph they went through
    the scheduler, 12 bytes a pixel (25 MB at 1920x1080).
    """
    shared_regions, shared_alpha = shared_inputs(client, (regions, alpha))
    w = warped.rechunk({0: -1, 3: -1})
    ref = reference.rechunk((w.chunks[1], w.chunks[2], -1))
    wblocks, rblocks = w.to_delayed(), ref.to_delayed()
    vblocks = None if visible is None else visible.rechunk((-1, w.chunks[1], w.chunks[2])).to_delayed()
    y_edges = np.cumsum((0, *w.chunks[1]))
    x_edges = np.cumsum((0, *w.chunks[2]))
    tails = []
    for by in range(len(w.chunks[1])):
        ty = slice(int(y_edges[by]), int(y_edges[by + 1]))
        for bx in range(len(w.chunks[2])):
            tx = slice(int(x_edges[bx]), int(x_edges[bx + 1]))
            lab = regions[ty, tx]
            pieces = []
            for r, (ys, xs, video) in crops.items():
                y0, y1 = max(ys.start, ty.start), min(ys.stop, ty.stop)
                x0, x1 = max(xs.start, tx.start), min(xs.stop, tx.stop)
                if y0 >= y1 or x0 >= x1:
                    continue
                m = lab[y0 - ty.start : y1 - ty.start, x0 - tx.start : x1 - tx.start] == r
                if not m.any():
                    continue
                data = video[:, y0 - ys.start : y1 - ys.start, x0 - xs.start : x1 - xs.start]
                pieces.append(
                    (slice(y0 - ty.start, y1 - ty.start), slice(x0 - tx.start, x1 - tx.start), data, m)
                )
            tails.append(
                dask.delayed(_composite_store_tile, pure=True)(
                    store, (ty, tx), wblocks[0, by, bx, 0], None if vblocks is None else vblocks[0, by, bx],
                    rblocks[by, bx, 0], shared_regions, shared_alpha, pieces, fa, fb, wb, intervals,
                )  # fmt: skip
            )
    return tails


def _composite_store_tile(store, where, warped, visible, reference, regions, alpha, pieces, fa, fb, wb, intervals):
    """Composite one tile of the loop (``where``: its y and x slices of the whole ``regions`` and ``alpha``), write
    it to the store, return its :class:`TailTile` (``visible`` the tile's visibility or None)."""
    labels = regions[where[0], where[1]]
    loop = _composite_tile(warped, reference, labels, alpha[where[0], where[1]], pieces, fa, fb, wb)
    group(store)[N.LOOP][:, where[0], where[1], :] = loop
    return _tail_tile(loop, warped, labels, intervals, window_range(warped, visible, np.asarray(reference)))


class TailTile(NamedTuple):
    """What the render's checks and figures need of one tile of the loop (:func:`_tail_tile`)."""

    window: tuple[np.ndarray, np.ndarray]  # tasks.sample_range.window_range of the tile: (lo, hi), (h, w, C)
    low: np.ndarray  # (h, w, C) uint8: per-pixel minimum over the loop's frames
    high: np.ndarray  # (h, w, C) uint8: maximum
    change: np.ndarray  # (h, w) int16: largest change from the first frame, over frames and channels
    wraps: np.ndarray  # (R + 1, T + 1) int64: tasks.loop_timing.wrap_sums of the tile
    flicker: np.ndarray | None  # (2, R + 1): _flicker_tile, None on a tile without regions


def _tail_tile(loop: np.ndarray, warped: np.ndarray, labels: np.ndarray, intervals, window) -> TailTile:
    """The figures of one composited tile of the loop (``labels`` the regions on it): see :func:`loop_figures`."""
    low, high = loop.min(axis=0), loop.max(axis=0)
    change = _largest_change(loop[0], low, high)
    holding = bool(labels.any())
    return TailTile(
        window,
        low,
        high,
        change,
        wrap_sums(loop, labels, len(intervals)),
        _flicker_tile(loop, warped, labels, intervals) if holding else None,
    )


def _assemble(parts: list[np.ndarray], chunks_x: tuple[int, ...]) -> np.ndarray:
    """The whole-frame array of per-tile arrays listed row of tiles by row of tiles."""
    per_row = len(chunks_x)
    rows = [np.concatenate(parts[i : i + per_row], axis=1) for i in range(0, len(parts), per_row)]
    return np.concatenate(rows, axis=0)


class LoopFigures(NamedTuple):
    """The checks and figures the render takes of its loop (:func:`loop_figures`)."""

    window: tuple[np.ndarray, np.ndarray]  # tasks.sample_range.window_range, computed: (lo, hi), (y, x, C)
    low: np.ndarray  # (y, x, C) uint8: per-pixel minimum of the loop over its frames
    high: np.ndarray  # (y, x, C) uint8: maximum
    quality: LoopQuality  # seam and stillness (flicker not set)
    flicker: list[float | None]  # per region (region_flicker)
    wraps: list[tuple[float, float]]  # per region (tasks.loop_timing.loop_wrap_figures)


def loop_figures(
    tails: list[TailTile], chunks_x: tuple[int, ...], regions: np.ndarray, channels: int
) -> LoopFigures:
    """:func:`loop_quality`, :func:`region_flicker` and :func:`tasks.loop_timing.loop_wrap_figures` of a loop
    from its :class:`TailTile` list (tiles in row-major order; ``chunks_x`` the tile widths).

    The same figures as those functions give on the stored loop when ``animated`` is ``regions > 0``: the
    step and seam sums of :func:`loop_quality` are the regions' integer wrap sums added up, the flicker
    sums are added in the same tile order as :func:`region_flicker` does, and the rest are per-pixel maps.
    """
    n = len(tails[0].wraps) - 1
    wraps = sum(t.wraps for t in tails)
    change = _assemble([t.change for t in tails], chunks_x)
    animated = regions > 0
    quality = _quality(change, animated, wraps[:, 2:].sum(), wraps[:, 1].sum(), wraps.shape[1] - 1, channels)
    sums = sum(t.flicker for t in tails if t.flicker is not None)
    flicker = [None] * n if isinstance(sums, int) else _flicker_ratios(sums, n)
    return LoopFigures(
        tuple(_assemble([t.window[k] for t in tails], chunks_x) for k in (0, 1)),
        _assemble([t.low for t in tails], chunks_x),
        _assemble([t.high for t in tails], chunks_x),
        quality,
        flicker,
        wraps_from_sums(wraps, channels),
    )


def _flicker_tile(loop, warped, labels, intervals):
    """Per-region sums over pixels of the mean |second difference| of the loop and of the source."""
    n = len(intervals)
    out = np.zeros((2, n + 1))
    for r in np.unique(labels):
        if r == 0:
            continue
        sel = labels == r
        lp = loop[:, sel].astype(np.float32)  # (T_out, n_px, C)
        d2 = np.abs(np.roll(lp, -1, axis=0) - 2 * lp + np.roll(lp, 1, axis=0))
        out[0, r] = d2.mean(axis=(0, 2)).sum()
        i, j = intervals[r - 1]
        if j - i >= 3:
            src = warped[i:j][:, sel].astype(np.float32)
            out[1, r] = np.abs(src[2:] - 2 * src[1:-1] + src[:-2]).mean(axis=(0, 2)).sum()
    return out


def _tiles_holding(labels: np.ndarray, chunks_y: tuple[int, ...], chunks_x: tuple[int, ...]):
    """``(by, bx, tile)`` for every spatial chunk (block indices, ``labels`` on it) where ``labels`` is non-zero."""
    y_edges = np.cumsum((0, *chunks_y))
    x_edges = np.cumsum((0, *chunks_x))
    for by in range(len(chunks_y)):
        for bx in range(len(chunks_x)):
            tile = labels[y_edges[by] : y_edges[by + 1], x_edges[bx] : x_edges[bx + 1]]
            if tile.any():
                yield by, bx, tile


def region_flicker(loop: da.Array, warped: da.Array, regions: np.ndarray, intervals) -> list[float | None]:
    """Flicker ratio of every region (see the module docstring); None where the source figure is 0."""
    n = len(intervals)
    if n == 0:
        return []
    w = warped.rechunk({0: -1, 3: -1})
    lp = loop.rechunk((-1, w.chunks[1], w.chunks[2], -1))
    wb, lb = w.to_delayed(), lp.to_delayed()
    parts = [
        dask.delayed(_flicker_tile)(lb[0, by, bx, 0], wb[0, by, bx, 0], lab, intervals)
        for by, bx, lab in _tiles_holding(regions, w.chunks[1], w.chunks[2])
    ]
    sums = dask.delayed(sum)(parts).compute()
    return _flicker_ratios(sums, n)


def _flicker_ratios(sums: np.ndarray, n: int) -> list[float | None]:
    """Flicker ratios of regions 1..n from the summed :func:`_flicker_tile` figures (None where the source's is 0)."""
    return [float(sums[0, r] / sums[1, r]) if sums[1, r] > 0 else None for r in range(1, n + 1)]


def checked_range(store: str, figures: LoopFigures, animated: np.ndarray) -> RangeGuard:
    """:func:`tasks.sample_range.guard_loop_range` of the loop just written, without reading it back.

    The check only needs the loop's per-pixel minimum and maximum over time and the window's range
    (:func:`tasks.sample_range.window_range`), which ``figures`` carries.  Two-frame stand-ins holding
    them have the same minimum and maximum (the window's ``lo <= reference <= hi``, so they come back
    unchanged as the range of a fully visible window), and :func:`tasks.sample_range.check_loop_range`
    gives the same verdict on them.  When a pixel fails, the guard rewrites the failing pixels in the
    store, given this verdict (reading ``warped`` and the loop back to check again took 3.6-3.8 s of the
    moving benchmark clip's render).
    """
    lo, hi = figures.window
    reference = np.asarray(open_store(store)[N.REFERENCE].values)
    extremes = np.stack([figures.low, figures.high])
    check = check_loop_range(extremes, np.stack([lo, hi]), None, reference, animated)
    if not check.bad.any():
        return RangeGuard(animated, 0, check.worst, None)
    return guard_loop_range(store, animated, check=check)


def render_digest(store, render: RenderParams, cyclicity: CyclicityParams) -> str:
    upstream = [aligned_digest(store)] + [(stage_record(store, s) or {}).get("digest") for s in ("cyclicity", "displays")]
    return digest(STAGE, upstream, config_values(render), config_values(cyclicity))


def reference_in_window(store, ds: xr.Dataset, n_window: int) -> int:
    """Index of the reference frame in the window (the middle frame when the store does not say)."""
    ref = read_attrs(store).get("reference_index")
    if ref is not None and N.WINDOW_TIME in ds[N.WARPED].coords:
        where = np.flatnonzero(ds[N.WARPED][N.WINDOW_TIME].values == int(ref))
        if where.size:
            return int(where[0])
    return n_window // 2


def display_score(signal: np.ndarray, interval: tuple[int, int], cyclicity: CyclicityParams) -> float:
    """Cyclicity score of a display segment's mean luminance ``signal`` (T,) over its played ``interval``
    (0 when the interval is too short for the kernel)."""
    a, b = interval
    if b - a < cyclicity.min_window_frames:
        return 0.0
    return float(dft_cyclicity(signal[None, a:b], tau=cyclicity.tau, min_length=b - a, eps=cyclicity.eps)[0][0])


def render_loop(store: str, render: RenderParams, cyclicity: CyclicityParams) -> RenderResult:
    """Compute and write ``animated_mask``, ``loop_regions`` and ``loop``; record the stage."""
    t_start = time.perf_counter()
    steps: dict[str, float] = {}
    ds = open_store(store)
    require(ds, store, [N.WARPED, N.REFERENCE, N.CYCLIC_MASK])
    cyclic_mask = ds[N.CYCLIC_MASK].values.astype(bool)
    display_mask = ds[N.DISPLAY_MASK].values.astype(bool) if N.DISPLAY_MASK in ds else None
    animated = cyclic_mask | display_mask if display_mask is not None else cyclic_mask.copy()
    regions, n_regions = ndimage.label(animated, structure=np.ones((3, 3), bool))
    regions = regions.astype(np.int32)
    kinds = region_kinds(regions, n_regions, cyclic_mask, display_mask)
    warped = ds[N.WARPED].data
    visible = ds[N.VISIBLE].data if N.VISIBLE in ds else None
    n_window, height, width = warped.shape[:3]
    ref_local = reference_in_window(store, ds, n_window)
    with cluster_compute() as client, threadpool_limits(limits=1, user_api="blas"):
        # ---- which regions need the chain, on which crops.  The processed crops stay where they were
        # computed (on a cluster, in its workers): only their summaries and mean luminance come here, and
        # the tasks that use the crops read them there.  On a cluster ``persist`` returns at once: what
        # follows up to the composite runs while the chains do (see "Scheduling" above); the display
        # segments' chains (the long ones) start before the in-painting holes are even counted.
        t0 = time.perf_counter()
        boxes = ndimage.find_objects(regions)

        def crop(r: int) -> tuple[slice, slice]:
            ys, xs = boxes[r - 1]
            c = render.context_px
            return slice(max(ys.start - c, 0), min(ys.stop + c, height)), slice(max(xs.start - c, 0), min(xs.stop + c, width))

        def persist_chains(labels: list[int]) -> dict:
            graphs = []
            for r in labels:
                ys, xs = crop(r)
                vis = None if visible is None or not render.inpaint else visible[:, ys, xs]
                graphs.append(
                    region_chain_graph(warped[:, ys, xs, :], vis, regions[ys, xs] == r, kinds[r - 1], ref_local, render)
                )
            return dict(zip(labels, dask.persist(*graphs), strict=True)) if labels else {}

        always = render.stabilise or render.rpca
        chains = persist_chains([r for r in range(1, n_regions + 1) if kinds[r - 1] == DISPLAY and always])
        holes = np.zeros(n_regions + 1)
        if render.inpaint and visible is not None and n_regions:
            invisible = (~visible).sum(axis=0).compute(scheduler="sync")  # here, not behind the display chains
            holes = np.bincount(regions.ravel(), weights=invisible.ravel(), minlength=n_regions + 1)
        chains.update(persist_chains([r for r in range(1, n_regions + 1) if r not in chains and holes[r] > 0]))
        chained = {r: crop(r) for r in sorted(chains)}
        videos = {r: chain.video for r, chain in chains.items()}
        # the regions the loop's timing needs come here whole (their chains run first): all but the display
        # segments, whose interval is the rule's
        timed = [r for r in chained if kinds[r - 1] != DISPLAY]
        timed_chains = dict(zip(timed, dask.compute(*[chains[r] for r in timed]), strict=True))
        outputs = {r: chain_summary(timed_chains[r], regions[ys, xs] == r) for r, (ys, xs) in chained.items() if r in timed}
        steps["chain"] = time.perf_counter() - t0

        # ---- intervals: cyclic regions by their mean luminance, displays by the rule.  This thread's own
        # computations run here (not queued on a cluster behind the display segments' RPCA tasks).  Dask's
        # config is process-wide: the block computes only numpy inputs and the store, never the chains'
        # futures, and the tasks running meanwhile (the chains) compute nothing themselves.
        t0 = time.perf_counter()
        with dask.config.set(scheduler="sync"):
            signals = np.zeros((n_regions, n_window))
            if n_regions:
                direct = regions.copy()
                for r in chained:
                    direct[direct == r] = 0
                if direct.any():
                    signals = region_signals(warped, direct, n_regions)
                for r in timed:
                    signals[r - 1] = outputs[r].luminance
            intervals: list[tuple[int, int]] = []
            playbacks: list[str] = []
            cyc = [r for r in range(1, n_regions + 1) if kinds[r - 1] == CYCLIC]
            found = {}
            if cyc:
                score, interval, _ = dft_cyclicity(
                    signals[[r - 1 for r in cyc]],
                    tau=cyclicity.tau,
                    min_length=min_interval_length(n_window, cyclicity.min_interval_fraction),
                    eps=cyclicity.eps,
                )
                found = {
                    r: ((int(a), int(b)), float(s)) for r, (a, b), s in zip(cyc, interval, score, strict=True)
                }
            for r in range(1, n_regions + 1):
                if kinds[r - 1] == CYCLIC:
                    intervals.append(found[r][0])
                    playbacks.append(REPEAT)
                else:
                    intervals.append(display_interval(n_window, ref_local, render.display_frames))
                    playbacks.append(render.display_playback)
            periods = [len(playback_sequence(a, b, p)) for (a, b), p in zip(intervals, playbacks, strict=True)]
            # cyclic regions loop over whole periods (tasks.loop_timing); displays as above
            plan = plan_for_render(
                signals, intervals, kinds, periods, regions, warped,
                {r: (ys, xs, timed_chains[r].video) for r, (ys, xs) in chained.items() if r in timed}, render,
                tau=cyclicity.tau, min_frames=min_interval_length(n_window, cyclicity.min_interval_fraction),
            )  # fmt: skip
            if plan is not None:
                for r, t in plan.timings.items():
                    intervals[r - 1] = (t.start, t.stop)
                    periods[r - 1] = t.stop - t.start
            loop_frames = choose_loop_length(periods, render) if plan is None else plan.loop_frames
            fa, fb, wb, fades = loop_tables(intervals, loop_frames, render.crossfade_frames, playbacks)
            if plan is not None:
                apply_plan(plan, fa, fb, wb, fades)
            alpha = feather(animated, render.feather_px)
            chunks2 = warped.chunks[1:3]
            dims2 = (N.Y, N.X)
            masks = xr.Dataset({N.ANIMATED_MASK: (dims2, animated), LOOP_REGIONS: (dims2, regions)})
            write_variables(masks, store, chunks={N.Y: chunks2[0][0], N.X: chunks2[1][0]})
            # the loop's array (chunked like the tiles); the tile tasks fill it
            blank = da.zeros(
                (loop_frames, height, width, warped.shape[3]), dtype=np.uint8, chunks=(-1, *chunks2, -1)
            )
            write_variables(
                xr.Dataset({N.LOOP: ((N.LOOP_TIME, N.Y, N.X, N.CHANNEL), blank)}), store, compute=False
            )
        steps["signals"] = time.perf_counter() - t0

        # ---- composite and write (the tiles without a display segment start while its RPCA still runs)
        t0 = time.perf_counter()
        crops = {r: (ys, xs, videos[r]) for r, (ys, xs) in chained.items()}
        tails = composite_graph(
            store, warped, visible, ds[N.REFERENCE].data, regions, alpha, crops, fa, fb, wb, intervals, client
        )
        late = [r for r in chained if r not in outputs]
        summaries = [dask.delayed(chain_summary)(chains[r], regions[ys, xs] == r) for r, (ys, xs) in chained.items() if r in late]
        done = dask.compute(*tails, *summaries)
        tails = done[: len(tails)]
        outputs.update(zip(late, done[len(tails) :], strict=True))
        figures = loop_figures(list(tails), chunks2[1], regions, warped.shape[3])
        steps["composite"] = time.perf_counter() - t0
        for r in late:
            signals[r - 1] = outputs[r].luminance
        scores = [
            found[r][1] if kinds[r - 1] == CYCLIC else display_score(signals[r - 1], intervals[r - 1], cyclicity)
            for r in range(1, n_regions + 1)
        ]
        for key in ("inpaint", "stabilise", "rpca"):
            steps[key] = sum(o.chain.seconds[key] for o in outputs.values())
        t0 = time.perf_counter()
        guard = checked_range(store, figures, animated)  # no colour the window never had
        steps["range_check"] = time.perf_counter() - t0

        # ---- quality
        t0 = time.perf_counter()
        if guard.fallback_pixels:  # the store's loop changed: figures of the stored loop
            animated = guard.animated
            stored = open_store(store)[N.LOOP].data
            figures = figures._replace(
                quality=loop_quality(stored, animated),
                flicker=region_flicker(stored, warped, regions, intervals),
                wraps=loop_wrap_figures(stored, regions, n_regions),
            )
        flicker, wraps = figures.flicker, figures.wraps
        found = [f for f in flicker if f is not None]
        quality = figures.quality.model_copy(update={"flicker": max(found) if found else None})
        steps["quality"] = time.perf_counter() - t0
    areas = np.bincount(regions.ravel(), minlength=n_regions + 1)
    regions_out = []
    for r in range(1, n_regions + 1):
        o = outputs[r].chain if r in outputs else None
        regions_out.append(
            RegionLoop(
                label=r,
                area=int(areas[r]),
                start=intervals[r - 1][0],
                stop=intervals[r - 1][1],
                score=scores[r - 1],
                crossfade=fades[r - 1],
                kind=kinds[r - 1],
                playback=playbacks[r - 1],
                period=periods[r - 1],
                flicker=flicker[r - 1],
                **timing_fields(None if plan is None else plan.timings.get(r), wraps[r - 1]),
                inpainted_samples=0 if o is None else o.inpainted,
                stabilised_tracks=None if o is None else o.n_tracks,
                rpca_gamma=None if o is None else o.gamma,
                rpca_lambda=None if o is None else o.lam,
                rpca_iterations=None if o is None else o.rpca_iterations,
                rpca_converged=None if o is None else o.rpca_converged,
            )
        )
    result = RenderResult(
        loop_frames=loop_frames,
        animated_pixels=int(animated.sum()),
        regions=regions_out,
        quality=quality,
        steps={k: round(v, 4) for k, v in steps.items()},
        range_fallback_pixels=guard.fallback_pixels,
        warnings=[guard.warning] if guard.warning else [],
    )
    record_stage(
        store,
        STAGE,
        render_digest(store, render, cyclicity),
        time.perf_counter() - t_start,
        result.model_dump(),
    )
    return result


def _largest_change(first: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Per-pixel largest change from the first frame (y, x) int16, over frames and channels, from the loop's
    first frame and its per-pixel minimum and maximum over time (y, x, C) uint8."""
    first = np.asarray(first).astype(np.int16)
    return np.maximum(np.asarray(high).astype(np.int16) - first, first - np.asarray(low).astype(np.int16)).max(axis=2)


def loop_quality(loop: da.Array, animated: np.ndarray) -> LoopQuality:
    """Seam and stillness figures of a stored loop (see :class:`schemas.results.LoopQuality`).

    One read of the loop: stillness from its per-pixel minimum and maximum over time (the largest change
    from the first frame is ``max(max_t L - L[0], L[0] - min_t L)``), the step and seam sums from the
    tiles that hold animated pixels (integer sums, so exact).
    """
    lp = da.asarray(loop).rechunk({0: -1, 3: -1})
    n_frames, channels = lp.shape[0], lp.shape[3]
    blocks = lp.to_delayed()
    parts = [
        dask.delayed(wrap_sums)(blocks[0, by, bx, 0], m.astype(np.int32), 1)
        for by, bx, m in _tiles_holding(animated, lp.chunks[1], lp.chunks[2])
    ]
    none = np.zeros((2, n_frames + 1), np.int64)
    lo, hi, first, sums = dask.compute(lp.min(axis=0), lp.max(axis=0), lp[0], dask.delayed(sum)(parts) if parts else none)
    return _quality(_largest_change(first, lo, hi), animated, sums[1, 2:].sum(), sums[1, 1], n_frames, channels)


def _quality(change, animated, step_sum, seam_sum, n_frames: int, channels: int) -> LoopQuality:
    """:class:`LoopQuality` from the per-pixel largest change from the first frame (y, x) and the integer
    sums over the animated pixels and channels of the consecutive steps and of the seam."""
    stillness = float(change[~animated].max(initial=0))
    if not animated.any():
        return LoopQuality(seam=None, stillness=stillness)
    n_anim = animated.sum()
    # the original figures are means over channels: divide the integer sums by the channel count
    consecutive = float(step_sum) / channels / (n_anim * (n_frames - 1))
    seam = float(seam_sum) / channels / n_anim
    return LoopQuality(
        seam=seam / consecutive if consecutive > 0 else (0.0 if seam == 0 else float("inf")),
        stillness=stillness,
    )


@task(name="render_loop")
def render_loop_task(store: str, render: RenderParams, cyclicity: CyclicityParams) -> RenderResult:
    """Prefect task: clean and loop every animated region, freeze the rest, write `loop`."""
    done = finished_stage(store, STAGE, render_digest(store, render, cyclicity), RenderResult)
    if done is not None:
        return done
    log = stage_logger(STAGE)
    result = render_loop(store, render, cyclicity)
    log.info(
        "stage render finished: %d frames, %d regions (%d display), %d animated pixels, seam %s, flicker %s",
        result.loop_frames,
        len(result.regions),
        sum(r.kind == DISPLAY for r in result.regions),
        result.animated_pixels,
        "n/a" if result.quality.seam is None else f"{result.quality.seam:.2f}",
        "n/a" if result.quality.flicker is None else f"{result.quality.flicker:.2f}",
    )
    return result
