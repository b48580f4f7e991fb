"""Z-buffer warp against the slow reference and against the synthetic scene's truth."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial.transform import Rotation

from kernels.warp import reference_zbuffer, warp_to_reference
from tasks.synthetic_scene import render_synthetic_clip
from tests.kernels import naive_geometry as naive

K_TINY = np.array([[12.0, 0.0, 5.5], [0.0, 12.0, 4.0], [0.0, 0.0, 1.0]])


def _relative(cam_from_world_ref, cam_from_world_nbr):
    r_ref, t_ref = cam_from_world_ref[:, :3], cam_from_world_ref[:, 3]
    r_nbr, t_nbr = cam_from_world_nbr[:, :3], cam_from_world_nbr[:, 3]
    rot = r_nbr @ r_ref.T
    return np.hstack([rot, (t_nbr - rot @ t_ref)[:, None]])


def _tiny_case(seed):
    rng = np.random.default_rng(seed)
    h, w = 9, 12
    # Piecewise depth with a near block, a few invalid pixels: occlusions happen.
    depth = np.full((h, w), 4.0) + rng.random((h, w)) * 0.2
    depth[2:6, 3:7] = 1.5 + rng.random((4, 4)) * 0.1
    depth[0, 0] = np.nan
    depth[8, 11] = 0.0
    pose = np.hstack([Rotation.from_rotvec(rng.normal(0, 0.03, 3)).as_matrix(), rng.normal(0, 0.25, (3, 1))])
    image = rng.integers(0, 256, (h + 1, w - 1, 3), dtype=np.uint8)  # neighbour of another size
    return depth.astype(np.float32), pose, image


@pytest.mark.parametrize("seed", range(6))
def test_warp_matches_naive_reference(seed):
    depth, pose, image = _tiny_case(seed)
    got_warped, got_visible = warp_to_reference(image, depth, K_TINY, pose, depth_tolerance=0.03)
    want_warped, want_visible = naive.warp(image, depth, K_TINY, pose, tolerance=0.03)
    np.testing.assert_array_equal(got_visible, want_visible)
    np.testing.assert_array_equal(got_warped, want_warped)
    assert np.all(got_warped[~got_visible] == 0)


def test_naive_comparison_is_not_vacuous():
    """Across the tiny cases both visible and occluded/out-of-view pixels occur."""
    visible_counts = []
    for seed in range(6):
        depth, pose, image = _tiny_case(seed)
        _, visible = warp_to_reference(image, depth, K_TINY, pose)
        visible_counts.append(visible.sum())
    total = depth.size
    assert 0 < min(visible_counts) and max(visible_counts) < total


@pytest.mark.parametrize("seed", range(4))
def test_zbuffer_matches_naive_reference(seed):
    depth, pose, image = _tiny_case(seed)
    got = reference_zbuffer(depth, K_TINY, pose, image.shape[:2])
    want = naive.zbuffer(depth, K_TINY, pose, image.shape[:2])
    np.testing.assert_array_equal(np.isinf(got), np.isinf(want))
    finite = np.isfinite(want)
    assert finite.sum() > 10
    np.testing.assert_allclose(got[finite], want[finite], rtol=1e-12)


def test_identity_pose_returns_the_frame():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (9, 12, 3), dtype=np.uint8)
    # A smooth, slanted surface (adjacent pixels differ by < 1 % in depth).
    depth = (2.0 + 0.01 * np.arange(12)[None, :] + 0.005 * np.arange(9)[:, None]).astype(np.float32)
    depth = np.ascontiguousarray(np.broadcast_to(depth, (9, 12)))
    warped, visible = warp_to_reference(frame, depth, K_TINY, np.hstack([np.eye(3), np.zeros((3, 1))]))
    assert visible.all()
    np.testing.assert_array_equal(warped, frame)


def test_rejects_bad_input():
    frame = np.zeros((4, 5, 3), np.uint8)
    depth = np.ones((4, 5), np.float32)
    pose = np.hstack([np.eye(3), np.zeros((3, 1))])
    with pytest.raises(TypeError):
        warp_to_reference(frame.astype(np.float32), depth, K_TINY, pose)
    with pytest.raises(TypeError):
        warp_to_reference(frame, depth.astype(np.float64), K_TINY, pose)
    with pytest.raises(ValueError):
        warp_to_reference(frame, depth, K_TINY, pose[:, :3])
    with pytest.raises(ValueError):
        warp_to_reference(frame, depth, K_TINY, pose, depth_tolerance=-0.1)
    with pytest.raises(ValueError):
        reference_zbuffer(depth, K_TINY, pose, (0, 5))


@pytest.fixture(scope="module")
def clip():
    return render_synthetic_clip(n_frames=21, height=120, width=160, path_length=0.8, seed=1)


def _true_visibility(clip, nbr):
    """Ground-truth visibility of reference pixels in frame ``nbr`` from the true depth maps."""
    ref = clip.reference_index
    pose = _relative(clip.cam_from_world[ref], clip.cam_from_world[nbr])
    u, v, z = naive.project_depth(clip.depth[ref], clip.K, pose)
    h, w = clip.depth.shape[1:]
    inside = (u >= 0) & (u <= w - 1) & (v >= 0) & (v <= h - 1) & (z > 0)
    ui = np.clip(np.floor(np.nan_to_num(u) + 0.5).astype(int), 0, w - 1)
    vi = np.clip(np.floor(np.nan_to_num(v) + 0.5).astype(int), 0, h - 1)
    surface = clip.depth[nbr][vi, ui]
    occluded = inside & (z > surface * 1.1)
    visible = inside & (np.abs(z - surface) < 0.02 * z)
    return pose, visible, occluded


def _edge_band(depth, width=2):
    """Pixels within ``width`` of a depth discontinuity (relative jump > 5 %)."""
    gy = np.abs(np.diff(depth, axis=0)) > 0.05 * depth[:-1]
    gx = np.abs(np.diff(depth, axis=1)) > 0.05 * depth[:, :-1]
    edges = np.zeros(depth.shape, bool)
    edges[:-1] |= gy
    edges[1:] |= gy
    edges[:, :-1] |= gx
    edges[:, 1:] |= gx
    return ndimage.binary_dilation(edges, iterations=width)


@pytest.mark.parametrize("nbr", [0, 5, 16, 20])
def test_occluded_pixels_are_invisible(clip, nbr):
    pose, true_visible, true_occluded = _true_visibility(clip, nbr)
    ref = clip.reference_index
    _, visible = warp_to_reference(clip.frames[nbr], clip.depth[ref], clip.K, pose)
    if nbr in (0, 20):
        assert true_occluded.sum() > 100  # the near card hides part of the wall: the test has teeth
    assert not np.any(visible & true_occluded)
    away = ~_edge_band(clip.depth[ref])
    # Nearly every truly visible pixel away from depth edges is kept.
    assert (visible & true_visible & away).sum() >= 0.99 * (true_visible & away).sum()


@pytest.mark.parametrize("nbr", [0, 7, 14, 20])
def test_warped_static_regions_match_truth(clip, nbr):
    ref = clip.reference_index
    pose = _relative(clip.cam_from_world[ref], clip.cam_from_world[nbr])
    warped, visible = warp_to_reference(clip.frames[nbr], clip.depth[ref], clip.K, pose)
    mask = visible & clip.static_mask & ~_edge_band(clip.depth[ref])
    mask &= ~ndimage.binary_dilation(~clip.static_mask, iterations=2)
    assert mask.sum() > 0.5 * mask.size
    diff = warped[mask].astype(np.float64) - clip.frames[ref][mask].astype(np.float64)
    psnr = 10 * np.log10(255.0**2 / np.mean(diff**2))
    assert psnr >= 30.0
    assert np.all(warped[~visible] == 0)
