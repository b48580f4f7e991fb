import dask
import dask.array as da
import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import names as N
from schemas.config import CyclicityParams
from tasks.cyclicity import (
    build_cyclicity,
    clean_mask,
    cyclic_mask,
    cyclicity_block,
    grow_correlated,
    grow_mask,
)


def window_dataset(video, visible, chunks):
    ty, tx = chunks
    return xr.Dataset(
        {
            N.WARPED: ((N.WINDOW_TIME, N.Y, N.X, N.CHANNEL), da.from_array(video, chunks=(-1, ty, tx, -1))),
            N.VISIBLE: ((N.WINDOW_TIME, N.Y, N.X), da.from_array(visible, chunks=(-1, ty, tx))),
        }
    )


def random_video(seed, t=24, h=13, w=17):
    rng = np.random.default_rng(seed)
    video = rng.integers(0, 256, size=(t, h, w, 3), dtype=np.uint8)
    tt = np.arange(t)[:, None, None, None]
    video[:, 2:6, 3:9] = (128 + 100 * np.cos(2 * np.pi * tt / 5)).astype(np.uint8)
    visible = rng.random((t, h, w)) > 0.1
    return video, visible


class _RaiseOnCompute:
    def __call__(self, dsk, keys, **kwargs):
        raise AssertionError("the graph builder computed something")


def test_graph_builder_is_lazy():
    video, visible = random_video(0)
    ds = window_dataset(video, visible, (5, 6))
    with dask.config.set(scheduler=_RaiseOnCompute()):
        out = build_cyclicity(ds, CyclicityParams())
    assert isinstance(out, da.Array) and out.shape == (13, 17, 5)


@pytest.mark.parametrize("chunks", [(13, 17), (5, 6), (4, 17), (13, 3), (7, 11)])
def test_dask_over_uneven_tiles_equals_in_memory(chunks):
    video, visible = random_video(1)
    params = CyclicityParams()
    expected = cyclicity_block(video, visible, params)
    got = build_cyclicity(window_dataset(video, visible, chunks), params).compute(scheduler="threads")
    np.testing.assert_array_equal(got, expected)


@settings(max_examples=10, deadline=None)
@given(ty=st.integers(1, 13), tx=st.integers(1, 17), seed=st.integers(0, 1000))
def test_result_does_not_depend_on_chunk_shape(ty, tx, seed):
    video, visible = random_video(seed, t=12, h=13, w=17)
    params = CyclicityParams()
    expected = cyclicity_block(video, visible, params)
    got = build_cyclicity(window_dataset(video, visible, (ty, tx)), params).compute(scheduler="sync")
    np.testing.assert_array_equal(got, expected)


def test_invisible_samples_are_ignored():
    video, _ = random_video(2)
    t = video.shape[0]
    visible = np.ones(video.shape[:3], bool)
    # a pixel that blinks when visible and is garbage when not
    corrupted = video.copy()
    hidden = np.zeros(t, bool)
    hidden[::6] = True
    corrupted[hidden, 3, 4] = 255 - corrupted[hidden, 3, 4]
    visible[hidden, 3, 4] = False
    params = CyclicityParams()
    a = cyclicity_block(corrupted, visible, params)
    assert a[3, 4, 0] > params.score_threshold
    # a pixel visible in fewer than half the frames scores 0
    visible[: t // 2 + 1, 0, 0] = False
    b = cyclicity_block(video, visible, params)
    assert b[0, 0, 0] == 0


def test_mask_rules_and_cleaning():
    params = CyclicityParams(min_region_area=5, opening_radius=1)
    fields = np.zeros((20, 20, 5), np.float32)
    fields[..., 3] = 50
    fields[..., 4] = 200
    fields[2:8, 2:8, 0] = 10  # a cyclic block
    fields[15, 15, 0] = 10  # a speck
    fields[12:18, 2:8, 0] = 10
    fields[12:18, 2:8, 4] = 100  # cyclic but dark
    candidate, mask = cyclic_mask(fields, params)
    assert candidate[15, 15] and not mask[15, 15]
    assert mask[2:8, 2:8].all() and not mask[12:18, 2:8].any()
    assert mask.sum() == 36
    ring = np.zeros((12, 12), bool)
    ring[2:10, 2:10] = True
    ring[5:7, 5:7] = False
    assert clean_mask(ring, CyclicityParams(opening_radius=0, min_region_area=1)).all() == False  # noqa: E712
    assert clean_mask(ring, CyclicityParams(opening_radius=0, min_region_area=1))[5:7, 5:7].all()


def _glow_scene(seed=0, n=72):
    """A lamp (period 8) whose glow fades over ~8 px, and beside it a lamp of period 11 with no glow."""
    rng = np.random.default_rng(seed)
    h, w = 40, 80
    yy, xx = np.mgrid[0:h, 0:w]
    t = np.arange(n)[:, None, None]
    d = np.sqrt((yy - 20) ** 2 + (xx - 20) ** 2)
    lamp = d <= 5
    glow = np.where(lamp, 1.0, 0.6 * np.exp(-((d - 5) ** 2) / (2 * 3.0**2)))
    other = (np.abs(yy - 20) <= 4) & (np.abs(xx - 50) <= 4)
    lum = 60 + rng.normal(0, 2, (n, h, w))
    lum += 150 * glow * (0.5 + 0.5 * np.cos(2 * np.pi * t / 8))
    lum += np.where(other, 150 * (0.5 + 0.5 * np.cos(2 * np.pi * t / 11)), 0)
    return lum, lamp, other, d


def test_growth_takes_the_glow_and_leaves_an_unrelated_light():
    lum, lamp, other, d = _glow_scene()
    grown, corr = grow_correlated(lum, lamp, 0.4, 48)
    assert grown[lamp].all()
    # the glow ring whose blink stands out from the noise is taken ...
    assert grown[(d > 5) & (d <= 9)].all()
    # ... nothing beyond what correlates, and not the other light (another period)
    assert not grown[other].any()
    assert (corr[~grown] < 0.65).all()
    # the distance limit holds
    near, _ = grow_correlated(lum, lamp, 0.4, 2)
    assert near[(d > 5) & (d <= 7)].all() and not near[d > 7.5].any()


def test_growth_is_part_of_the_stage(tmp_path):
    lum, lamp, other, d = _glow_scene(seed=1)
    video = np.repeat(np.clip(lum, 0, 255).astype(np.uint8)[..., None], 3, axis=3)
    ds = window_dataset(video, np.ones(video.shape[:3], bool), (16, 32))
    params = CyclicityParams(min_region_area=10)
    grown = grow_mask(ds, lamp | other, params)
    assert grown[(d > 5) & (d <= 9)].all() and (grown & ~(lamp | other)).sum() > 0
    assert np.array_equal(grow_mask(ds, lamp | other, CyclicityParams(grow_max_px=0)), lamp | other)


def _edge_video(seed, t=40, h=12, w=14):
    """Random tiles plus pixels on the edges of the search's skip rules: grey alternations whose
    swing is just at, above and below ``min_amplitude``, bright and dim, and blinking patches."""
    rng = np.random.default_rng(seed)
    video = rng.integers(0, 256, size=(t, h, w, 3), dtype=np.uint8)
    tt = np.arange(t)
    for x, (base, swing) in enumerate([(200, 6), (200, 5), (200, 7), (120, 6), (127, 8), (120, 8), (60, 100)]):
        video[:, 0, x] = (base + swing * (tt % 2))[:, None]
        video[:, 1, x] = (base + swing * (tt % 3 == 0))[:, None]
    video[:, 4:9, 2:8] = (128 + 100 * np.cos(2 * np.pi * tt / 5)).astype(np.uint8)[:, None, None, None]
    video[:, 9:, 9:] = (90 + 30 * np.cos(2 * np.pi * tt / 7)).astype(np.uint8)[:, None, None, None]
    visible = rng.random((t, h, w)) > 0.05
    return video, visible


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(
    "rules",
    [{}, {"min_amplitude": 0.0}, {"min_amplitude": 6.0, "intensity_threshold": 50.0}, {"min_amplitude": 40.0}],
)
def test_skipping_pixels_that_cannot_pass_keeps_every_candidate(seed, rules):
    video, visible = _edge_video(seed)
    params = CyclicityParams(**rules)
    every = cyclicity_block(video, visible, params.model_copy(update={"search_all_pixels": True}))
    some = cyclicity_block(video, visible, params)
    np.testing.assert_array_equal(cyclic_mask(some, params)[0], cyclic_mask(every, params)[0])
    assert cyclic_mask(every, params)[0].any()
    searched = (some[..., :4] != 0).any(axis=-1)
    assert searched.any() and not searched.all()
    np.testing.assert_array_equal(some[searched], every[searched])
    np.testing.assert_array_equal(some[..., 4], every[..., 4])
