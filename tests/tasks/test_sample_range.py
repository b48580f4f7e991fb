"""The render never writes a colour the window did not have (issue 12: black display regions)."""

import dask.array as da
import numpy as np
import pytest
import xarray as xr

from kernels.rpca import display_lambda, rpca_apg
from schemas import names as N
from schemas.config import CyclicityParams, IngestParams, RenderParams, WindowParams
from tasks.cyclicity import find_cyclic_regions
from tasks.ingest import ingest
from tasks.render import render_loop
from tasks.sample_range import (
    LOOP_REGIONS,
    RANGE_TOLERANCE,
    check_loop_range,
    guard_loop_range,
    rpca_about_median,
)
from tasks.store import group, write_variables
from tasks.window import select_window
from tests.range_check import assert_loop_within_window_range


@pytest.fixture(autouse=True)
def _one_blas_thread():
    """As the render does (tasks.render.pin_blas): nested BLAS pools on a busy machine are very slow."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


@pytest.mark.parametrize("n_pixels", [20, 100, 400])
def test_rpca_about_median_keeps_a_static_segment_in_range(n_pixels):
    """A static segment (gamma 0: the smallest lambda) keeps its level; plain RPCA sent small ones to 0."""
    rng = np.random.default_rng(n_pixels)
    P = 105 + rng.normal(0, 3, (30, n_pixels))
    lam = display_lambda(0.0)
    low, _, converged = rpca_about_median(P, lam, max_iter=300)
    assert converged
    assert (low >= P.min(axis=0) - RANGE_TOLERANCE).all() and (low <= P.max(axis=0) + RANGE_TOLERANCE).all()
    if n_pixels <= 100:  # the cause, kept visible: un-centred RPCA gives a black segment here
        assert np.abs(rpca_apg(P, lam, max_iter=300).low_rank).max() < 1


def test_rpca_about_median_keeps_a_display_signal():
    """Centring does not flatten content that changes: a rank-one flicker of a 60 x 300 segment survives.

    (Much smaller segments lose it: with lambda = 0.005 + 0.015 gamma fixed, sqrt(T n) lambda < ~1 makes
    everything "sparse"; they now show each pixel's median instead of black.)"""
    rng = np.random.default_rng(1)
    t = np.arange(60)
    P = 100 + 40 * np.sin(2 * np.pi * t / 12)[:, None] * rng.uniform(0.5, 1, (1, 300))
    low, _, _ = rpca_about_median(P, display_lambda(0.5))
    assert np.abs(low - P).max() < 3


@pytest.fixture(scope="module")
def static_display_store(tmp_path_factory, blinking_clip):
    """The blinking clip with a small `display_mask` patch on static background (score 0 there)."""
    store = tmp_path_factory.mktemp("range") / "store.zarr"
    ingest(blinking_clip.path, store, IngestParams())
    select_window(str(store), WindowParams(tile=48))
    find_cyclic_regions(str(store), CyclicityParams())
    ds = xr.open_zarr(store, consolidated=False)
    cyclic = ds[N.CYCLIC_MASK].values
    h, w = cyclic.shape
    display = np.zeros((h, w), bool)
    # a 9 x 9 patch far from the lights: static content, as the people-on-displays regions of issue 12
    ys, xs = np.nonzero(~np.asarray(
        xr.DataArray(cyclic).rolling(dim_0=31, dim_1=31, center=True, min_periods=1).max().values, bool
    ))
    y, x = int(ys[len(ys) // 2]), int(xs[len(xs) // 2])
    display[y - 4 : y + 5, x - 4 : x + 5] = True
    write_variables(xr.Dataset({N.DISPLAY_MASK: ((N.Y, N.X), da.from_array(display, chunks=48))}), store)
    return store, display, (y, x)


def test_static_display_region_is_not_black(static_display_store):
    """Issue 12: display regions with score 0 rendered (0, 0, 0) although fully visible."""
    store, display, (y, x) = static_display_store
    result = render_loop(str(store), RenderParams(), CyclicityParams())
    kinds = {r.kind for r in result.regions}
    assert "display" in kinds
    ds = xr.open_zarr(store, consolidated=False)
    loop = ds[N.LOOP].values
    reference = ds[N.REFERENCE].values
    assert reference[y, x].mean() > 20  # the patch is not dark in the source
    assert loop[:, display].max() > 20, "the static display patch rendered black"
    assert result.range_fallback_pixels == 0 and result.warnings == []
    assert ds[N.ANIMATED_MASK].values[display].all()
    assert_loop_within_window_range(store)


def render_and_corrupt(store, display, n_pixels: int, frame: int, value: int):
    """Render ``store``, then set ``n_pixels`` animated pixels of the display to ``value`` in one loop frame.

    Returns the animated mask before any guard, the corrupted loop and the corrupted pixels."""
    render_loop(str(store), RenderParams(), CyclicityParams())
    g = group(store)
    animated = np.asarray(g[N.ANIMATED_MASK][...]).astype(bool)
    loop = np.asarray(g[N.LOOP][...])
    ys, xs = np.nonzero(display)
    corrupt = np.zeros_like(animated)
    corrupt[ys[:n_pixels], xs[:n_pixels]] = True
    loop[frame][corrupt] = value
    g[N.LOOP][...] = loop
    return animated, loop, corrupt


def test_guard_falls_back_to_the_reference_with_a_warning(static_display_store):
    store, display, _ = static_display_store
    animated, _, corrupt = render_and_corrupt(store, display, 5, 3, 0)  # a black hole in one frame
    ds = xr.open_zarr(store, consolidated=False)
    found = check_loop_range(ds[N.LOOP].data, ds[N.WARPED].data, ds[N.VISIBLE].data, ds[N.REFERENCE].data, animated)
    np.testing.assert_array_equal(found.bad, corrupt)
    # in-memory inputs are checked in memory, with the same verdict
    here = check_loop_range(ds[N.LOOP].values, ds[N.WARPED].values, ds[N.VISIBLE].values, ds[N.REFERENCE].values, animated)
    np.testing.assert_array_equal(here.bad, found.bad)
    assert here.worst == found.worst > 2
    no_visible = check_loop_range(ds[N.LOOP].values, ds[N.WARPED].values, None, ds[N.REFERENCE].values, animated)
    lazy = check_loop_range(ds[N.LOOP].data, ds[N.WARPED].data, None, ds[N.REFERENCE].data, animated)
    np.testing.assert_array_equal(no_visible.bad, lazy.bad)
    assert no_visible.worst == lazy.worst
    with pytest.raises(AssertionError, match="outside their window's sample range"):
        assert_loop_within_window_range(store)
    guard = guard_loop_range(str(store), animated)
    assert guard.fallback_pixels == 5 and "reference frame instead" in guard.warning
    after = xr.open_zarr(store, consolidated=False)
    np.testing.assert_array_equal(after[N.ANIMATED_MASK].values, animated & ~corrupt)
    reference = after[N.REFERENCE].values
    assert (after[N.LOOP].values[:, corrupt] == reference[corrupt]).all()
    assert_loop_within_window_range(store)


def test_render_guard_from_its_figures_matches_the_guard_that_reads_the_store(static_display_store, tmp_path):
    """tasks.render.checked_range decides from the loop's per-pixel extremes and the window's range (what
    the render's figures carry) and hands its verdict to the guard: same pixels, warning and store as the
    guard that reads warped and the loop back."""
    import shutil

    from tasks.render import LoopFigures, checked_range
    from tasks.sample_range import window_range

    store, display, _ = static_display_store
    animated, loop, _ = render_and_corrupt(store, display, 7, 2, 255)  # seven pixels too bright in one frame
    other = tmp_path / "by-store.zarr"
    shutil.copytree(store, other)

    ds = xr.open_zarr(store, consolidated=False)
    window = tuple(np.asarray(a) for a in window_range(ds[N.WARPED].values, ds[N.VISIBLE].values, ds[N.REFERENCE].values))
    figures = LoopFigures(window, loop.min(axis=0), loop.max(axis=0), None, [], [])
    from_figures = checked_range(str(store), figures, animated)
    from_store = guard_loop_range(str(other), animated)

    assert from_figures.fallback_pixels == from_store.fallback_pixels == 7
    assert from_figures.worst == from_store.worst and from_figures.warning == from_store.warning
    np.testing.assert_array_equal(from_figures.animated, from_store.animated)
    a, b = (xr.open_zarr(s, consolidated=False) for s in (store, other))
    for name in (N.LOOP, N.ANIMATED_MASK, LOOP_REGIONS):
        np.testing.assert_array_equal(a[name].values, b[name].values)
