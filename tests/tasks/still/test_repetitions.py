"""1-D repetitions on synthetic images whose period is known, and an image that does not repeat."""

from __future__ import annotations

import numpy as np
import pytest

from schemas.still import RepetitionParams
from tasks.still.features import pixel_features
from tasks.still.repetitions import NoRepetitionError, find_repetitions, first_repeating, repetition_strength
from tasks.still.synthetic import GENERATORS, noise_image, stripes


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_period_within_one_pixel(stills, name):
    s, features = stills[name]
    rep = find_repetitions(features, s.mask, s.direction)
    assert abs(rep.period - s.period) <= 1.0, (rep.period, s.period)
    # the displacement is the period along most of the line, not only at its median
    assert np.mean(np.abs(rep.displacements - s.period) <= 1.0) >= 0.8
    # a clear dip: well above the refusal limit (non-periodic pictures stay under 0.27, see test_real_images)
    assert rep.strength >= 0.5 > RepetitionParams().min_strength


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


def test_repetition_strength_of_profiles():
    k = np.arange(120, dtype=float)
    periodic = 1.0 - np.cos(2 * np.pi * k / 30.0)  # peak at 15, dips at 30, 60, 90
    peak, dip, strength = repetition_strength(periodic)
    assert peak == 15 and dip in (30, 60, 90) and strength > 0.95
    # a sample that grows ever less like itself has no peak: no repetition
    assert repetition_strength(np.sqrt(k))[2] == 0.0
    # a bump followed by a slow rise: the dip is shallow
    bump = np.sqrt(k) + 0.3 * np.exp(-((k - 10.0) ** 2) / 4.0)
    assert repetition_strength(bump)[2] < 0.1
    # a dip only in the last tenth of the shifts does not count
    late = np.sqrt(k)
    late[-5:] = 0.1
    assert repetition_strength(late)[2] == 0.0


def test_first_repeating_skips_a_direction_that_does_not_repeat():
    # bars every 21 px across x; down y a smooth random profile that never repeats
    rng = np.random.default_rng(5)
    h, w = 160, 208
    down = np.cumsum(rng.normal(0, 1, h))
    down = 60 * (down - down.min()) / np.ptp(down)
    bars = 60 * (np.sin(2 * np.pi * np.arange(w) / 21.0) > 0)
    grey = np.clip(60 + bars[None, :] + down[:, None] + rng.normal(0, 3, (h, w)), 0, 255).astype(np.uint8)
    img = np.ascontiguousarray(np.dstack([grey, grey, 255 - grey]))
    f = pixel_features(img)
    ones = np.ones((h, w), bool)
    k, rep = first_repeating(f, ones, [np.array([0.0, 1.0]), np.array([1.0, 0.0])], source="s.png")
    assert k == 1 and abs(rep.period - 21.0) <= 1.0
    with pytest.raises(NoRepetitionError, match=r"s\.png: no repeating structure found along any direction"):
        first_repeating(f, ones, [np.array([0.0, 1.0])], source="s.png")
