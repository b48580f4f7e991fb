"""The synthetic moving-camera clip: geometry, poses, depth and dynamic regions are consistent."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial.transform import Rotation

from tasks.synthetic_scene import camera_centres, render_synthetic_clip, write_mp4


@pytest.fixture(scope="module")
def clip():
    return render_synthetic_clip(n_frames=16, height=96, width=128, seed=3)


def test_shapes_and_types(clip):
    t, h, w = 16, 96, 128
    assert clip.frames.shape == (t, h, w, 3) and clip.frames.dtype == np.uint8
    assert clip.depth.shape == (t, h, w) and clip.depth.dtype == np.float32
    assert clip.cam_from_world.shape == (t, 3, 4)
    assert clip.K.shape == (3, 3)
    np.testing.assert_allclose(clip.K[:2, 2], [(w - 1) / 2, (h - 1) / 2])
    assert clip.reference_index == t // 2
    assert clip.blink_masks.shape == (2, h, w) and clip.blink_masks.dtype == bool
    assert clip.change_mask.shape == (h, w)
    rot = clip.cam_from_world[:, :, :3]
    np.testing.assert_allclose(rot @ np.swapaxes(rot, 1, 2), np.broadcast_to(np.eye(3), rot.shape), atol=1e-12)
    # The frames are textured, not blank.
    assert clip.frames.std() > 20


def test_camera_translates_and_turns(clip):
    centres = camera_centres(clip.cam_from_world)
    assert 0.8 <= clip.path_length < 1.0
    assert centres[-1, 0] - centres[0, 0] == pytest.approx(0.8)
    turn = Rotation.from_matrix(clip.cam_from_world[-1, :, :3] @ clip.cam_from_world[0, :, :3].T)
    assert np.degrees(np.linalg.norm(turn.as_rotvec())) > 5


def test_depth_is_multiview_consistent(clip):
    """Reference points moved into another frame land on that frame's surface, or behind it (occluded)."""
    ref, other = clip.reference_index, 0
    h, w = clip.depth.shape[1:]
    jj, ii = np.meshgrid(np.arange(w, dtype=float), np.arange(h, dtype=float))
    rays = np.linalg.solve(clip.K, np.stack([jj.ravel(), ii.ravel(), np.ones(h * w)]))
    pts_ref = rays * clip.depth[ref].ravel()
    r0, t0 = clip.cam_from_world[ref, :, :3], clip.cam_from_world[ref, :, 3]
    r1, t1 = clip.cam_from_world[other, :, :3], clip.cam_from_world[other, :, 3]
    world = r0.T @ (pts_ref - t0[:, None])
    cam = r1 @ world + t1[:, None]
    pix = clip.K @ (cam / cam[2])
    u, v = np.rint(pix[0]).astype(int), np.rint(pix[1]).astype(int)
    inside = (u >= 0) & (u < w) & (v >= 0) & (v < h)
    surface = clip.depth[other][v[inside], u[inside]].astype(float)
    z = cam[2, inside]
    on_surface = np.abs(z - surface) < 0.01 * z
    assert on_surface.mean() > 0.9
    # Anything not on the surface is behind it (occluded), never in front of it
    # (compared with the nearest surface among the 3 x 3 pixels around, since
    # rounding at a depth edge may pick the pixel across the edge).
    nearest = ndimage.minimum_filter(clip.depth[other], size=3)[v[inside], u[inside]]
    assert np.all(z >= nearest * 0.99)
    assert (~on_surface & (z > surface * 1.2)).sum() > 20  # a near card occludes the wall


def test_blinking_regions_are_periodic_and_the_rest_static(clip):
    pose = clip.cam_from_world[clip.reference_index]
    period = clip.blink_periods[0]
    image_a, depth_a = clip.render(pose, 3.0)
    image_b, _ = clip.render(pose, 3.0 + period)
    image_c, depth_c = clip.render(pose, 3.0 + period / 2)
    np.testing.assert_array_equal(depth_a, depth_c)
    first = clip.blink_masks[0]
    assert first.sum() > 20 and clip.blink_masks[1].sum() > 20
    np.testing.assert_array_equal(image_a[first], image_b[first])
    diff = np.abs(image_a.astype(int) - image_c.astype(int)).sum(axis=2)
    assert diff[first].mean() > 20
    static = clip.static_mask
    assert np.all(diff[static] == 0)
    # Rendering the reference pose at the reference time reproduces the frame.
    image_ref, depth_ref = clip.render(pose, float(clip.reference_index))
    np.testing.assert_array_equal(image_ref, clip.frames[clip.reference_index])
    np.testing.assert_array_equal(depth_ref, clip.depth[clip.reference_index])


def test_changing_region_changes_every_frame(clip):
    pose = clip.cam_from_world[clip.reference_index]
    image_a, _ = clip.render(pose, 2.0)
    image_b, _ = clip.render(pose, 3.0)
    diff = np.abs(image_a.astype(int) - image_b.astype(int)).sum(axis=2)
    assert clip.change_mask.sum() > 20
    assert diff[clip.change_mask].mean() > 5
    assert not np.any(clip.change_mask & clip.blink_mask)
    # Only dynamic regions differ between two times.
    assert np.all(diff[clip.static_mask] == 0)


def test_write_mp4_round_trip(clip, tmp_path):
    import av

    path = write_mp4(clip.frames, tmp_path / "clip.mp4", fps=25)
    with av.open(str(path)) as container:
        decoded = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    assert decoded.shape == clip.frames.shape
    mse = np.mean((decoded.astype(float) - clip.frames.astype(float)) ** 2)
    assert 10 * np.log10(255**2 / mse) > 28


def test_invalid_arguments():
    with pytest.raises(ValueError):
        render_synthetic_clip(n_frames=4, height=4, width=32)
    with pytest.raises(ValueError):
        render_synthetic_clip(n_frames=4, height=16, width=16, reference_index=4)
    with pytest.raises(ValueError):
        write_mp4(np.zeros((2, 9, 8, 3), np.uint8), "unused.mp4")
