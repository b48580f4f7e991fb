"""Tests for tasks.stabilise (KLT tracks + per-frame homographies)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from tasks.stabilise import (
    StabiliseResult,
    fit_homography_dlt,
    homography_is_plausible,
    select_static_tracks,
    stabilise_segment,
)

T, H, W = 20, 120, 160
PAD = 30


def texture(h, w, seed):
    """Multi-scale smooth noise: plenty of corners, trackable by KLT."""
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w))
    for sigma, amp in ((1.0, 0.6), (3.0, 1.0), (8.0, 1.5)):
        img += amp * sigma * cv2.GaussianBlur(rng.standard_normal((h, w)), (0, 0), sigma)
    img = (img - img.min()) / (img.max() - img.min())
    return (255 * img).astype(np.uint8)


def jitter(rng, shift=0.8, angle_deg=0.3, perspective=2e-6):
    """Small random rotation about the image centre, translation and
    perspective: a homography close to the identity."""
    c = np.array([[1.0, 0, W / 2], [0, 1, H / 2], [0, 0, 1]])
    a = np.deg2rad(rng.normal(0.0, angle_deg))
    M = np.array([[np.cos(a), -np.sin(a), 0.0], [np.sin(a), np.cos(a), 0.0], [0.0, 0.0, 1.0]])
    M[:2, 2] = rng.normal(0.0, shift, 2)
    M[2, :2] = rng.normal(0.0, perspective, 2)
    return c @ M @ np.linalg.inv(c)


def jittered_sequence(seed, moving_patch=False):
    """Frames of a static textured scene seen through per-frame homographies
    ``J[t]`` (scene coordinates -> frame t).  The true stabilising
    homography of frame t is ``J[r] J[t]^-1``."""
    rng = np.random.default_rng(seed)
    canvas = texture(H + 2 * PAD, W + 2 * PAD, seed)
    canvas = np.stack([canvas, np.roll(canvas, 7, axis=0), 255 - canvas], axis=-1)
    crop = np.array([[1.0, 0, -PAD], [0, 1, -PAD], [0, 0, 1]])
    J = np.stack([jitter(rng) for _ in range(T)])
    frames = []
    patch = texture(24, 24, seed + 100)
    for t in range(T):
        scene = canvas.copy()
        if moving_patch:  # an object crossing the segment, 3 px per frame
            x0 = PAD + 45 + 3 * t
            scene[PAD + 50 : PAD + 74, x0 : x0 + 24] = patch[..., None]
        frames.append(cv2.warpPerspective(scene, J[t] @ crop, (W, H), flags=cv2.INTER_CUBIC))
    return np.stack(frames), J


def project(M, points):
    q = np.c_[points, np.ones(len(points))] @ M.T
    return q[:, :2] / q[:, 2:]


def grid_points(step=8):
    ys, xs = np.mgrid[0:H:step, 0:W:step]
    return np.c_[xs.ravel(), ys.ravel()].astype(float)


def segment_mask():
    mask = np.zeros((H, W), dtype=bool)
    mask[40:80, 50:110] = True
    return mask


def reprojection_errors(res, J, r):
    pts = grid_points()
    errors, before = [], []
    for t in range(T):
        truth = J[r] @ np.linalg.inv(J[t])
        errors.append(np.linalg.norm(project(res.homographies[t], pts) - project(truth, pts), axis=1))
        before.append(np.linalg.norm(pts - project(truth, pts), axis=1))
    return np.array(errors), np.array(before)


# ------------------------------------------------------------ stabilisation


@pytest.mark.parametrize("seed,reference_index", [(0, 7), (1, 0), (2, T - 1)])
def test_known_jitter_is_removed_to_subpixel_accuracy(seed, reference_index):
    frames, J = jittered_sequence(seed)
    res = stabilise_segment(frames, segment_mask(), reference_index)
    assert isinstance(res, StabiliseResult)
    assert res.stabilised and res.frame_fitted.all() and res.n_tracks >= 20
    errors, before = reprojection_errors(res, J, reference_index)
    assert before.max() > 1.0  # the jitter is there to be removed
    assert errors.max() < 0.5  # over the whole frame grid
    np.testing.assert_array_equal(res.homographies[reference_index], np.eye(3))


def test_warped_frames_match_the_reference_where_visible():
    frames, J = jittered_sequence(3)
    r = 10
    res = stabilise_segment(frames, segment_mask(), r)
    assert res.video.shape == frames.shape and res.video.dtype == np.uint8
    assert res.visible.shape == (T, H, W) and res.visible.dtype == np.bool_
    inner = np.zeros((H, W), dtype=bool)
    inner[10:-10, 10:-10] = True
    ref = frames[r].astype(float)
    for t in range(T):
        if t == r:
            continue
        m = res.visible[t] & inner
        before = np.abs(frames[t].astype(float) - ref)[inner].mean()
        after = np.abs(res.video[t].astype(float) - ref)[m].mean()
        assert after < 0.5 * before
        # Output pixels outside the warped image are marked invisible.
        assert not res.visible[t].all() or np.allclose(res.homographies[t][:2, 2], 0, atol=0.5)


def test_moving_object_in_the_segment_is_ignored():
    frames, J = jittered_sequence(4, moving_patch=True)
    r = 9
    res = stabilise_segment(frames, segment_mask(), r)
    assert res.stabilised
    errors, _ = reprojection_errors(res, J, r)
    assert errors.max() < 0.5


def test_input_visibility_is_warped_along():
    frames, _ = jittered_sequence(5)
    visible = np.ones((T, H, W), dtype=bool)
    visible[:, :, :20] = False  # the warp stage saw nothing on the left
    res = stabilise_segment(frames, segment_mask(), 5, visible=visible)
    assert res.stabilised
    # Left columns stay invisible (up to the small jitter), the rest mostly visible.
    assert not res.visible[:, :, :15].any()
    assert res.visible[:, 10:-10, 30:-10].mean() > 0.99


def test_too_few_tracks_gives_identity_and_says_so():
    flat = np.full((12, 40, 50, 3), 128, dtype=np.uint8)
    mask = np.zeros((40, 50), dtype=bool)
    mask[10:30, 10:40] = True
    res = stabilise_segment(flat, mask, 3)
    assert not res.stabilised and res.n_tracks == 0
    np.testing.assert_array_equal(res.homographies, np.tile(np.eye(3), (12, 1, 1)))
    np.testing.assert_array_equal(res.video, flat)
    assert res.visible.all()


def test_too_short_video_gives_identity():
    frames, _ = jittered_sequence(6)
    res = stabilise_segment(frames[:8], segment_mask(), 2)  # < 10 frames
    assert not res.stabilised
    np.testing.assert_array_equal(res.video, frames[:8])


# ------------------------------------------------------------ building blocks


def test_plausibility_rule_bounds_the_correction_by_the_tracks_motion():
    box = np.array([[0, 0], [159, 0], [0, 119], [159, 119]], float)
    pts = np.array([[10, 10], [30, 10], [10, 30], [30, 30], [20, 20]], float)
    shift = np.array([[1, 0, 3.0], [0, 1, -1.0], [0, 0, 1]])
    moved = project(shift, pts)
    assert homography_is_plausible(np.eye(3), box, pts, pts, 2.0)
    assert homography_is_plausible(shift, box, moved, pts, 2.0)  # 3.2 px, as the tracks moved
    assert not homography_is_plausible(shift, box, pts, pts, 1.0)  # 3.2 px > 0 + 2 * 1.0
    tilt = np.array([[1, 0, 0], [0, 1, 0], [0.003, 0.002, 1.0]])
    assert not homography_is_plausible(tilt, box, project(tilt, pts), pts, 2.0)


def test_fits_from_tracks_bunched_in_a_corner_are_not_extrapolated_over_the_region():
    """Texture only in a 36 px corner of a flat segment, frames seen through a
    homography that moves that corner by about a pixel but the far corner by
    tens of pixels: the tracks cannot justify such a correction, so the frame
    keeps the identity instead of being warped far (what put colours no input
    had into a billboard's loop)."""
    rng = np.random.default_rng(5)
    scene = np.full((H, W), 128, np.uint8)
    scene[4:40, 4:40] = texture(36, 36, 11)
    scene = np.repeat(scene[..., None], 3, axis=2)
    frames = []
    for _ in range(T):
        g = rng.normal(0.0, 1.0, 2) * 4e-4
        tilt = np.array([[1, 0, 0], [0, 1, 0], [g[0], g[1], 1.0]])
        frames.append(cv2.warpPerspective(scene, tilt, (W, H), flags=cv2.INTER_CUBIC))
    frames = np.stack(frames)
    mask = np.zeros((H, W), bool)
    mask[0:110, 0:150] = True
    res = stabilise_segment(frames, mask, 0, margin=0)
    assert res.stabilised
    corners = np.array([[0, 0], [149, 0], [0, 109], [149, 109]], float)
    for t in range(T):
        shift = np.linalg.norm(project(res.homographies[t], corners) - corners, axis=1).max()
        assert shift < 8.0, (t, shift)


def test_select_static_tracks_applies_length_and_std_rules():
    rng = np.random.default_rng(0)
    tracks = 50.0 + rng.normal(0.0, 0.5, (15, 6, 2))
    tracks[:, 1, 0] += np.arange(15)  # drifts in x: std ~4.3 px
    tracks[:, 2, 1] += 3.0 * (np.arange(15) % 2)  # flickers in y: std 1.5 px
    tracks[:6, 3] = np.nan  # 9 frames only
    tracks[:5, 4] = np.nan  # exactly 10 frames
    tracks[::2, 5, 1] += 7.0  # y alternates by 7 px: std 3.5 px
    keep = select_static_tracks(tracks)
    assert keep.tolist() == [True, False, True, False, True, False]
    assert select_static_tracks(tracks, min_track_length=9).tolist() == [
        True,
        False,
        True,
        True,
        True,
        False,
    ]
    assert select_static_tracks(tracks, max_track_std=1.0).tolist() == [
        True,
        False,
        False,
        False,
        True,
        False,
    ]
    assert select_static_tracks(np.full((12, 0, 2), np.nan)).shape == (0,)


def test_dlt_recovers_an_exact_homography_and_matches_opencv_least_squares():
    rng = np.random.default_rng(1)
    Htrue = np.array([[1.02, 0.03, 4.0], [-0.02, 0.98, -3.0], [2e-4, -1e-4, 1.0]])
    src = rng.uniform(0, 200, (30, 2))
    dst = project(Htrue, src)
    np.testing.assert_allclose(fit_homography_dlt(src, dst), Htrue, rtol=0, atol=1e-9)
    # With noise the normalised DLT stays close to OpenCV's least squares fit.
    noisy = dst + rng.normal(0, 0.3, dst.shape)
    H_dlt = fit_homography_dlt(src, noisy)
    H_cv, _ = cv2.findHomography(src, noisy, 0)
    pts = rng.uniform(0, 200, (50, 2))
    assert np.abs(project(H_dlt, pts) - project(H_cv, pts)).max() < 0.2


def test_dlt_validation():
    with pytest.raises(ValueError, match="N >= 4"):
        fit_homography_dlt(np.zeros((3, 2)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="shape"):
        fit_homography_dlt(np.zeros((5, 2)), np.zeros((6, 2)))


@pytest.mark.parametrize(
    "video,mask,r,kwargs,exc,match",
    [
        (np.zeros((12, 8, 8), np.uint8), np.ones((8, 8), bool), 0, {}, ValueError, "T, H, W, 3"),
        (np.zeros((12, 8, 8, 3)), np.ones((8, 8), bool), 0, {}, TypeError, "uint8"),
        (np.zeros((12, 8, 8, 3), np.uint8), np.ones((8, 8), int), 0, {}, TypeError, "boolean"),
        (np.zeros((12, 8, 8, 3), np.uint8), np.ones((8, 9), bool), 0, {}, ValueError, "shape"),
        (np.zeros((12, 8, 8, 3), np.uint8), np.ones((8, 8), bool), 12, {}, ValueError, "reference"),
        (np.zeros((12, 8, 8, 3), np.uint8), np.ones((8, 8), bool), -1, {}, ValueError, "reference"),
        (
            np.zeros((12, 8, 8, 3), np.uint8),
            np.ones((8, 8), bool),
            0,
            {"min_points": 3},
            ValueError,
            "min_points",
        ),
        (
            np.zeros((12, 8, 8, 3), np.uint8),
            np.ones((8, 8), bool),
            0,
            {"visible": np.ones((12, 8, 8), np.uint8)},
            ValueError,
            "visible",
        ),
    ],
)
def test_validation(video, mask, r, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        stabilise_segment(video, mask, r, **kwargs)
