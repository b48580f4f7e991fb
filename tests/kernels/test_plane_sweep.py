"""Plane-sweep cost volume against the slow reference and on exact planar scenes."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from kernels.plane_sweep import plane_homographies, plane_sweep_cost
from tests.kernels import naive_geometry as naive


def _smooth_random(rng, shape, sigma=1.0):
    """Random image with some spatial correlation, so NCC values are spread out."""
    import cv2

    img = rng.random(shape).astype(np.float32)
    return cv2.GaussianBlur(img, (0, 0), sigma)


def _random_poses(rng, n, rot_sigma=0.03, trans_sigma=0.1):
    poses = np.zeros((n, 3, 4))
    for k in range(n):
        poses[k, :, :3] = Rotation.from_rotvec(rng.normal(0, rot_sigma, 3)).as_matrix()
        poses[k, :, 3] = rng.normal(0, trans_sigma, 3)
    return poses


K_TINY = np.array([[12.0, 0.0, 5.0], [0.0, 12.0, 4.0], [0.0, 0.0, 1.0]])


@pytest.mark.parametrize(
    ("seed", "n_nbrs", "patch_size", "truncation"),
    [(0, 1, 5, 0.3), (1, 2, 5, 2.0), (2, 3, 3, 2.0), (3, 4, 5, 0.3), (4, 5, 3, 2.0), (5, 3, 5, 1.0)],
)
def test_matches_naive_reference(seed, n_nbrs, patch_size, truncation):
    rng = np.random.default_rng(seed)
    h, w = 9, 11
    ref = _smooth_random(rng, (h, w))
    # Neighbours: the reference warped by small motions plus noise, so that
    # costs cover the whole range rather than sitting at the truncation.
    nbrs = np.stack([np.clip(ref + 0.1 * rng.standard_normal((h, w)), 0, 1) for _ in range(n_nbrs)]).astype(np.float32)
    poses = _random_poses(rng, n_nbrs)
    inv = np.array([0.1, 0.4, 0.9])
    got = plane_sweep_cost(ref, nbrs, K_TINY, poses, inv, patch_size=patch_size, truncation=truncation)
    want = naive.plane_sweep_cost(ref, nbrs, K_TINY, poses, inv, patch_size=patch_size, truncation=truncation)
    assert got.shape == (h, w, 3) and got.dtype == np.float32
    keep = (n_nbrs + 1) // 2
    # The comparison must not be vacuous: some costs are strictly between 0 and the maximum.
    inner = (want > 1e-3) & (want < keep * truncation - 1e-3)
    assert inner.mean() > 0.2
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_out_of_view_and_behind_camera_cost_truncation():
    rng = np.random.default_rng(7)
    ref = _smooth_random(rng, (8, 10))
    pose = np.zeros((1, 3, 4))
    pose[0, :, :3] = np.eye(3)
    pose[0, :, 3] = [50.0, 0.0, 0.0]  # everything lands far outside the neighbour
    cost = plane_sweep_cost(ref, ref[None], K_TINY, pose, np.array([1.0, 2.0]), truncation=0.3)
    np.testing.assert_array_equal(cost, np.float32(0.3))
    pose[0, :, 3] = [0.0, 0.0, -10.0]  # every plane point ends up behind the neighbour camera
    cost = plane_sweep_cost(ref, ref[None], K_TINY, pose, np.array([1.0, 2.0]), truncation=0.3)
    np.testing.assert_array_equal(cost, np.float32(0.3))


def test_flat_images_cost_truncation_everywhere():
    flat = np.full((8, 10), 0.5, np.float32)
    pose = np.hstack([np.eye(3), np.zeros((3, 1))])[None].repeat(3, 0)
    cost = plane_sweep_cost(flat, np.stack([flat] * 3), K_TINY, pose, np.array([0.5]), truncation=0.3)
    np.testing.assert_allclose(cost, 2 * 0.3, rtol=1e-6)  # keep = ceil(3 / 2) = 2


def _render_plane(texture_fn, K, cam_from_ref, depth, shape):
    """Exact image of the textured plane z = depth (reference frame) seen by a camera."""
    h, w = shape
    jj, ii = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    # Inverse homography: camera pixel -> reference pixel on the plane.
    hom = plane_homographies(K, cam_from_ref[None], np.array([1.0 / depth]))[0, 0]
    pix = np.linalg.inv(hom) @ np.stack([jj.ravel(), ii.ravel(), np.ones(h * w)])
    x, y = pix[0] / pix[2], pix[1] / pix[2]
    return texture_fn(x, y).reshape(h, w).astype(np.float32)


def _texture(x, y):
    return (
        0.5
        + 0.2 * np.sin(0.9 * x + 0.3 * y)
        + 0.15 * np.cos(0.7 * y - 0.4 * x + 1.0)
        + 0.1 * np.sin(0.5 * x * np.cos(0.2 * y))
    )


def test_true_plane_depth_has_lowest_cost():
    h, w = 40, 56
    K = np.array([[60.0, 0.0, (w - 1) / 2], [0.0, 60.0, (h - 1) / 2], [0.0, 0.0, 1.0]])
    true_depth = 3.0
    inv = np.linspace(1 / 8.0, 1 / 1.5, 24)
    inv[9] = 1 / true_depth  # make the true plane one of the labels
    inv.sort()
    true_label = int(np.argmin(np.abs(inv - 1 / true_depth)))
    rng = np.random.default_rng(3)
    poses = np.zeros((4, 3, 4))
    for k, tx in enumerate([-0.3, -0.15, 0.15, 0.3]):
        poses[k, :, :3] = Rotation.from_rotvec(rng.normal(0, 0.01, 3)).as_matrix()
        poses[k, :, 3] = [tx, 0.02 * k, 0.05]
    identity = np.hstack([np.eye(3), np.zeros((3, 1))])
    ref = _render_plane(_texture, K, identity, true_depth, (h, w))
    nbrs = np.stack([_render_plane(_texture, K, p, true_depth, (h, w)) for p in poses])
    cost = plane_sweep_cost(ref, nbrs, K, poses, inv)
    best = np.argmin(cost, axis=2)
    inner = best[6:-6, 6:-6]
    assert (inner == true_label).mean() > 0.95


def test_best_half_ignores_a_bad_neighbour():
    h, w = 30, 40
    K = np.array([[50.0, 0.0, (w - 1) / 2], [0.0, 50.0, (h - 1) / 2], [0.0, 0.0, 1.0]])
    identity = np.hstack([np.eye(3), np.zeros((3, 1))])
    poses = np.stack([identity, identity, identity]).astype(np.float64)
    poses[:, 0, 3] = [-0.1, 0.1, 0.2]
    ref = _render_plane(_texture, K, identity, 2.0, (h, w))
    good = [_render_plane(_texture, K, p, 2.0, (h, w)) for p in poses[:2]]
    noise = np.random.default_rng(0).random((h, w)).astype(np.float32)
    nbrs = np.stack(good + [noise])
    cost = plane_sweep_cost(ref, nbrs, K, poses, np.array([0.5]), truncation=0.3)
    # keep = 2: the two consistent neighbours give near-zero cost despite the third.
    assert np.median(cost[5:-5, 5:-5, 0]) < 0.02


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"reference": np.zeros((4, 5), np.float64)}, TypeError),
        ({"neighbours": np.zeros((2, 4, 6), np.float32)}, ValueError),
        ({"patch_size": 4}, ValueError),
        ({"inverse_depths": np.array([0.5, 0.0])}, ValueError),
        ({"neighbour_from_reference": np.zeros((1, 3, 4))}, ValueError),
        ({"truncation": 0.0}, ValueError),
        ({"K": np.eye(3) * 2}, ValueError),
    ],
)
def test_rejects_bad_input(kwargs, error):
    args = {
        "reference": np.zeros((4, 5), np.float32),
        "neighbours": np.zeros((2, 4, 5), np.float32),
        "K": K_TINY,
        "neighbour_from_reference": np.zeros((2, 3, 4)),
        "inverse_depths": np.array([0.5]),
    }
    args.update(kwargs)
    with pytest.raises(error):
        plane_sweep_cost(**args)


def test_homographies_match_explicit_projection():
    rng = np.random.default_rng(11)
    poses = _random_poses(rng, 2)
    inv = np.array([0.25, 0.8])
    hom = plane_homographies(K_TINY, poses, inv)
    for d in range(2):
        for n in range(2):
            p = hom[d, n] @ np.array([3.0, 2.0, 1.0])
            u, v, _ = naive.project_through_plane(K_TINY, poses[n], inv[d], 3.0, 2.0)
            np.testing.assert_allclose(p[:2] / p[2], [u, v], rtol=1e-10)
