"""No colour that the window never had: the render stage's sample-range guard (issue 12).

Every output pixel of an animated region must be built from samples the analysis window
really had at that pixel, or from the reference frame.  The test used here is per pixel and
per colour channel: the value must lie within ``[lo - tol, hi + tol]``, where ``lo``/``hi``
are the smallest/largest *visible* sample of ``warped`` over the window at that pixel or within
:data:`RANGE_RADIUS_PX` pixels of it (stabilisation moves content by a few pixels and
interpolates), taken together with the reference frame's values there, and ``tol`` is
:data:`RANGE_TOLERANCE` grey levels (the rounding of the float chain: in-painting,
stabilisation, RPCA).

Choice (documented in the README): an out-of-range pixel is *not* a crash.  The render falls
back to the reference frame at that pixel for the whole loop, removes it from
``animated_mask`` (so "outside the mask = the reference, exactly" still holds) and reports it
as a warning of the run.  A fallback freezes at most the pixels that would have shown a
colour no input had; the rest of the region keeps looping.

Two causes of such colours were found and are fixed where they arise:

* robust PCA of an un-centred segment: for a small or static segment (few pixels, ``gamma``
  near 0 so ``lambda = 0.005``) the whole matrix is cheaper as "sparse" than as "low rank",
  the low-rank part is 0 and the segment rendered pure black; larger segments came out
  darker, shrunk towards 0.  :func:`rpca_about_median` runs RPCA on the deviation from each
  pixel's temporal median and adds the median back, so shrinkage pulls towards a value the
  pixel had, never towards black;
* samples without data (``visible`` False: 0 in ``warped``) played directly when in-painting
  is off; the guard catches them.
"""

from __future__ import annotations

from typing import NamedTuple

import dask
import dask.array as da
import numpy as np

from kernels.rpca import rpca_apg
from schemas import names as N
from tasks.store import group, open_store

#: The render's region map (tasks.render.LOOP_REGIONS; named here to keep imports one way).
LOOP_REGIONS = "loop_regions"

__all__ = [
    "RANGE_RADIUS_PX",
    "RANGE_TOLERANCE",
    "RangeGuard",
    "check_loop_range",
    "guard_loop_range",
    "rpca_about_median",
    "window_range",
]

#: Grey levels an animated output value may lie outside its pixel's sample range (uint8 units).
RANGE_TOLERANCE = 2
#: The sample range of a pixel is taken over the square of this radius around it (pixels).
RANGE_RADIUS_PX = 2


def rpca_about_median(P: np.ndarray, lam: float, **options):
    """Low-rank part of ``P`` by APG robust PCA of its deviation from each column's median.

    Parameters
    ----------
    P : ndarray, (T, n) float64
        A row per frame, a column per pixel (one colour channel).
    lam : float
        Sparsity weight.
    **options
        Passed to :func:`kernels.rpca.rpca_apg` (tol, max_iter, mu_ratio, svd).

    Returns
    -------
    low_rank : ndarray, (T, n) float64
        ``median + A`` where ``A`` is the low-rank part of ``P - median``.
    n_iter : int
    converged : bool

    Notes
    -----
    A per-column constant is a rank-one term; taking it out before the decomposition keeps the
    nuclear-norm shrinkage from pulling the pixels' level towards 0.  When the sparse term takes
    everything (small segments, small ``lam``), the result is each pixel's median: a value it had.
    """
    P = np.asarray(P, dtype=np.float64)
    median = np.median(P, axis=0, keepdims=True)
    res = rpca_apg(P - median, lam, **options)
    return res.low_rank + median, res.n_iter, res.converged


def window_range(warped, visible, reference):
    """Per-pixel, per-channel (lo, hi) of the visible window samples and the reference, (y, x, C) uint8.

    A pixel with no visible sample has the reference's value as both bounds.  Numpy arrays give numpy
    arrays (one tile in a task); Dask arrays give lazy Dask arrays (the whole window).
    """
    reference = reference.astype(np.uint8)
    if visible is None:
        lo = warped.min(axis=0)
        hi = warped.max(axis=0)
    else:
        vis = visible[..., None]
        lo = np.where(vis, warped, np.uint8(255)).min(axis=0)
        hi = np.where(vis, warped, np.uint8(0)).max(axis=0)
    return np.minimum(lo, reference), np.maximum(hi, reference)


class RangeCheck(NamedTuple):
    """Result of :func:`check_loop_range`."""

    bad: np.ndarray  # (y, x) bool: animated pixels with an out-of-range value
    worst: int  # largest distance outside the range (grey levels; 0 when none)


def check_loop_range(
    loop, warped, visible, reference, animated: np.ndarray, tol: int = RANGE_TOLERANCE, radius: int = RANGE_RADIUS_PX
):
    """Animated pixels of ``loop`` outside their window's sample range (see the module docstring)."""
    if all(a is None or isinstance(a, np.ndarray) for a in (loop, warped, visible, reference)):
        # in memory already (the render's per-pixel extremes): reduced here, not sent to a cluster in a graph
        lo, hi = (a.astype(np.int16) for a in window_range(warped, visible, reference))
        lp_lo, lp_hi = loop.min(axis=0).astype(np.int16), loop.max(axis=0).astype(np.int16)
        return _range_check(lo, hi, lp_lo, lp_hi, animated, tol, radius)
    visible = None if visible is None else da.asarray(visible)
    lo, hi = window_range(da.asarray(warped), visible, da.asarray(reference))
    lo, hi = (np.asarray(a.compute()).astype(np.int16) for a in (lo, hi))
    # max over t of (lo - loop_t) is lo - min_t loop_t (likewise above): two uint8 reductions over time,
    # then small (y, x, C) arithmetic, instead of int16 differences of every loop sample
    lp = da.asarray(loop)
    lp_lo, lp_hi = (np.asarray(a).astype(np.int16) for a in dask.compute(lp.min(axis=0), lp.max(axis=0)))
    return _range_check(lo, hi, lp_lo, lp_hi, animated, tol, radius)


def _range_check(lo, hi, lp_lo, lp_hi, animated, tol, radius) -> RangeCheck:
    """:func:`check_loop_range` from the window's (lo, hi) and the loop's per-pixel (min, max), int16 (y, x, C)."""
    from scipy import ndimage

    if radius > 0:
        size = (2 * radius + 1, 2 * radius + 1, 1)
        lo, hi = ndimage.minimum_filter(lo, size=size), ndimage.maximum_filter(hi, size=size)
    excess = np.maximum(lo - lp_lo, lp_hi - hi).max(axis=2)
    excess = np.where(animated, excess, 0)
    return RangeCheck(bad=excess > tol, worst=int(max(excess.max(initial=0), 0)))


class RangeGuard(NamedTuple):
    """What :func:`guard_loop_range` did."""

    animated: np.ndarray  # (y, x) bool: the animated mask after the fallback
    fallback_pixels: int  # animated pixels set back to the reference frame
    worst: int  # largest distance outside the range before the fallback (grey levels)
    warning: str | None  # one line for the run's warnings, None when nothing fell back


def guard_loop_range(
    store: str,
    animated: np.ndarray,
    tol: int = RANGE_TOLERANCE,
    band_rows: int = 64,
    check: RangeCheck | None = None,
) -> RangeGuard:
    """Check the stored ``loop`` against its window's sample range; fall back to the reference where it fails.

    Pixels of ``animated`` whose loop leaves ``[lo - tol, hi + tol]`` (see the module docstring) are set to
    the reference frame in every loop frame (rewritten in place in the store, a band of ``band_rows`` rows at
    a time) and removed from ``animated_mask`` and ``loop_regions``.  ``check``: the verdict of
    :func:`check_loop_range` on this loop and window (with this ``tol``) when the caller already has it; by
    default it is computed from the store (a full read of ``warped`` and ``loop``).
    """
    if check is None:
        ds = open_store(store)
        visible = ds[N.VISIBLE].data if N.VISIBLE in ds else None
        check = check_loop_range(ds[N.LOOP].data, ds[N.WARPED].data, visible, ds[N.REFERENCE].data, animated, tol)
    n_bad = int(check.bad.sum())
    if n_bad == 0:
        return RangeGuard(animated, 0, check.worst, None)
    g = group(store)
    loop, mask = g[N.LOOP], g[N.ANIMATED_MASK]
    labels = g[LOOP_REGIONS] if LOOP_REGIONS in g else None
    reference = np.asarray(g[N.REFERENCE][...])
    rows = np.flatnonzero(check.bad.any(axis=1))
    for y0 in range(int(rows[0]), int(rows[-1]) + 1, band_rows):
        y1 = min(y0 + band_rows, check.bad.shape[0])
        bad = check.bad[y0:y1]
        if not bad.any():
            continue
        block = np.asarray(loop[:, y0:y1])
        block[:, bad] = reference[y0:y1][bad]
        loop[:, y0:y1] = block
    animated = animated & ~check.bad
    mask[...] = animated
    if labels is not None:  # a pixel that fell back belongs to no looping region any more
        labels[...] = np.where(check.bad, 0, np.asarray(labels[...]))
    warning = (
        f"render: {n_bad} animated pixels left the range of their window samples and the reference frame "
        f"(by up to {check.worst} grey levels, tolerance {tol}); they show the reference frame instead"
    )
    return RangeGuard(animated, n_bad, check.worst, warning)
