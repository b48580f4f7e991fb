"""Layered depth image and rendering on the synthetic scene's true geometry (no SfM, no store)."""

from __future__ import annotations

import numpy as np
import pytest

from tasks.render3d import build_layers, named_path, render_frame
from tasks.render3d.layers import background_fill, pick_back_frames
from tasks.synthetic_scene import render_synthetic_clip


@pytest.fixture(scope="module")
def scene():
    clip = render_synthetic_clip(n_frames=24, height=72, width=96, blink_periods=(8.0, 6.0), bright_lights=True,
                                 seed=2)
    ref = clip.reference_index
    layers = build_layers(clip.frames[ref], clip.depth[ref], clip.K, clip.cam_from_world, ref, clip.frames,
                          ~clip.static_mask, back_frames=pick_back_frames(24, ref, 8))
    return clip, layers


def _static(clip, pose, t):
    images = [clip.render(pose, t + dt)[0] for dt in (0.0, 2.5, 5.3)]
    return (images[0] == images[1]).all(-1) & (images[0] == images[2]).all(-1)


def test_front_layer_reproduces_the_reference(scene):
    clip, layers = scene
    ref = clip.reference_index
    image, holes = render_frame(layers, None, clip.K, clip.cam_from_world[ref], (72, 96))
    assert not holes.any()
    assert (image == clip.frames[ref]).all(-1).mean() > 0.995


@pytest.mark.parametrize("offset", [-9, -4, 5, 10])
def test_other_views_match_the_generator(scene, offset):
    clip, layers = scene
    t = clip.reference_index + offset
    image, holes = render_frame(layers, None, clip.K, clip.cam_from_world[t], (72, 96))
    mask = _static(clip, clip.cam_from_world[t], t) & ~holes
    mse = ((image[mask].astype(np.float64) - clip.frames[t][mask]) ** 2).mean()
    assert 10 * np.log10(255**2 / mse) >= 28.0
    assert holes.mean() < 0.01


def test_back_layers_fill_what_the_reference_does_not_see(scene):
    """Without back layers a far view has holes behind the cards and beyond the border; with them, hardly any."""
    clip, layers = scene
    ref = clip.reference_index
    front_only = build_layers(clip.frames[ref], clip.depth[ref], clip.K, clip.cam_from_world, ref, clip.frames,
                              ~clip.static_mask, back_frames=np.zeros(0, np.int64))
    pose = clip.cam_from_world[0]
    _, holes_front = render_frame(front_only, None, clip.K, pose, (72, 96))
    _, holes_all = render_frame(layers, None, clip.K, pose, (72, 96))
    assert layers.n_back > 0 and front_only.n_back == 0
    assert holes_front.mean() > 0.02 and holes_all.mean() < 0.25 * holes_front.mean()
    # back points come from other frames and lie behind the front layer or outside the reference view
    assert set(np.unique(layers.source_frame[layers.n_front:])) <= set(range(24)) - {ref}


def test_swing_of_two_percent_needs_little_inpainting(scene):
    clip, layers = scene
    ref = clip.reference_index
    median = float(np.median(clip.depth[ref]))
    poses = named_path("swing", clip.cam_from_world[ref], median, 0.02, 16)
    fractions = [render_frame(layers, None, clip.K, p, (72, 96))[1].mean() for p in poses]
    assert max(fractions) < 0.03


def test_animated_points_take_the_loop_frame(scene):
    clip, layers = scene
    ref = clip.reference_index
    loop_frame = np.full((72, 96, 3), 7, np.uint8)
    image, _ = render_frame(layers, loop_frame, clip.K, clip.cam_from_world[ref], (72, 96))
    animated = ~clip.static_mask
    assert (image[animated] == 7).all(-1).mean() > 0.99
    assert (image[~animated] == clip.frames[ref][~animated]).all(-1).mean() > 0.995


def test_background_fill_takes_the_far_side():
    depth = np.array([[1.0, 1.0, 0.0, 0.0, 5.0, 5.0]])
    known = depth > 0
    np.testing.assert_array_equal(background_fill(depth, known), [[1, 1, 5, 5, 5, 5]])
    assert np.isinf(background_fill(depth, np.zeros_like(known))).all()


def test_pick_back_frames_nearest_first_without_the_reference():
    picks = pick_back_frames(11, 5, 4)
    assert 5 not in picks and len(picks) == 4
    assert list(np.abs(picks - 5)) == sorted(np.abs(picks - 5))
    assert pick_back_frames(11, 5, 0).size == 0 and len(pick_back_frames(3, 1, 10)) == 2
