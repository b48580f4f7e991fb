"""The whole flow on a hand-held (moving-camera) synthetic clip whose geometry, poses and depth are known.

One real Prefect run on a LocalCluster decodes a lossless H.264 copy of the clip and chooses
the moving-camera alignment by itself: pycolmap SfM, plane-sweep depth by alpha-expansion,
z-buffer warp.  The store is then checked against the truth, stage by stage.
"""

import json
import warnings
from pathlib import Path

import cv2
import dask
import numpy as np
import pytest
import xarray as xr

from flows.make_cinemagraph import run_make_cinemagraph
from schemas import names as N
from schemas.config import PipelineConfig
from schemas.render3d import Render3dParams
from tasks.render3d import render_3d, write_path_file
from tasks.synthetic_scene import camera_centres, render_synthetic_clip, write_mp4
from tests.tasks.test_sfm import rotation_error_degrees, similarity_from_poses


@pytest.fixture(scope="module")
def moving_run(prefect_harness, tmp_path_factory):
    clip = render_synthetic_clip(
        n_frames=48, height=192, width=256, path_length=0.8, blink_periods=(8.0, 6.0), bright_lights=True, seed=0
    )
    folder = tmp_path_factory.mktemp("moving")
    source = write_mp4(clip.frames, folder / "handheld.mp4", lossless=True)
    config = PipelineConfig()  # with the 3D cinemagraph along a swing of 2 % of the median depth (tests at the end)
    config.render3d.enabled = True
    config.render3d.path = "swing"
    config.render3d.amplitude = 0.02
    # Dask warns of every graph above the threshold sent to the scheduler ("Sending large graph"): at 1 MB
    # instead of 10 the run's graphs must still carry no image data (test_no_stage_sends_images_in_a_graph)
    with dask.config.set({"distributed.admin.large-graph-warning-threshold": "1MB"}):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = run_make_cinemagraph(source, folder / "out", config)
    large = [str(w.message).splitlines()[0] for w in caught if "large graph" in str(w.message)]
    ds = xr.open_zarr(folder / "out" / N.STORE_NAME, consolidated=False)
    return clip, folder / "out", result, ds, large


def _aligned(clip, ds):
    poses = ds[N.CAM_FROM_WORLD].values
    scale, rot, shift = similarity_from_poses(poses, clip.cam_from_world)
    return poses, scale, rot, shift


def _textured(frame, threshold=0.02):
    grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255
    mean = cv2.blur(grey, (5, 5))
    var = cv2.blur(grey * grey, (5, 5)) - mean * mean
    return np.sqrt(np.maximum(var, 0)) > threshold


def test_moving_mode_is_chosen_and_reported(moving_run):
    clip, out, result, ds, _ = moving_run
    assert result.alignment.mode == "moving" and result.alignment.requested == "auto"
    assert "parallax" in result.alignment.reason
    assert result.sfm.ok and result.sfm.frames_registered == result.sfm.frames_reconstructed
    assert result.depth.n_labels == 128 and result.depth.n_neighbours == 47
    saved = json.loads((out / N.RESULT_NAME).read_text())
    assert saved["alignment"]["mode"] == "moving"
    for name in (N.DEPTH, N.CAMERA_INTRINSICS, N.CAM_FROM_WORLD, N.POINTS3D, N.WARPED, N.VISIBLE):
        assert name in ds, name
    assert ds[N.CAM_FROM_WORLD].shape == (48, 3, 4) and ds[N.DEPTH].dtype == np.float32
    assert ds.attrs["aligned_by"] == "depth"


def test_poses_within_one_percent_of_the_path_and_half_a_degree(moving_run):
    clip, _, _, ds, _ = moving_run
    poses, scale, rot, shift = _aligned(clip, ds)
    centres = camera_centres(poses) @ rot.T * scale + shift
    truth = camera_centres(clip.cam_from_world)
    error = np.linalg.norm(centres - truth, axis=1).max() / clip.path_length
    assert error < 0.01, f"centre error {100 * error:.2f} % of the path"
    degrees = rotation_error_degrees(poses[:, :, :3] @ rot.T, clip.cam_from_world[:, :, :3]).max()
    assert degrees < 0.5, f"rotation error {degrees:.3f} degrees"


def test_reference_depth_within_five_percent(moving_run):
    clip, _, _, ds, _ = moving_run
    _, scale, _, _ = _aligned(clip, ds)
    ref = clip.reference_index
    truth = clip.depth[ref]
    relative = np.abs(ds[N.DEPTH].values * scale - truth) / truth
    textured = _textured(clip.frames[ref])
    assert textured.mean() > 0.5
    assert np.median(relative[textured]) < 0.05


def test_warped_static_texture_matches_the_reference_view(moving_run):
    clip, _, _, ds, _ = moving_run
    ref = clip.reference_index
    warped, visible = ds[N.WARPED].values, ds[N.VISIBLE].values
    static = clip.static_mask & _textured(clip.frames[ref])
    errors = []
    for t in range(warped.shape[0]):
        m = visible[t] & static
        if t != ref:
            errors.append(((warped[t][m].astype(np.float64) - clip.frames[ref][m]) ** 2).sum() / (3 * m.sum()))
    psnr = 10 * np.log10(255.0**2 / np.mean(errors))
    assert psnr >= 30, f"PSNR {psnr:.1f} dB"
    assert visible.mean() > 0.85
    assert not warped[~visible].any()  # invisible samples are never given colour


def test_occluded_samples_are_invisible(moving_run):
    """A reference point hidden behind a nearer surface in frame t is not marked visible there."""
    clip, _, _, ds, _ = moving_run
    ref = clip.reference_index
    height, width = clip.depth.shape[1:]
    ys, xs = np.mgrid[0:height, 0:width]
    rays = np.linalg.inv(clip.K) @ np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)])
    ref_pose = clip.cam_from_world[ref]
    world = ref_pose[:, :3].T @ (rays * clip.depth[ref].ravel() - ref_pose[:, 3:4])
    visible = ds[N.VISIBLE].values
    occluded_total = 0
    wrongly_visible = 0
    for t in range(0, 48, 3):
        cam = clip.cam_from_world[t][:, :3] @ world + clip.cam_from_world[t][:, 3:4]
        pix = clip.K @ cam
        u, v = np.rint(pix[0] / pix[2]).astype(int), np.rint(pix[1] / pix[2]).astype(int)
        inside = (u >= 0) & (u < width) & (v >= 0) & (v < height)
        hidden = np.zeros(xs.size, bool)
        hidden[inside] = cam[2, inside] > 1.1 * clip.depth[t][v[inside], u[inside]]
        hidden = hidden.reshape(height, width)
        # leave out a 3-pixel band around the occluding edges, where the depth map's edge can sit
        band = cv2.dilate((cv2.Laplacian(clip.plane_index[ref].astype(np.float32), cv2.CV_32F) != 0).astype(np.uint8),
                          np.ones((7, 7), np.uint8)).astype(bool)
        hidden &= ~band
        occluded_total += hidden.sum()
        wrongly_visible += (visible[t] & hidden).sum()
    assert occluded_total > 500, "the clip must have occlusions to test"
    assert wrongly_visible / occluded_total < 0.02, f"{wrongly_visible} of {occluded_total} occluded samples visible"


def test_blinking_lights_found_as_on_steady_footage(moving_run):
    clip, _, result, ds, _ = moving_run
    mask = ds[N.CYCLIC_MASK].values
    for period, light in zip(clip.blink_periods, clip.blink_masks, strict=True):
        recall = (mask & light).sum() / light.sum()
        assert recall >= 0.9, f"light of period {period}: recall {recall:.3f}"
    static = clip.static_mask
    false_rate = (mask & static).sum() / static.sum()
    assert false_rate < 0.005, f"{100 * false_rate:.2f} % of static pixels marked cyclic"
    assert result.masks.cyclic == int(mask.sum())
    # nor does the display classifier take the warped static scene for a display
    animated = ds[N.ANIMATED_MASK].values
    assert (animated & static).sum() / static.sum() < 0.01


# --------------------------------------------------------------------------
# the 3D cinemagraph (render3d) of the same run; the stage is rerun on the store with exact views


def _static_at(clip, pose, time):
    """Pixels of the generator's view that never change (the blinking and scrolling regions excluded)."""
    images = [clip.render(pose, time + dt)[0] for dt in (0.0, 2.5, 5.3)]
    return (images[0] == images[1]).all(-1) & (images[0] == images[2]).all(-1)


def test_no_stage_sends_images_in_a_graph(moving_run):
    *_, large = moving_run
    assert large == []


def test_flow_writes_the_3d_loop_and_reports_it(moving_run):
    clip, out, result, _, _ = moving_run
    r3 = result.render3d
    assert r3 is not None and r3.path == "swing" and r3.frames == result.loop_frames
    assert (out / N.MP4_3D_NAME).stat().st_size > 0 and (out / N.GIF_3D_NAME).stat().st_size > 0
    ds = xr.open_zarr(out / N.STORE_NAME, consolidated=False)
    assert ds[N.CAMERA_PATH].shape == (r3.frames, 3, 4) and ds[N.CAMERA_PATH].dtype == np.float64
    assert ds[N.CAMERA_PATH_INTRINSICS].shape == (3, 3)
    assert ds[N.LOOP_3D].shape == (r3.frames, 192, 256, 3) and ds[N.LOOP_3D].dtype == np.uint8
    assert ds[N.LOOP_3D_FILLED].dtype == bool
    # Zarr chunks of up to 16 frames x the store's tile
    tile = ds[N.REFERENCE].encoding["chunks"][0]
    assert ds[N.LOOP_3D].encoding["chunks"] == (min(r3.frames, 16), min(tile, 192), min(tile, 256), 3)
    assert ds[N.LOOP_3D_FILLED].encoding["chunks"] == (min(r3.frames, 16), min(tile, 192), min(tile, 256))
    np.testing.assert_allclose(ds[N.CAMERA_PATH].values, np.array(r3.camera_path))
    saved = json.loads((out / N.RESULT_NAME).read_text())["render3d"]
    assert len(saved["inpainted_fraction"]) == r3.frames and saved["path"] == "swing"
    assert Path(saved["mp4"]) == out / N.MP4_3D_NAME and Path(saved["gif"]) == out / N.GIF_3D_NAME
    filled = ds[N.LOOP_3D_FILLED].values
    np.testing.assert_allclose(filled.reshape(r3.frames, -1).mean(1), r3.inpainted_fraction)
    assert r3.n_back_points > 0


def test_swing_of_two_percent_inpaints_under_three_percent(moving_run):
    _, _, result, _, _ = moving_run
    assert result.render3d.amplitude == 0.02
    assert result.render3d.max_inpainted_fraction < 0.03, result.render3d.inpainted_fraction
    # the path really moves: the camera travels about 2 % of the median depth sideways
    centres = np.array([-np.array(p)[:, :3].T @ np.array(p)[:, 3] for p in result.render3d.camera_path])
    travel = np.linalg.norm(centres - centres[0], axis=1).max()
    assert travel == pytest.approx(0.02 * result.render3d.median_depth, rel=0.05)


def test_animated_regions_loop_seamlessly(moving_run):
    _, out, result, _, _ = moving_run
    ds = xr.open_zarr(out / N.STORE_NAME, consolidated=False)
    loop3d = ds[N.LOOP_3D].values.astype(np.float64)
    animated = ds[N.ANIMATED_MASK].values
    assert animated.sum() > 100
    # the camera moves, so the animated region's pixels move a little: measure on its core
    steps = [np.abs(loop3d[(k + 1) % len(loop3d)] - loop3d[k])[animated].mean() for k in range(len(loop3d))]
    wrap, ordinary = steps[-1], steps[:-1]
    assert wrap <= max(ordinary), (wrap, max(ordinary))


def test_static_part_matches_the_generator_at_real_frame_poses(moving_run, tmp_path):
    clip, out, result, _, _ = moving_run
    store = str(out / N.STORE_NAME)
    ds = xr.open_zarr(store, consolidated=False)
    poses = ds[N.CAM_FROM_WORLD].values
    K = ds[N.CAMERA_INTRINSICS].values
    ref = clip.reference_index
    frames = [ref - 12, ref - 5, ref + 4, ref + 11]
    path = write_path_file(tmp_path / "views.json", K, poses[frames])
    rendered = render_3d(store, str(tmp_path), Render3dParams(enabled=True, path_file=path, write_gif=False))
    assert rendered.frames == len(frames) and rendered.path.startswith("file:")
    out = xr.open_zarr(store, consolidated=False)
    images, filled = out[N.LOOP_3D].values, out[N.LOOP_3D_FILLED].values
    for k, t in enumerate(frames):
        truth = clip.frames[t]
        mask = _static_at(clip, clip.cam_from_world[t], t) & ~filled[k]
        mse = ((images[k][mask].astype(np.float64) - truth[mask]) ** 2).mean()
        psnr = 10 * np.log10(255.0**2 / mse)
        assert psnr >= 28.0, f"frame {t}: PSNR {psnr:.1f} dB"
        assert mask.mean() > 0.8


def test_zero_amplitude_path_keeps_every_static_point_still(moving_run, tmp_path):
    clip, out, result, _, _ = moving_run
    store = str(out / N.STORE_NAME)
    params = Render3dParams(enabled=True, path="circle", amplitude=0.0, frames=12, write_gif=False)
    rendered = render_3d(store, str(tmp_path), params)
    assert rendered.frames == 12 and max(rendered.inpainted_fraction) == 0.0
    ds = xr.open_zarr(store, consolidated=False)
    images = ds[N.LOOP_3D].values
    animated = ds[N.ANIMATED_MASK].values
    static = ~animated
    assert (images[:, static] == images[0, static]).all()
    # ... and at the reference pose the static part is the reference frame itself (but for a few pixels at the
    # borders and depth edges where points seen only by other frames reach into the soft depth band)
    same = (images[0] == ds[N.REFERENCE].values).all(-1)[static]
    assert same.mean() > 0.999
    # while the animated part still plays
    assert np.abs(np.diff(images[:, animated].astype(np.int16), axis=0)).max() > 0


def test_rerun_resumes_without_redoing_the_alignment(moving_run):
    clip, out, first, _, _ = moving_run
    again = run_make_cinemagraph(first.input, out, existing="resume")
    assert {"motion", "sfm", "depth", "warp"} <= set(again.skipped_stages)
    assert again.alignment.mode == "moving"


def test_failed_structure_from_motion_falls_back_to_homography(prefect_harness, blinking_clip, tmp_path):
    """Forcing the moving mode on a tripod clip: COLMAP finds no parallax, the run warns and still works."""
    config = PipelineConfig()
    config.align.mode = "moving"
    config.align.sfm_max_frames = 12
    config.align.sfm_max_features = 1024
    result = run_make_cinemagraph(blinking_clip.path, tmp_path / "out", config)
    assert result.sfm is not None and not result.sfm.ok and result.depth is None
    assert result.alignment.mode == "homography" and "structure from motion failed" in result.alignment.reason
    assert any("structure from motion failed" in w for w in result.warnings)
    ds = xr.open_zarr(tmp_path / "out" / N.STORE_NAME, consolidated=False)
    assert ds.attrs["aligned_by"] == "homography" and N.DEPTH not in ds and N.CAM_FROM_WORLD not in ds
    mask = ds[N.CYCLIC_MASK].values
    for light, m in zip(blinking_clip.lights, blinking_clip.masks, strict=True):
        assert (mask & m).sum() / m.sum() >= 0.9, f"light of period {light.period}"

