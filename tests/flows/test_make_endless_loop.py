"""make_endless_loop for real: Prefect test harness, a Dask cluster of threads, a Zarr store, MP4 and GIF."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from flows.make_endless_loop import run_make_endless_loop
from schemas import names as N
from schemas import still as S
from schemas.config import ExecutionParams
from schemas.still import RESULT_SCHEMA_PATH, EndlessLoopConfig, EndlessLoopResult
from tasks.still.synthetic import noise_image, stripes, window_grid
from tasks.store import open_store, read_attrs

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "flows.cli"]
SMALL = EndlessLoopConfig(
    frames={"n_frames": 12}, execution=ExecutionParams(n_workers=1, threads_per_worker=1)
)


def _png(path, array):
    Image.fromarray(array).save(path)
    return path


@pytest.fixture(scope="module")
def automatic_run(prefect_harness, tmp_path_factory):
    root = tmp_path_factory.mktemp("still")
    s = window_grid(height=150, width=200, region=(10, 140, 20, 190), seed=3)
    src = _png(root / "facade.png", s.image)
    return s, run_make_endless_loop(src, root / "out", SMALL)


def test_automatic_run_writes_store_videos_and_result(automatic_run):
    s, result = automatic_run
    out = Path(result.output_dir)
    ds = open_store(out / N.STORE_NAME)
    h, w = s.mask.shape
    expect = {
        S.IMAGE: ((h, w, 3), np.uint8), S.MASK: ((h, w), bool), S.LABELS: ((h, w), np.int32),
        S.FLOW_FORWARD: ((h, w, 2), np.float32), S.FLOW_BACKWARD: ((h, w, 2), np.float32),
        N.LOOP: ((12, h, w, 3), np.uint8),
    }
    for name, (shape, dtype) in expect.items():
        assert ds[name].shape == shape and ds[name].dtype == dtype, name
    attrs = read_attrs(out / N.STORE_NAME)
    assert attrs["direction_source"] == "automatic" and attrs["directions"][0]["votes"] >= 3
    assert attrs["config"] == SMALL.model_dump(mode="json")
    # the motion follows a lattice vector of the facade, inside the pattern
    d = np.array(result.direction)
    cosines = [abs(d @ v) / np.linalg.norm(v) for v in s.lattice]
    assert max(cosines) > np.cos(np.radians(5))
    k = int(np.argmax(cosines))
    assert abs(result.period - np.linalg.norm(s.lattice[k])) <= 1.0
    mask = ds[S.MASK].values
    assert (mask & s.mask).sum() / (mask | s.mask).sum() > 0.7
    loop = ds[N.LOOP].values
    np.testing.assert_array_equal(loop[0], s.image)
    assert (loop[:, ~mask] == s.image[~mask]).all()
    labels = ds[S.LABELS].values
    assert ((labels >= 0) == mask).all()
    # result.json: the model, and the schema file is current
    saved = json.loads((out / N.RESULT_NAME).read_text())
    assert EndlessLoopResult.model_validate(saved) == result
    assert json.loads(RESULT_SCHEMA_PATH.read_text()) == EndlessLoopResult.model_json_schema()
    q = result.quality
    assert q.first_frame_error == 0 and q.last_frame_error == 0 and q.wrap_step <= q.max_ordinary_step
    assert result.outcome == "animated" and q.inversion_error_p95 < 1.0
    with av.open(result.outputs.mp4) as c:
        assert sum(1 for _ in c.decode(video=0)) == 12
    with Image.open(result.outputs.gif) as g:
        assert g.n_frames == 12


def test_given_mask_and_direction_and_downscale(prefect_harness, tmp_path):
    s = stripes(height=120, width=180, period=24.0, seed=2)
    big = np.asarray(Image.fromarray(s.image).resize((360, 240), Image.Resampling.NEAREST))
    src = _png(tmp_path / "awning.png", big)
    m = np.zeros((240, 360), np.uint8)
    m[20:120, 20:340] = 255
    m[150:230, 30:330] = 255  # two regions
    mask = _png(tmp_path / "mask.png", m)
    cfg = SMALL.model_copy(update={"max_long_side": 180, "direction": (1.0, 0.0)})
    result = run_make_endless_loop(src, tmp_path / "out", cfg, mask=mask)
    assert result.scale == pytest.approx(0.5) and result.width == 180
    assert any("downscaled" in w for w in result.warnings)
    assert result.direction_source == "given" and result.mask_source == "given"
    assert len(result.regions) == 2
    for r in result.regions:
        assert abs(r.period - 24.0) <= 1.0
        assert abs(r.mean_displacement[0] - 24.0) < 2.4 and abs(r.mean_displacement[1]) < 2.4


def test_no_repetition_fails_with_one_clear_message(prefect_harness, tmp_path):
    from typer.testing import CliRunner

    from flows.cli import app

    src = _png(tmp_path / "clouds.png", noise_image(seed=7))
    res = CliRunner().invoke(app, ["still", str(src), "--out", str(tmp_path / "out"), "--direction", "1,0"])
    assert res.exit_code == 2, res.output
    assert f"error: {src}: no repeating structure found along direction (1.000, 0.000)" in res.output
    assert "Traceback" not in res.output


def cli(*args):
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, cwd=ROOT, timeout=300)


def test_bad_inputs_get_one_line_before_any_work(tmp_path):
    img = _png(tmp_path / "img.png", stripes(height=40, width=60).image)
    notes = tmp_path / "notes.jpg"
    notes.write_text("not an image\n" * 30)
    empty = _png(tmp_path / "empty.png", np.zeros((40, 60), np.uint8))
    other = _png(tmp_path / "other.png", np.full((20, 20), 255, np.uint8))
    cases = [
        ((notes,), f"{notes}: not an image"),
        ((img, "--mask", empty), f"{empty}: mask is empty"),
        ((img, "--mask", other), f"{other}: mask is 20x20 pixels but the image is 60x40"),
        ((img, "--direction", "0,0"), "--direction: direction must be a non-zero"),
        ((tmp_path / "none.png",), "file not found"),
    ]
    for args, fragment in cases:
        proc = cli("still", *args, "--out", tmp_path / "out")
        assert proc.returncode == 2, proc.stderr
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], proc.stderr
        assert not (tmp_path / "out").exists()


def test_image_items_of_a_corpus_go_through_the_still_flow(prefect_harness, tmp_path):
    from flows.process_corpus import make_item, plan_source
    from schemas.config import PipelineConfig
    from schemas.corpus import CorpusConfig, ManifestEntry

    src = _png(tmp_path / "tiles.png", stripes(height=96, width=128, seed=1).image)
    plans, skipped = plan_source.fn(
        ManifestEntry(source="tiles.png", row=1), "tiles", str(tmp_path), [str(tmp_path)], CorpusConfig(),
        str(tmp_path / "out"),
    )
    assert skipped == [] and len(plans) == 1 and plans[0].source == str(src.resolve())
    outcome = make_item.fn(plans[0], str(tmp_path / "out"), PipelineConfig(), False)
    assert outcome.status == "succeeded", outcome.reason
    saved = json.loads((tmp_path / "out" / "tiles" / N.RESULT_NAME).read_text())
    assert saved["kind"] == "endless_loop" and outcome.loop_frames == saved["loop_frames"]
    again = make_item.fn(plans[0], str(tmp_path / "out"), PipelineConfig(), False)
    assert again.status == "done_before"
    # the subflow run is named after its item (flows.execution.item_run_name)
    from prefect import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName, FlowRunFilter, FlowRunFilterName

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["make_endless_loop"])),
            flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=["tiles"])),
        )
    assert runs and all(r.name == "tiles" for r in runs)


def test_rerun_resumes_from_the_stored_stages(prefect_harness, tmp_path):
    from flows.make_endless_loop import STAGES
    from tasks.store import STAGES_ATTR

    src = _png(tmp_path / "stairs.png", stripes(height=96, width=144, period=20.0, seed=4).image)
    out = tmp_path / "out"
    first = run_make_endless_loop(src, out, SMALL)
    store = out / N.STORE_NAME
    records = read_attrs(store)[STAGES_ATTR]
    ran = [s for s in STAGES if s != "result"]
    assert sorted(records) == sorted(ran) and first.skipped_stages == []
    loop = open_store(store)[N.LOOP].values
    # the same image and config: every stage is found complete and skipped, the result is the same
    again = run_make_endless_loop(src, out, SMALL, existing="resume")
    assert again.skipped_stages == ran
    assert read_attrs(store)[STAGES_ATTR] == records  # no stage rewrote its record
    np.testing.assert_array_equal(open_store(store)[N.LOOP].values, loop)
    same = ("direction", "period", "regions", "quality", "loop_frames", "outputs")
    assert all(getattr(again, k) == getattr(first, k) for k in same)
    # another frame count: the stages before the frames are kept, the frames and the videos are redone
    fewer = SMALL.model_copy(update={"frames": SMALL.frames.model_copy(update={"n_frames": 8})})
    third = run_make_endless_loop(src, out, fewer, existing="resume")
    assert third.skipped_stages == ["load", "direction", "regions", "repetitions", "labels", "flow"]
    assert open_store(store)[N.LOOP].shape[0] == 8 and third.loop_frames == 8
    assert read_attrs(store)[STAGES_ATTR]["frames"]["finished"] > records["frames"]["finished"]
    # a changed mask threshold redoes the regions and everything after them
    other = fewer.model_copy(update={"mask": fewer.mask.model_copy(update={"threshold": 0.6})})
    fourth = run_make_endless_loop(src, out, other, existing="resume")
    assert fourth.skipped_stages == ["load", "direction"]
