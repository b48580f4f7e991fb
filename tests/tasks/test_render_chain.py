"""The render stage's processing chain: in-painting, stabilisation, RPCA and forward-backward display loops.

Every test writes a small store by hand (known truth, known masks), runs
:func:`tasks.render.render_loop` and compares the loop with the truth.
"""

from __future__ import annotations

import cv2
import dask.array as da
import numpy as np
import pytest
import skimage.data
import xarray as xr
import zarr
from scipy import ndimage

from kernels.rpca import display_lambda
from schemas import names as N
from schemas.config import CyclicityParams, RenderParams
from tasks.render import (
    display_interval,
    gap_box,
    loop_tables,
    playback_sequence,
    region_kinds,
    render_loop,
    segment_gamma,
)
from tasks.store import update_attrs, write_variables
from tasks.synthetic import textured_background

TILE = 32


# --------------------------------------------------------------------------
# helpers


def write_store(path, warped, reference_index, cyclic_mask, display_mask=None, visible=None):
    """A store as the window (and displays) stages leave it: identity window starting at frame 0."""
    n, h, w, _ = warped.shape
    zarr.open_group(str(path), mode="w", zarr_format=3)
    if visible is None:
        visible = np.ones((n, h, w), bool)
    variables = {
        N.WARPED: ((N.WINDOW_TIME, N.Y, N.X, N.CHANNEL), da.from_array(warped, chunks=(n, TILE, TILE, 3))),
        N.VISIBLE: ((N.WINDOW_TIME, N.Y, N.X), da.from_array(visible, chunks=(n, TILE, TILE))),
        N.REFERENCE: ((N.Y, N.X, N.CHANNEL), da.from_array(warped[reference_index], chunks=(TILE, TILE, 3))),
        N.CYCLIC_MASK: ((N.Y, N.X), da.from_array(cyclic_mask, chunks=TILE)),
    }
    if display_mask is not None:
        variables[N.DISPLAY_MASK] = ((N.Y, N.X), da.from_array(display_mask, chunks=TILE))
    ds = xr.Dataset(variables, coords={N.WINDOW_TIME: np.arange(n)})
    write_variables(ds, path)
    update_attrs(path, {"reference_index": reference_index, "window_start": 0, "window_stop": n})
    return str(path)


def read(store):
    ds = xr.open_zarr(store, consolidated=False)
    return ds[N.LOOP].values, ds[N.ANIMATED_MASK].values, ds[N.REFERENCE].values, ds["loop_regions"].values


def played_frames(result, params):
    """Frame table (R + 1, loop_frames) rebuilt from the reported intervals and playbacks."""
    fa, _, _, _ = loop_tables(
        [(r.start, r.stop) for r in result.regions],
        result.loop_frames,
        params.crossfade_frames,
        [r.playback for r in result.regions],
    )
    return fa


def assert_frozen(loop, animated, reference):
    for t in range(loop.shape[0]):
        np.testing.assert_array_equal(loop[t][~animated], reference[~animated])


def photo(name, h, w):
    img = np.asarray(getattr(skimage.data, name)())
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return cv2.resize(img[..., :3], (w, h), interpolation=cv2.INTER_AREA).astype(np.float32)


def naive_delta1_gamma(colour, theta):
    """Fraction of frame pairs (4i, 4i + 4) whose mean colours differ by more than theta (all visible)."""
    n = colour.shape[0]
    pairs = [(4 * i, 4 * i + 4) for i in range(n) if 4 * i + 4 < n]
    if not pairs:
        return None
    return float(np.mean([np.linalg.norm(colour[b] - colour[a]) > theta for a, b in pairs]))


# --------------------------------------------------------------------------
# small pieces


def test_forward_backward_sequence_and_tables():
    np.testing.assert_array_equal(playback_sequence(3, 7, "forward_backward"), [3, 4, 5, 6, 5, 4])
    np.testing.assert_array_equal(playback_sequence(3, 7, "repeat"), [3, 4, 5, 6])
    np.testing.assert_array_equal(playback_sequence(5, 6, "forward_backward"), [5])
    with pytest.raises(ValueError):
        playback_sequence(4, 4)
    # two regions: period 6 (palindrome of 4 frames) and 4 (repeat): lcm 12, whole cycles
    fa, fb, wb, fades = loop_tables([(3, 7), (0, 4)], 12, 3, ["forward_backward", "repeat"])
    assert fades == [False, False] and not wb.any()
    seq = np.array([3, 4, 5, 6, 5, 4])
    np.testing.assert_array_equal(fa[1], np.tile(seq, 2))
    # every step of the palindrome, the wrap included, moves by one frame
    assert (np.abs(np.diff(np.r_[fa[1], fa[1][:1]])) == 1).all()
    # a loop of 8 frames cannot hold whole palindromes of 6: the end fades into the frames before the start
    fa, fb, wb, fades = loop_tables([(3, 7)], 8, 2, ["forward_backward"])
    assert fades == [True]
    np.testing.assert_allclose(wb[1, 6:], [0.5, 1.0])
    np.testing.assert_array_equal(fb[1, 6:], [5, 4])  # seq[-2], seq[-1]: then seq[0] = 3 at t = 0


def test_region_kinds_follow_the_larger_overlap():
    regions = np.zeros((6, 10), np.int32)
    regions[:, :4] = 1
    regions[:, 6:] = 2
    cyclic = np.zeros((6, 10), bool)
    display = np.zeros((6, 10), bool)
    cyclic[:, :4] = True
    display[:2, :4] = True  # region 1: 24 cyclic pixels > 8 display pixels
    display[:, 6:] = True
    cyclic[:1, 6:] = True  # region 2: 24 display > 4 cyclic
    assert region_kinds(regions, 2, cyclic, display) == ["cyclic", "display"]
    assert region_kinds(regions, 2, cyclic, None) == ["cyclic", "cyclic"]


def test_display_interval_is_centred_on_the_reference_and_clipped():
    assert display_interval(50, 25, None) == (0, 50)
    assert display_interval(50, 25, 20) == (15, 35)
    assert display_interval(50, 3, 20) == (0, 20)
    assert display_interval(50, 48, 20) == (30, 50)
    assert display_interval(50, 10, 80) == (0, 50)


def test_segment_gamma_against_a_naive_descriptor():
    rng = np.random.default_rng(4)
    for _ in range(5):
        n = int(rng.integers(9, 40))
        video = rng.integers(0, 256, (n, 5, 6, 3)).astype(np.uint8)
        video[rng.random(n) < 0.5] //= 4  # frames that jump
        mask = rng.random((5, 6)) < 0.6
        mask[0, 0] = True
        colour = video[:, mask].astype(np.float64).mean(axis=1)
        assert segment_gamma(video, mask, 30.0, 0.5) == pytest.approx(naive_delta1_gamma(colour, 30.0))
        # the integer sums of a uint8 crop give the float mean's descriptor exactly (thresholds at the bit)
        assert segment_gamma(video, mask, 30.0, 0.5) == segment_gamma(video.astype(np.float64), mask, 30.0, 0.5)
    # a mean colour exactly on the threshold: both paths see the same bits
    flat = np.zeros((16, 3, 1, 3), np.uint8)
    flat[1::2] = [[[30, 30, 30]], [[30, 30, 30]], [[30, 30, 30]]]
    assert segment_gamma(flat, np.ones((3, 1), bool), 30.0, 0.5) == segment_gamma(
        flat.astype(np.float64), np.ones((3, 1), bool), 30.0, 0.5
    )
    # fewer than 8 frames: no Delta1 bit, the fallback
    assert segment_gamma(np.zeros((4, 2, 2, 3), np.uint8), np.ones((2, 2), bool), 30.0, 0.7) == 0.7


# --------------------------------------------------------------------------
# RPCA and forward-backward playback on a display with flicker and a walker


H, W = 96, 128
DISPLAY = (slice(16, 80), slice(16, 112))  # 64 x 96 pixels


def display_clip(n_frames=60, seed=0):
    """(observed, truth, display_mask): a slideshow of photographs with band flicker and a walker in front."""
    rng = np.random.default_rng(seed)
    background = textured_background(H, W, rng)
    dh, dw = 64, 96
    photos = [photo(name, dh, dw) for name in ("astronaut", "coffee", "chelsea")]
    truth = np.repeat(background[None], n_frames, axis=0).astype(np.float32)
    for t in range(n_frames):
        k, phase = divmod(t, 8)
        a, b = photos[k % 3], photos[(k + 1) % 3]
        wgt = max(0, phase - 5) / 3.0  # hard content, then a short cross-fade
        truth[t][DISPLAY] = (1 - wgt) * a + wgt * b
    observed = truth.copy()
    walker = rng.normal(45, 20, (36, 12, 3))  # a dark, textured figure
    for t in range(n_frames):
        if rng.random() < 0.3:  # a band of the screen flashes for one frame
            y0 = 16 + int(rng.integers(0, dh - 12))
            observed[t, y0 : y0 + 12, DISPLAY[1]] += 70
        x0 = int(10 + 1.2 * t)  # crossing slowly: 10 frames on every pixel it passes
        observed[t, 40:76, x0 : x0 + 12] = walker[:, : max(0, min(12, W - x0))]
    mask = np.zeros((H, W), bool)
    mask[DISPLAY] = True
    as_u8 = lambda v: np.clip(np.rint(v), 0, 255).astype(np.uint8)  # noqa: E731
    return as_u8(observed), as_u8(truth), mask


@pytest.fixture(scope="module")
def display_render(tmp_path_factory):
    observed, truth, mask = display_clip()
    ref = 4  # the walker has not reached the display yet
    store = write_store(
        tmp_path_factory.mktemp("display") / "store.zarr", observed, ref, np.zeros_like(mask), mask
    )
    params = RenderParams(stabilise=False)  # RPCA alone; stabilisation is tested below
    result = render_loop(store, params, CyclicityParams())
    return store, result, params, observed, truth, mask


def test_rpca_beats_the_temporal_median(display_render):
    store, result, params, observed, truth, mask = display_render
    loop, animated, reference, _ = read(store)
    fa = played_frames(result, params)
    (region,) = result.regions
    assert region.kind == "display" and region.playback == "forward_backward"
    deep = ndimage.binary_erosion(mask, iterations=int(params.feather_px) + 1)
    median = ndimage.median_filter(observed, size=(11, 1, 1, 1), mode="nearest")  # radius 5 in time
    frames = fa[1]
    truth_played = truth[frames][:, deep].astype(float)
    err_rpca = np.abs(loop[:, deep].astype(float) - truth_played).mean()
    err_median = np.abs(median[frames][:, deep].astype(float) - truth_played).mean()
    err_raw = np.abs(observed[frames][:, deep].astype(float) - truth_played).mean()
    assert err_rpca < err_median < err_raw, (err_rpca, err_median, err_raw)
    # the reported lambda follows the reported gamma, which is the segment's Delta1 fraction
    colour = observed[:, mask].astype(np.float64).mean(axis=1)
    assert region.rpca_gamma == pytest.approx(naive_delta1_gamma(colour, params.gamma_theta))
    assert region.rpca_lambda == pytest.approx(display_lambda(region.rpca_gamma))
    assert region.rpca_iterations > 0 and region.stabilised_tracks is None


def test_forward_backward_loop_has_no_seam(display_render):
    store, result, params, observed, truth, mask = display_render
    loop, animated, reference, _ = read(store)
    (region,) = result.regions
    n = observed.shape[0]
    assert (region.start, region.stop) == (0, n)
    assert region.period == 2 * (n - 1) == result.loop_frames and not region.crossfade
    # last frame shows window frame 1, first frame shows frame 0: the wrap is an ordinary step
    np.testing.assert_array_equal(loop[-1], loop[1])
    assert result.quality.seam < 2.0


def test_display_render_freezes_the_rest_and_reports_figures(display_render):
    store, result, params, observed, truth, mask = display_render
    loop, animated, reference, _ = read(store)
    np.testing.assert_array_equal(animated, mask)
    assert_frozen(loop, animated, reference)
    np.testing.assert_array_equal(reference, observed[4])
    assert result.quality.stillness == 0
    (region,) = result.regions
    # RPCA removes flashes and the walker: the loop is steadier than the source
    assert region.flicker is not None and region.flicker < 0.8
    assert result.quality.flicker == region.flicker
    assert {"inpaint", "stabilise", "rpca", "composite"} <= set(result.steps)


# --------------------------------------------------------------------------
# in-painting of invisible samples


def test_inpainting_fills_invisible_samples(tmp_path):
    n = 40
    yy, xx = np.mgrid[0:H, 0:W]
    background = textured_background(H, W, np.random.default_rng(1))
    region = (yy - 48) ** 2 / 30**2 + (xx - 64) ** 2 / 40**2 < 1
    t = np.arange(n)[:, None, None]
    glow = 140 + 60 * np.sin(2 * np.pi * t / 20) + 0.3 * (xx - 64)[None]  # smooth in space and time
    truth = np.repeat(background[None], n, axis=0)
    truth[:, region] = np.clip(glow[:, region], 0, 255)[..., None] * np.array([1.0, 0.9, 0.6])
    truth = np.rint(truth).astype(np.uint8)
    visible = np.ones((n, H, W), bool)
    visible[5:30, 45:51, 50:70] = False  # the reference view does not see this strip for 25 frames
    observed = truth.copy()
    observed[~visible] = 0  # the warp leaves black holes
    params_on = RenderParams(crossfade_frames=0, stabilise=False, rpca=False)
    errors = {}
    for inpaint in (True, False):
        params = params_on.model_copy(update={"inpaint": inpaint})
        store = write_store(tmp_path / f"s{inpaint}.zarr", observed, 2, region, visible=visible)
        result = render_loop(store, params, CyclicityParams())
        loop, animated, reference, _ = read(store)
        assert_frozen(loop, animated, reference)
        fa = played_frames(result, params)
        hole_played = ~visible[fa[1]] & region[None]  # (loop_frames, H, W) samples shown from a hole
        assert hole_played.any()
        diff = np.abs(loop.astype(float) - truth[fa[1]].astype(float)).mean(axis=3)
        errors[inpaint] = diff[hole_played].mean()
        (reg,) = result.regions
        expected = int((~visible[:, region]).sum()) if inpaint else 0
        assert reg.inpainted_samples == expected
        strip = (~visible).any(axis=0) & region
        if inpaint:
            assert result.range_fallback_pixels == 0 and result.warnings == []
        else:
            # unfilled holes would play black: the range guard shows the reference frame there instead
            assert result.range_fallback_pixels == int(strip.sum()) and result.warnings
            np.testing.assert_array_equal(animated, region & ~strip)
            assert (loop[:, strip] == reference[strip]).all()
    # harmonic filling from the surrounding samples is close to the smooth truth; the frozen reference is not.
    # (The space-time Laplacian damps temporal change across a hole -- by about 1 / cosh(omega d) at depth
    # d for angular frequency omega -- so the truth varies slowly and the strip is thin.)
    assert errors[True] < 12, errors
    assert errors[True] < 0.5 * errors[False], errors


# --------------------------------------------------------------------------
# stabilisation of a jittering display


def test_stabilisation_removes_known_jitter(tmp_path):
    n, pad = 40, 6
    rng = np.random.default_rng(2)
    big = textured_background(H + 2 * pad, W + 2 * pad, rng)
    dh, dw = 48, 64
    pic = photo("astronaut", dh, dw)
    shifts = rng.integers(-2, 3, size=(n, 2))
    ref = 20
    shifts[ref] = 0
    truth = np.empty((n, H, W, 3), np.uint8)
    observed = np.empty_like(truth)
    for t in range(n):
        scene = big.copy()
        scene[pad + 24 : pad + 72, pad + 32 : pad + 96] = pic * (0.75 + 0.25 * np.cos(2 * np.pi * t / 10))
        scene = np.clip(np.rint(scene), 0, 255).astype(np.uint8)
        truth[t] = scene[pad : pad + H, pad : pad + W]
        dy, dx = shifts[t]  # the whole view jitters by whole pixels
        observed[t] = scene[pad + dy : pad + dy + H, pad + dx : pad + dx + W]
    mask = np.zeros((H, W), bool)
    mask[DISPLAY] = True
    deep = ndimage.binary_erosion(mask, iterations=4)
    errors, results = {}, {}
    for stabilise in (True, False):
        params = RenderParams(stabilise=stabilise, rpca=False, crossfade_frames=0)
        store = write_store(tmp_path / f"s{stabilise}.zarr", observed, ref, np.zeros_like(mask), mask)
        result = render_loop(store, params, CyclicityParams())
        loop, animated, reference, _ = read(store)
        assert_frozen(loop, animated, reference)
        fa = played_frames(result, params)
        errors[stabilise] = np.abs(loop[:, deep].astype(float) - truth[fa[1]][:, deep].astype(float)).mean()
        results[stabilise] = result.regions[0]
    assert results[True].stabilised_tracks >= 8
    assert results[False].stabilised_tracks is None
    # aligned: only resampling error remains; jittering: edges of the photo move by up to 2 px
    assert errors[True] < 0.35 * errors[False], errors
    assert errors[True] < 4.0, errors


def test_gap_box_covers_the_region_s_gap_samples_only():
    gap = np.zeros((10, 30, 40), bool)
    mask = np.zeros((30, 40), bool)
    mask[10:20, 10:30] = True
    gap[:, :2] = True  # a warp's strip along the crop's border, outside the region: nothing to fill
    assert gap_box(gap, mask) is None
    gap[4, 10:12, 10] = True  # two samples at the region's edge in frame 4
    gap[0, 25:30, 0:3] = True  # outside the region again
    box = gap_box(gap, mask, margin=(2, 8, 8))
    assert box == (slice(2, 7), slice(2, 20), slice(2, 19))
    # clipped to the crop
    assert gap_box(gap, mask, margin=(9, 99, 99)) == (slice(0, 10), slice(0, 30), slice(0, 40))


def test_nothing_animated_renders_the_reference(tmp_path):
    """No cyclic or display pixel: every loop frame is the reference, no region, no seam figure."""
    rng = np.random.default_rng(5)
    n = 12
    warped = rng.integers(0, 256, (n, 40, 48, 3), dtype=np.uint8)
    empty = np.zeros((40, 48), bool)
    store = write_store(tmp_path / "s.zarr", warped, 4, empty, display_mask=empty)
    result = render_loop(store, RenderParams(), CyclicityParams())
    loop = np.asarray(zarr.open_group(store, mode="r")[N.LOOP][...])
    assert result.regions == [] and result.animated_pixels == 0 and result.range_fallback_pixels == 0
    assert (loop == warped[4][None]).all()
    assert result.quality.seam is None and result.quality.stillness == 0 and result.quality.flicker is None


# --------------------------------------------------------------------------
# the stage on a Dask cluster, as the flow runs it


def test_on_a_cluster_the_render_equals_the_plain_one(tmp_path):
    """The chains run while the stage times the loop and composites the tiles without a display segment
    (see "Scheduling" in :mod:`tasks.render`): on an in-process cluster of two threads, as the flow's
    default, loop, masks and every reported figure equal those of a plain call (steps one after another).

    The store holds a display segment (stabilised, RPCA), a blinking light with invisible samples (a
    chained cyclic region, which the loop's timing waits for) and one without (read from ``warped``)."""
    from distributed import Client, LocalCluster

    observed, _, display = display_clip(n_frames=40, seed=3)
    n = observed.shape[0]
    warped = observed.copy()
    visible = np.ones((n, H, W), bool)
    cyclic = np.zeros((H, W), bool)
    yy, xx = np.mgrid[0:H, 0:W]
    for (cy, cx), period in (((88, 8), 6), ((7, 120), 8)):
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 < 5**2
        cyclic |= (yy - cy) ** 2 + (xx - cx) ** 2 < 7**2
        for t in range(n):
            on = 0.5 + 0.5 * np.cos(2 * np.pi * t / period)
            warped[t][disc] = np.rint(60 + on * np.array([195.0, 170.0, 80.0])).astype(np.uint8)
    visible[5:12, 84:92, 4:12] = False  # the first light is hidden for a while
    warped[~visible] = 0
    ref = 20
    plain = write_store(tmp_path / "plain.zarr", warped, ref, cyclic, display, visible)
    on_cluster = write_store(tmp_path / "cluster.zarr", warped, ref, cyclic, display, visible)
    params = RenderParams()
    expected = render_loop(plain, params, CyclicityParams())
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster:
        with Client(cluster) as client:
            got = client.submit(render_loop, on_cluster, params, CyclicityParams(), pure=False).result()
    kinds = sorted(r.kind for r in expected.regions)
    assert kinds == ["cyclic", "cyclic", "display"]
    assert sum(r.inpainted_samples > 0 for r in expected.regions) == 1
    assert [r for r in expected.regions if r.kind == "display"][0].score > 0
    without_steps = lambda result: result.model_dump(exclude={"steps"})  # noqa: E731
    assert without_steps(got) == without_steps(expected)
    for a, b in zip(read(on_cluster), read(plain), strict=True):
        np.testing.assert_array_equal(a, b)
