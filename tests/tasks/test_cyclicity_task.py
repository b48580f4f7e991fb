import dask
import dask.array as da
import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import names as N
from schemas.config import CyclicityParams
from tasks.cyclicity import build_cyclicity, clean_mask, cyclic_mask, cyclicity_block


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
