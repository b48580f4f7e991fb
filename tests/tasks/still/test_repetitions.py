"""1-D repetitions on synthetic images whose period is known, and an image that does not repeat."""

from __future__ import annotations

import numpy as np
import pytest

from schemas.still import RepetitionParams
from tasks.still.features import pixel_features
from tasks.still.repetitions import NoRepetitionError, find_repetitions
from tasks.still.synthetic import GENERATORS, noise_image, stripes


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_period_within_one_pixel(stills, name):
    s, features = stills[name]
    rep = find_repetitions(features, s.mask, s.direction)
    assert abs(rep.period - s.period) <= 1.0, (rep.period, s.period)
    # the displacement is the period along most of the line, not only at its median
    assert np.mean(np.abs(rep.displacements - s.period) <= 1.0) >= 0.8
    assert rep.cost_ratio < RepetitionParams().max_cost_ratio


@pytest.mark.parametrize("period, angle, seed", [(19.0, 0.0, 1), (31.0, 90.0, 2), (23.0, 35.0, 3)])
def test_other_periods_and_angles(period, angle, seed):
    s = stripes(period=period, angle=angle, seed=seed)
    rep = find_repetitions(pixel_features(s.image), s.mask, s.direction)
    assert abs(rep.period - period) <= 1.0


def test_no_repetition_is_refused_with_the_file_named():
    img = noise_image(seed=4)
    with pytest.raises(NoRepetitionError, match=r"photo\.png: no repeating structure found"):
        find_repetitions(pixel_features(img), np.ones(img.shape[:2], bool), (1.0, 0.0), source="photo.png")


def test_a_region_too_short_is_refused():
    s = stripes()
    mask = np.zeros_like(s.mask)
    mask[40:60, 50:70] = True
    with pytest.raises(NoRepetitionError, match="only"):
        find_repetitions(pixel_features(s.image), mask, s.direction)
