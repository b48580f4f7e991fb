"""Reference-frame depth: depth range, label mapping and the full plane sweep + graph cut."""

from __future__ import annotations

from types import SimpleNamespace

import cv2
import numpy as np
import pytest

import kernels.alpha_expansion
import tasks.depth as depth_module
from tasks.depth import (
    depth_range_from_points,
    inverse_depth_labels,
    labels_to_depth,
    reference_depth,
    relative_pose,
    select_neighbours,
)
from tasks.synthetic_scene import camera_centres, render_synthetic_clip


def maxflow_solver(unary, pairwise, *, pairwise_weight, truncation, max_cycles=5):
    """Test-only fallback: PyMaxflow's alpha-expansion with the same energy."""
    import maxflow

    assert pairwise == "truncated_linear"
    labels = np.arange(unary.shape[2])
    binary = pairwise_weight * np.minimum(np.abs(labels[:, None] - labels[None, :]), truncation).astype(np.float64)
    unary64 = unary.astype(np.float64)
    result = maxflow.fastmin.aexpansion_grid(unary64, binary, max_cycles=max_cycles)
    energy = maxflow.fastmin.energy_of_grid_labeling(unary64, binary, result)
    return SimpleNamespace(labels=result.astype(np.int32), energy=float(energy))


def textured(frame, threshold=0.02):
    grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255
    mean = cv2.blur(grey, (5, 5))
    var = cv2.blur(grey * grey, (5, 5)) - mean * mean
    return np.sqrt(np.maximum(var, 0)) > threshold


def test_depth_range_drops_one_percent_each_side():
    rng = np.random.default_rng(0)
    z = rng.uniform(2, 10, 1000)
    z[:5] = 0.01  # outliers near the camera
    z[5:10] = 1000.0  # and far away
    pts = np.stack([rng.normal(0, 0.1, 1000) * z, rng.normal(0, 0.1, 1000) * z, z], axis=1)
    behind = np.array([[0.0, 0.0, -5.0]] * 20)
    pose = np.hstack([np.eye(3), np.zeros((3, 1))])
    near, far = depth_range_from_points(np.vstack([pts, behind]), pose)
    assert near == pytest.approx(np.quantile(z, 0.01))
    assert far == pytest.approx(np.quantile(z, 0.99))
    assert 2 <= near < 2.2 and 9.8 < far <= 10


def test_depth_range_uses_the_reference_pose_and_image():
    pts = np.array([[0.0, 0.0, z] for z in np.linspace(1, 5, 50)] + [[100.0, 0.0, 3.0]] * 10)
    pose = np.hstack([np.eye(3), np.array([[0.0], [0.0], [1.0]])])  # camera 1 unit behind the origin
    K = np.array([[50.0, 0, 31.5], [0, 50.0, 23.5], [0, 0, 1]])
    near, far = depth_range_from_points(pts, pose, K=K, image_shape=(48, 64), drop_fraction=0.0)
    assert (near, far) == pytest.approx((2.0, 6.0))
    with pytest.raises(ValueError):
        depth_range_from_points(pts[:1], pose)


def test_labels_are_uniform_in_inverse_depth():
    inv = inverse_depth_labels(2.0, 8.0, 5)
    np.testing.assert_allclose(np.diff(inv), np.full(4, (0.5 - 0.125) / 4))
    depth = labels_to_depth(np.array([[0, 4], [2, 1]]), 2.0, 8.0, 5)
    assert depth.dtype == np.float32
    np.testing.assert_allclose(depth, 1 / inv[np.array([[0, 4], [2, 1]])], rtol=1e-6)
    assert depth[0, 0] == pytest.approx(8.0) and depth[0, 1] == pytest.approx(2.0)
    with pytest.raises(ValueError):
        labels_to_depth(np.array([5]), 2.0, 8.0, 5)
    with pytest.raises(ValueError):
        inverse_depth_labels(8.0, 2.0)


def test_select_neighbours():
    np.testing.assert_array_equal(select_neighbours(10, 4, 2), [2, 3, 5, 6])
    np.testing.assert_array_equal(select_neighbours(10, 0, 50), np.arange(1, 10))
    assert select_neighbours(201, 100).size == 100


def test_relative_pose_composes():
    rng = np.random.default_rng(1)
    from scipy.spatial.transform import Rotation

    poses = [np.hstack([Rotation.random(random_state=k).as_matrix(), rng.normal(size=(3, 1))]) for k in range(2)]
    rel = relative_pose(poses[0], poses[1])
    world = rng.normal(size=3)
    in_ref = poses[0][:, :3] @ world + poses[0][:, 3]
    np.testing.assert_allclose(rel[:, :3] @ in_ref + rel[:, 3], poses[1][:, :3] @ world + poses[1][:, 3])


@pytest.fixture(scope="module")
def small_clip():
    return render_synthetic_clip(n_frames=21, height=120, width=160, seed=1)


def test_reference_depth_with_true_poses(small_clip):
    clip = small_clip
    ref = clip.reference_index
    truth = clip.depth[ref]
    result = reference_depth(
        clip.frames, clip.K, clip.cam_from_world, ref,
        depth_range=(float(truth.min()) * 0.9, float(truth.max()) * 1.1), n_labels=64,
        solver=maxflow_solver, return_unary=True,
    )
    assert result.depth.shape == truth.shape and result.depth.dtype == np.float32
    assert result.unary.shape == truth.shape + (64,)
    np.testing.assert_array_equal(result.neighbours, np.delete(np.arange(21), ref))
    rel = np.abs(result.depth - truth) / truth
    mask = textured(clip.frames[ref])
    assert mask.mean() > 0.5
    assert np.median(rel[mask]) < 0.05
    # The labeling beats the unary-only (winner-take-all) one on its own energy.
    wta = result.unary.argmin(axis=2)
    wta_energy = maxflow_solver(result.unary, "truncated_linear", pairwise_weight=0.15, truncation=4, max_cycles=0)
    assert result.energy <= wta_energy.energy + 1e-6
    assert wta.shape == truth.shape


def test_default_solver_is_our_alpha_expansion(small_clip, monkeypatch):
    assert depth_module.alpha_expansion is kernels.alpha_expansion.alpha_expansion
    calls = []

    def recording(unary, pairwise, **kwargs):
        calls.append((unary.shape, pairwise, kwargs))
        return kernels.alpha_expansion.alpha_expansion(unary, pairwise, **kwargs)

    monkeypatch.setattr(depth_module, "alpha_expansion", recording)
    clip = small_clip
    ref = clip.reference_index
    truth = clip.depth[ref]
    result = reference_depth(
        clip.frames, clip.K, clip.cam_from_world, ref, neighbours=[4, 7, 13, 16],
        depth_range=(float(truth.min()) * 0.9, float(truth.max()) * 1.1), n_labels=32,
    )
    assert calls == [(truth.shape + (32,), "truncated_linear", {"pairwise_weight": 0.15, "truncation": 4})]
    rel = np.abs(result.depth - truth) / truth
    assert np.median(rel[textured(clip.frames[ref])]) < 0.05


@pytest.mark.slow
def test_reference_depth_with_sfm_poses():
    """Slow (SfM at 320 x 240): run with ``-m slow``; the true-pose test covers the same code."""
    from tasks.sfm import run_sfm
    from tests.tasks.test_sfm import similarity_from

    clip = render_synthetic_clip(n_frames=30, height=240, width=320, seed=0)
    ref = clip.reference_index
    sfm = run_sfm(clip.frames, step=2, always_include=[ref], max_num_features=2048)
    assert sfm.registered[ref]
    near, far = depth_range_from_points(sfm.points3d[sfm.points_seen_in(ref)], sfm.cam_from_world[ref])
    result = reference_depth(
        clip.frames, sfm.K, sfm.cam_from_world, ref, neighbours=np.delete(np.arange(1, 30, 2), 7),
        depth_range=(near, far), n_labels=64, solver=maxflow_solver,
    )
    # Bring the SfM depth to the true scale with the similarity that aligns the camera paths.
    scale, _, _ = similarity_from(camera_centres(sfm.cam_from_world), camera_centres(clip.cam_from_world))
    truth = clip.depth[ref]
    rel = np.abs(result.depth * scale - truth) / truth
    assert np.median(rel[textured(clip.frames[ref])]) < 0.05


def test_rejects_bad_arguments(small_clip):
    clip = small_clip
    with pytest.raises(ValueError):
        reference_depth(clip.frames, clip.K, clip.cam_from_world[:5], 3, depth_range=(1, 5))
    with pytest.raises(ValueError):
        reference_depth(clip.frames, clip.K, clip.cam_from_world, 3, neighbours=[3], depth_range=(1, 5))
    with pytest.raises(ValueError):
        reference_depth(clip.frames, clip.K, clip.cam_from_world, 3, neighbours=[4], depth_range=(5, 1))


def test_cost_volume_in_label_slabs_equals_one_slab(small_clip):
    """The stage builds the cost volume in slabs of labels as Dask tasks; the result is the same."""
    from tasks.align import _dask_slabs

    clip = small_clip
    ref = clip.reference_index
    truth = clip.depth[ref]
    common = dict(neighbours=[6, 8, 12, 14], depth_range=(float(truth.min()) * 0.9, float(truth.max()) * 1.1),
                  n_labels=24, return_unary=True, solver=maxflow_solver)
    whole = reference_depth(clip.frames, clip.K, clip.cam_from_world, ref, **common)
    calls = []

    def recording(fn, shared, slabs):
        calls.append([s.size for s in slabs])
        return _dask_slabs(fn, shared, slabs)

    sliced = reference_depth(clip.frames, clip.K, clip.cam_from_world, ref, label_slab=7, map_slabs=recording,
                             **common)
    assert calls == [[7, 7, 7, 3]]
    np.testing.assert_array_equal(sliced.unary, whole.unary)
    np.testing.assert_array_equal(sliced.labels, whole.labels)
