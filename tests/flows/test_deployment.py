"""Operations for real: the README's server set-up, prefect.yaml deployments, a process worker, a cluster.

One module-scoped set-up, as an operator runs it: PostgreSQL from Debian's package (SQLite when it
is not installed), a Prefect server on it (``deployments/local_server.py``), the ``cinemagraph``
process work pool with a worker, the project's ``prefect.yaml`` deployed, and an external
``dask scheduler`` with one ``dask worker`` on 127.0.0.1.  Then:

- ``make_cinemagraph`` runs through the worker with ``scheduler_address`` set: the external worker
  ran its stage tasks (the scheduler's task stream says so);
- a ``process_corpus`` run's process is killed mid-run; the killed run is not left Running, and
  the rerun (several items at once) finishes every item, keeping the stages stored before the kill;
- neither the server's log nor the runs' logs show lock or telemetry errors.
"""

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tasks.store import read_attrs
from tasks.synthetic import make_blinking_clip

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "deployments"))
import local_server  # noqa: E402

PREFECT = [sys.executable, "-m", "prefect"]
DASK = str(Path(sys.executable).parent / "dask")
SMALL = {"ingest": {"max_long_side": 128}, "render": {"write_gif": False}}


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def prefect(env, *args, timeout=300):
    proc = subprocess.run([*PREFECT, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"prefect {' '.join(args)}:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    return proc.stdout


@pytest.fixture(scope="module")
def ops():
    """Server (PostgreSQL if installed), work pool + worker, deployments, external Dask scheduler + worker."""
    # PostgreSQL runs as the postgres user: its folder must be reachable (pytest's tmp dirs are 0700)
    data = Path(tempfile.mkdtemp(prefix="cinemagraph-ops-"))
    data.chmod(0o711)
    procs: list[subprocess.Popen] = []
    database = None
    try:
        if local_server.postgres_bin() is not None:
            database = local_server.start_postgres(data / "pg", free_port())
        home = data / "home"
        home.mkdir()
        env = local_server.server_env(free_port(), home, database)
        env.update(PWD=str(ROOT), PYTHONPATH=str(ROOT), PREFECT_LOGGING_LEVEL="INFO", PREFECT_WORKER_QUERY_SECONDS="1")
        env.pop("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", None)
        server_log = data / "server.log"
        procs.append(local_server.start_server(env, server_log))
        url = env["PREFECT_API_URL"]
        prefect(env, "work-pool", "create", "cinemagraph", "--type", "process")
        automation = local_server.create_crash_automation(url)
        prefect(env, "--no-prompt", "deploy", "--prefect-file", "deployments/prefect.yaml", "--all")
        worker_log = data / "worker.log"
        procs.append(
            subprocess.Popen(
                [*PREFECT, "worker", "start", "--pool", "cinemagraph"],
                env=env,
                cwd=ROOT,
                stdout=open(worker_log, "w"),  # noqa: SIM115
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
        dask_port = free_port()
        address = f"tcp://127.0.0.1:{dask_port}"
        dask_env = dict(env, NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1")
        procs.append(
            subprocess.Popen(
                [DASK, "scheduler", "--host", "127.0.0.1", "--port", str(dask_port), "--dashboard-address", "127.0.0.1:0"],
                env=dask_env,
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=open(data / "scheduler.log", "w"),  # noqa: SIM115
            )
        )
        procs.append(
            subprocess.Popen(
                [DASK, "worker", address, "--nthreads", "1", "--host", "127.0.0.1", "--name", "external-0",
                 "--dashboard-address", "127.0.0.1:0", "--no-dashboard"],
                env=dask_env,
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=open(data / "dask-worker.log", "w"),  # noqa: SIM115
            )
        )
        from distributed import Client

        client = Client(address, timeout=120)
        client.wait_for_workers(1, timeout=120)
        client.get_task_stream()  # installs the scheduler's task-stream plugin before the runs
        yield {
            "url": url,
            "env": env,
            "data": data,
            "database": database,
            "server_log": server_log,
            "worker_log": worker_log,
            "dask": client,
            "address": address,
            "automation": automation,
        }
        client.close()
    finally:
        for proc in reversed(procs):
            stop(proc)
        if database is not None:
            local_server.stop_postgres(data / "pg")
        subprocess.run(["rm", "-rf", str(data)], check=False)


def api(ops, path, body=None):
    return httpx.post(f"{ops['url']}{path}", json=body or {}, timeout=30).json()


def run_deployment(ops, name, params) -> str:
    out = prefect(ops["env"], "deployment", "run", name, "--params", json.dumps(params))
    assert "Created flow run" in out
    return re.search(r"UUID: ([0-9a-f-]{36})", out).group(1)


def flow_run(ops, run_id) -> dict:
    return httpx.get(f"{ops['url']}/flow_runs/{run_id}", timeout=30).json()


def wait_final(ops, run_id, timeout=600) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        run = flow_run(ops, run_id)
        if run["state_type"] in {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}:
            return run
        time.sleep(1)
    raise AssertionError(f"flow run {run_id} not final after {timeout} s: {run['state_type']}")


def recorded_task_runs(ops, run_id, names, timeout=60) -> list[dict]:
    """The flow run's task runs once all of ``names`` are recorded and final (or after ``timeout`` s).

    The server records task runs from the events the worker sends, after the flow run's own final state
    (a direct API call) may already be there: right after the run ends, its last task runs can still be
    missing or not yet COMPLETED.
    """
    deadline = time.time() + timeout
    while True:
        task_runs = api(ops, "/task_runs/filter", {"flow_runs": {"id": {"any_": [run_id]}}})
        recorded = {t["name"].rsplit("-", 1)[0] for t in task_runs}
        if (names <= recorded and all(t["state_type"] == "COMPLETED" for t in task_runs)) or time.time() > deadline:
            return task_runs
        time.sleep(1)


def test_deployment_runs_on_the_external_scheduler(ops, tmp_path):
    deployments = api(ops, "/deployments/filter")
    assert {"make-cinemagraph", "process-corpus-nightly"} <= {d["name"] for d in deployments}
    nightly = next(d for d in deployments if d["name"] == "process-corpus-nightly")
    assert nightly["schedules"][0]["schedule"]["cron"] == "0 2 * * *"

    clip = make_blinking_clip(tmp_path / "lights.mp4", height=72, width=128, n_frames=40)
    out = tmp_path / "deployed"
    params = {
        "source": str(clip.path),
        "out_dir": str(out),
        "config": {**SMALL, "execution": {"scheduler_address": ops["address"]}},
    }
    started = time.time()
    run = wait_final(ops, run_deployment(ops, "make_cinemagraph/make-cinemagraph", params))
    assert run["state_type"] == "COMPLETED", (run["state"]["message"], ops["worker_log"].read_text()[-3000:])
    assert json.loads((out / "result.json").read_text())["outcome"] == "animated"

    stages = {"ingest_video", "select_window", "classify_motion", "warp_window", "find_cyclic_regions",
              "find_displays", "render_loop", "encode_outputs", "write_result"}
    task_runs = recorded_task_runs(ops, run["id"], stages)
    assert stages <= {t["name"].rsplit("-", 1)[0] for t in task_runs}
    assert all(t["state_type"] == "COMPLETED" for t in task_runs)
    # the external worker ran them: every stage task is a Dask task of the external scheduler
    stream = ops["dask"].get_task_stream(start=started)
    workers = {ops["dask"].scheduler_info()["workers"][w]["name"] for w in {s["worker"] for s in stream}}
    assert workers == {"external-0"}
    from flows.make_cinemagraph import make_cinemagraph  # noqa: F401 - stage tasks are imported with it
    from tasks.encode import encode_outputs_task
    from tasks.ingest import ingest_video
    from tasks.render import render_loop_task
    from tasks.window import select_window_task

    ran = {s["key"].rsplit("-", 1)[0] for s in stream if isinstance(s["key"], str)}
    for stage_task in (ingest_video, select_window_task, render_loop_task, encode_outputs_task):
        assert stage_task.fn.__name__ in ran, (stage_task.name, sorted(ran))

    artifacts = api(ops, "/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [run["id"]]}}})
    from tasks.outputs import artifact_key

    summary = [a for a in artifacts if a["type"] == "markdown"]
    assert summary and summary[0]["key"] == artifact_key(out)
    assert "**Outcome: animated**" in summary[0]["data"] and "data:image/png;base64," in summary[0]["data"]


@pytest.fixture(scope="module")
def killed_corpus(ops, tmp_path_factory):
    """A process_corpus deployment run killed mid-run, then run again through the worker."""
    root = tmp_path_factory.mktemp("ops-corpus")
    for k in range(3):
        make_blinking_clip(root / f"clip{k}.mp4", height=72, width=128, n_frames=40, seed=k)
    (root / "manifest.jsonl").write_text("".join(json.dumps({"source": f"clip{k}.mp4"}) + "\n" for k in range(3)))
    out = root / "out"
    params = {
        "manifest": str(root / "manifest.jsonl"),
        "out_root": str(out),
        "config": {
            "max_in_flight": 3,
            "shots": {"detect": False},
            "lease_timeout": 120,
            "pipeline": {**SMALL, "execution": {"n_workers": 1, "threads_per_worker": 2}},
        },
    }
    killed_id = run_deployment(ops, "process_corpus/process-corpus-nightly", params)
    deadline, killed_stages, pid = time.time() + 600, None, None
    while time.time() < deadline:
        stores = {p.parent.name: read_attrs(p).get("stages", {}) for p in out.glob("*/store.zarr")
                  if (p / "zarr.json").exists()}
        unfinished = {k: v for k, v in stores.items() if not (out / k / "result.json").exists()}
        if any("window" in v for v in unfinished.values()):
            pid = next(
                (p.pid for p in psutil.process_iter(["environ"])
                 if (p.info["environ"] or {}).get("PREFECT__FLOW_RUN_ID") == killed_id),
                None,
            )
            if pid is not None:
                os.kill(pid, signal.SIGKILL)
                killed_stages = {k: read_attrs(out / k / "store.zarr")["stages"] for k in unfinished}
                break
        assert flow_run(ops, killed_id)["state_type"] not in {"COMPLETED", "FAILED", "CRASHED"}
        time.sleep(0.2)
    assert killed_stages, "the corpus run was not caught mid-run"
    # Prefect's process worker reports the killed process: the run becomes Crashed, not Running
    deadline = time.time() + 120
    while flow_run(ops, killed_id)["state_type"] == "RUNNING" and time.time() < deadline:
        time.sleep(1)
    killed_state = flow_run(ops, killed_id)["state_type"]
    rerun = wait_final(ops, run_deployment(ops, "process_corpus/process-corpus-nightly", params))
    return {"out": out, "killed_id": killed_id, "killed_state": killed_state, "killed_stages": killed_stages,
            "rerun": rerun}


def test_a_killed_corpus_run_heals(ops, killed_corpus):
    k = killed_corpus
    assert k["killed_state"] == "CRASHED"
    rerun = k["rerun"]
    assert rerun["state_type"] == "COMPLETED", rerun["state"]
    rows = [json.loads(line) for line in (k["out"] / "index.jsonl").read_text().splitlines()]
    assert sorted(r["item_id"] for r in rows) == ["clip0", "clip1", "clip2"]
    assert all(r["status"] in {"succeeded", "done_before"} for r in rows), rows
    for item, stages in k["killed_stages"].items():
        assert (k["out"] / item / "result.json").exists()
        final = read_attrs(k["out"] / item / "store.zarr")["stages"]
        for stage, record in stages.items():
            assert final[stage] == record, f"{item}: {stage} was computed again"
    # nothing of the killed run is left Running: its item subflows were marked Crashed on take-over
    children = api(ops, "/flow_runs/filter", {"flow_runs": {"parent_flow_run_id": {"any_": [k["killed_id"]]}}})
    assert children and all(c["state_type"] != "RUNNING" for c in children)
    assert not (k["out"] / "clip0" / ".lease").exists()


def test_no_lock_or_telemetry_errors(ops, killed_corpus):
    """Several items at once against the server (PostgreSQL when installed): no lock errors anywhere."""
    if ops["database"] is None:
        pytest.skip("PostgreSQL (Debian's postgresql package) is not installed")
    assert ops["database"].startswith("postgresql+asyncpg://")
    runs = [killed_corpus["rerun"]["id"], killed_corpus["killed_id"]]
    children = api(ops, "/flow_runs/filter", {"flow_runs": {"parent_flow_run_id": {"any_": runs}}})
    logs = api(ops, "/logs/filter", {"logs": {"flow_run_id": {"any_": runs + [c["id"] for c in children]}}})
    assert len(children) >= 3 and logs
    texts = {
        "server": ops["server_log"].read_text(),
        "worker": ops["worker_log"].read_text(),
        "runs": "\n".join(entry["message"] for entry in logs),
    }
    for name, text in texts.items():
        lowered = text.lower()
        for bad in ("database is locked", "deadlock", "could not obtain lock", "telemetry"):
            assert bad not in lowered, f"{name} log: {bad}"
    assert httpx.get(f"{ops['url']}/automations/{ops['automation']}", timeout=30).json()["enabled"]
