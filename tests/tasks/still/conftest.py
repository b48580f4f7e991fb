"""Synthetic stills shared by the still-image tests (small, so the default run stays quick)."""

from __future__ import annotations

import pytest

from tasks.still.features import pixel_features
from tasks.still.synthetic import GENERATORS


@pytest.fixture(scope="session")
def stills():
    """name -> (SyntheticStill, features) for the four generators at their default (small) sizes."""
    out = {}
    for name, gen in GENERATORS.items():
        s = gen(seed=0)
        out[name] = (s, pixel_features(s.image))
    return out
