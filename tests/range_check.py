"""Reusable assertion: no output pixel outside the range of its window samples and the reference.

Written plainly (numpy over the whole store, no Dask) and independently of
:mod:`tasks.sample_range`, so that flow tests check the render with a second implementation.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from schemas import names as N

#: Grey levels of rounding allowed (the render's documented tolerance, tasks.sample_range.RANGE_TOLERANCE).
TOLERANCE = 2
#: Samples within this many pixels count (tasks.sample_range.RANGE_RADIUS_PX).
RADIUS = 2


def assert_loop_within_window_range(store, tol: int = TOLERANCE, radius: int = RADIUS, loop_var: str = N.LOOP):
    """Every pixel of every loop frame lies within ``[lo - tol, hi + tol]`` of the visible window
    samples and reference values at that pixel and within ``radius`` pixels of it (per channel)."""
    ds = xr.open_zarr(store, consolidated=False)
    loop = ds[loop_var].values.astype(np.int16)
    warped = ds[N.WARPED].values.astype(np.int16)
    reference = ds[N.REFERENCE].values.astype(np.int16)
    visible = ds[N.VISIBLE].values.astype(bool) if N.VISIBLE in ds else np.ones(warped.shape[:3], bool)
    lo = reference.copy()
    hi = reference.copy()
    for t in range(warped.shape[0]):
        v = visible[t][..., None]
        lo = np.where(v, np.minimum(lo, warped[t]), lo)
        hi = np.where(v, np.maximum(hi, warped[t]), hi)
    h, w = lo.shape[:2]
    plo, phi = lo.copy(), hi.copy()
    for dy in range(-radius, radius + 1):  # the square neighbourhood, shifted copies (edges clamp)
        for dx in range(-radius, radius + 1):
            ys = np.clip(np.arange(h) + dy, 0, h - 1)
            xs = np.clip(np.arange(w) + dx, 0, w - 1)
            plo = np.minimum(plo, lo[ys][:, xs])
            phi = np.maximum(phi, hi[ys][:, xs])
    lo, hi = plo, phi
    below = (lo[None] - tol - loop).max(axis=(0, 3))
    above = (loop - hi[None] - tol).max(axis=(0, 3))
    bad = (below > 0) | (above > 0)
    if bad.any():
        ys, xs = np.nonzero(bad)
        worst = int(max(below.max(), above.max()))
        y, x = int(ys[0]), int(xs[0])
        raise AssertionError(
            f"{int(bad.sum())} output pixels outside their window's sample range (+-{tol}), by up to {worst} "
            f"grey levels; e.g. pixel (y={y}, x={x}): loop min {loop[:, y, x].min(axis=0).tolist()} max "
            f"{loop[:, y, x].max(axis=0).tolist()}, samples lo {lo[y, x].tolist()} hi {hi[y, x].tolist()}"
        )
