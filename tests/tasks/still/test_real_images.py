"""Pictures shipped with scikit-image: a checkerboard (exact lattice) and a brick wall (a hard case)."""

from __future__ import annotations

import numpy as np
import pytest

from schemas.still import EndlessLoopConfig
from tasks.still.direction import find_directions
from tasks.still.features import pixel_features
from tasks.still.mask import automatic_mask
from tasks.still.repetitions import NoRepetitionError, find_repetitions

data = pytest.importorskip("skimage.data", reason="scikit-image ships the pictures")


def _rgb(gray):
    return np.ascontiguousarray(np.dstack([gray] * 3))


def test_checkerboard_slides_along_its_diagonal():
    img = _rgb(data.checkerboard())  # 200 x 200, squares of 25 px
    f = pixel_features(img)
    found = find_directions(img, f)
    d = found[0].direction
    # the shortest translation that maps the board onto itself is (25, 25) (or (25, -25))
    angle = np.degrees(np.arccos(abs(d @ np.array([1.0, 1.0])) / np.sqrt(2)))
    angle2 = np.degrees(np.arccos(abs(d @ np.array([1.0, -1.0])) / np.sqrt(2)))
    assert min(angle, angle2) <= 5.0
    rep = find_repetitions(f, np.ones(img.shape[:2], bool), d)
    assert abs(rep.period - 25 * np.sqrt(2)) <= 1.0
    mask, _ = automatic_mask(f, d, rep.period)
    assert mask.mean() > 0.8


def test_brick_wall_is_refused_by_the_defaults_with_the_file_named():
    img = _rgb(data.brick())
    f = pixel_features(img)
    cfg = EndlessLoopConfig()
    with pytest.raises(NoRepetitionError, match=r"brick\.png: no repeating structure found"):
        # the running bond in perspective repeats sideways every two columns (72 px), too weakly for the
        # default path test on our hand-made features
        find_repetitions(f, np.ones(img.shape[:2], bool), (1.0, 0.0), cfg.repetitions, source="brick.png")
    lenient = cfg.repetitions.model_copy(update={"max_cost_ratio": 0.7})
    rep = find_repetitions(f, np.ones(img.shape[:2], bool), (1.0, 0.0), lenient)
    assert abs(rep.period - 72) <= 3
