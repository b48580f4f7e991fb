"""Point splatting and pin-hole filling against the slow reference, and on geometric cases with known answers."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from kernels.splat import fill_pinholes, splat_points
from tests.kernels import naive_splat as naive

K_TINY = np.array([[9.0, 0.0, 5.5], [0.0, 9.0, 4.0], [0.0, 0.0, 1.0]])
IDENTITY = np.hstack([np.eye(3), np.zeros((3, 1))])


def _cloud(seed, n=60):
    """Random points in front of and behind the camera, some overlapping in depth, some invalid."""
    rng = np.random.default_rng(seed)
    points = np.column_stack([rng.uniform(-1.2, 1.2, n), rng.uniform(-1.0, 1.0, n), rng.uniform(1.0, 3.0, n)])
    points[:5, 2] = 2.0 + rng.uniform(0, 0.05, 5)  # a near-coplanar group: the soft test blends them
    points[5, 2] = -1.0  # behind the camera
    points[6] = np.nan
    colours = rng.integers(0, 256, (n, 3), dtype=np.uint8)
    radii = rng.uniform(0.0, 0.25, n)
    radii[7] = 0.0  # a point with no disc still covers its nearest pixel
    pose = np.hstack([Rotation.from_rotvec(rng.normal(0, 0.05, 3)).as_matrix(), rng.normal(0, 0.1, (3, 1))])
    return points, colours, radii, pose


@pytest.mark.parametrize("seed", range(6))
def test_splat_matches_naive_reference(seed):
    points, colours, radii, pose = _cloud(seed)
    shape = (9, 12)
    image, depth, weight = splat_points(points, colours, radii, K_TINY, pose, shape, depth_tolerance=0.05)
    want_image, want_depth, want_weight = naive.splat(points, colours, radii, K_TINY, pose, shape, 0.05)
    np.testing.assert_array_equal(np.isfinite(depth), np.isfinite(want_depth))
    np.testing.assert_allclose(depth, want_depth, rtol=1e-6)
    np.testing.assert_allclose(weight, want_weight, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(image, want_image, rtol=1e-5, atol=1e-3)
    assert np.array_equal(weight > 0, np.isfinite(depth))


def test_naive_comparison_is_not_vacuous():
    """The random cases have empty pixels, single hits and blended (several-point) pixels."""
    empty = blended = 0
    for seed in range(6):
        points, colours, radii, pose = _cloud(seed)
        image, depth, weight = splat_points(points, colours, radii, K_TINY, pose, (9, 12), depth_tolerance=0.05)
        empty += int((weight == 0).sum())
        exact = np.isclose(image[..., None, :], colours[None, None].astype(np.float32), atol=1e-3).all(-1).any(-1)
        blended += int(((weight > 0) & ~exact).sum())
    assert empty > 0 and blended > 0


def test_nearer_surface_hides_farther_and_soft_band_blends():
    K = np.array([[10.0, 0, 2.0], [0, 10.0, 2.0], [0, 0, 1]])
    front = np.array([[0.0, 0.0, 1.0]])
    behind = np.array([[0.0, 0.0, 1.5]])
    same = np.array([[0.0, 0.0, 1.01]])
    pts = np.vstack([front, behind, same])
    colours = np.array([[100], [250], [200]], np.uint8)
    image, depth, _ = splat_points(pts, colours, np.full(3, 0.01), K, IDENTITY, (5, 5), depth_tolerance=0.03)
    assert depth[2, 2] == pytest.approx(1.0)
    # the point at 1.5 is hidden; the one at 1.01 is inside the 3 % band and weighs (1 - 0.01/0.03) = 2/3
    assert image[2, 2, 0] == pytest.approx((100 + 200 * (2 / 3)) / (1 + 2 / 3), rel=1e-5)


def test_point_size_follows_depth():
    """A point of world radius r at depth z covers a disc of f r / z pixels."""
    K = np.array([[20.0, 0, 10.0], [0, 20.0, 10.0], [0, 0, 1]])
    for z, expected_radius in ((1.0, 4.0), (2.0, 2.0)):
        _, _, weight = splat_points(np.array([[0.0, 0.0, z]]), np.array([[1]], np.uint8), np.array([0.2]), K,
                                    IDENTITY, (21, 21))
        ii, jj = np.nonzero(weight > 0)
        assert ((ii - 10) ** 2 + (jj - 10) ** 2).max() == pytest.approx(expected_radius**2)
        disc = sum(1 for i in range(21) for j in range(21) if (i - 10) ** 2 + (j - 10) ** 2 <= expected_radius**2)
        assert (weight > 0).sum() == disc


def test_plane_of_pixels_reproduces_the_image_at_its_own_view():
    """Lifting every pixel at its depth and splatting it back gives the image exactly (the render3d front layer)."""
    rng = np.random.default_rng(3)
    h, w = 12, 16
    K = np.array([[14.0, 0, (w - 1) / 2], [0, 14.0, (h - 1) / 2], [0, 0, 1]])
    depth = rng.uniform(2.0, 4.0, (h, w))
    jj, ii = np.meshgrid(np.arange(w), np.arange(h))
    rays = np.linalg.inv(K) @ np.stack([jj.ravel(), ii.ravel(), np.ones(h * w)])
    points = (rays * depth.ravel()).T
    colours = rng.integers(0, 256, (h * w, 3), dtype=np.uint8)
    image, z, _ = splat_points(points, colours, 0.75 * depth.ravel() / 14.0, K, IDENTITY, (h, w))
    np.testing.assert_allclose(image.reshape(-1, 3), colours, atol=1e-3)
    np.testing.assert_allclose(z.ravel(), depth.ravel(), rtol=1e-6)


@pytest.mark.parametrize("seed", range(4))
def test_fill_pinholes_matches_naive_reference(seed):
    rng = np.random.default_rng(seed)
    image = rng.uniform(0, 255, (8, 9, 3)).astype(np.float32)
    depth = rng.uniform(1, 2, (8, 9)).astype(np.float32)
    filled = rng.random((8, 9)) > 0.3
    depth[~filled] = np.inf
    for k in (1, 4, 7):
        got = fill_pinholes(image, depth, filled, min_neighbours=k, depth_tolerance=0.1)
        want = naive.fill_pinholes(image, depth, filled, k, 0.1)
        np.testing.assert_array_equal(got[2], want[2])
        np.testing.assert_allclose(got[0], want[0], rtol=1e-5, atol=1e-3)
        np.testing.assert_array_equal(got[1], want[1])
        assert got[2].sum() > filled.sum() or k == 7


def test_fill_pinholes_prefers_the_background_and_leaves_big_holes():
    image = np.zeros((5, 5, 1), np.float32)
    depth = np.ones((5, 5), np.float32)
    image[:, :2] = 10  # foreground at depth 1 on the left
    image[:, 3:] = 90  # background at depth 5 on the right
    depth[:, 3:] = 5
    filled = np.ones((5, 5), bool)
    filled[2, 2] = False
    out, z, now = fill_pinholes(image, depth, filled)
    assert now[2, 2] and out[2, 2, 0] == 90 and z[2, 2] == 5
    big = np.zeros((5, 5), bool)
    big[0, 0] = True
    _, _, now = fill_pinholes(image, depth, big)
    assert now.sum() == 1  # a lone filled pixel fills no neighbour: big holes stay empty (in-painted later)


def test_bad_input_is_refused():
    pts = np.zeros((2, 3))
    with pytest.raises(ValueError, match="points"):
        splat_points(np.zeros((2, 2)), np.zeros((2, 3)), np.zeros(2), K_TINY, IDENTITY, (4, 4))
    with pytest.raises(ValueError, match="colours"):
        splat_points(pts, np.zeros((3, 3)), np.zeros(2), K_TINY, IDENTITY, (4, 4))
    with pytest.raises(ValueError, match="radii"):
        splat_points(pts, np.zeros((2, 3)), -np.ones(2), K_TINY, IDENTITY, (4, 4))
    with pytest.raises(ValueError, match="K"):
        splat_points(pts, np.zeros((2, 3)), np.zeros(2), np.eye(3) * 0, IDENTITY, (4, 4))
    with pytest.raises(ValueError, match="cam_from_world"):
        splat_points(pts, np.zeros((2, 3)), np.zeros(2), K_TINY, np.eye(3), (4, 4))
    with pytest.raises(ValueError, match="min_neighbours"):
        fill_pinholes(np.zeros((3, 3, 1)), np.zeros((3, 3)), np.ones((3, 3), bool), min_neighbours=9)
