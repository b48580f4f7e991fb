"""Cyclicity: which pixels repeat themselves (Yan et al. 2017, Sec. 4.1).

Reads ``warped`` and ``visible``; writes ``cyclic_score`` (y, x) float32,
``cyclic_interval`` (y, x, bound) int32 -- ``[start, stop)`` as indices into the
window (``window_time``) --, ``cyclic_amplitude`` (y, x) float32 and
``cyclic_mask`` (y, x) bool.

The kernel runs on the luminance of each spatial tile with all window frames
(the window is stored chunked that way), one Dask task per tile.  A pixel's
invisible samples (moving camera: occluded or out of view) are replaced by the
median of its visible ones before the DFT, and a pixel visible in fewer than
half the frames scores 0.  Only the pixels that can enter the mask go through
the interval search (:func:`searched_pixels`: bright enough, and a swing over
the window of at least ``min_amplitude``); the others store score, interval
and amplitude 0 (``search_all_pixels`` searches them too; the mask is the same).

The cleaned mask then grows (:func:`grow_correlated`): every region takes in
the connected neighbouring pixels, up to ``grow_max_px`` away, whose luminance
correlates with the region's mean luminance by at least ``grow_correlation``
(Pearson, default 0.4).  A light's glow and the codec's colour bleed around its
edge blink with it; without growth they stay frozen in the reference frame's
state, a ring of lit colour around a dark light.  Correlation, not a fixed
dilation: the halo's width follows the light, and the unrelated wall next to
it stays frozen.

Last, the motion veto (:mod:`tasks.cyclic_veto`, ``motion_veto``) drops every grown region
whose change optical flow explains: a passing car, a limb, a wheel or misaligned texture moves,
a light blinks in place.  ``cyclic_mask`` is the mask after the veto.
"""

from __future__ import annotations

import time

import dask
import dask.array as da
import numpy as np
import xarray as xr
from dask.delayed import Delayed
from prefect import task
from scipy import ndimage
from threadpoolctl import threadpool_limits

from kernels.cyclicity import dft_cyclicity, min_interval_length
from schemas import names as N
from schemas.config import CyclicityParams
from schemas.results import CyclicityResult
from tasks.cyclic_veto import CROP_PAD, RegionCrop, Veto, veto_moving_regions
from tasks.runtime import cluster_compute, finished_stage, stage_logger
from tasks.store import (
    aligned_digest,
    config_values,
    digest,
    open_store,
    record_stage,
    require,
    write_variables,
)

STAGE = "cyclicity"

#: Rec. 601 luma weights of R, G, B.
LUMA = np.array([0.299, 0.587, 0.114], np.float32)

#: Fields of the per-pixel block result, in order.
_FIELDS = ("score", "start", "stop", "amplitude", "intensity")


def luminance(video: np.ndarray) -> np.ndarray:
    """(..., 3) RGB -> (...) float32 luma, 0-255.

    Written element by element (not as a matrix product, whose BLAS rounding
    depends on the array's size), so a pixel's value never depends on the tile
    it was computed in.
    """
    v = np.asarray(video)
    return LUMA[0] * v[..., 0].astype(np.float32) + LUMA[1] * v[..., 1] + LUMA[2] * v[..., 2]


def cyclicity_block(warped: np.ndarray, visible: np.ndarray, params: CyclicityParams) -> np.ndarray:
    """Cyclicity of one tile.

    Parameters
    ----------
    warped : ndarray, (T, h, w, 3) uint8
    visible : ndarray, (T, h, w) bool
    params : CyclicityParams

    Returns
    -------
    ndarray, (h, w, 5) float32
        score, interval start, interval stop, amplitude and the
        ``intensity_percentile`` of the luminance, per pixel.  Unless
        ``params.search_all_pixels``, the first four are 0 for the pixels that
        :func:`searched_pixels` leaves out (they cannot enter the cyclic mask).
    """
    t, h, w = visible.shape
    lum = luminance(warped).reshape(t, h * w).T.copy()  # (pixels, T)
    vis = visible.reshape(t, h * w).T
    out = np.zeros((h * w, len(_FIELDS)), np.float32)
    enough = vis.sum(axis=1) * 2 >= t
    if not vis.all():
        masked = np.where(vis, lum, np.nan)
        with np.errstate(all="ignore"):
            fill = np.nanmedian(masked, axis=1)
        lum = np.where(vis, lum, np.nan_to_num(fill)[:, None])
    out[:, 4] = np.percentile(lum, params.intensity_percentile, axis=1)
    search = enough if params.search_all_pixels else enough & searched_pixels(lum, out[:, 4], params)
    if search.any():
        score, interval, amplitude = dft_cyclicity(
            lum[search],
            tau=params.tau,
            min_length=min_interval_length(t, params.min_interval_fraction),
            eps=params.eps,
        )
        out[search, 0] = score
        out[search, 1:3] = interval
        out[search, 3] = amplitude
    return out.reshape(h, w, len(_FIELDS))


def searched_pixels(lum: np.ndarray, intensity: np.ndarray, params: CyclicityParams) -> np.ndarray:
    """The pixels that can enter the cyclic mask, so that only they go through the interval search.

    A pixel enters :func:`cyclic_mask`'s candidates only when its ``intensity`` (the
    ``intensity_percentile`` of ``lum``, as stored) exceeds ``intensity_threshold`` and its
    amplitude is at least ``min_amplitude``.  The amplitude is ``2 |X_k| / L`` on an interval of
    length ``L``, and ``|X_k| = |sum_t (x_t - c) e^{-2 pi j k t / L}| <= L max_t |x_t - c|`` for any
    ``c`` (``0 < k < L``); with ``c`` the interval's mid-range the amplitude is at most the
    interval's peak-to-peak range, hence at most the window's.  A pixel whose range falls short of
    ``min_amplitude`` (by more than a relative 1e-6, far above the kernel's float64 rounding and
    the float32 rounding of the stored amplitude) cannot pass.  Skipping both kinds leaves the mask
    exactly as a search of every pixel makes it.

    Parameters
    ----------
    lum : ndarray, (P, T) float32
        Luminance of each pixel over the window (invisible samples filled).
    intensity : ndarray, (P,) float32
        The pixels' ``intensity_percentile`` of ``lum``.
    params : CyclicityParams

    Returns
    -------
    ndarray, (P,) bool
    """
    bright = intensity > params.intensity_threshold
    if params.min_amplitude <= 0:
        return bright
    swing = lum.max(axis=1).astype(np.float64) - lum.min(axis=1)
    return bright & (swing >= params.min_amplitude * (1.0 - 1e-6))


def build_cyclicity(ds: xr.Dataset, params: CyclicityParams) -> da.Array:
    """Lazy (y, x, 5) float32 dask array of :func:`cyclicity_block` over the window's tiles.

    Its tasks limit BLAS to one thread in the process that runs them (and leave it so).
    """
    warped = ds[N.WARPED].data
    visible = ds[N.VISIBLE].data
    if warped.chunks[0] != (warped.shape[0],):
        warped = warped.rechunk({0: -1})
    visible = visible.rechunk((-1, warped.chunks[1], warped.chunks[2]))

    def block(w, v):
        # The kernel's DFT products run on BLAS; Dask's threads or processes are the parallelism, so BLAS gets
        # one thread (process-wide and not restored here: concurrent tiles would lift it under each other;
        # find_cyclic_regions restores the caller's limit after its compute)
        threadpool_limits(limits=1, user_api="blas")
        return cyclicity_block(w, v[..., 0], params)[None]

    out = da.map_blocks(
        block,
        warped,
        visible[..., None],
        chunks=((1,), warped.chunks[1], warped.chunks[2], (len(_FIELDS),)),
        dtype=np.float32,
        meta=np.empty((0, 0, 0, 0), np.float32),
    )
    return out[0]


def clean_mask(candidate: np.ndarray, params: CyclicityParams) -> np.ndarray:
    """Remove specks (opening, small components) and fill holes of a candidate mask."""
    mask = candidate.copy()
    r = params.opening_radius
    if r > 0:
        yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
        # a digital disc that includes the 3x3 square at r = 1, so that rectangles keep their corners
        mask = ndimage.binary_opening(mask, structure=(yy**2 + xx**2) <= r * (r + 1))
    labels, n = ndimage.label(mask)
    if n:
        areas = np.bincount(labels.ravel(), minlength=n + 1)
        keep = areas >= params.min_region_area
        keep[0] = False
        mask = keep[labels]
    if params.fill_holes:
        mask = ndimage.binary_fill_holes(mask)
    return mask


def cyclic_mask(fields: np.ndarray, params: CyclicityParams) -> tuple[np.ndarray, np.ndarray]:
    """(candidate, cleaned) masks from the (y, x, 5) per-pixel fields."""
    candidate = (
        (fields[..., 0] > params.score_threshold)
        & (fields[..., 4] > params.intensity_threshold)
        & (fields[..., 3] >= params.min_amplitude)
    )
    return candidate, clean_mask(candidate, params)


def grow_correlated(
    lum: np.ndarray, core: np.ndarray, threshold: float, max_px: int
) -> tuple[np.ndarray, np.ndarray]:
    """Grow a cyclic region over the connected pixels whose signal correlates with the region's.

    Parameters
    ----------
    lum : ndarray, (T, h, w) float
        Luminance of a crop around the region over the window.
    core : ndarray, (h, w) bool
        The region (its cleaned cyclic mask) in the crop.
    threshold : float
        Smallest Pearson correlation with the region's mean luminance of a pixel added.
    max_px : int
        Farthest a pixel added lies from ``core`` (pixels, Euclidean).

    Returns
    -------
    grown : ndarray, (h, w) bool
        ``core`` plus the pixels within ``max_px`` whose correlation is at least
        ``threshold`` and that connect (8-neighbours) to ``core`` through such pixels.
    correlation : ndarray, (h, w) float64
        Every crop pixel's correlation with the region's signal (0 for a constant pixel).

    Examples
    --------
    >>> t = np.arange(40.0)[:, None, None]
    >>> lum = np.zeros((40, 1, 5)) + np.array([1.0, 0.5, 0.2, 0.0, 0.5]) * np.cos(t)
    >>> grown, corr = grow_correlated(lum, np.array([[True, False, False, False, False]]), 0.5, 10)
    >>> grown.astype(int).tolist()  # the last pixel blinks too but is cut off by the constant one
    [[1, 1, 1, 0, 0]]
    """
    lum = np.asarray(lum, np.float64)
    z = lum - lum.mean(axis=0)
    norm = np.sqrt((z**2).sum(axis=0))
    signal = z[:, core].mean(axis=1)
    s_norm = np.sqrt((signal**2).sum())
    if s_norm == 0:
        return core.copy(), np.zeros(core.shape)
    corr = np.tensordot(signal / s_norm, z, axes=(0, 0)) / np.where(norm > 0, norm, 1.0)
    near = ndimage.distance_transform_edt(~core) <= max_px
    candidate = core | ((corr >= threshold) & near)
    labels, _ = ndimage.label(candidate, structure=np.ones((3, 3), bool))
    keep = np.unique(labels[core])
    return np.isin(labels, keep[keep > 0]) | core, corr


def lazy_region_crops(ds: xr.Dataset, labels: np.ndarray, n: int, pad: int) -> list[tuple[slice, slice, Delayed]]:
    """Each region 1..``n`` of ``labels`` on a crop of the window, ``pad`` pixels around its box, read lazily.

    Returns ``(ys, xs, crop)`` per region, in label order, where ``crop`` is a delayed
    :class:`RegionCrop`: the crop's luminance (T, h, w) float32, where invisible samples are the
    pixel's mean visible luminance; the crop's visibility (None when the store has none); and the
    region's pixels in the crop.
    """
    height, width = labels.shape
    out = []
    for r, (ys, xs) in enumerate(ndimage.find_objects(labels, max_label=n), start=1):
        ys = slice(max(ys.start - pad, 0), min(ys.stop + pad, height))
        xs = slice(max(xs.start - pad, 0), min(xs.stop + pad, width))
        vis = ds[N.VISIBLE].data[:, ys, xs] if N.VISIBLE in ds else None
        crop = dask.delayed(_region_crop, pure=True)(ds[N.WARPED].data[:, ys, xs, :], vis, labels[ys, xs] == r)
        out.append((ys, xs, crop))
    return out


def _region_crop(video: np.ndarray, vis: np.ndarray | None, region: np.ndarray) -> RegionCrop:
    lum = luminance(video)
    if vis is not None and not vis.all():
        counts = np.maximum(vis.sum(axis=0), 1)
        fill = np.where(vis, lum, 0).sum(axis=0) / counts
        lum = np.where(vis, lum, fill[None])
    return RegionCrop(lum, vis, region)


def _grow_crop(crop: RegionCrop, threshold: float, max_px: int) -> np.ndarray:
    return grow_correlated(crop.lum, crop.region, threshold, max_px)[0]


def _veto_crop(crop: RegionCrop, threshold: float | None) -> Veto:
    return veto_moving_regions([crop], threshold)


def grow_mask(ds: xr.Dataset, mask: np.ndarray, params: CyclicityParams) -> np.ndarray:
    """:func:`grow_correlated` applied to every connected region of ``mask`` (on crops of ``warped``;
    invisible samples count as the pixel's mean visible luminance).  Regions grow in parallel, one Dask
    task each (reading its crop first); each grows on its own crop, so the order does not matter."""
    if params.grow_max_px == 0 or not mask.any():
        return mask
    labels, n = ndimage.label(mask, structure=np.ones((3, 3), bool))
    crops = lazy_region_crops(ds, labels, n, params.grow_max_px)
    grown = dask.compute(
        *[dask.delayed(_grow_crop)(crop, params.grow_correlation, params.grow_max_px) for _, _, crop in crops]
    )
    out = mask.copy()
    for (ys, xs, _), region in zip(crops, grown, strict=True):
        out[ys, xs] |= region
    return out


def veto_mask(ds: xr.Dataset, mask: np.ndarray, params: CyclicityParams) -> tuple[np.ndarray, Veto]:
    """``mask`` without its regions that move rather than blink (:mod:`tasks.cyclic_veto`); the regions'
    flows run in parallel, one Dask task each."""
    labels, n = ndimage.label(mask, structure=np.ones((3, 3), bool))
    if params.motion_veto is None or n == 0:
        return mask, Veto(np.zeros(n, bool), np.zeros(n))
    crops = lazy_region_crops(ds, labels, n, CROP_PAD)
    each = dask.compute(*[dask.delayed(_veto_crop)(crop, params.motion_veto) for _, _, crop in crops])
    veto = Veto(np.concatenate([v.vetoed for v in each]), np.concatenate([v.explained for v in each]))
    keep = np.concatenate([[False], ~veto.vetoed])
    return mask & keep[labels], veto


def cyclicity_digest(store, params: CyclicityParams) -> str:
    upstream = aligned_digest(store)
    return digest(STAGE, upstream, config_values(params))


def find_cyclic_regions(store: str, params: CyclicityParams) -> CyclicityResult:
    """Compute and write the cyclicity variables of ``store``; record the stage."""
    t0 = time.perf_counter()
    ds = open_store(store)
    require(ds, store, [N.WARPED, N.VISIBLE])
    # BLAS on one thread for the whole stage (Dask's threads are the parallelism); the caller's limit comes back after
    with threadpool_limits(limits=1, user_api="blas"):
        with cluster_compute():
            fields = build_cyclicity(ds, params).compute()
        candidate, cleaned = cyclic_mask(fields, params)
        with cluster_compute():
            grown = grow_mask(ds, cleaned, params)
            mask, veto = veto_mask(ds, grown, params)
    dims = (N.Y, N.X)
    chunks = {N.Y: ds[N.WARPED].chunks[1][0], N.X: ds[N.WARPED].chunks[2][0]}
    out = xr.Dataset(
        {
            N.CYCLIC_SCORE: (dims, fields[..., 0]),
            N.CYCLIC_INTERVAL: ((*dims, N.BOUND), fields[..., 1:3].astype(np.int32)),
            N.CYCLIC_AMPLITUDE: (dims, fields[..., 3]),
            N.CYCLIC_MASK: (dims, mask),
        }
    )
    write_variables(out, store, chunks=chunks)
    _, n_regions = ndimage.label(mask, structure=np.ones((3, 3), bool))  # as the render labels them
    result = CyclicityResult(
        cyclic_pixels=int(mask.sum()),
        candidate_pixels=int(candidate.sum()),
        n_regions=n_regions,
        grown_pixels=int(grown.sum() - cleaned.sum()),
        cleaned_pixels=int(cleaned.sum()),
        vetoed_regions=int(veto.vetoed.sum()),
        vetoed_pixels=int(grown.sum() - mask.sum()),
        motion_explained=[round(float(e), 3) for e in veto.explained],
    )
    record_stage(store, STAGE, cyclicity_digest(store, params), time.perf_counter() - t0, result.model_dump())
    return result


@task(name="find_cyclic_regions")
def find_cyclic_regions_task(store: str, params: CyclicityParams) -> CyclicityResult:
    """Prefect task: per-pixel DFT cyclicity over the window and the cleaned cyclic mask."""
    done = finished_stage(store, STAGE, cyclicity_digest(store, params), CyclicityResult)
    if done is not None:
        return done
    log = stage_logger(STAGE)
    result = find_cyclic_regions(store, params)
    log.info(
        "stage cyclicity finished: %d cyclic pixels in %d regions (%d candidates before cleaning)",
        result.cyclic_pixels,
        result.n_regions,
        result.candidate_pixels,
    )
    return result
