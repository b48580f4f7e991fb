"""The automatic direction: best-buddy votes on synthetic lattices."""

from __future__ import annotations

import numpy as np
import pytest

from schemas.still import DirectionParams
from tasks.still.direction import best_buddies, find_directions, vote_directions
from tasks.still.synthetic import GENERATORS


def _angle_between(u, v):
    """Angle between two directions modulo 180 degrees (a direction and its opposite are the same)."""
    c = abs(np.dot(u, v)) / (np.linalg.norm(u) * np.linalg.norm(v))
    return np.degrees(np.arccos(np.clip(c, 0.0, 1.0)))


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_direction_within_five_degrees(stills, name):
    s, features = stills[name]
    found = find_directions(s.image, features, s.mask)
    assert 1 <= len(found) <= 3
    first = found[0].direction
    # a lattice direction (the one-vector patterns have only one; a grid may slide either way)
    err = min(_angle_between(first, v) for v in s.lattice)
    assert err <= 5.0, (name, found[0].angle, [np.degrees(np.arctan2(v[1], v[0])) for v in s.lattice])
    assert all(f.votes >= 3 for f in found)


def test_vote_removes_winner_and_its_opposite():
    rng = np.random.default_rng(0)
    a = np.array([[30.0, 2.0]] * 12 + [[-30.0, -2.0]] * 8)  # one direction, both senses
    b = np.array([[1.0, 25.0]] * 9)
    noise = rng.normal(0, 0.3, (29, 2))
    found = vote_directions(np.concatenate([a, b]) + noise, DirectionParams())
    assert len(found) == 2
    assert found[0].votes == 20 and _angle_between(found[0].direction, [30, 2]) < 1.0
    assert found[1].votes == 9 and _angle_between(found[1].direction, [1, 25]) < 1.5


def test_best_buddies_are_mutual():
    desc = np.array([[0.0], [0.1], [5.0], [5.05], [5.2]])
    pts = np.array([[0, 0], [20, 0], [0, 40], [30, 40], [60, 40]], float)
    pairs = best_buddies(desc, pts, min_offset=6.0)
    assert sorted(map(tuple, pairs.tolist())) == [(0, 1), (2, 3)]
    # points too close cannot pair
    assert len(best_buddies(desc, pts, min_offset=25.0)) < 2
