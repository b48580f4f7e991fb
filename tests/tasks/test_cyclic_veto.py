"""Motion veto of cyclic regions: a blinking lamp is kept, a moving textured object is vetoed."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from schemas.config import CyclicityParams
from tasks.cyclic_veto import RegionCrop, motion_explained, veto_moving_regions
from tasks.cyclicity import cyclic_mask, cyclicity_block, grow_mask, veto_mask
from tests.tasks.test_cyclicity_task import window_dataset


def _scene(n=48, seed=0, noise=2.0):
    """A textured bright lamp blinking in place (period 8) and a textured bright blob swinging
    sideways by 6 px (period 8, like a pendulum or a pedal), on a textured wall."""
    rng = np.random.default_rng(seed)
    h, w = 48, 112
    wall = 70 + 25 * rng.random((h, w))
    texture = 170 + 60 * rng.random((14, 14))
    lamp = np.zeros((h, w), bool)
    lamp[17:31, 12:26] = True
    frames = np.empty((n, h, w))
    blob = np.zeros((n, h, w), bool)
    for t in range(n):
        f = wall.copy()
        f[lamp] = (texture * (0.35 + 0.65 * (t % 8 < 4))).ravel()
        x0 = 70 + int(round(6 * np.sin(2 * np.pi * t / 8)))
        f[17:31, x0 : x0 + 14] = texture
        blob[t, 17:31, x0 : x0 + 14] = True
        frames[t] = f + rng.normal(0, noise, (h, w))
    return np.clip(frames, 0, 255), lamp, blob


def test_blob_vetoed_light_kept():
    lum, lamp, blob = _scene()
    swept = blob.any(axis=0)
    crops = [RegionCrop(lum, None, lamp), RegionCrop(lum, None, swept)]
    veto = veto_moving_regions(crops, 0.15)
    assert veto.explained[0] < 0.05, veto.explained
    assert veto.explained[1] > 0.5, veto.explained
    assert veto.vetoed.tolist() == [False, True]
    # both in one labelled frame give the same shares as on their own crops
    labels = lamp.astype(np.int64) + 2 * swept
    np.testing.assert_allclose(motion_explained(lum, None, labels, 2), veto.explained, atol=0.05)
    # switched off: nothing vetoed
    assert not veto_moving_regions(crops, None).vetoed.any()


def test_invisible_samples_do_not_count():
    lum, lamp, _ = _scene()
    visible = np.ones(lum.shape, bool)
    visible[::2, lamp] = False  # every pair has one frame unseen on the lamp
    assert motion_explained(lum, visible, lamp.astype(np.int64), 1)[0] == 0.0


def test_swinging_blob_passes_the_score_tests_and_the_stage_vetoes_it():
    lum, lamp, blob = _scene(seed=1)
    video = np.repeat(lum.astype(np.uint8)[..., None], 3, axis=3)
    visible = np.ones(lum.shape, bool)
    params = CyclicityParams(min_region_area=10)
    fields = cyclicity_block(video, visible, params)
    _, cleaned = cyclic_mask(fields, params)
    swept = blob.any(axis=0)
    # without the veto the blob is a cyclic region, as a cyclist's leg or a wheel was on bikes.mp4
    assert (cleaned & swept).sum() > 20 and (cleaned & lamp).sum() > 0.8 * lamp.sum()
    ds = window_dataset(video, visible, (16, 32))
    grown = grow_mask(ds, cleaned, params)
    kept, veto = veto_mask(ds, grown, params)
    _, n = ndimage.label(grown, structure=np.ones((3, 3), bool))
    assert len(veto.explained) == n and veto.vetoed.sum() >= 1
    assert not (kept & swept).any()
    assert (kept & lamp).sum() == (grown & lamp).sum()
    off, veto_off = veto_mask(ds, grown, params.model_copy(update={"motion_veto": None}))
    assert np.array_equal(off, grown) and not veto_off.vetoed.any()
