"""The automatic mask: periodic areas found, non-repeating surroundings left still."""

from __future__ import annotations

import numpy as np

from schemas.still import MaskParams
from tasks.still.features import pixel_features
from tasks.still.mask import automatic_mask, periodicity_score, split_regions
from tasks.still.repetitions import find_repetitions
from tasks.still.synthetic import noise_image, window_grid


def test_pattern_inside_a_non_repeating_picture_is_found():
    s = window_grid(height=176, width=240, region=(20, 150, 40, 210), seed=5)
    f = pixel_features(s.image)
    rep = find_repetitions(f, np.ones(s.mask.shape, bool), s.direction)
    assert abs(rep.period - s.period) <= 1.0
    mask, score = automatic_mask(f, s.direction, rep.period)
    inter = (mask & s.mask).sum()
    union = (mask | s.mask).sum()
    assert inter / union >= 0.75, inter / union
    assert score[s.mask].mean() > score[~s.mask].mean() + 0.3


def test_no_periodic_area_in_noise():
    img = noise_image(seed=2)
    f = pixel_features(img)
    mask, _ = automatic_mask(f, (1.0, 0.0), 30.0, MaskParams())
    assert mask.mean() < 0.05


def test_regions_largest_first_and_limited():
    m = np.zeros((50, 60), bool)
    m[2:10, 2:10] = True  # 64 px
    m[20:40, 20:50] = True  # 600 px
    m[45:47, 55:57] = True  # 4 px
    regions = split_regions(m, min_fraction=10 / m.size)
    assert [int(r.sum()) for r in regions] == [600, 64]
    assert len(split_regions(m, max_regions=1)) == 1
    assert periodicity_score(np.zeros((20, 20, 2), np.float32), (1, 0), 6.0).shape == (20, 20)
