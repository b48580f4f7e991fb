"""Pictures shipped with scikit-image: periodic ones are animated with the defaults, others are refused.

The automatic steps run as the flow runs them (:func:`tasks.still.stages.choose_direction` and
``find_regions``): the vote's suggestions, then the image axes, each checked by the 1-D repetition
strength; the automatic mask at the period found.
"""

from __future__ import annotations

import numpy as np
import pytest

from schemas.still import EndlessLoopConfig
from tasks.still.direction import candidate_directions, find_directions
from tasks.still.features import pixel_features
from tasks.still.mask import automatic_mask, split_regions
from tasks.still.repetitions import NoRepetitionError, find_repetitions, first_repeating

data = pytest.importorskip("skimage.data", reason="scikit-image ships the pictures")


def _rgb(gray):
    return np.ascontiguousarray(np.dstack([gray] * 3)) if gray.ndim == 2 else np.ascontiguousarray(gray[..., :3])


def _automatic(img, name):
    """(direction, whole-image repetition, mask) with the default configuration."""
    cfg = EndlessLoopConfig()
    f = pixel_features(img, cfg.features)
    found = find_directions(img, f, None, cfg.auto_direction)
    candidates = candidate_directions(found, cfg.auto_direction.suppress_degrees)
    k, whole = first_repeating(f, np.ones(img.shape[:2], bool), candidates, cfg.repetitions, source=name)
    d = candidates[k]
    mask, _ = automatic_mask(f, d, whole.period, cfg.mask)
    return f, d, whole, mask


def test_checkerboard_slides_along_its_diagonal():
    img = _rgb(data.checkerboard())  # 200 x 200, squares of 25 px
    f, d, whole, mask = _automatic(img, "checkerboard.png")
    # the shortest translation that maps the board onto itself is (25, 25) (or (25, -25))
    angle = min(np.degrees(np.arccos(abs(d @ np.array([1.0, s])) / np.sqrt(2))) for s in (1.0, -1.0))
    assert angle <= 5.0
    assert abs(whole.period - 25 * np.sqrt(2)) <= 1.0
    assert mask.mean() > 0.8


def test_brick_wall_is_animated_with_the_defaults_at_its_brick_pitch():
    """skimage.data.brick(): 512 x 512, columns of bricks in a running bond, seen in slight perspective.

    Measured by hand on rows 246-254 (the middle, where the line is sampled): the light vertical
    mortar joints lie at x = 4, 39, 75, 111, 148, 183, 219, 254, 292, 326, 362, 395, 430, 465, 499,
    one column every (499 - 4) / 14 = 35.4 px.  Neighbouring columns are offset by half a brick,
    so the wall repeats sideways every two columns: 70.7 px.  The line is sampled every 2 px
    (512 px over at most 400 samples), hence the 3 px tolerance.
    """
    img = _rgb(data.brick())
    f, d, whole, mask = _automatic(img, "brick.png")
    # the vote prefers the columns' own direction, along which the long bricks hardly repeat; the
    # repetition check moves on to the horizontal axis
    assert abs(d[1]) < 0.05
    assert abs(whole.period - 2 * 35.4) <= 3.0, whole.period
    assert mask.mean() > 0.8  # the whole wall
    regions = split_regions(mask, EndlessLoopConfig().mask.min_region_fraction)
    rep = find_repetitions(f, regions[0], d, source="brick.png")
    assert abs(rep.period - 2 * 35.4) <= 3.0


@pytest.mark.parametrize("name", ["camera", "coffee"])
def test_pictures_without_repetition_are_refused_with_the_file_named(name):
    img = _rgb(getattr(data, name)())
    with pytest.raises(NoRepetitionError, match=rf"^{name}\.png: no repeating structure found"):
        _automatic(img, f"{name}.png")
