import numpy as np
import pytest
import xarray as xr

from schemas import names as N
from schemas.config import CyclicityParams, IngestParams, RenderParams, WindowParams
from tasks.cyclicity import find_cyclic_regions
from tasks.ingest import ingest
from tasks.render import choose_loop_length, feather, loop_tables, render_loop
from tasks.window import select_window


def test_loop_length_choice():
    p = RenderParams()
    assert choose_loop_length([40, 60], p) == 120
    assert choose_loop_length([48, 48], p) == 48
    assert choose_loop_length([41, 53, 67], p) == 67  # lcm too long: the longest interval
    assert choose_loop_length([41, 53], RenderParams(loop_frames=30)) == 30
    assert choose_loop_length([], p) == 2


def test_whole_cycles_need_no_fade():
    fa, fb, wb, fades = loop_tables([(3, 13), (0, 20)], 20, crossfade_frames=6)
    assert fades == [False, False]
    np.testing.assert_array_equal(fa[1], 3 + np.arange(20) % 10)
    np.testing.assert_array_equal(fa[2], np.arange(20))
    np.testing.assert_array_equal(fa, fb)
    assert not wb.any()


def test_fade_ends_on_the_frame_before_the_start():
    i, j, loop = 5, 16, 24  # length 11 does not divide 24
    fa, fb, wb, fades = loop_tables([(i, j)], loop, crossfade_frames=4)
    assert fades == [True]
    # no fade before the last four frames
    assert not wb[1, :20].any()
    np.testing.assert_allclose(wb[1, 20:], [0.25, 0.5, 0.75, 1.0])
    # the last frame is entirely the interval's last frame, which precedes frame 0 (= the start)
    assert fb[1, -1] == j - 1 and fa[1, 0] == i
    # the fading-in frames run consecutively into the start
    np.testing.assert_array_equal(fb[1, 20:], [j - 4, j - 3, j - 2, j - 1])


def test_feather_is_zero_outside_and_one_deep_inside():
    mask = np.zeros((20, 20), bool)
    mask[4:16, 4:16] = True
    a = feather(mask, 3.0)
    assert (a[~mask] == 0).all()
    assert a[10, 10] == 1.0
    assert 0 < a[4, 10] < 1
    np.testing.assert_array_equal(feather(mask, 0), mask.astype(np.float32))


@pytest.fixture(scope="module")
def rendered_store(tmp_path_factory, blinking_clip):
    store = tmp_path_factory.mktemp("render") / "store.zarr"
    ingest(blinking_clip.path, store, IngestParams())
    select_window(str(store), WindowParams(tile=48))
    find_cyclic_regions(str(store), CyclicityParams())
    result = render_loop(str(store), RenderParams(), CyclicityParams())
    return store, result


def test_render_freezes_everything_outside_the_mask(rendered_store):
    store, result = rendered_store
    ds = xr.open_zarr(store, consolidated=False)
    loop = ds[N.LOOP].values
    animated = ds[N.ANIMATED_MASK].values
    reference = ds[N.REFERENCE].values
    assert loop.shape == (result.loop_frames, *reference.shape)
    for t in range(loop.shape[0]):
        np.testing.assert_array_equal(loop[t][~animated], reference[~animated])
    assert result.quality.stillness == 0
    # the animated part does move
    assert np.abs(loop.astype(int) - reference).max() > 50


def test_render_loops_each_region_over_its_interval(rendered_store):
    store, result = rendered_store
    ds = xr.open_zarr(store, consolidated=False)
    warped = ds[N.WARPED].values
    loop = ds[N.LOOP].values
    regions = ds["loop_regions"].values
    assert len(result.regions) == 3
    for reg in result.regions:
        inside = regions == reg.label
        # a pixel deep inside the region (alpha = 1) shows the window frame i + t mod L exactly
        from scipy import ndimage

        deep = ndimage.binary_erosion(inside, iterations=4)
        y, x = np.argwhere(deep)[0]
        length = reg.stop - reg.start
        for t in range(result.loop_frames - RenderParams().crossfade_frames):
            np.testing.assert_array_equal(loop[t, y, x], warped[reg.start + t % length, y, x])


def test_one_pass_figures_equal_those_read_back_from_the_store(rendered_store):
    """The render takes its range check and figures from the tiles on their way to the store; the same
    functions run on the stored loop give the same figures."""
    from tasks.loop_timing import loop_wrap_figures, wrap_figures
    from tasks.render import loop_quality, region_flicker
    from tasks.sample_range import check_loop_range

    store, result = rendered_store
    ds = xr.open_zarr(store, consolidated=False)
    loop, warped = ds[N.LOOP].data, ds[N.WARPED].data
    regions = ds["loop_regions"].values
    animated = ds[N.ANIMATED_MASK].values
    assert result.range_fallback_pixels == 0
    np.testing.assert_array_equal(animated, regions > 0)
    check = check_loop_range(loop, warped, ds[N.VISIBLE].data, ds[N.REFERENCE].data, animated)
    assert not check.bad.any()
    quality = loop_quality(loop, animated)
    assert (result.quality.seam, result.quality.stillness) == (quality.seam, quality.stillness)
    intervals = [(r.start, r.stop) for r in result.regions]
    flicker = region_flicker(loop, warped, regions, intervals)
    assert [r.flicker for r in result.regions] == flicker
    assert result.quality.flicker == max(flicker)
    wraps = loop_wrap_figures(loop, regions, len(result.regions))
    assert [(r.wrap_change, r.largest_step) for r in result.regions] == [
        (round(w, 4), round(s, 4)) for w, s in wraps
    ]
    # the integer wrap sums give the float figures of the region's samples
    values = loop.compute()
    for r in result.regions:
        v = values[:, regions == r.label].astype(np.float64)
        wrap, step = wrap_figures(values, regions == r.label)
        assert wrap == pytest.approx(np.abs(v[-1] - v[0]).mean(), rel=1e-12)
        assert step == pytest.approx(np.abs(np.diff(v, axis=0)).mean(axis=(1, 2)).max(), rel=1e-12)


@pytest.mark.parametrize("with_visible", [True, False])
def test_window_range_of_a_tile_in_numpy_equals_the_lazy_one(with_visible):
    import dask.array as da

    from tasks.sample_range import window_range

    rng = np.random.default_rng(3)
    warped = rng.integers(0, 256, (7, 5, 6, 3), dtype=np.uint8)
    visible = rng.random((7, 5, 6)) < 0.6 if with_visible else None
    if with_visible:
        visible[:, 0, 0] = False  # a pixel never visible: the reference bounds it
    reference = rng.integers(0, 256, (5, 6, 3), dtype=np.uint8)
    lazy = window_range(da.asarray(warped, chunks=(7, 3, 3, 3)), None if visible is None else da.asarray(visible),
                        da.asarray(reference))
    assert all(isinstance(a, da.Array) for a in lazy)
    for got, want in zip(window_range(warped, visible, reference), lazy, strict=True):
        assert isinstance(got, np.ndarray) and got.dtype == np.uint8
        np.testing.assert_array_equal(got, want.compute())
