"""Loops of whole periods: the timing functions on known signals, then the rendered loop of real (encoded)
clips -- the demo's lights with a soft glow and four neon-like lights of periods 8, 10, 12 and 9.5 frames --
measured region by region: the wrap is no larger than the largest ordinary step, and no pixel left frozen
blinks with a light."""

import numpy as np
import pytest
import xarray as xr
from scipy import ndimage

from schemas import names as N
from schemas.config import CyclicityParams, IngestParams, RenderParams, WindowParams
from tasks.cyclicity import find_cyclic_regions, luminance
from tasks.ingest import ingest
from tasks.loop_timing import (
    CROSSFADE,
    RETIMED,
    WHOLE,
    RegionTiming,
    choose_output_length,
    dominant_period,
    fit_region,
    timing_tables,
    whole_cycle,
    wrap_figures,
)
from tasks.render import render_loop
from tasks.synthetic import default_lights, make_blinking_clip, period_lights
from tasks.window import select_window

#: The documented halo threshold (README, "How it works", step 3): no pixel outside the animated mask
#: correlates with a light by more than this.  Growth takes pixels from 0.4 (CyclicityParams.grow_correlation);
#: chance alone reaches about 0.6 among the 10^5 pixels of a 72-frame window.
HALO_THRESHOLD = 0.65


def blink(t, period, phase=0.0):
    return 0.1 + 0.9 * (0.5 + 0.5 * np.cos(2 * np.pi * (t / period + phase))) ** 2


@pytest.mark.parametrize("period", [6.0, 8.0, 9.5, 10.0, 11.0, 12.0, 7.3])
def test_dominant_period_is_found_below_the_frame(period):
    t = np.arange(96.0)
    rng = np.random.default_rng(int(period * 10))
    signal = 200 * blink(t, period, 0.3) + rng.normal(0, 2, t.size) + 0.2 * t  # noise and a drift
    # the interval need not hold whole periods
    assert dominant_period(signal, 7, 70, 4) == pytest.approx(period, abs=0.03)


def test_a_square_blink_is_not_mistaken_for_its_harmonic():
    t = np.arange(96)
    square = np.where((t % 12) < 3, 255.0, 10.0)  # short flashes: strong harmonics
    assert dominant_period(square, 0, 96, 4) == pytest.approx(12.0, abs=0.05)


def test_whole_cycle():
    assert whole_cycle(8.0, 95, 0.15) == 8
    assert whole_cycle(9.5, 95, 0.15) == 19
    assert whole_cycle(7.33, 95, 0.15) == 22  # 3 periods
    assert whole_cycle(8.04, 95, 0.15) == 8  # estimation noise below the tolerance
    assert whole_cycle(120.0, 95, 0.15) == 95
    # nothing within the tolerance: the closest to whole frames
    assert whole_cycle(10.37, 40, 0.01) == 31


def test_output_length_is_a_common_multiple_or_the_least_retiming():
    kw = dict(loop_frames=None, max_loop_frames=300, min_frames=48, max_retime=0.05)
    assert choose_output_length([8, 10, 12], [1, 1, 1], [True] * 3, **kw) == 120
    assert choose_output_length([8], [1], [True], **kw) == 48  # raised to at least min_frames
    assert choose_output_length([6, 8, 11], [1, 1, 1], [True] * 3, **kw) == 264
    # 8, 10, 12 and a 19-frame cycle: no common multiple within 300; 8, 10 and 12 fit exactly, 19 is retimed
    length = choose_output_length([8, 10, 12, 19], [100, 100, 100, 100], [True] * 4, **kw)
    assert length % 120 == 0
    n = round(length / 19)
    assert abs(n * 19 - length) / length <= 0.05
    assert choose_output_length([8, 19], [1, 1], [True, True], **{**kw, "loop_frames": 50}) == 50
    # a display period is never retimed: it is fitted exactly when that costs least
    assert choose_output_length([142, 8], [1000, 10], [False, True], **kw) in (142, 284)


def test_whole_tables_are_exact_and_retimed_tables_blend_in_order():
    whole = RegionTiming(8.0, 8, 5, 29, 15, 1.0, WHOLE, 0.0)
    a, b, w = timing_tables(whole, 120)
    np.testing.assert_array_equal(a, 5 + np.arange(120) % 24)
    assert not w.any()
    retimed = RegionTiming(9.5, 19, 3, 41, 6, 114 / 120, RETIMED, 0.0)
    a, b, w = timing_tables(retimed, 120)
    pos = (a - 3) + w
    expected = (np.arange(120) * 114 / 120) % 38
    np.testing.assert_allclose(pos, expected, atol=1e-5)
    # the next frame after the interval's last is its first: the loop's start stands in for it
    last = a == 40
    assert (b[last] == 3).all()
    assert ((b - a)[~last] == 1).all()


def _pixels(period, n=96, phase=0.2, noise=1.0, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n)[:, None, None]
    video = 30 + 200 * blink(t, period, phase) * np.ones((1, 20, 3)) + rng.normal(0, noise, (n, 20, 3))
    return video.astype(np.float32)


def test_fit_region_plays_whole_cycles_from_a_wrap_like_any_other_step():
    samples = _pixels(9.5)
    t = fit_region(samples, 19, 9.5, 114, min_frames=48, max_retime=0.05)
    assert t.timing == WHOLE and (t.stop - t.start) % 19 == 0 and t.stop - t.start >= 48
    assert 114 % (t.stop - t.start) == 0
    assert t.wrap_cost < 3  # frame start is the frame that followed the interval, up to noise
    t = fit_region(samples, 19, 9.5, 120, min_frames=48, max_retime=0.05)
    assert t.timing == RETIMED and t.speed == pytest.approx(114 / 120)
    t = fit_region(samples, 19, 9.5, 70, min_frames=48, max_retime=0.05)  # 4 cycles: 8.6 % too fast
    assert t.timing == CROSSFADE and (t.stop - t.start) % 19 == 0


def test_wrap_figures():
    loop = np.zeros((4, 2, 2, 3), np.uint8)
    loop[:, 0, 0] = np.array([0, 10, 30, 60])[:, None]
    mask = np.zeros((2, 2), bool)
    mask[0, 0] = True
    assert wrap_figures(loop, mask) == (60.0, 30.0)
    assert wrap_figures(loop, ~np.ones((2, 2), bool)) == (0.0, 0.0)


# --------------------------------------------------------------------------- real clips


def _render(path, tmp):
    store = str(tmp / "store.zarr")
    ingest(path, store, IngestParams())
    select_window(store, WindowParams(tile=64))
    find_cyclic_regions(store, CyclicityParams())
    result = render_loop(store, RenderParams(), CyclicityParams())
    return store, result


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """The demo's lights with a soft glow (72 frames), and lights of periods 8, 10, 12 and 9.5 (96 frames)."""
    out = {}
    for name, lights, n in [
        ("demo_glow", default_lights(180, 320, glow_px=4.0), 72),
        ("periods", period_lights(180, 320), 96),
    ]:
        tmp = tmp_path_factory.mktemp(name)
        clip = make_blinking_clip(tmp / f"{name}.mp4", lights=lights, n_frames=n)
        out[name] = (clip, *_render(clip.path, tmp))
    return out


@pytest.mark.parametrize("name", ["demo_glow", "periods"])
def test_every_region_wraps_no_larger_than_its_largest_step(clips, name):
    clip, store, result = clips[name]
    ds = xr.open_zarr(store, consolidated=False)
    loop = ds[N.LOOP].values
    regions = ds["loop_regions"].values
    assert len(result.regions) == len(clip.lights)
    for light, m in zip(clip.lights, clip.masks, strict=True):
        label = np.bincount(regions[m]).argmax()
        reg = next(r for r in result.regions if r.label == label)
        wrap, step = wrap_figures(loop, regions == label)
        assert (reg.wrap_change, reg.largest_step) == pytest.approx((wrap, step), abs=1e-3)
        assert wrap <= step, f"period {light.period}: wrap {wrap:.1f} > largest step {step:.1f}"
        # and the wrap is no jump at all: within the typical step of the region
        steps = np.abs(np.diff(loop[:, regions == label].astype(np.float32), axis=0)).mean(axis=(1, 2))
        assert wrap <= np.median(steps) + 2.0, f"period {light.period}: wrap {wrap:.1f}, steps {steps}"
        assert reg.dominant_period == pytest.approx(light.period, abs=0.1)
        assert (reg.stop - reg.start) % reg.cycle_frames == 0
        assert reg.timing in (WHOLE, RETIMED)
        if reg.timing == WHOLE:
            assert result.loop_frames % (reg.stop - reg.start) == 0
        else:
            assert abs(reg.speed - 1) <= RenderParams().max_retime + 1e-9
    if name == "periods":
        # 8, 10 and 12 share 120 frames; the 9.5-frame light (19-frame cycle) fits too or is retimed
        assert result.loop_frames % 120 == 0


@pytest.mark.parametrize("name", ["demo_glow", "periods"])
def test_no_frozen_pixel_blinks_with_a_light(clips, name):
    clip, store, result = clips[name]
    ds = xr.open_zarr(store, consolidated=False)
    lum = luminance(ds[N.WARPED].values).astype(np.float64)
    animated = ds[N.ANIMATED_MASK].values
    z = lum - lum.mean(axis=0)
    z /= np.maximum(np.sqrt((z**2).sum(axis=0)), 1e-9)
    for m in clip.masks:
        s = lum[:, m].mean(axis=1)
        s = (s - s.mean()) / np.linalg.norm(s - s.mean())
        corr = np.tensordot(s, z, axes=(0, 0))
        worst = corr[~animated].max()
        assert worst < HALO_THRESHOLD, f"a frozen pixel correlates {worst:.2f} with a light"
        # the glow is inside the mask: it reaches well beyond the light itself
        assert (animated & ~m & (ndimage.distance_transform_edt(~m) <= 4)).sum() > 0.8 * (
            (ndimage.distance_transform_edt(~m) <= 4) & ~m
        ).sum()
